//! An image's root file system: its layers merged, lowest first, as a farm of hard links
//! to the layers' files, so images that share layers share their bytes on disk.
//!
//! Merging follows the OCI layer rules: `.wh.NAME` removes `NAME` from the layers below,
//! `.wh..wh..opq` empties its folder of everything below, a later entry replaces an
//! earlier one. Nothing is ever written through a link: every folder of the root is one
//! this code made. The finished root gets Kiln's mount points and its own `/etc/hosts`
//! and `/etc/resolv.conf` (new files, never the layers' inodes, which stay untouched).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::ImageError;
use crate::removal::remove_any;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Folders the container mounts over; they must be real folders of the root.
const MOUNT_POINTS: [&str; 5] = ["proc", "dev", "tmp", "run", "run/kiln"];
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tkiln\n";
/// Larger `/etc/passwd` or `/etc/group` files are not read.
const MAX_ACCOUNTS_FILE: u64 = 1 << 20;

/// Builds the root at `destination` (which must not exist) from `layers`, lowest first.
pub(crate) fn build(layers: &[&Path], destination: &Path) -> io::Result<()> {
    fs::create_dir(destination)?;
    fs::set_permissions(destination, fs::Permissions::from_mode(0o755))?;
    for layer in layers {
        merge(layer, destination)?;
    }
    for mount_point in MOUNT_POINTS {
        real_folder(destination, mount_point)?;
    }
    real_folder(destination, "etc")?;
    fresh_file(&destination.join("etc/hosts"), HOSTS.as_bytes())?;
    fresh_file(&destination.join("etc/resolv.conf"), b"")?;
    Ok(())
}

fn merge(layer_dir: &Path, root_dir: &Path) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(layer_dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    let names: Vec<String> = entries
        .iter()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|name| name == OPAQUE) {
        for child in fs::read_dir(root_dir)? {
            remove_any(&child?.path())?;
        }
    }
    for name in &names {
        if let Some(hidden) = name.strip_prefix(WHITEOUT)
            && name != OPAQUE
            && !hidden.is_empty()
        {
            remove_any(&root_dir.join(hidden))?;
        }
    }
    for (entry, name) in entries.iter().zip(&names) {
        if name.starts_with(WHITEOUT) {
            continue;
        }
        let source = entry.path();
        let target = root_dir.join(name);
        let metadata = fs::symlink_metadata(&source)?;
        if metadata.is_dir() {
            match fs::symlink_metadata(&target) {
                Ok(existing) if existing.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&target)?;
                    fs::create_dir(&target)?;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => fs::create_dir(&target)?,
                Err(error) => return Err(error),
            }
            fs::set_permissions(&target, fs::Permissions::from_mode(metadata.mode() & 0o1777))?;
            std::os::unix::fs::lchown(&target, Some(metadata.uid()), Some(metadata.gid()))?;
            merge(&source, &target)?;
        } else {
            remove_any(&target)?;
            fs::hard_link(&source, &target)?;
        }
    }
    Ok(())
}

/// Makes `relative` (and its parents) real folders of the root, replacing links or files.
fn real_folder(root: &Path, relative: &str) -> io::Result<()> {
    let mut current = root.to_path_buf();
    for part in relative.split('/') {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.is_dir() => continue,
            Ok(_) => fs::remove_file(&current)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        fs::create_dir(&current)?;
        fs::set_permissions(&current, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Replaces whatever is at `path` with a new root-owned file holding `contents`.
fn fresh_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    remove_any(path)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    io::Write::write_all(&mut file, contents)
}

/// A small text file of the root (`etc/passwd`), read without following any link: a link
/// counts as no file. `None` when it is missing.
pub(crate) fn read_root_file(root: &Path, relative: &str) -> Result<Option<String>, ImageError> {
    let mut current = root.to_path_buf();
    let parts: Vec<&str> = relative.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        current.push(part);
        if !fs::symlink_metadata(&current).is_ok_and(|metadata| metadata.is_dir()) {
            return Ok(None);
        }
    }
    current.push(parts[parts.len() - 1]);
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&current)
    {
        Ok(file) => file,
        Err(error)
            if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let mut text = String::new();
    file.take(MAX_ACCOUNTS_FILE)
        .read_to_string(&mut text)
        .map_err(|error| {
            ImageError::invalid(format!("the image's /{relative} is not readable text: {error}"))
        })?;
    Ok(Some(text))
}
