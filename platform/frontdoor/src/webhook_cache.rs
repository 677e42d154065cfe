//! Webhook settings by function, cached briefly (absent ones too): a tokenless request
//! must not cost a PostgreSQL query each, or a flood of anonymous calls would drain the pool.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use store::{Store, StoreError, WebhookRecord};

/// How long a lookup is reused: a change made through another node reaches this one
/// within it (this node's own changes drop the entry at once).
const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most (the least used go first), so names an attacker makes up cannot
/// grow it without bound.
const MAX_ENTRIES: u64 = 10_000;

#[derive(Clone)]
pub struct WebhookCache {
    entries: Cache<(String, String), Option<Arc<WebhookRecord>>>,
}

impl Default for WebhookCache {
    fn default() -> WebhookCache {
        WebhookCache {
            entries: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(TTL)
                .build(),
        }
    }
}

impl WebhookCache {
    pub async fn get(
        &self,
        store: &Store,
        tenant: &str,
        function: &str,
    ) -> Result<Option<Arc<WebhookRecord>>, StoreError> {
        let key = (tenant.to_owned(), function.to_owned());
        if let Some(webhook) = self.entries.get(&key) {
            return Ok(webhook);
        }
        let webhook = store.webhook(tenant, function).await?.map(Arc::new);
        self.entries.insert(key, webhook.clone());
        Ok(webhook)
    }

    /// Forgets a function's entry after its webhook changed on this node.
    pub fn invalidate(&self, tenant: &str, function: &str) {
        self.entries.invalidate(&(tenant.to_owned(), function.to_owned()));
    }
}
