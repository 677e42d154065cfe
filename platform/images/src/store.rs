//! The image store on disk: layers by diff id, image roots and records by config digest.
//!
//! Layout under its folder: `layers/<diff hex>/` (one unpacked layer, shared by every image
//! that has it), `roots/<config hex>/` (an image's root, hard links into its layers) and
//! `records/<config hex>.json` (what the image is: its layers, process and size). Every
//! piece is written under a `.partial-*` name and renamed into place; a refused upload
//! removes its partial pieces, and pieces left by a crash are removed when the store opens.
//! Layers no record names are removed whenever an image is.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_types::ProcessSpec;
use serde::{Deserialize, Serialize};

use crate::archive::ArchiveIndex;
use crate::config::ImageConfig;
use crate::digest::{sha256_hex, sha256_of};
use crate::layer::{Budget, unpack};
use crate::manifest::{candidates, choose};
use crate::removal::remove_any;
use crate::{ImageError, root};

const PARTIAL: &str = ".partial-";

/// What the operator allows one image to be.
#[derive(Debug, Clone)]
pub struct ImageLimits {
    /// The uploaded archive, compressed layers and all.
    pub max_archive_bytes: u64,
    /// The sum of the image's file sizes once unpacked.
    pub max_rootfs_bytes: u64,
    /// Files, folders and links of all its layers together.
    pub max_entries: u64,
}

impl Default for ImageLimits {
    fn default() -> ImageLimits {
        ImageLimits {
            max_archive_bytes: 1 << 30,
            max_rootfs_bytes: 4 << 30,
            max_entries: 500_000,
        }
    }
}

/// An image as stored: known by the hex sha256 of its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    pub digest: String,
    /// The archive's name for the image (the one `?image=` matched), if it has one.
    pub reference: Option<String>,
    pub process: ProcessSpec,
    /// The image's Entrypoint alone: `process.args` is it followed by the image's Cmd.
    pub entrypoint: Vec<String>,
    /// Hex diff ids, lowest first.
    pub layers: Vec<String>,
    /// The sum of its file sizes once unpacked.
    pub rootfs_bytes: u64,
}

pub struct ImageStore {
    layers: PathBuf,
    roots: PathBuf,
    records: PathBuf,
    limits: ImageLimits,
    /// Held while pieces are renamed into place or removed, so removing unused layers never
    /// races an upload that is about to use them.
    commit: Mutex<()>,
    partials: AtomicU64,
}

