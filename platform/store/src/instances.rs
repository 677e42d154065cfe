//! Durable instances as tenants see them: start one (idempotently), read, list, and read
//! their checkpoints and lifecycle history.

use std::time::{Duration, SystemTime};

use tokio_postgres::Row;

use crate::{Store, StoreError};

/// Where an instance is in its lifecycle (see ARCHITECTURE.md for the state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    Pending,
    Running,
    Sleeping,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 7] = [
        InstanceStatus::Pending,
        InstanceStatus::Running,
        InstanceStatus::Sleeping,
        InstanceStatus::Paused,
        InstanceStatus::Completed,
        InstanceStatus::Failed,
        InstanceStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "pending",
            InstanceStatus::Running => "running",
            InstanceStatus::Sleeping => "sleeping",
            InstanceStatus::Paused => "paused",
            InstanceStatus::Completed => "completed",
            InstanceStatus::Failed => "failed",
            InstanceStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<InstanceStatus> {
        InstanceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Completed, failed and cancelled instances never move again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            InstanceStatus::Completed | InstanceStatus::Failed | InstanceStatus::Cancelled
        )
    }
}

/// An instance about to be started.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub input: serde_json::Value,
    pub idempotency_key: Option<String>,
    /// The instance fails with `instance_timeout` if not finished within this time.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct InstanceRecord {
    pub id: String,
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub input: serde_json::Value,
    pub status: InstanceStatus,
    pub epoch: i64,
    pub attempt: i32,
    pub wake_at: Option<SystemTime>,
    pub waiting_for: Option<String>,
    pub output: Option<serde_json::Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub idempotency_key: Option<String>,
    pub deadline_at: SystemTime,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub finished_at: Option<SystemTime>,
}

/// The result of a start: the instance, and whether this call created it.
#[derive(Debug, Clone)]
pub struct StartedInstance {
    pub instance: InstanceRecord,
    pub created: bool,
}

/// Which of a tenant's instances to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub function: Option<String>,
    pub status: Option<InstanceStatus>,
    pub limit: i64,
    /// Continue after this instance (the last one of the previous page): its creation time and id.
    pub after: Option<(SystemTime, String)>,
}

#[derive(Debug, Clone)]
pub struct CheckpointRecord {
    pub key: String,
    pub value: serde_json::Value,
    pub created_at: SystemTime,
}

/// One entry of an instance's lifecycle history.
#[derive(Debug, Clone)]
pub struct InstanceEvent {
    pub id: i64,
    pub kind: String,
    pub detail: serde_json::Value,
    pub at: SystemTime,
}

pub(crate) const INSTANCE_COLUMNS: &str = "id::text, tenant, function, version, input, status, epoch, attempt, \
     wake_at, waiting_for, output, error_code, error_message, idempotency_key, deadline_at, created_at, \
     updated_at, finished_at";

