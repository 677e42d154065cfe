//! The registry proper: upload, list, resolve (with a short cache), roll back, delete.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use image_pull::PullSettings;
use images::{ImageLimits, ImageStore};
use kiln_types::{FunctionTarget, NetworkMode, ProcessSpec};
use lookup_cache::{LookupCache, LookupCounts, Policy};
use store::{FunctionRecord, NewVersion, Store, VersionRecord, VersionSelector};

use crate::blobs::BlobStore;
use crate::elf::check_executable;
use crate::image_upload::{ImageVersion, Staging};
use crate::{FunctionSettings, RegistryError, validate_name};

/// How long a resolved name is reused before PostgreSQL is asked again; bounds how long
/// another node keeps running a version after an upload or delete elsewhere.
const RESOLVE_CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub upload_limit: usize,
    /// The network of functions that do not choose one (`network=`).
    pub default_network: NetworkMode,
    /// Whether functions may ask for `network=host` (they then share the host's network).
    pub allow_host_network: bool,
    /// What one container image may be, as an archive and unpacked.
    pub images: ImageLimits,
    /// Which registries `?image=` pulls may use, and how.
    pub pulls: PullSettings,
    /// How long resolved versions keep being served while PostgreSQL is unreachable.
    pub stale_for: Duration,
}

/// Recently resolved targets by tenant, function and selector ("no such function" apart).
type ResolveCache = LookupCache<(String, String, VersionSelector), Arc<FunctionTarget>>;

#[derive(Clone)]
pub struct Registry {
    pub(crate) store: Store,
    blobs: BlobStore,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) staging: Arc<Staging>,
    pub(crate) config: RegistryConfig,
    cache: ResolveCache,
}

impl Registry {
    pub fn open(store: Store, data_dir: &Path, config: RegistryConfig) -> std::io::Result<Registry> {
        let cache = LookupCache::new(
            "functions",
            Policy::new(RESOLVE_CACHE_TTL, config.stale_for),
            store.unreachable_check(),
        );
        Ok(Registry {
            store,
            cache,
            blobs: BlobStore::open(data_dir)?,
            images: Arc::new(ImageStore::open(&data_dir.join("images"), config.images.clone())?),
            staging: Arc::new(Staging::open(&data_dir.join("uploads"))?),
            config,
        })
    }

    /// Stores a new version of `tenant/name` and makes it current. Runs to the end in its own
    /// task even if the caller goes away, so an upload never stops between disk and database.
    pub async fn upload(
        &self,
        tenant: &str,
        name: &str,
        executable: Bytes,
        settings: &FunctionSettings,
    ) -> Result<VersionRecord, RegistryError> {
        let (registry, tenant, name, settings) =
            (self.clone(), tenant.to_owned(), name.to_owned(), settings.clone());
        tokio::spawn(async move { registry.store_upload(&tenant, &name, executable, &settings).await })
            .await
            .map_err(std::io::Error::other)?
    }

    async fn store_upload(
        &self,
        tenant: &str,
        name: &str,
        executable: Bytes,
        settings: &FunctionSettings,
    ) -> Result<VersionRecord, RegistryError> {
        validate_name("function name", name)?;
        if executable.len() > self.config.upload_limit {
            return Err(RegistryError::TooLarge {
                limit: self.config.upload_limit,
            });
        }
        check_executable(&executable).map_err(RegistryError::NotExecutable)?;
        self.check_network(settings)?;
        if !settings.cmd.is_empty() {
            return Err(RegistryError::InvalidSetting(
                "cmd= replaces an image's Cmd; an executable function is started without arguments".into(),
            ));
        }
        let size_bytes = executable.len() as i64;
        // `Bytes` clones share the buffer: one copy goes to disk, the same one to PostgreSQL.
        let stored = executable.clone();
        let blobs = self.blobs.clone();
        let (digest, created) = tokio::task::spawn_blocking(move || {
            let digest = BlobStore::digest(&executable);
            blobs.put(&digest, &executable).map(|created| (digest, created))
        })
        .await
        .map_err(std::io::Error::other)??;
        let new = NewVersion {
            tenant: tenant.to_owned(),
            function: name.to_owned(),
            digest: digest.clone(),
            size_bytes,
            settings: serde_json::to_value(settings).expect("settings serialise"),
            image: None,
        };
        match self.store.insert_version(&new, Some(&stored)).await {
            Ok(record) => {
                self.forget(tenant, name);
                Ok(record)
            }
            Err(error) => {
                if created && !self.store.digest_in_use(&digest).await.unwrap_or(true) {
                    self.blobs.remove(&digest);
                }
                Err(error.into())
            }
        }
    }

