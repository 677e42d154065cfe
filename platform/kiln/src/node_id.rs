//! This node's stable name, kept in the data folder so a restarted kilnd recognises the
//! instances it was running and replays them at once.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

const FILE: &str = "node-id";

/// True for a usable node name: 1-64 letters, digits, `-`, `_` or `.`.
pub fn is_node_id(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 64
        && node
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Reads `{data_dir}/node-id`, creating it with a random name on first start.
pub fn load_or_create(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) if is_node_id(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(text) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds `{}`, not a node id; delete it to get a new one",
                    path.display(),
                    text.trim()
                ),
            ));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut random = [0u8; 6];
    fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let node: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let node = format!("node-{node}");
    let partial = data_dir.join(format!("{FILE}.partial"));
    fs::write(&partial, format!("{node}\n"))?;
    fs::rename(&partial, &path)?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_created_once_and_kept() {
        let folder = std::env::temp_dir().join(format!("kiln-node-id-test-{}", std::process::id()));
        fs::create_dir_all(&folder).unwrap();
        let first = load_or_create(&folder).unwrap();
        assert!(is_node_id(&first), "{first}");
        assert_eq!(load_or_create(&folder).unwrap(), first);
        fs::write(folder.join(FILE), "not an id!").unwrap();
        assert!(load_or_create(&folder).is_err());
        fs::remove_dir_all(&folder).unwrap();
    }
}
