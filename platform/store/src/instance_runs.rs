//! Running durable instances: claim due ones, and the fenced writes of a dispatch
//! (checkpoints, sleeps, waits, the outcome).
//!
//! **Invariant:** every write of a dispatch names the epoch it was claimed with and only
//! lands while the instance is still `running` at that epoch, so a stale container (its
//! instance cancelled, paused, timed out or re-dispatched) can never change anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_postgres::Transaction;

use crate::{Store, StoreError};

/// An instance this node claimed and must now dispatch.
#[derive(Debug, Clone)]
pub struct ClaimedInstance {
    pub id: String,
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub input: Value,
    pub epoch: i64,
    pub attempt: i32,
    /// Every stored checkpoint, key → value.
    pub checkpoints: Value,
    /// How long after its due time the claim happened.
    pub late: Duration,
    /// True when the instance was sleeping (a wake-up), false when it was pending.
    pub woke: bool,
}

/// The answer to a fenced write: the dispatch is stale and nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenced;

/// What a sleep or wait call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Suspension {
    /// Carry on with this value (a passed wake time, a consumed event, a timed-out wait).
    Continue(Value),
    /// The instance now sleeps until this time; its dispatch is over.
    Sleeping(SystemTime),
}

/// How a dispatch ended.
#[derive(Debug, Clone)]
pub enum InstanceOutcome {
    Completed(Value),
    Failed { code: String, message: String },
}

/// Where a released instance went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Pending again, due at this time.
    Retry(SystemTime),
    /// Failed: too many dispatches in a row ended without progress.
    Failed,
}

