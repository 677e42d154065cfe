//! Webhook settings by function, cached briefly (absent ones too): a tokenless request
//! must not cost a PostgreSQL query each, or a flood of anonymous calls would drain the pool.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Store, StoreError, WebhookRecord};

/// How long a lookup is reused: a change made through another node reaches this one
/// within it (this node's own changes drop the entry at once).
const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; past it the cache starts again empty, so names an attacker makes
/// up cannot grow it without bound.
const MAX_ENTRIES: usize = 10_000;

type Entries = HashMap<(String, String), (Instant, Option<Arc<WebhookRecord>>)>;

#[derive(Clone, Default)]
pub struct WebhookCache {
    entries: Arc<Mutex<Entries>>,
}

impl WebhookCache {
    pub async fn get(
        &self,
        store: &Store,
        tenant: &str,
        function: &str,
    ) -> Result<Option<Arc<WebhookRecord>>, StoreError> {
        let key = (tenant.to_owned(), function.to_owned());
        let cached = self
            .entries
            .lock()
            .get(&key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, webhook)| webhook.clone());
        if let Some(webhook) = cached {
            return Ok(webhook);
        }
        let webhook = store.webhook(tenant, function).await?.map(Arc::new);
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), webhook.clone()));
        Ok(webhook)
    }

    /// Forgets a function's entry after its webhook changed on this node.
    pub fn invalidate(&self, tenant: &str, function: &str) {
        self.entries
            .lock()
            .remove(&(tenant.to_owned(), function.to_owned()));
    }
}
