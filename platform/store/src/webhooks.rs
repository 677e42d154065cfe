//! Webhook signature settings of functions (`function_webhooks`).

use std::time::SystemTime;

use crate::{Store, StoreError};

/// How one function's webhook senders sign, with the secret to check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub scheme: String,
    pub secret: String,
    pub header: Option<String>,
    pub tolerance_s: Option<i32>,
    pub updated_at: SystemTime,
}

impl Store {
    /// Sets the function's webhook settings; `None` when the function does not exist.
    pub async fn put_webhook(
        &self,
        tenant: &str,
        function: &str,
        webhook: &WebhookRecord,
    ) -> Result<Option<SystemTime>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "INSERT INTO function_webhooks (tenant, function, scheme, secret, header, tolerance_s)
                 SELECT tenant, name, $3, $4, $5, $6 FROM functions WHERE tenant = $1 AND name = $2
                 ON CONFLICT (tenant, function) DO UPDATE
                 SET scheme = excluded.scheme, secret = excluded.secret, header = excluded.header,
                     tolerance_s = excluded.tolerance_s, updated_at = now()
                 RETURNING updated_at",
                &[
                    &tenant,
                    &function,
                    &webhook.scheme,
                    &webhook.secret,
                    &webhook.header,
                    &webhook.tolerance_s,
                ],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    pub async fn webhook(&self, tenant: &str, function: &str) -> Result<Option<WebhookRecord>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT scheme, secret, header, tolerance_s, updated_at FROM function_webhooks
                 WHERE tenant = $1 AND function = $2",
            )
            .await?;
        let row = client.query_opt(&statement, &[&tenant, &function]).await?;
        Ok(row.map(|row| WebhookRecord {
            scheme: row.get(0),
            secret: row.get(1),
            header: row.get(2),
            tolerance_s: row.get(3),
            updated_at: row.get(4),
        }))
    }

    /// True when there was one to delete.
    pub async fn delete_webhook(&self, tenant: &str, function: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute(
                "DELETE FROM function_webhooks WHERE tenant = $1 AND function = $2",
                &[&tenant, &function],
            )
            .await?;
        Ok(deleted > 0)
    }
}
