//! Uploads of container images: the archive is staged on disk, handed to the image store
//! and recorded as a version whose digest is the image config's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image_pull::PullSettings;
use images::StoredImage;
use kiln_types::ProcessSpec;
use serde::{Deserialize, Serialize};
use store::{NewVersion, VersionRecord};

use crate::{FunctionSettings, Registry, RegistryError, validate_name};

/// What a version row says about its image (the `image` column).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageVersion {
    pub reference: Option<String>,
    pub layers: Vec<String>,
    pub process: ProcessSpec,
    /// The image's Entrypoint, which a `cmd=` setting's arguments follow.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    pub rootfs_bytes: u64,
}

impl ImageVersion {
    pub(crate) fn from_stored(stored: &serde_json::Value) -> Result<ImageVersion, RegistryError> {
        serde_json::from_value(stored.clone()).map_err(|error| {
            RegistryError::Io(std::io::Error::other(format!("unreadable image column: {error}")))
        })
    }
}

impl From<&StoredImage> for ImageVersion {
    fn from(image: &StoredImage) -> ImageVersion {
        ImageVersion {
            reference: image.reference.clone(),
            layers: image.layers.clone(),
            process: image.process.clone(),
            entrypoint: image.entrypoint.clone(),
            rootfs_bytes: image.rootfs_bytes,
        }
    }
}

/// The folder where upload bodies are written before they are checked.
pub(crate) struct Staging {
    folder: PathBuf,
    serial: AtomicU64,
}

impl Staging {
    /// Opens the folder, removing what an earlier process left in it.
    pub(crate) fn open(folder: &Path) -> std::io::Result<Staging> {
        if folder.exists() {
            std::fs::remove_dir_all(folder)?;
        }
        std::fs::create_dir_all(folder)?;
        Ok(Staging {
            folder: folder.to_owned(),
            serial: AtomicU64::new(0),
        })
    }

    fn next_path(&self) -> PathBuf {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        self.folder.join(format!("upload-{serial}"))
    }
}

/// A staged upload body; its file is removed when this is dropped.
pub struct StagedUpload {
    path: PathBuf,
}

impl StagedUpload {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagedUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Registry {
    /// A new file to write an upload body to before it is checked.
    pub fn stage_upload(&self) -> StagedUpload {
        StagedUpload {
            path: self.staging.next_path(),
        }
    }

    /// The largest image archive this registry accepts.
    pub fn image_archive_limit(&self) -> u64 {
        self.config.images.max_archive_bytes
    }

    /// Stores the image `wanted` names (or the archive's only one) from a staged archive as a
    /// new version of `tenant/name` and makes it current. Runs to the end in its own task.
    pub async fn upload_image(
        &self,
        tenant: &str,
        name: &str,
        archive: StagedUpload,
        wanted: Option<String>,
        settings: &FunctionSettings,
    ) -> Result<VersionRecord, RegistryError> {
        let (registry, tenant, name, settings) =
            (self.clone(), tenant.to_owned(), name.to_owned(), settings.clone());
        tokio::spawn(async move {
            registry
                .store_image(&tenant, &name, archive, wanted, &settings)
                .await
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Pulls `reference` from its registry (one the operator allows) and stores it as
    /// [`Registry::upload_image`] does an uploaded archive.
    pub async fn pull_image(
        &self,
        tenant: &str,
        name: &str,
        reference: &str,
        settings: &FunctionSettings,
    ) -> Result<VersionRecord, RegistryError> {
        validate_name("function name", name)?;
        self.check_network(settings)?;
        let staged = self.stage_upload();
        let pulls = PullSettings {
            max_bytes: self.config.images.max_archive_bytes,
            ..self.config.pulls.clone()
        };
        image_pull::pull(&pulls, reference, staged.path()).await?;
        self.upload_image(tenant, name, staged, None, settings).await
    }

    async fn store_image(
        &self,
        tenant: &str,
        name: &str,
        archive: StagedUpload,
        wanted: Option<String>,
        settings: &FunctionSettings,
    ) -> Result<VersionRecord, RegistryError> {
        validate_name("function name", name)?;
        self.check_network(settings)?;
        let images = self.images.clone();
        let image = tokio::task::spawn_blocking(move || images.ingest(archive.path(), wanted.as_deref()))
            .await
            .map_err(std::io::Error::other)??;
        let new = NewVersion {
            tenant: tenant.to_owned(),
            function: name.to_owned(),
            digest: image.digest.clone(),
            size_bytes: i64::try_from(image.rootfs_bytes).unwrap_or(i64::MAX),
            settings: serde_json::to_value(settings).expect("settings serialise"),
            image: Some(serde_json::to_value(ImageVersion::from(&image)).expect("image serialises")),
        };
        match self.store.insert_version(&new, None).await {
            Ok(record) => {
                self.forget(tenant, name);
                Ok(record)
            }
            Err(error) => {
                if !self.store.digest_in_use(&image.digest).await.unwrap_or(true) {
                    let images = self.images.clone();
                    let _ = tokio::task::spawn_blocking(move || images.remove(&image.digest)).await;
                }
                Err(error.into())
            }
        }
    }
}