    pub(crate) fn check_network(&self, settings: &FunctionSettings) -> Result<(), RegistryError> {
        if settings.network == NetworkMode::Host && !self.config.allow_host_network {
            return Err(RegistryError::InvalidSetting(
                "network=host is not allowed on this Kiln: such functions share the host's network, \
                 loopback included, so the operator must enable it with KILN_ALLOW_HOST_NETWORK=true; \
                 network=egress reaches the internet without seeing the host"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The network of uploads that do not set `network=`.
    pub fn default_network(&self) -> NetworkMode {
        self.config.default_network
    }

    /// Forgets cached resolutions of `tenant/name` after it changed.
    pub(crate) fn forget(&self, tenant: &str, name: &str) {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.cache.invalidate_if(move |(cached_tenant, cached_name, _)| {
            *cached_tenant == tenant && *cached_name == name
        });
    }

    /// How function lookups were answered, for `/metrics`.
    pub fn lookups(&self) -> LookupCounts {
        self.cache.counts()
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<FunctionRecord>, RegistryError> {
        Ok(self.store.list_functions(tenant).await?)
    }

    pub async fn show(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<(FunctionRecord, Vec<VersionRecord>)>, RegistryError> {
        Ok(self.store.function_with_versions(tenant, name).await?)
    }

    /// The target an invocation of `tenant/name` at `selector` runs, or `None`. While
    /// PostgreSQL is unreachable, what was last resolved (its files are on this node).
    pub async fn resolve(
        &self,
        tenant: &str,
        name: &str,
        selector: &VersionSelector,
    ) -> Result<Option<Arc<FunctionTarget>>, RegistryError> {
        let key = (tenant.to_owned(), name.to_owned(), selector.clone());
        let registry = self.clone();
        let (tenant, name, selector) = key.clone();
        let load = || async move {
            let store = &registry.store;
            let Some(version) = store
                .bounded(store.resolve_version(&tenant, &name, &selector))
                .await?
            else {
                return Ok(None);
            };
            registry.materialize(&version).await?;
            Ok::<_, RegistryError>(Some(Arc::new(registry.target(&version)?)))
        };
        self.cache.get(&key, load).await.map_err(RegistryError::Lookup)
    }

    /// The runnable form of a stored version: an executable's root and `/function`, or an
    /// image's root and the process its config describes.
    pub fn target(&self, version: &VersionRecord) -> Result<FunctionTarget, RegistryError> {
        let settings = FunctionSettings::from_stored(&version.settings);
        let (rootfs, process) = match &version.image {
            None => (self.blobs.rootfs_path(&version.digest), ProcessSpec::executable()),
            Some(image) => {
                let image = ImageVersion::from_stored(image)?;
                let mut process = image.process;
                if !settings.cmd.is_empty() {
                    process.args = image
                        .entrypoint
                        .into_iter()
                        .chain(settings.cmd.iter().cloned())
                        .collect();
                }
                (self.images.root_path(&version.digest), process)
            }
        };
        Ok(FunctionTarget {
            tenant: version.tenant.clone(),
            function: version.function.clone(),
            version: version.version,
            digest: version.digest.clone(),
            rootfs,
            process,
            limits: settings.limits(),
        })
    }

    /// Targets whose `min_warm` containers should be started when kilnd starts.
    pub async fn targets_to_prewarm(&self) -> Result<Vec<FunctionTarget>, RegistryError> {
        let versions = self.store.versions_to_prewarm().await?;
        let mut targets = Vec::with_capacity(versions.len());
        for version in &versions {
            if let Err(error) = self.materialize(version).await {
                tracing::warn!(tenant = %version.tenant, function = %version.function, %error, "not prewarming");
                continue;
            }
            targets.push(self.target(version)?);
        }
        Ok(targets)
    }

    /// Points `tenant/name` at an earlier (or later) version; `Ok(false)` if there is none such.
    pub async fn set_current(&self, tenant: &str, name: &str, version: i32) -> Result<bool, RegistryError> {
        let changed = self.store.set_current_version(tenant, name, version).await?;
        self.forget(tenant, name);
        Ok(changed)
    }

    /// Deletes a function with all its versions, and executables nothing else uses.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<bool, RegistryError> {
        let Some(unused) = self.store.delete_function(tenant, name).await? else {
            return Ok(false);
        };
        for digest in unused {
            self.blobs.remove(&digest);
            let images = self.images.clone();
            if let Err(error) = tokio::task::spawn_blocking(move || images.remove(&digest))
                .await
                .map_err(std::io::Error::other)?
            {
                tracing::warn!(%error, "could not remove an unused image");
            }
        }
        self.forget(tenant, name);
        Ok(true)
    }

    /// Makes sure this node has the executable and root file system of `version` on disk,
    /// fetching an executable from PostgreSQL when it was uploaded through another node.
    /// Images are kept on the node they were uploaded to.
    async fn materialize(&self, version: &VersionRecord) -> Result<(), RegistryError> {
        let digest = version.digest.as_str();
        if version.image.is_some() {
            return match self.images.contains(digest) {
                true => Ok(()),
                false => Err(RegistryError::ImageNotOnThisNode(digest.to_owned())),
            };
        }
        if self.blobs.has(digest) {
            return Ok(());
        }
        let executable = self
            .store
            .bounded(self.store.blob(digest))
            .await?
            .ok_or_else(|| {
                RegistryError::Io(std::io::Error::other(format!(
                    "executable {digest} is missing from the database"
                )))
            })?;
        let blobs = self.blobs.clone();
        let digest = digest.to_owned();
        tokio::task::spawn_blocking(move || {
            if BlobStore::digest(&executable) != digest {
                return Err(std::io::Error::other(format!(
                    "stored executable does not match its digest {digest}"
                )));
            }
            blobs.put(&digest, &executable).map(|_| ())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }
}
