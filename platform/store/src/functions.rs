//! Functions and their content-addressed versions.

use std::time::SystemTime;

use tokio_postgres::Row;

use crate::{Store, StoreError};

/// A version about to be recorded; its executable or image is already stored under `digest`.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub tenant: String,
    pub function: String,
    pub digest: String,
    pub size_bytes: i64,
    pub settings: serde_json::Value,
    /// What the image is, for a version built from a container image; `None` for an executable.
    pub image: Option<serde_json::Value>,
}

/// One uploaded version of a function.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub digest: String,
    pub size_bytes: i64,
    pub settings: serde_json::Value,
    pub image: Option<serde_json::Value>,
    pub created_at: SystemTime,
}

/// A function name and the version it points at.
#[derive(Debug, Clone)]
pub struct FunctionRecord {
    pub name: String,
    pub current: VersionRecord,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// Which version of a function an invocation or query means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    Current,
    Number(i32),
    Digest(String),
}

const VERSION_COLUMNS: &str =
    "v.tenant, v.function, v.version, v.digest, v.size_bytes, v.settings, v.created_at, v.image";

impl Store {
    /// Records a new version (and its executable, if it has one not stored yet) and points
    /// the function at it, creating the function if needed; all in one transaction.
    pub async fn insert_version(
        &self,
        new: &NewVersion,
        executable: Option<&[u8]>,
    ) -> Result<VersionRecord, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if let Some(executable) = executable {
            transaction
                .execute(
                    "INSERT INTO blobs (digest, content) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                    &[&new.digest, &executable],
                )
                .await?;
        }
        // The upsert locks the function row, so concurrent uploads number their versions in turn.
        transaction
            .execute(
                "INSERT INTO functions (tenant, name, current_version) VALUES ($1, $2, 0)
                 ON CONFLICT (tenant, name) DO UPDATE SET updated_at = now()",
                &[&new.tenant, &new.function],
            )
            .await?;
        let row = transaction
            .query_one(
                "INSERT INTO function_versions (tenant, function, version, digest, size_bytes, settings, image)
                 SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6
                 FROM function_versions WHERE tenant = $1 AND function = $2
                 RETURNING tenant, function, version, digest, size_bytes, settings, created_at, image",
                &[
                    &new.tenant,
                    &new.function,
                    &new.digest,
                    &new.size_bytes,
                    &new.settings,
                    &new.image,
                ],
            )
            .await?;
        let record = version_from_row(&row);
        transaction
            .execute(
                "UPDATE functions SET current_version = $3 WHERE tenant = $1 AND name = $2",
                &[&new.tenant, &new.function, &record.version],
            )
            .await?;
        transaction.commit().await?;
        Ok(record)
    }

    pub async fn list_functions(&self, tenant: &str) -> Result<Vec<FunctionRecord>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS}, f.created_at, f.updated_at FROM functions f
                     JOIN function_versions v ON v.tenant = f.tenant AND v.function = f.name
                                             AND v.version = f.current_version
                     WHERE f.tenant = $1 ORDER BY f.name"
                ),
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(function_from_row).collect())
    }

    /// A function with all of its versions, newest first; `None` if there is no such function.
    pub async fn function_with_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<(FunctionRecord, Vec<VersionRecord>)>, StoreError> {
        let Some(function) = self.function(tenant, name).await? else {
            return Ok(None);
        };
        let client = self.pool.get().await?;
        let versions = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM function_versions v
                     WHERE v.tenant = $1 AND v.function = $2 ORDER BY v.version DESC"
                ),
                &[&tenant, &name],
            )
            .await?
            .iter()
            .map(version_from_row)
            .collect();
        Ok(Some((function, versions)))
    }

    pub async fn function(&self, tenant: &str, name: &str) -> Result<Option<FunctionRecord>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {VERSION_COLUMNS}, f.created_at, f.updated_at FROM functions f
                     JOIN function_versions v ON v.tenant = f.tenant AND v.function = f.name
                                             AND v.version = f.current_version
                     WHERE f.tenant = $1 AND f.name = $2"
                ),
                &[&tenant, &name],
            )
            .await?;
        Ok(row.as_ref().map(function_from_row))
    }

    /// The version an invocation of `tenant/name` with `selector` should run.
    pub async fn resolve_version(
        &self,
        tenant: &str,
        name: &str,
        selector: &VersionSelector,
    ) -> Result<Option<VersionRecord>, StoreError> {
        let client = self.pool.get().await?;
        let base = format!(
            "SELECT {VERSION_COLUMNS} FROM function_versions v WHERE v.tenant = $1 AND v.function = $2"
        );
        let row = match selector {
            VersionSelector::Current => {
                client
                    .query_opt(
                        &format!(
                            "{base} AND v.version = (SELECT current_version FROM functions
                                                     WHERE tenant = $1 AND name = $2)"
                        ),
                        &[&tenant, &name],
                    )
                    .await?
            }
            VersionSelector::Number(number) => {
                client
                    .query_opt(&format!("{base} AND v.version = $3"), &[&tenant, &name, number])
                    .await?
            }
            VersionSelector::Digest(digest) => {
                client
                    .query_opt(
                        &format!("{base} AND v.digest = $3 ORDER BY v.version DESC LIMIT 1"),
                        &[&tenant, &name, digest],
                    )
                    .await?
            }
        };
        Ok(row.as_ref().map(version_from_row))
    }

    /// Points a function back (or forward) at one of its versions; `Ok(false)` if there is no such version.
    pub async fn set_current_version(
        &self,
        tenant: &str,
        name: &str,
        version: i32,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let updated = client
            .execute(
                "UPDATE functions SET current_version = $3, updated_at = now()
                 WHERE tenant = $1 AND name = $2
                   AND EXISTS (SELECT 1 FROM function_versions
                               WHERE tenant = $1 AND function = $2 AND version = $3)",
                &[&tenant, &name, &version],
            )
            .await?;
        Ok(updated > 0)
    }

    /// Deletes a function and its versions. Returns `None` if there was no such function,
    /// else the digests no function of any tenant refers to any more.
    pub async fn delete_function(&self, tenant: &str, name: &str) -> Result<Option<Vec<String>>, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let digests: Vec<String> = transaction
            .query(
                "SELECT DISTINCT digest FROM function_versions WHERE tenant = $1 AND function = $2",
                &[&tenant, &name],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let deleted = transaction
            .execute(
                "DELETE FROM functions WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        if deleted == 0 {
            return Ok(None);
        }
        let still_used: Vec<String> = transaction
            .query(
                "SELECT DISTINCT digest FROM function_versions WHERE digest = ANY($1)",
                &[&digests],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        transaction.commit().await?;
        Ok(Some(
            digests
                .into_iter()
                .filter(|digest| !still_used.contains(digest))
                .collect(),
        ))
    }

    /// The current versions, across tenants, whose settings ask for warm containers.
    pub async fn versions_to_prewarm(&self) -> Result<Vec<VersionRecord>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM functions f
                     JOIN function_versions v ON v.tenant = f.tenant AND v.function = f.name
                                             AND v.version = f.current_version
                     WHERE coalesce((v.settings ->> 'min_warm')::int, 0) > 0"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    /// The stored executable with this digest.
    pub async fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT content FROM blobs WHERE digest = $1", &[&digest])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// True if any version of any function refers to `digest`.
    pub async fn digest_in_use(&self, digest: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM function_versions WHERE digest = $1 LIMIT 1",
                &[&digest],
            )
            .await?;
        Ok(row.is_some())
    }
}

fn version_from_row(row: &Row) -> VersionRecord {
    VersionRecord {
        tenant: row.get(0),
        function: row.get(1),
        version: row.get(2),
        digest: row.get(3),
        size_bytes: row.get(4),
        settings: row.get(5),
        created_at: row.get(6),
        image: row.get(7),
    }
}

fn function_from_row(row: &Row) -> FunctionRecord {
    let current = version_from_row(row);
    FunctionRecord {
        name: current.function.clone(),
        current,
        created_at: row.get(8),
        updated_at: row.get(9),
    }
}