impl Store {
    /// Claims those of `ids` that are still due (pending or sleeping with `wake_at` passed,
    /// not past their deadline) for `node`: each gets a new epoch and a lease, and a
    /// `dispatched` event recording how late it was. Rows locked by another node are skipped.
    pub async fn claim_instances(
        &self,
        ids: &[String],
        node: &str,
        lease: Duration,
    ) -> Result<Vec<ClaimedInstance>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "WITH due AS (
                     SELECT id, wake_at, status FROM instances
                     WHERE id = ANY($1::text[]::uuid[]) AND status IN ('pending', 'sleeping')
                       AND wake_at <= clock_timestamp() AND deadline_at > now()
                     FOR UPDATE SKIP LOCKED),
                 claimed AS (
                     UPDATE instances i
                     SET status = 'running', epoch = i.epoch + 1, attempt = i.attempt + 1, node = $2,
                         lease_until = now() + make_interval(secs => $3), wake_at = NULL,
                         waiting_for = NULL, updated_at = now()
                     FROM due WHERE i.id = due.id
                     RETURNING i.id, i.tenant, i.function, i.version, i.input, i.epoch, i.attempt,
                               due.wake_at AS due_at, due.status AS prior),
                 logged AS (
                     INSERT INTO instance_events (instance_id, kind, detail)
                     SELECT id, 'dispatched', jsonb_build_object(
                         'epoch', epoch, 'attempt', attempt, 'node', $2::text,
                         'late_ms', round((extract(epoch FROM clock_timestamp() - due_at) * 1000)::numeric, 3))
                     FROM claimed)
                 SELECT c.id::text, c.tenant, c.function, c.version, c.input, c.epoch, c.attempt,
                        (SELECT coalesce(jsonb_object_agg(k.key, k.value), '{}'::jsonb)
                         FROM instance_checkpoints k WHERE k.instance_id = c.id),
                        greatest(extract(epoch FROM clock_timestamp() - c.due_at), 0)::float8,
                        c.prior = 'sleeping'
                 FROM claimed c",
            )
            .await?;
        let rows = client
            .query(&statement, &[&ids, &node, &lease.as_secs_f64()])
            .await?;
        Ok(rows
            .iter()
            .map(|row| ClaimedInstance {
                id: row.get(0),
                tenant: row.get(1),
                function: row.get(2),
                version: row.get(3),
                input: row.get(4),
                epoch: row.get(5),
                attempt: row.get(6),
                checkpoints: row.get(7),
                late: Duration::from_secs_f64(row.get::<_, Option<f64>>(8).unwrap_or(0.0)),
                woke: row.get(9),
            })
            .collect())
    }

    /// Stores `value` under `key` unless the key is stored already, and returns the stored
    /// value (the first one wins). One statement: it commits before it answers.
    pub async fn put_checkpoint(
        &self,
        id: &str,
        epoch: i64,
        key: &str,
        value: &Value,
    ) -> Result<Result<Value, Fenced>, StoreError> {
        let client = self.pool.get().await?;
        // FOR SHARE conflicts with the UPDATE that moves the epoch on, so a checkpoint either
        // lands before a cancel or re-dispatch, or sees the new epoch and writes nothing.
        let statement = client
            .prepare_cached(
                "WITH live AS (
                     SELECT id FROM instances
                     WHERE id = $1::text::uuid AND epoch = $2 AND status = 'running' FOR SHARE),
                 stored AS (
                     INSERT INTO instance_checkpoints (instance_id, key, value, epoch)
                     SELECT id, $3, $4, $2 FROM live
                     ON CONFLICT (instance_id, key) DO NOTHING
                     RETURNING value)
                 SELECT EXISTS (SELECT 1 FROM live),
                        coalesce((SELECT value FROM stored),
                                 (SELECT value FROM instance_checkpoints
                                  WHERE instance_id = $1::text::uuid AND key = $3))",
            )
            .await?;
        let row = client.query_one(&statement, &[&id, &epoch, &key, value]).await?;
        let live: bool = row.get(0);
        let stored: Option<Value> = row.get(1);
        match (live, stored) {
            (true, Some(stored)) => Ok(Ok(stored)),
            // The same key was being stored by a concurrent call that committed after this
            // statement's snapshot: read what it stored.
            (true, None) => {
                let row = client
                    .query_opt(
                        "SELECT value FROM instance_checkpoints WHERE instance_id = $1::text::uuid AND key = $2",
                        &[&id, &key],
                    )
                    .await?;
                Ok(row.map(|row| row.get(0)).ok_or(Fenced))
            }
            (false, _) => Ok(Err(Fenced)),
        }
    }

    /// The sleep call: the first use of `key` stores `wake_at`; if the stored wake time is
    /// still ahead the instance goes to sleep until then, in the same transaction.
    pub async fn sleep_instance(
        &self,
        id: &str,
        epoch: i64,
        key: &str,
        wake_at: SystemTime,
    ) -> Result<Result<Suspension, Fenced>, StoreError> {
        let client = self.pool.get().await?;
        // One statement (one round trip, one commit): lock the running instance, store the
        // wake time once, and put the instance to sleep if the stored time is ahead.
        let statement = client
            .prepare_cached(
                "WITH live AS (
                     SELECT id FROM instances
                     WHERE id = $1::text::uuid AND epoch = $2 AND status = 'running' FOR UPDATE),
                 inserted AS (
                     INSERT INTO instance_checkpoints (instance_id, key, value, epoch)
                     SELECT id, $3, $4, $2 FROM live
                     ON CONFLICT (instance_id, key) DO NOTHING RETURNING value),
                 stored AS (
                     SELECT coalesce((SELECT value FROM inserted),
                                     (SELECT value FROM instance_checkpoints
                                      WHERE instance_id = $1::text::uuid AND key = $3)) AS value),
                 slept AS (
                     UPDATE instances
                     SET status = 'sleeping', wake_at = to_timestamp((stored.value->>'wake_at_ms')::float8 / 1000),
                         waiting_for = NULL, failures = 0, node = NULL, lease_until = NULL, updated_at = now()
                     FROM stored
                     WHERE instances.id = (SELECT id FROM live)
                       AND (stored.value->>'wake_at_ms')::float8 > extract(epoch FROM clock_timestamp()) * 1000
                     RETURNING instances.id, stored.value),
                 logged AS (
                     INSERT INTO instance_events (instance_id, kind, detail)
                     SELECT id, 'sleeping', jsonb_build_object('key', $3::text, 'wake_at_ms', value->'wake_at_ms')
                     FROM slept)
                 SELECT EXISTS (SELECT 1 FROM live), (SELECT value FROM stored), EXISTS (SELECT 1 FROM slept)",
            )
            .await?;
        let proposed = json!({"wake_at_ms": unix_ms(wake_at)});
        let row = client
            .query_one(&statement, &[&id, &epoch, &key, &proposed])
            .await?;
        let live: bool = row.get(0);
        let stored: Option<Value> = row.get(1);
        let slept: bool = row.get(2);
        let Some(stored) = stored.filter(|_| live) else {
            return Ok(Err(Fenced));
        };
        if slept {
            let stored_at = stored["wake_at_ms"].as_u64().map(from_unix_ms).unwrap_or(wake_at);
            Ok(Ok(Suspension::Sleeping(stored_at)))
        } else {
            Ok(Ok(Suspension::Continue(stored)))
        }
    }

    /// The wait call: consumes the oldest unconsumed `event` signal, or notes a passed
    /// deadline, storing either as checkpoint `key`; otherwise the instance sleeps until
    /// the deadline (fixed by the first call, stored as `kiln:deadline:{key}`) or the event.
    pub async fn wait_for_event(
        &self,
        id: &str,
        epoch: i64,
        key: &str,
        event: &str,
        deadline: SystemTime,
    ) -> Result<Result<Suspension, Fenced>, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if !lock_running(&transaction, id, epoch).await? {
            return Ok(Err(Fenced));
        }
        if let Some(row) = transaction
            .query_opt(
                "SELECT value FROM instance_checkpoints WHERE instance_id = $1::text::uuid AND key = $2",
                &[&id, &key],
            )
            .await?
        {
            transaction.commit().await?;
            return Ok(Ok(Suspension::Continue(row.get(0))));
        }
        let deadline_key = format!("kiln:deadline:{key}");
        let stored_deadline = store_once(
            &transaction,
            id,
            epoch,
            &deadline_key,
            &json!({"wake_at_ms": unix_ms(deadline)}),
        )
        .await?;
        let deadline = stored_deadline["wake_at_ms"]
            .as_u64()
            .map(from_unix_ms)
            .unwrap_or(deadline);
        let signal = transaction
            .query_opt(
                "UPDATE instance_signals SET consumed_at = now()
                 WHERE id = (SELECT id FROM instance_signals
                             WHERE instance_id = $1::text::uuid AND name = $2 AND consumed_at IS NULL
                             ORDER BY id LIMIT 1)
                 RETURNING id, payload",
                &[&id, &event],
            )
            .await?;
        let value = match signal {
            Some(row) => {
                let signal_id: i64 = row.get(0);
                let payload: Value = row.get(1);
                log_event(
                    &transaction,
                    id,
                    "event_received",
                    json!({"event": event, "signal": signal_id}),
                )
                .await?;
                json!({"event": event, "payload": payload})
            }
            None if deadline <= SystemTime::now() => {
                log_event(&transaction, id, "wait_timed_out", json!({"event": event})).await?;
                json!({"timed_out": true})
            }
            None => {
                let detail = json!({"key": key, "event": event, "wake_at_ms": unix_ms(deadline)});
                suspend(&transaction, id, deadline, Some(event), detail).await?;
                transaction.commit().await?;
                return Ok(Ok(Suspension::Sleeping(deadline)));
            }
        };
        let stored = store_once(&transaction, id, epoch, key, &value).await?;
        transaction.commit().await?;
        Ok(Ok(Suspension::Continue(stored)))
    }

    /// Ends a dispatch with its outcome; `Err(Fenced)` when the dispatch is stale.
    pub async fn finish_instance(
        &self,
        id: &str,
        epoch: i64,
        outcome: &InstanceOutcome,
    ) -> Result<Result<(), Fenced>, StoreError> {
        let (status, output, code, message) = match outcome {
            InstanceOutcome::Completed(output) => ("completed", Some(output), None, None),
            InstanceOutcome::Failed { code, message } => {
                ("failed", None, Some(code.as_str()), Some(message.as_str()))
            }
        };
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "WITH finished AS (
                     UPDATE instances
                     SET status = $3, output = $4, error_code = $5, error_message = $6, finished_at = now(),
                         updated_at = now(), node = NULL, lease_until = NULL, wake_at = NULL
                     WHERE id = $1::text::uuid AND epoch = $2 AND status = 'running'
                     RETURNING id)
                 INSERT INTO instance_events (instance_id, kind, detail)
                 SELECT id, $3, jsonb_strip_nulls(jsonb_build_object('code', $5::text)) FROM finished",
            )
            .await?;
        let moved = client
            .execute(&statement, &[&id, &epoch, &status, &output, &code, &message])
            .await?;
        Ok(if moved == 1 { Ok(()) } else { Err(Fenced) })
    }

    /// Gives a running instance back after its dispatch could not finish. With `failure`
    /// the dispatch counts as one without progress (unless it stored a checkpoint); after
    /// `max_failures` in a row the instance fails with `code`. Otherwise it is due again
    /// after `delay`. Returns `None` when the dispatch is stale.
    pub async fn release_instance(
        &self,
        id: &str,
        epoch: i64,
        failure: Option<(&str, &str)>,
        max_failures: i32,
        delay: Duration,
    ) -> Result<Option<Released>, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(row) = transaction
            .query_opt(
                "SELECT failures FROM instances
                 WHERE id = $1::text::uuid AND epoch = $2 AND status = 'running' FOR UPDATE",
                &[&id, &epoch],
            )
            .await?
        else {
            return Ok(None);
        };
        let failures: i32 = row.get(0);
        // Read after the lock, so a checkpoint committed while waiting for it counts.
        let progressed: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM instance_checkpoints WHERE instance_id = $1::text::uuid AND epoch = $2)",
                &[&id, &epoch],
            )
            .await?
            .get(0);
        let released = match failure {
            Some((code, message)) => {
                let failures = if progressed { 1 } else { failures + 1 };
                if failures >= max_failures {
                    transaction
                        .execute(
                            "UPDATE instances
                             SET status = 'failed', failures = $2, error_code = $3, error_message = $4,
                                 finished_at = now(), updated_at = now(), node = NULL, lease_until = NULL
                             WHERE id = $1::text::uuid",
                            &[&id, &failures, &code, &message],
                        )
                        .await?;
                    log_event(
                        &transaction,
                        id,
                        "failed",
                        json!({"code": code, "failures": failures}),
                    )
                    .await?;
                    Released::Failed
                } else {
                    let due = requeue(&transaction, id, failures, delay).await?;
                    log_event(
                        &transaction,
                        id,
                        "retrying",
                        json!({"code": code, "failures": failures}),
                    )
                    .await?;
                    Released::Retry(due)
                }
            }
            None => {
                let due = requeue(&transaction, id, failures, delay).await?;
                log_event(&transaction, id, "released", json!({})).await?;
                Released::Retry(due)
            }
        };
        transaction.commit().await?;
        Ok(Some(released))
    }
}

