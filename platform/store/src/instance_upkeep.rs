//! Background upkeep of durable instances: what is due soon (the timer wheel's refill),
//! leases of running instances, recovery of a dead node's work, instance timeouts and
//! retention of finished instances.

use std::time::{Duration, SystemTime};

use crate::{Store, StoreError};

impl Store {
    /// Pending and sleeping instances due from `from` (inclusive; the earliest when `None`)
    /// to `until`, earliest first, with their due times.
    pub async fn due_instances(
        &self,
        from: Option<SystemTime>,
        until: SystemTime,
        limit: i64,
    ) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id::text, wake_at FROM instances
                 WHERE status IN ('pending', 'sleeping') AND wake_at <= $2
                   AND ($1::timestamptz IS NULL OR wake_at >= $1)
                 ORDER BY wake_at LIMIT $3",
            )
            .await?;
        let rows = client.query(&statement, &[&from, &until, &limit]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Extends the leases of the dispatches `node` runs (`ids[i]` at `epochs[i]`).
    pub async fn renew_leases(
        &self,
        ids: &[String],
        epochs: &[i64],
        node: &str,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE instances i SET lease_until = now() + make_interval(secs => $4)
                 FROM unnest($1::text[]::uuid[], $2::bigint[]) AS running (id, epoch)
                 WHERE i.id = running.id AND i.epoch = running.epoch AND i.status = 'running' AND i.node = $3",
                &[&ids, &epochs, &node, &lease.as_secs_f64()],
            )
            .await?)
    }

    /// Makes running instances whose node is gone pending again, under a new epoch: those
    /// whose lease ran out, and those of `restarted_node` (a node that just started, so
    /// nothing of its old process runs them any more). Returns the recovered ids.
    pub async fn recover_instances(&self, restarted_node: Option<&str>) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH recovered AS (
                     UPDATE instances
                     SET status = 'pending', epoch = epoch + 1, wake_at = now(), node = NULL,
                         lease_until = NULL, updated_at = now()
                     WHERE status = 'running' AND (node = $1 OR lease_until < now())
                     RETURNING id, epoch),
                 logged AS (
                     INSERT INTO instance_events (instance_id, kind, detail)
                     SELECT id, 'recovered', jsonb_build_object('epoch', epoch) FROM recovered)
                 SELECT id::text FROM recovered",
                &[&restarted_node],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Fails live instances past their deadline (their dispatch, if any, is fenced off).
    pub async fn time_out_instances(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "WITH timed_out AS (
                     UPDATE instances
                     SET status = 'failed', epoch = epoch + 1, error_code = 'instance_timeout',
                         error_message = 'the instance did not finish before its timeout',
                         finished_at = now(), updated_at = now(), wake_at = NULL, node = NULL,
                         lease_until = NULL
                     WHERE status IN ('pending', 'running', 'sleeping', 'paused') AND deadline_at < now()
                     RETURNING id)
                 INSERT INTO instance_events (instance_id, kind, detail)
                 SELECT id, 'failed', '{\"code\": \"instance_timeout\"}' FROM timed_out",
                &[],
            )
            .await?)
    }

    /// Deletes up to `batch` instances finished more than `retention` ago, with their
    /// checkpoints, signals and history.
    pub async fn delete_finished_instances(
        &self,
        retention: Duration,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM instances WHERE id IN (
                     SELECT id FROM instances
                     WHERE finished_at < now() - make_interval(secs => $1)
                     LIMIT $2)",
                &[&retention.as_secs_f64(), &batch],
            )
            .await?)
    }
}
