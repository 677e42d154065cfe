//! One image store per fuzzing process in a folder of its own, and the check that an
//! ingest left nothing behind in it or beside it.

use std::fs;
use std::path::PathBuf;
use std::sync::LazyLock;

use images::{ImageLimits, ImageStore};
use parking_lot::Mutex;

/// Small limits: a fuzz input declaring a 4 GiB sparse file is refused fast.
const LIMITS: ImageLimits = ImageLimits {
    max_archive_bytes: 16 << 20,
    max_rootfs_bytes: 64 << 20,
    max_entries: 10_000,
};

/// How deep the store lies in the scratch folder: an entry that escapes its layer by up to
/// this many `..` more than the store's own depth still lands where the check sees it.
const DEPTH: usize = 8;

pub(crate) struct ScratchStore {
    /// Holds the archive being ingested and, `DEPTH` folders down, `store/`; nothing else.
    folder: PathBuf,
    store_folder: PathBuf,
    pub(crate) store: ImageStore,
}

/// Scratch folders are named by this and the process id.
const SCRATCH_PREFIX: &str = "kiln-fuzz-images-";

/// Removes the scratch folders of fuzzing and test processes that have ended: a static is
/// never dropped, so each process leaves its folder behind for the next one to remove.
fn remove_scratch_of_ended_processes() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The store, locked: `cargo test` may replay targets on several threads.
pub(crate) static SCRATCH: LazyLock<Mutex<ScratchStore>> = LazyLock::new(|| {
    remove_scratch_of_ended_processes();
    let folder = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    let _ = fs::remove_dir_all(&folder);
    fs::create_dir_all(&folder).expect("a scratch folder");
    let store_folder = (0..DEPTH)
        .fold(folder.clone(), |path, level| path.join(level.to_string()))
        .join("store");
    let store = ImageStore::open(&store_folder, LIMITS).expect("a scratch image store");
    Mutex::new(ScratchStore {
        folder,
        store_folder,
        store,
    })
});

impl ScratchStore {
    /// Writes `archive` beside the store for an ingest.
    pub(crate) fn place_archive(&self, archive: &[u8]) -> PathBuf {
        let path = self.folder.join("upload.tar");
        fs::write(&path, archive).expect("writing the archive");
        path
    }

    /// Asserts the store holds no image, layer, record or partial piece, and that nothing
    /// was written outside it; then removes the archive.
    pub(crate) fn assert_empty(&self, after: &str) {
        for part in ["layers", "roots", "records"] {
            let left: Vec<_> = fs::read_dir(self.store_folder.join(part))
                .expect("a store part")
                .map(|entry| entry.expect("an entry").file_name())
                .collect();
            assert!(left.is_empty(), "{after} left {left:?} in {part}/");
        }
        let _ = fs::remove_file(self.folder.join("upload.tar"));
        let mut outside = Vec::new();
        let mut pending = vec![self.folder.clone()];
        while let Some(folder) = pending.pop() {
            for entry in fs::read_dir(&folder).expect("a scratch folder") {
                let path = entry.expect("an entry").path();
                if self.store_folder.starts_with(&path) {
                    pending.extend((path != self.store_folder).then_some(path));
                } else {
                    outside.push(path);
                }
            }
        }
        assert!(outside.is_empty(), "{after} wrote {outside:?} outside the store");
    }
}