impl Store {
    /// Creates a pending instance due now, or, when the tenant already used the idempotency
    /// key, returns the instance that key started.
    pub async fn start_instance(&self, new: &NewInstance) -> Result<StartedInstance, StoreError> {
        let client = self.pool.get().await?;
        let inserted = client
            .query_opt(
                &format!(
                    "WITH created AS (
                         INSERT INTO instances
                             (tenant, function, version, input, status, wake_at, idempotency_key, deadline_at)
                         VALUES ($1, $2, $3, $4, 'pending', now(), $5, now() + make_interval(secs => $6))
                         ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                         RETURNING *),
                     logged AS (
                         INSERT INTO instance_events (instance_id, kind, detail)
                         SELECT id, 'created', jsonb_build_object('version', version) FROM created)
                     SELECT {INSTANCE_COLUMNS} FROM created"
                ),
                &[
                    &new.tenant,
                    &new.function,
                    &new.version,
                    &new.input,
                    &new.idempotency_key,
                    &new.timeout.as_secs_f64(),
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(StartedInstance {
                instance: instance_from_row(&row)?,
                created: true,
            });
        }
        let row = client
            .query_one(
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE tenant = $1 AND idempotency_key = $2"
                ),
                &[&new.tenant, &new.idempotency_key],
            )
            .await?;
        Ok(StartedInstance {
            instance: instance_from_row(&row)?,
            created: false,
        })
    }

    /// The tenant's instance `id`; `None` when it does not exist or belongs to another tenant.
    pub async fn instance(&self, tenant: &str, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1::text::uuid AND tenant = $2"
                ),
                &[&id, &tenant],
            )
            .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    pub async fn list_instances(
        &self,
        tenant: &str,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let client = self.pool.get().await?;
        let status = filter.status.map(InstanceStatus::as_str);
        let (after_time, after_id) = match &filter.after {
            Some((time, id)) => (Some(*time), Some(id.as_str())),
            None => (None, None),
        };
        let rows = client
            .query(
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances
                     WHERE tenant = $1
                       AND ($2::text IS NULL OR function = $2)
                       AND ($3::text IS NULL OR status = $3)
                       AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::text::uuid))
                     ORDER BY created_at DESC, id DESC
                     LIMIT $6"
                ),
                &[
                    &tenant,
                    &filter.function,
                    &status,
                    &after_time,
                    &after_id,
                    &filter.limit,
                ],
            )
            .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// The checkpoints of the tenant's instance `id` in the order they were stored; `None`
    /// when there is no such instance.
    pub async fn instance_checkpoints(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Vec<CheckpointRecord>>, StoreError> {
        if self.instance(tenant, id).await?.is_none() {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT key, value, created_at FROM instance_checkpoints
                 WHERE instance_id = $1::text::uuid ORDER BY created_at, key",
                &[&id],
            )
            .await?;
        Ok(Some(
            rows.iter()
                .map(|row| CheckpointRecord {
                    key: row.get(0),
                    value: row.get(1),
                    created_at: row.get(2),
                })
                .collect(),
        ))
    }

    /// The lifecycle history of the tenant's instance `id`, oldest first; `None` when there
    /// is no such instance.
    pub async fn instance_events(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Vec<InstanceEvent>>, StoreError> {
        if self.instance(tenant, id).await?.is_none() {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, kind, detail, at FROM instance_events WHERE instance_id = $1::text::uuid ORDER BY id",
                &[&id],
            )
            .await?;
        Ok(Some(
            rows.iter()
                .map(|row| InstanceEvent {
                    id: row.get(0),
                    kind: row.get(1),
                    detail: row.get(2),
                    at: row.get(3),
                })
                .collect(),
        ))
    }
}

/// An instance row; a status this release does not know is an error, not a panic.
pub(crate) fn instance_from_row(row: &Row) -> Result<InstanceRecord, StoreError> {
    let status: String = row.get(5);
    let id: String = row.get(0);
    let status = InstanceStatus::parse(&status).ok_or_else(|| {
        StoreError::UnknownValue(format!(
            "instance {id} has status `{status}`, which this Kiln does not know (written by a newer node?)"
        ))
    })?;
    Ok(InstanceRecord {
        id,
        tenant: row.get(1),
        function: row.get(2),
        version: row.get(3),
        input: row.get(4),
        status,
        epoch: row.get(6),
        attempt: row.get(7),
        wake_at: row.get(8),
        waiting_for: row.get(9),
        output: row.get(10),
        error_code: row.get(11),
        error_message: row.get(12),
        idempotency_key: row.get(13),
        deadline_at: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        finished_at: row.get(17),
    })
}

/// A lifecycle event of any instance, for live streams.
#[derive(Debug, Clone)]
pub struct LiveInstanceEvent {
    pub id: i64,
    pub tenant: String,
    pub function: String,
    pub instance: String,
    pub kind: String,
    pub at: SystemTime,
}

impl Store {
    /// The newest event id, where a live stream starts.
    pub async fn last_instance_event_id(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT coalesce(max(id), 0) FROM instance_events", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Events with an id above `after`, oldest first, at most `limit`.
    pub async fn instance_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LiveInstanceEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT e.id, i.tenant, i.function, e.instance_id::text, e.kind, e.at
                 FROM instance_events e JOIN instances i ON i.id = e.instance_id
                 WHERE e.id > $1 ORDER BY e.id LIMIT $2",
            )
            .await?;
        let rows = client.query(&statement, &[&after, &limit]).await?;
        Ok(rows
            .iter()
            .map(|row| LiveInstanceEvent {
                id: row.get(0),
                tenant: row.get(1),
                function: row.get(2),
                instance: row.get(3),
                kind: row.get(4),
                at: row.get(5),
            })
            .collect())
    }
}