impl ImageStore {
    /// Opens (creating it if needed) the store under `folder`, removing pieces a crash left:
    /// partial pieces, roots whose record is gone, and layers no record names.
    pub fn open(folder: &Path, limits: ImageLimits) -> io::Result<ImageStore> {
        let store = ImageStore {
            layers: folder.join("layers"),
            roots: folder.join("roots"),
            records: folder.join("records"),
            limits,
            commit: Mutex::new(()),
            partials: AtomicU64::new(0),
        };
        for dir in [&store.layers, &store.roots, &store.records] {
            fs::create_dir_all(dir)?;
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                    remove_any(&entry.path())?;
                }
            }
        }
        for entry in fs::read_dir(&store.roots)? {
            let digest = entry?.file_name().to_string_lossy().into_owned();
            if !store.records.join(format!("{digest}.json")).exists() {
                store.remove(&digest)?;
            }
        }
        store.remove_unused_layers()?;
        Ok(store)
    }

    pub fn limits(&self) -> &ImageLimits {
        &self.limits
    }

    /// The read-only root of the image whose config hashes to `digest`.
    pub fn root_path(&self, digest: &str) -> PathBuf {
        self.roots.join(digest)
    }

    /// True when the image is complete on this node's disk.
    pub fn contains(&self, digest: &str) -> bool {
        self.records.join(format!("{digest}.json")).exists() && self.root_path(digest).is_dir()
    }

    /// Checks and stores the image `wanted` names (or the only one) of the archive at
    /// `archive`. Blocking: run it off the async runtime. Every blob is checked against its
    /// digest and every layer against the config's diff ids, also those already stored.
    pub fn ingest(&self, archive: &Path, wanted: Option<&str>) -> Result<StoredImage, ImageError> {
        let archive_bytes = fs::metadata(archive)?.len();
        if archive_bytes > self.limits.max_archive_bytes {
            return Err(ImageError::TooLarge(format!(
                "image archives are limited to {} bytes",
                self.limits.max_archive_bytes
            )));
        }
        let index = ArchiveIndex::open(archive)?;
        let candidate = choose(candidates(&index)?, wanted)?;
        let config_bytes = index.read_document(&candidate.config.name)?;
        let digest = sha256_of(&config_bytes);
        if let Some(expected) = &candidate.config.digest
            && sha256_hex(expected)? != digest
        {
            return Err(ImageError::invalid(format!(
                "the image config does not match its digest {expected} (it hashes to sha256:{digest})"
            )));
        }
        let config = ImageConfig::parse(&config_bytes)?;
        if config.diff_ids().len() != candidate.layers.len() {
            return Err(ImageError::invalid(format!(
                "the manifest lists {} layers but the config describes {}",
                candidate.layers.len(),
                config.diff_ids().len()
            )));
        }
        let mut partials = Partials::default();
        let mut budget = Budget {
            bytes_left: self.limits.max_rootfs_bytes,
            entries_left: self.limits.max_entries,
            max_bytes: self.limits.max_rootfs_bytes,
        };
        let mut layers = Vec::with_capacity(candidate.layers.len());
        for (position, (member, expected)) in candidate.layers.iter().zip(config.diff_ids()).enumerate() {
            let diff_id = sha256_hex(expected)?.to_owned();
            if let Some(digest) = &member.digest {
                index.verify_member(&member.name, digest, member.size)?;
            }
            let (blob, _) = index.open_member(&member.name)?;
            let stored = self.layers.join(&diff_id);
            let partial = (!stored.is_dir()).then(|| partials.add(self.partial_path(&self.layers, &diff_id)));
            if let Some(partial) = &partial {
                fs::create_dir(partial)?;
            }
            let actual = unpack(blob, partial.as_deref(), &mut budget)?;
            if actual != diff_id {
                return Err(ImageError::invalid(format!(
                    "layer {} ({}) unpacks to sha256:{actual}, but the config says {expected}",
                    position + 1,
                    member.name
                )));
            }
            layers.push((diff_id, partial));
        }
        let reference = candidate.refs.first().cloned();
        let rootfs_bytes = self.limits.max_rootfs_bytes - budget.bytes_left;
        let _commit = self.commit.lock();
        for (diff_id, partial) in &layers {
            if let Some(partial) = partial {
                place(partial, &self.layers.join(diff_id))?;
            }
        }
        let image = self.commit_root(&config, &digest, reference, &layers, rootfs_bytes);
        if image.is_err() {
            self.remove_unused_layers()?;
        }
        image
    }

    /// Builds the root and writes the record, under the commit lock.
    fn commit_root(
        &self,
        config: &ImageConfig,
        digest: &str,
        reference: Option<String>,
        layers: &[(String, Option<PathBuf>)],
        rootfs_bytes: u64,
    ) -> Result<StoredImage, ImageError> {
        let mut partials = Partials::default();
        let root = self.root_path(digest);
        let process = if root.is_dir() {
            config.process(&root)?
        } else {
            let partial = partials.add(self.partial_path(&self.roots, digest));
            let layer_dirs: Vec<PathBuf> = layers
                .iter()
                .map(|(diff_id, _)| self.layers.join(diff_id))
                .collect();
            root::build(
                &layer_dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
                &partial,
            )?;
            // Resolved before the root is placed: an image whose user is unknown leaves none.
            let process = config.process(&partial)?;
            place(&partial, &root)?;
            process
        };
        let image = StoredImage {
            digest: digest.to_owned(),
            reference,
            process,
            entrypoint: config.entrypoint(),
            layers: layers.iter().map(|(diff_id, _)| diff_id.clone()).collect(),
            rootfs_bytes,
        };
        let record = partials.add(self.partial_path(&self.records, digest));
        fs::write(
            &record,
            serde_json::to_vec_pretty(&image).expect("image record serializes"),
        )?;
        fs::rename(&record, self.records.join(format!("{digest}.json")))?;
        Ok(image)
    }

    /// Removes the image `digest` and every layer no other image uses.
    pub fn remove(&self, digest: &str) -> io::Result<()> {
        let _commit = self.commit.lock();
        match fs::remove_file(self.records.join(format!("{digest}.json"))) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let root = self.root_path(digest);
        if root.exists() {
            let trash = self.partial_path(&self.roots, digest);
            fs::rename(&root, &trash)?;
            remove_any(&trash)?;
        }
        self.remove_unused_layers()
    }

    /// Under the commit lock: layers that no record names go.
    fn remove_unused_layers(&self) -> io::Result<()> {
        let mut used = HashSet::new();
        for entry in fs::read_dir(&self.records)? {
            let path = entry?.path();
            if path.extension().is_some_and(|extension| extension == "json")
                && let Ok(bytes) = fs::read(&path)
                && let Ok(image) = serde_json::from_slice::<StoredImage>(&bytes)
            {
                used.extend(image.layers);
            }
        }
        for entry in fs::read_dir(&self.layers)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(PARTIAL) && !used.contains(&name) {
                let trash = self.partial_path(&self.layers, &name);
                fs::rename(entry.path(), &trash)?;
                remove_any(&trash)?;
            }
        }
        Ok(())
    }

    fn partial_path(&self, dir: &Path, name: &str) -> PathBuf {
        let serial = self.partials.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("{PARTIAL}{name}-{}-{serial}", std::process::id()))
    }
}

/// Renames a finished piece into place; when another upload placed the same piece first,
/// that one is kept and this one removed.
fn place(partial: &Path, destination: &Path) -> io::Result<()> {
    if destination.exists() {
        return remove_any(partial);
    }
    fs::rename(partial, destination)
}

/// Pieces written under partial names; whatever is still there when this is dropped goes.
#[derive(Default)]
struct Partials(Vec<PathBuf>);

impl Partials {
    fn add(&mut self, path: PathBuf) -> PathBuf {
        self.0.push(path.clone());
        path
    }
}

impl Drop for Partials {
    fn drop(&mut self) {
        for path in &self.0 {
            if let Err(error) = remove_any(path) {
                tracing::warn!(path = %path.display(), %error, "could not remove a partial image piece");
            }
        }
    }
}
