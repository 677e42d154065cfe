//! The audit log of management actions (`audit_log`): who did what to what, and when.

use std::time::SystemTime;

use serde_json::Value;

use crate::{Store, StoreError};

/// One management action, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: SystemTime,
    pub tenant: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Value,
}

/// An action to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub details: Value,
}

impl Store {
    pub async fn record_audit(&self, entry: &NewAuditEntry<'_>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit_log (tenant, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.tenant,
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.details,
                ],
            )
            .await?;
        Ok(())
    }

    /// Entries newest first, only `tenant`'s when given, older than `before` (an id) when
    /// given; at most `limit`.
    pub async fn audit_entries(
        &self,
        tenant: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, at, tenant, actor, action, target, details FROM audit_log
                 WHERE ($1::text IS NULL OR tenant = $1) AND ($2::bigint IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
                &[&tenant, &before, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| AuditEntry {
                id: row.get(0),
                at: row.get(1),
                tenant: row.get(2),
                actor: row.get(3),
                action: row.get(4),
                target: row.get(5),
                details: row.get(6),
            })
            .collect())
    }
}
