//! The names this node gives to what it creates on the host, all carrying its tag.

use std::path::Path;

/// A short tag for a node, stable for its data folder: two Kiln nodes on one host (say,
/// tests side by side) never touch each other's namespaces, links or firewall table, and a
/// restarted node finds what it left behind.
pub fn node_tag(data_dir: &Path) -> String {
    // FNV-1a: stable across releases and platforms, unlike the standard library's hasher.
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
        });
    format!("{:05x}", hash & 0xf_ffff)
}

/// Names derived from one node's tag. Interface names stay within Linux's 15 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    tag: String,
}

impl Names {
    pub fn new(tag: &str) -> Names {
        Names { tag: tag.to_owned() }
    }

    /// The bridge every egress container's veth is a port of.
    pub fn bridge(&self) -> String {
        format!("kiln{}", self.tag)
    }

    /// The host end of slot `index`'s veth pair.
    pub fn veth(&self, index: u32) -> String {
        format!("kv{}{index:x}", self.tag)
    }

    /// The named network namespace (`/run/netns/<name>`) of slot `index`.
    pub fn namespace(&self, index: u32) -> String {
        format!("{}{index}", self.namespace_prefix())
    }

    pub fn namespace_prefix(&self) -> String {
        format!("kiln-{}-", self.tag)
    }

    pub fn veth_prefix(&self) -> String {
        format!("kv{}", self.tag)
    }

    /// The nftables table (family `inet`).
    pub fn table(&self) -> String {
        format!("kiln_{}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_names_fit_linux_limits() {
        let tag = node_tag(Path::new("/var/lib/kiln"));
        assert_eq!(tag, node_tag(Path::new("/var/lib/kiln")));
        assert_ne!(tag, node_tag(Path::new("/var/lib/kiln2")));
        assert_eq!(tag.len(), 5);
        let names = Names::new(&tag);
        assert!(names.bridge().len() <= 15);
        assert!(names.veth(0xffff).len() <= 15);
        assert!(names.veth(7).starts_with(&names.veth_prefix()));
        assert!(names.namespace(7).starts_with(&names.namespace_prefix()));
    }
}
