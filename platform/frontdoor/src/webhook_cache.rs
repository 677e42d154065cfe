//! Webhook settings by function, cached briefly (absent ones apart) and kept while the
//! database is unreachable: a tokenless request must not cost a PostgreSQL query each, or a
//! flood of anonymous calls would drain the pool.

use std::sync::Arc;
use std::time::Duration;

use lookup_cache::{LookupCache, LookupCounts, Policy};
use store::{Store, StoreError, WebhookRecord};

/// How long a lookup is reused: a change made through another node reaches this one
/// within it (this node's own changes drop the entry at once).
const TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct WebhookCache {
    entries: LookupCache<(String, String), Arc<WebhookRecord>>,
}

impl WebhookCache {
    /// `stale_for`: how long known settings keep verifying deliveries while PostgreSQL is
    /// unreachable.
    pub fn new(store: &Store, stale_for: Duration) -> WebhookCache {
        WebhookCache {
            entries: LookupCache::new("webhooks", Policy::new(TTL, stale_for), store.unreachable_check()),
        }
    }

    pub async fn get(
        &self,
        store: &Store,
        tenant: &str,
        function: &str,
    ) -> Result<Option<Arc<WebhookRecord>>, Arc<StoreError>> {
        let key = (tenant.to_owned(), function.to_owned());
        let (store, (tenant, function)) = (store.clone(), key.clone());
        let load = || async move {
            let webhook = store.bounded(store.webhook(&tenant, &function)).await?;
            Ok(webhook.map(Arc::new))
        };
        self.entries.get(&key, load).await
    }

    /// Forgets a function's entry after its webhook changed on this node.
    pub async fn invalidate(&self, tenant: &str, function: &str) {
        self.entries
            .invalidate(&(tenant.to_owned(), function.to_owned()))
            .await;
    }

    pub fn lookups(&self) -> LookupCounts {
        self.entries.counts()
    }
}
