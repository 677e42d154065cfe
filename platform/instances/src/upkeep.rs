//! Background upkeep: recovery at start, lease renewal, recovery of dead nodes' instances,
//! instance timeouts, and retention of finished instances.

use std::time::{Duration, Instant, SystemTime};

use store::Store;
use timers::Timers;
use tokio_util::sync::CancellationToken;

use crate::InstancesConfig;
use crate::running::Running;

/// How often timeouts and expired leases are looked for.
/// Each look scans indexes full of short-lived entries under heavy instance traffic, so it
/// is kept to a few seconds.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(3);
/// How often finished instances past their retention are deleted, and how many at a time.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
const RETENTION_BATCH: i64 = 1000;

pub(crate) async fn upkeep(
    store: Store,
    timers: Timers,
    running: Running,
    config: InstancesConfig,
    stop: CancellationToken,
) {
    // Leases are renewed every third of their length; the other work every few seconds.
    let renew_every = config.lease / 3;
    let mut looked = Instant::now();
    let mut retained = Instant::now();
    let mut ticks = tokio::time::interval(renew_every.min(UPKEEP_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (ids, epochs) = running.snapshot();
        if !ids.is_empty()
            && let Err(error) = store
                .renew_leases(&ids, &epochs, &config.node, config.lease)
                .await
        {
            tracing::warn!(%error, "renewing instance leases failed");
        }
        if looked.elapsed() < UPKEEP_INTERVAL {
            continue;
        }
        looked = Instant::now();
        recover(&store, &timers, None).await;
        match store.time_out_instances().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "instances timed out"),
            Err(error) => tracing::warn!(%error, "timing out instances failed"),
        }
        if retained.elapsed() >= RETENTION_INTERVAL.min(config.retention) {
            retained = Instant::now();
            match store
                .delete_finished_instances(config.retention, RETENTION_BATCH)
                .await
            {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "finished instances past retention deleted"),
                Err(error) => tracing::warn!(%error, "deleting finished instances failed"),
            }
        }
    }
}

/// Makes lost running instances due now: this node's own after a restart, and any whose
/// lease ran out.
pub(crate) async fn recover(store: &Store, timers: &Timers, restarted_node: Option<&str>) {
    match store.recover_instances(restarted_node).await {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::info!(count = ids.len(), "running instances recovered");
            }
            let now = SystemTime::now();
            for id in ids {
                timers.schedule(id, now);
            }
        }
        Err(error) => tracing::warn!(%error, "recovering instances failed"),
    }
}
