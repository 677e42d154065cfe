//! Removing whatever is at a path (file, link or folder tree) without following links: the
//! one way the store, the layers and the roots replace or drop what they wrote.

use std::fs;
use std::io;
use std::path::Path;

/// Removes `path` if it exists; a link is removed, never what it points at.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
