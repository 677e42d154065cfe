//! A migrated store on a test's own database, and the rows durable instances need, for
//! tests that drive the store or the scheduler without a kilnd.

use std::time::Duration;

use serde_json::json;
use store::{KeyRecord, NewInstance, NewTenant, NewVersion, Store, StoreConfig};

use crate::TestDatabase;

/// A pool on `database`, migrated.
pub async fn migrated_store(database: &TestDatabase) -> Store {
    store::migrate(&database.url).await.expect("migrations");
    Store::new(&StoreConfig {
        url: database.url.clone(),
        pool_size: 4,
        timeout: Duration::from_secs(5),
    })
    .expect("a pool")
}

/// One HS256 key named `kid`.
pub fn test_key(kid: &str) -> KeyRecord {
    KeyRecord {
        kid: kid.into(),
        algorithm: "HS256".into(),
        material: "a-store-test-secret-of-32-bytes-or-more".into(),
    }
}

/// Tenant `tenant` with key `k1`, created by `operator`.
pub async fn create_test_tenant(store: &Store, tenant: &str) {
    let new = NewTenant {
        name: tenant.into(),
        issuer: "kiln".into(),
        audience: format!("kiln:{tenant}"),
        keys: vec![test_key("k1")],
    };
    store.create_tenant(&new, "operator").await.expect("a tenant");
}

/// A version of `tenant/function` whose executable is four bytes hashing to `digest`.
pub fn test_version(tenant: &str, function: &str, digest: &str) -> NewVersion {
    NewVersion {
        tenant: tenant.into(),
        function: function.into(),
        digest: digest.into(),
        size_bytes: 4,
        settings: json!({"timeout_ms": 500}),
        image: None,
    }
}

/// Version 1 of `tenant/function`, and the description of an instance of it.
pub async fn durable_function(store: &Store, tenant: &str, function: &str) -> NewInstance {
    store
        .insert_version(
            &test_version(tenant, function, &"ab".repeat(32)),
            Some(b"\x7fELF"),
        )
        .await
        .expect("a version");
    NewInstance {
        tenant: tenant.into(),
        function: function.into(),
        version: 1,
        input: json!({}),
        idempotency_key: None,
        timeout: Duration::from_secs(600),
    }
}
