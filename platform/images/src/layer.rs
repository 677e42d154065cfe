//! Unpacks one layer into a folder of its own, refusing anything that could write outside
//! it, and hashes the decompressed stream so it can be checked against the config.
//!
//! Paths are normalised (a leading `/` or `./` dropped, `..` refused); every parent is
//! checked with `lstat` to be a real folder of this layer, so no entry is ever written
//! through a symbolic link; hard links point only at regular files already in the layer;
//! device nodes and FIFOs are skipped; setuid and setgid bits are dropped. Whiteouts
//! (`.wh.NAME`, `.wh..wh..opq`) stay in the folder as the empty files they are: they take
//! effect when image roots are built.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use crate::ImageError;
use crate::digest::HashingReader;
use crate::removal::remove_any;

/// What the whole image may unpack to, shared by its layers.
pub(crate) struct Budget {
    pub bytes_left: u64,
    pub entries_left: u64,
    pub max_bytes: u64,
}

/// Decompresses `blob` (gzip, zstd or plain tar, told apart by their first bytes) and
/// unpacks it into `destination`, or only hashes it when `destination` is `None` (the
/// layer is already on disk). Returns the decompressed stream's hex sha256.
pub(crate) fn unpack(
    blob: impl Read,
    destination: Option<&Path>,
    budget: &mut Budget,
) -> Result<String, ImageError> {
    let mut buffered = BufReader::with_capacity(1 << 16, blob);
    let magic = buffered
        .fill_buf()?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|error| ImageError::invalid(format!("a zstd layer cannot be read: {error}")))?,
        )
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(HashingReader::new(decompressed));
    let unreadable =
        |error: io::Error| ImageError::invalid(format!("a layer is not a readable tar: {error}"));
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        if budget.entries_left == 0 {
            return Err(ImageError::TooLarge("the image has too many files".to_owned()));
        }
        budget.entries_left -= 1;
        let size = entry.header().entry_size().map_err(unreadable)?;
        if size > budget.bytes_left {
            return Err(ImageError::TooLarge(format!(
                "the image unpacks to more than {} bytes",
                budget.max_bytes
            )));
        }
        budget.bytes_left -= size;
        if let Some(destination) = destination {
            write_entry(destination, &mut entry)?;
        }
    }
    let (diff_id, _) = archive.into_inner().finish().map_err(unreadable)?;
    Ok(diff_id)
}

fn write_entry(layer: &Path, entry: &mut tar::Entry<'_, impl Read>) -> Result<(), ImageError> {
    let raw_path = entry
        .path()
        .map_err(|error| ImageError::invalid(format!("a layer entry has no usable path: {error}")))?;
    let shown = raw_path.display().to_string();
    let Some(relative) = normalize(&raw_path)? else {
        return Ok(()); // the layer's root folder itself
    };
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().unwrap_or(0o644) & 0o1777;
    let uid = header
        .uid()
        .ok()
        .and_then(|uid| u32::try_from(uid).ok())
        .unwrap_or(0);
    let gid = header
        .gid()
        .ok()
        .and_then(|gid| u32::try_from(gid).ok())
        .unwrap_or(0);
    let mtime = header.mtime().unwrap_or(0);
    let path = layer.join(&relative);
    match kind {
        EntryType::Directory => {
            walk_parents(layer, &relative, &shown, Missing::Create)?;
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&path)?;
                    fs::create_dir(&path)?;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => fs::create_dir(&path)?,
                Err(error) => return Err(error.into()),
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
        EntryType::Regular | EntryType::Continuous => {
            walk_parents(layer, &relative, &shown, Missing::Create)?;
            remove_any(&path)?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&path)?;
            io::copy(entry, &mut file)?;
            finish_file(&file, &path, mode, uid, gid, mtime)?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(|error| {
                    ImageError::invalid(format!("symbolic link `{shown}` has no usable target: {error}"))
                })?
                .ok_or_else(|| ImageError::invalid(format!("symbolic link `{shown}` has no target")))?;
            walk_parents(layer, &relative, &shown, Missing::Create)?;
            remove_any(&path)?;
            std::os::unix::fs::symlink(&target, &path)?;
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
        EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(|error| {
                    ImageError::invalid(format!("hard link `{shown}` has no usable target: {error}"))
                })?
                .ok_or_else(|| ImageError::invalid(format!("hard link `{shown}` has no target")))?;
            let target_shown = target.display().to_string();
            let target = normalize(&target)?.ok_or_else(|| {
                ImageError::invalid(format!("hard link `{shown}` points at the layer's root"))
            })?;
            walk_parents(layer, &target, &target_shown, Missing::Stop)?;
            let target_path = layer.join(&target);
            if !fs::symlink_metadata(&target_path).is_ok_and(|metadata| metadata.is_file()) {
                return Err(ImageError::invalid(format!(
                    "hard link `{shown}` points at `{target_shown}`, which is not a regular file earlier in the same layer"
                )));
            }
            walk_parents(layer, &relative, &shown, Missing::Create)?;
            if target_path != path {
                remove_any(&path)?;
                fs::hard_link(&target_path, &path)?;
            }
        }
        EntryType::GNUSparse => {
            return Err(ImageError::invalid(format!(
                "`{shown}` is a sparse file; Kiln reads plain tar layers"
            )));
        }
        // Device nodes and FIFOs would be refused by the container's device rules anyway;
        // PAX global headers carry nothing Kiln uses.
        _ => {}
    }
    Ok(())
}

fn finish_file(file: &File, path: &Path, mode: u32, uid: u32, gid: u32, mtime: u64) -> io::Result<()> {
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))?;
    std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
    // After chown, which clears setuid bits anyway; mode has none left.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// An entry's path inside the layer: `None` for the root itself, an error for `..`.
fn normalize(path: &Path) -> Result<Option<PathBuf>, ImageError> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::invalid(format!(
                    "layer entry `{}` climbs out of the image with `..`",
                    path.display()
                )));
            }
        }
    }
    Ok((!normal.as_os_str().is_empty()).then_some(normal))
}

/// What to do about a missing parent folder of an entry.
#[derive(Clone, Copy)]
enum Missing {
    Create,
    /// Stop the walk: the caller then finds no file there.
    Stop,
}

/// Walks the parents of `relative`: every existing one must be a real folder of the layer
/// (never a link or a file), and missing ones are created or end the walk.
fn walk_parents(layer: &Path, relative: &Path, shown: &str, missing: Missing) -> Result<(), ImageError> {
    let mut current = layer.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(through_non_folder(shown, &current, layer)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => match missing {
                Missing::Create => {
                    fs::create_dir(&current)?;
                    fs::set_permissions(&current, fs::Permissions::from_mode(0o755))?;
                }
                Missing::Stop => return Ok(()),
            },
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn through_non_folder(shown: &str, current: &Path, layer: &Path) -> ImageError {
    let through = current.strip_prefix(layer).unwrap_or(current).display();
    ImageError::invalid(format!(
        "layer entry `{shown}` would be written through `{through}`, which is a symbolic link or a file, not a folder"
    ))
}
