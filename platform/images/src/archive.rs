//! The uploaded archive: an index of its members, read back by name without unpacking it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::ImageError;
use crate::digest::{HashingReader, sha256_hex, sha256_of};

/// Members an image archive may have; more means it is not an image archive.
const MAX_MEMBERS: usize = 100_000;
/// JSON documents (index, manifests, configs) larger than this are refused.
const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// Where each regular member's bytes sit in the archive file.
pub(crate) struct ArchiveIndex {
    file: File,
    members: HashMap<String, (u64, u64)>,
}

impl ArchiveIndex {
    pub(crate) fn open(path: &Path) -> Result<ArchiveIndex, ImageError> {
        let file = File::open(path)?;
        let mut archive = tar::Archive::new(&file);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        let not_a_tar = |error: std::io::Error| {
            ImageError::invalid(format!("the upload is not a readable tar archive: {error}"))
        };
        for entry in archive.entries_with_seek().map_err(not_a_tar)? {
            let entry = entry.map_err(not_a_tar)?;
            if members.len() + links.len() >= MAX_MEMBERS {
                return Err(ImageError::invalid(format!(
                    "the archive has more than {MAX_MEMBERS} members"
                )));
            }
            let name = member_name(&entry.path().map_err(not_a_tar)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(name, (entry.raw_file_position(), entry.size()));
            } else if (kind.is_symlink() || kind.is_hard_link())
                && let Some(target) = entry.link_name().map_err(not_a_tar)?
            {
                // docker-archives link repeated layers to their first copy.
                let target = target.to_string_lossy().into_owned();
                let resolved = if kind.is_symlink() {
                    let parent = name.rsplit_once('/').map_or("", |(parent, _)| parent);
                    resolve_relative(parent, &target)
                } else {
                    Some(member_name(&target))
                };
                links.extend(resolved.map(|target| (name, target)));
            }
        }
        for (name, target) in links {
            if let Some(&place) = members.get(&target) {
                members.insert(name, place);
            }
        }
        Ok(ArchiveIndex { file, members })
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// The member's bytes, streamed from the archive file.
    pub(crate) fn open_member(&self, name: &str) -> Result<(impl Read + use<>, u64), ImageError> {
        let &(offset, size) = self
            .members
            .get(name)
            .ok_or_else(|| ImageError::invalid(format!("the archive has no member `{name}`")))?;
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(offset))?;
        Ok((file.take(size), size))
    }

    /// A small member read whole (an index, manifest or config).
    pub(crate) fn read_document(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (mut reader, size) = self.open_member(name)?;
        if size > MAX_DOCUMENT_BYTES {
            return Err(ImageError::invalid(format!(
                "`{name}` is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// The blob `sha256:<hex>` of an OCI layout, checked against its digest and size.
    pub(crate) fn read_blob(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>, ImageError> {
        let name = blob_member(digest)?;
        let bytes = self.read_document(&name)?;
        check_size(digest, size, bytes.len() as u64)?;
        let actual = sha256_of(&bytes);
        if actual != sha256_hex(digest)? {
            return Err(ImageError::invalid(format!(
                "blob {digest} does not match its digest (it hashes to sha256:{actual})"
            )));
        }
        Ok(bytes)
    }

    /// Checks a (possibly large) member against `sha256:<hex>` by streaming it once.
    pub(crate) fn verify_member(
        &self,
        name: &str,
        digest: &str,
        size: Option<u64>,
    ) -> Result<(), ImageError> {
        let (reader, length) = self.open_member(name)?;
        check_size(digest, size, length)?;
        let (actual, _) = HashingReader::new(reader).finish()?;
        if actual != sha256_hex(digest)? {
            return Err(ImageError::invalid(format!(
                "blob {digest} does not match its digest (it hashes to sha256:{actual})"
            )));
        }
        Ok(())
    }
}

/// Where an OCI layout keeps the blob `sha256:<hex>`.
pub(crate) fn blob_member(digest: &str) -> Result<String, ImageError> {
    Ok(format!("blobs/sha256/{}", sha256_hex(digest)?))
}

fn check_size(digest: &str, expected: Option<u64>, actual: u64) -> Result<(), ImageError> {
    match expected {
        Some(expected) if expected != actual => Err(ImageError::invalid(format!(
            "blob {digest} is {actual} bytes but its descriptor says {expected}"
        ))),
        _ => Ok(()),
    }
}

/// A member's name without a leading `./` or `/`.
fn member_name(name: &str) -> String {
    name.trim_start_matches("./").trim_start_matches('/').to_owned()
}

/// `target` seen from the folder `parent`, inside the archive; `None` if it leaves it.
fn resolve_relative(parent: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        parent.split('/').filter(|part| !part.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::resolve_relative;

    #[test]
    fn links_resolve_inside_the_archive_only() {
        assert_eq!(
            resolve_relative("abc", "../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(resolve_relative("", "layer.tar").as_deref(), Some("layer.tar"));
        assert_eq!(resolve_relative("abc", "../../etc/passwd"), None);
    }
}
