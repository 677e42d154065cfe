//! Signals to durable instances: stored first, then applied (cancel, pause, resume) or left
//! for the instance's next wait (custom events), all in one transaction under the
//! instance's row lock, so a signal and a concurrent wait never miss each other.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::instance_runs::log_event;
use crate::instances::{INSTANCE_COLUMNS, InstanceRecord, InstanceStatus, instance_from_row};
use crate::{Store, StoreError};

/// A stored signal.
#[derive(Debug, Clone)]
pub struct SignalRecord {
    pub id: i64,
    pub name: String,
    pub created_at: SystemTime,
}

/// What sending a signal came to.
#[derive(Debug, Clone)]
pub enum SignalOutcome {
    /// Stored (and applied, for cancel/pause/resume). `instance` is the state afterwards;
    /// `due` is set when the signal made the instance due, for the timer wheel.
    Sent {
        signal: SignalRecord,
        instance: InstanceRecord,
        due: Option<SystemTime>,
    },
    /// The instance already finished; nothing was stored.
    Finished(InstanceRecord),
    NotFound,
}

impl Store {
    /// Sends signal `name` to the tenant's instance `id`. `cancel`, `pause` and `resume` act
    /// on the lifecycle; any other name is a custom event for `wait`.
    pub async fn signal_instance(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        payload: &Value,
    ) -> Result<SignalOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(row) = transaction
            .query_opt(
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1::text::uuid AND tenant = $2 FOR UPDATE"
                ),
                &[&id, &tenant],
            )
            .await?
        else {
            return Ok(SignalOutcome::NotFound);
        };
        let before = instance_from_row(&row)?;
        if before.status.is_finished() {
            return Ok(SignalOutcome::Finished(before));
        }
        let lifecycle = matches!(name, "cancel" | "pause" | "resume");
        let row = transaction
            .query_one(
                "INSERT INTO instance_signals (instance_id, name, payload, consumed_at)
                 VALUES ($1::text::uuid, $2, $3, CASE WHEN $4 THEN now() END)
                 RETURNING id, created_at",
                &[&id, &name, payload, &lifecycle],
            )
            .await?;
        let signal = SignalRecord {
            id: row.get(0),
            name: name.to_owned(),
            created_at: row.get(1),
        };
        log_event(
            &transaction,
            id,
            "signal",
            json!({"name": name, "signal": signal.id}),
        )
        .await?;
        let change = match (name, before.status) {
            ("cancel", _) => Some((
                "SET status = 'cancelled', epoch = epoch + 1, error_code = 'cancelled',
                     error_message = 'cancelled by a signal', finished_at = now(), wake_at = NULL,
                     node = NULL, lease_until = NULL",
                "cancelled",
            )),
            ("pause", InstanceStatus::Paused) => None,
            // A running instance is replayed from its checkpoints once resumed.
            ("pause", _) => Some((
                "SET status = 'paused', epoch = epoch + 1,
                     wake_at = CASE WHEN status = 'running' THEN now() ELSE wake_at END,
                     node = NULL, lease_until = NULL",
                "paused",
            )),
            // An instance that waits for an event sent while it was paused is due at once.
            ("resume", InstanceStatus::Paused) => Some((
                "SET status = CASE WHEN wake_at > now() AND NOT (SELECT awaited_event_arrived) THEN 'sleeping'
                                   ELSE 'pending' END,
                     wake_at = CASE WHEN (SELECT awaited_event_arrived) THEN now() ELSE coalesce(wake_at, now()) END",
                "resumed",
            )),
            ("resume", _) => None,
            // An event the instance sleeps waiting for wakes it now.
            (_, InstanceStatus::Sleeping) if before.waiting_for.as_deref() == Some(name) => {
                Some(("SET wake_at = now()", "woken"))
            }
            _ => None,
        };
        let instance = match change {
            Some((assignments, kind)) => {
                let row = transaction
                    .query_one(
                        &format!(
                            "WITH awaited AS (
                                 SELECT EXISTS (
                                     SELECT 1 FROM instances i JOIN instance_signals s
                                       ON s.instance_id = i.id AND s.name = i.waiting_for AND s.consumed_at IS NULL
                                     WHERE i.id = $1::text::uuid) AS awaited_event_arrived)
                             UPDATE instances {assignments}, updated_at = now()
                             FROM awaited
                             WHERE id = $1::text::uuid RETURNING {INSTANCE_COLUMNS}"
                        ),
                        &[&id],
                    )
                    .await?;
                log_event(&transaction, id, kind, json!({"signal": signal.id})).await?;
                instance_from_row(&row)?
            }
            None => before,
        };
        transaction.commit().await?;
        let due = match instance.status {
            InstanceStatus::Pending | InstanceStatus::Sleeping => instance.wake_at,
            _ => None,
        };
        Ok(SignalOutcome::Sent {
            signal,
            instance,
            due,
        })
    }
}
