//! Tenants and their JWT verification keys.

use std::time::SystemTime;

use crate::error::is_unique_violation;
use crate::{Store, StoreError};

/// One verification key of a tenant; the algorithm is pinned to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub algorithm: String,
    /// HS256: the shared secret; asymmetric algorithms: the public key in PEM.
    pub material: String,
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub keys: Vec<KeyRecord>,
}

/// What auth needs to verify a tenant's tokens.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub issuer: String,
    pub audience: String,
    pub keys: Vec<KeyRecord>,
}

/// A tenant as listed to operators (key material left out).
#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub kids: Vec<String>,
    pub created_at: SystemTime,
}

impl Store {
    /// Creates a tenant and its keys in one transaction.
    /// Creates a tenant with its keys and records `tenant.create` by `actor` in the audit
    /// log, in one transaction: every way of creating tenants (the admin API, `kilnd tenant
    /// create`) goes through here, so none skips the log.
    pub async fn create_tenant(&self, tenant: &NewTenant, actor: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "INSERT INTO tenants (name, issuer, audience) VALUES ($1, $2, $3)",
                &[&tenant.name, &tenant.issuer, &tenant.audience],
            )
            .await
            .map_err(|error| conflict_or(error, format!("tenant {}", tenant.name)))?;
        for key in &tenant.keys {
            insert_key(&transaction, &tenant.name, key).await?;
        }
        let kids: Vec<&str> = tenant.keys.iter().map(|key| key.kid.as_str()).collect();
        let details = serde_json::json!({"issuer": tenant.issuer, "audience": tenant.audience, "kids": kids});
        transaction
            .execute(
                "INSERT INTO audit_log (tenant, actor, action, target, details) VALUES ($1, $2, 'tenant.create', $1, $3)",
                &[&tenant.name, &actor, &details],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Adds one key to an existing tenant; `Ok(false)` when the tenant does not exist.
    pub async fn add_tenant_key(&self, tenant: &str, key: &KeyRecord) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let exists = client
            .query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&tenant])
            .await?
            .is_some();
        if exists {
            insert_key(&client, tenant, key).await?;
        }
        Ok(exists)
    }

    /// Removes one key; `Ok(false)` when there was no such key.
    pub async fn delete_tenant_key(&self, tenant: &str, kid: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let removed = client
            .execute(
                "DELETE FROM tenant_keys WHERE tenant = $1 AND kid = $2",
                &[&tenant, &kid],
            )
            .await?;
        Ok(removed > 0)
    }

    /// The issuer, audience and keys of a tenant, or `None` if there is no such tenant.
    pub async fn tenant_auth(&self, tenant: &str) -> Result<Option<TenantAuth>, StoreError> {
        let client = self.pool.get().await?;
        let Some(row) = client
            .query_opt("SELECT issuer, audience FROM tenants WHERE name = $1", &[&tenant])
            .await?
        else {
            return Ok(None);
        };
        let keys = client
            .query(
                "SELECT kid, algorithm, material FROM tenant_keys WHERE tenant = $1 ORDER BY kid",
                &[&tenant],
            )
            .await?
            .into_iter()
            .map(|key| KeyRecord {
                kid: key.get(0),
                algorithm: key.get(1),
                material: key.get(2),
            })
            .collect();
        Ok(Some(TenantAuth {
            issuer: row.get(0),
            audience: row.get(1),
            keys,
        }))
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT t.name, t.issuer, t.audience, t.created_at,
                        coalesce(array_agg(k.kid ORDER BY k.kid) FILTER (WHERE k.kid IS NOT NULL), '{}')
                 FROM tenants t LEFT JOIN tenant_keys k ON k.tenant = t.name
                 GROUP BY t.name ORDER BY t.name",
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| TenantRecord {
                name: row.get(0),
                issuer: row.get(1),
                audience: row.get(2),
                created_at: row.get(3),
                kids: row.get(4),
            })
            .collect())
    }
}

async fn insert_key(
    client: &impl deadpool_postgres::GenericClient,
    tenant: &str,
    key: &KeyRecord,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO tenant_keys (tenant, kid, algorithm, material) VALUES ($1, $2, $3, $4)",
            &[&tenant, &key.kid, &key.algorithm, &key.material],
        )
        .await
        .map_err(|error| conflict_or(error, format!("key {} of tenant {tenant}", key.kid)))?;
    Ok(())
}

fn conflict_or(error: tokio_postgres::Error, what: String) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(what)
    } else {
        StoreError::Query(error)
    }
}
