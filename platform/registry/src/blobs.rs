//! Executables on disk, stored once by sha256 digest, each with its read-only root file system.
//!
//! Layout under the data folder: `blobs/<digest>` (the executable) and `rootfs/<digest>/`
//! (`function` hard-linked to the blob, plus the empty mount points the container needs).
//! Both appear by atomic rename, so a reader never sees half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Makes partial file names unique per call, so concurrent stores of one digest never share one.
static NEXT_PARTIAL: AtomicU64 = AtomicU64::new(0);

/// Mount points the sandbox mounts over; a read-only root must already have them.
const MOUNT_POINTS: [&str; 4] = ["proc", "dev", "tmp", "run/kiln"];

#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    blobs: PathBuf,
    rootfs: PathBuf,
}

impl BlobStore {
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<BlobStore> {
        let store = BlobStore {
            blobs: data_dir.join("blobs"),
            rootfs: data_dir.join("rootfs"),
        };
        fs::create_dir_all(&store.blobs)?;
        fs::create_dir_all(&store.rootfs)?;
        Ok(store)
    }

    pub(crate) fn digest(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// True when the executable and its root file system are on disk.
    pub(crate) fn has(&self, digest: &str) -> bool {
        self.blobs.join(digest).exists() && self.rootfs_path(digest).join("function").exists()
    }

    /// Stores an executable and its root file system; `Ok(true)` only if this call created
    /// them (and so may remove them again if recording the upload fails).
    pub(crate) fn put(&self, digest: &str, bytes: &[u8]) -> std::io::Result<bool> {
        let blob = self.blobs.join(digest);
        let root = self.rootfs_path(digest);
        if self.has(digest) {
            return Ok(false);
        }
        let unique = format!(
            ".partial-{digest}-{}-{}",
            std::process::id(),
            NEXT_PARTIAL.fetch_add(1, Ordering::Relaxed)
        );
        let partial_blob = self.blobs.join(&unique);
        let written = (|| {
            let mut file = fs::File::create_new(&partial_blob)?;
            file.write_all(bytes)?;
            file.set_permissions(fs::Permissions::from_mode(0o755))?;
            file.sync_all()?;
            fs::rename(&partial_blob, &blob)?;
            let partial_root = self.rootfs.join(&unique);
            let _ = fs::remove_dir_all(&partial_root);
            for mount_point in MOUNT_POINTS {
                fs::create_dir_all(partial_root.join(mount_point))?;
            }
            fs::hard_link(&blob, partial_root.join("function"))?;
            if root.exists() && !root.join("function").exists() {
                // Left half-removed by an earlier crash: replace it.
                fs::remove_dir_all(&root)?;
            }
            match fs::rename(&partial_root, &root) {
                Ok(()) => Ok(true),
                // Another store of the same digest won the race: its root is as good as ours.
                Err(_) if root.join("function").exists() => fs::remove_dir_all(&partial_root).map(|()| false),
                Err(error) => Err(error),
            }
        })();
        written.inspect_err(|_| {
            let _ = fs::remove_file(&partial_blob);
            let _ = fs::remove_dir_all(self.rootfs.join(&unique));
        })
    }

    pub(crate) fn rootfs_path(&self, digest: &str) -> PathBuf {
        self.rootfs.join(digest)
    }

    /// Removes an executable and its root file system.
    pub(crate) fn remove(&self, digest: &str) {
        let _ = fs::remove_dir_all(self.rootfs_path(digest));
        let _ = fs::remove_file(self.blobs.join(digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_once_and_removes() {
        let dir = std::env::temp_dir().join(format!("kiln-blobs-{}", std::process::id()));
        let store = BlobStore::open(&dir).unwrap();
        let digest = BlobStore::digest(b"binary");
        assert_eq!(digest.len(), 64);
        assert!(store.put(&digest, b"binary").unwrap());
        assert!(!store.put(&digest, b"binary").unwrap());
        let function = store.rootfs_path(&digest).join("function");
        assert_eq!(fs::read(&function).unwrap(), b"binary");
        assert!(store.rootfs_path(&digest).join("run/kiln").is_dir());
        store.remove(&digest);
        assert!(!function.exists());
        assert_eq!(
            fs::read_dir(dir.join("blobs")).unwrap().count(),
            0,
            "partial files left behind"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