/// Locks the instance row if it is running at `epoch`.
async fn lock_running(transaction: &Transaction<'_>, id: &str, epoch: i64) -> Result<bool, StoreError> {
    Ok(transaction
        .query_opt(
            "SELECT 1 FROM instances WHERE id = $1::text::uuid AND epoch = $2 AND status = 'running' FOR UPDATE",
            &[&id, &epoch],
        )
        .await?
        .is_some())
}

/// Stores `value` under `key` unless stored already; returns the stored value.
async fn store_once(
    transaction: &Transaction<'_>,
    id: &str,
    epoch: i64,
    key: &str,
    value: &Value,
) -> Result<Value, StoreError> {
    let row = transaction
        .query_one(
            "WITH stored AS (
                 INSERT INTO instance_checkpoints (instance_id, key, value, epoch)
                 VALUES ($1::text::uuid, $2, $3, $4)
                 ON CONFLICT (instance_id, key) DO NOTHING RETURNING value)
             SELECT coalesce((SELECT value FROM stored),
                             (SELECT value FROM instance_checkpoints WHERE instance_id = $1::text::uuid AND key = $2))",
            &[&id, &key, value, &epoch],
        )
        .await?;
    Ok(row.get(0))
}

/// Puts a running instance to sleep until `wake_at` (waiting for `event`, if given).
async fn suspend(
    transaction: &Transaction<'_>,
    id: &str,
    wake_at: SystemTime,
    event: Option<&str>,
    detail: Value,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "UPDATE instances
             SET status = 'sleeping', wake_at = $2, waiting_for = $3, failures = 0, node = NULL,
                 lease_until = NULL, updated_at = now()
             WHERE id = $1::text::uuid",
            &[&id, &wake_at, &event],
        )
        .await?;
    let kind = if event.is_some() { "waiting" } else { "sleeping" };
    log_event(transaction, id, kind, detail).await
}

/// Makes a locked running instance pending again, due after `delay`, under a new epoch.
async fn requeue(
    transaction: &Transaction<'_>,
    id: &str,
    failures: i32,
    delay: Duration,
) -> Result<SystemTime, StoreError> {
    let row = transaction
        .query_one(
            "UPDATE instances
             SET status = 'pending', epoch = epoch + 1, failures = $2,
                 wake_at = now() + make_interval(secs => $3), node = NULL, lease_until = NULL, updated_at = now()
             WHERE id = $1::text::uuid RETURNING wake_at",
            &[&id, &failures, &delay.as_secs_f64()],
        )
        .await?;
    Ok(row.get(0))
}

pub(crate) async fn log_event(
    transaction: &Transaction<'_>,
    id: &str,
    kind: &str,
    detail: Value,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "INSERT INTO instance_events (instance_id, kind, detail) VALUES ($1::text::uuid, $2, $3)",
            &[&id, &kind, &detail],
        )
        .await?;
    Ok(())
}

pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
