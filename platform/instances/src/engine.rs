//! The durable instance engine: starting instances, reading them, signalling them, and the
//! background work (scheduler, dispatches, upkeep) that moves them along.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pool::Runner;
use registry::{Registry, VersionSelector};
use serde_json::Value;
use store::{
    CheckpointRecord, InstanceEvent, InstanceFilter, InstanceRecord, NewInstance, SignalOutcome,
    StartedInstance, Store,
};
use telemetry::Metrics;
use timers::{Scheduler, SchedulerConfig, SystemClock, Timers};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::InstanceError;
use crate::dispatch::{Dispatch, Shared};
use crate::running::Running;
use crate::session::json_len;
use crate::upkeep::{recover, upkeep};

#[derive(Debug, Clone)]
pub struct InstancesConfig {
    /// This node's stable name: the instances it runs carry it, and a restarted node
    /// recovers them at once.
    pub node: String,
    /// Largest input, checkpoint value, output and event payload, in bytes of JSON.
    pub value_limit: usize,
    /// An instance not finished within this time fails with `instance_timeout`.
    pub default_timeout: Duration,
    /// Finished instances are deleted this long after they finished.
    pub retention: Duration,
    /// A node that stops renewing its claim on a running instance loses it after this.
    pub lease: Duration,
    /// Instances this node dispatches at once.
    pub concurrency: usize,
    /// How far ahead the timer wheel holds due times, and how often it is refilled.
    pub wheel_window: Duration,
    pub refill_interval: Duration,
}

/// Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct Instances {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    config: InstancesConfig,
    timers: Timers,
    capacity: Arc<Semaphore>,
    /// Cancelled when the node stops taking instances (shutdown begins).
    claiming: CancellationToken,
    /// Cancelled when the node has finished its dispatches: leases stop being renewed.
    upkeeping: CancellationToken,
}

/// Dispatches in a row that end without progress before an instance fails.
pub(crate) const MAX_FAILURES: i32 = 3;

impl Instances {
    /// Starts the engine: first makes whatever this node ran before a restart due again
    /// (nothing of its old process runs it any more), then schedules, dispatches and
    /// upkeeps until [`Instances::shutdown`] and [`Instances::finish`].
    pub async fn start<R: Runner>(
        store: Store,
        registry: Registry,
        runner: R,
        config: InstancesConfig,
        metrics: Metrics,
    ) -> Instances {
        let claiming = CancellationToken::new();
        let upkeeping = CancellationToken::new();
        let (timers, requests) = Timers::channel();
        recover(&store, &timers, Some(&config.node)).await;
        let capacity = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let scheduler = Scheduler::new(
            store.clone(),
            SchedulerConfig {
                node: config.node.clone(),
                lease: config.lease,
                window: config.wheel_window,
                refill_interval: config.refill_interval,
                refill_limit: 100_000,
                claim_batch: 256,
            },
            Arc::new(SystemClock),
            capacity.clone(),
        );
        let running = Running::default();
        let dispatch = Dispatch::new(Shared {
            store: store.clone(),
            registry: registry.clone(),
            runner,
            timers: timers.clone(),
            running: running.clone(),
            value_limit: config.value_limit,
            closing: claiming.clone(),
            metrics,
        });
        scheduler.start(requests, move |claimed| dispatch.spawn(claimed), claiming.clone());
        tokio::spawn(upkeep(
            store.clone(),
            timers.clone(),
            running,
            config.clone(),
            upkeeping.clone(),
        ));
        Instances {
            inner: Arc::new(Inner {
                store,
                registry,
                config,
                timers,
                capacity,
                claiming,
                upkeeping,
            }),
        }
    }

    /// Instance dispatches this node runs now.
    pub fn running(&self) -> usize {
        self.inner.config.concurrency.max(1) - self.inner.capacity.available_permits()
    }

    /// Starts an instance of the current version of `tenant/function`, or returns the one
    /// `idempotency_key` started before.
    pub async fn start_instance(
        &self,
        tenant: &str,
        function: &str,
        input: Value,
        idempotency_key: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<StartedInstance, InstanceError> {
        let limit = self.inner.config.value_limit;
        if json_len(&input) > limit {
            return Err(InstanceError::TooLarge {
                what: "the input",
                limit,
            });
        }
        let target = self
            .inner
            .registry
            .resolve(tenant, function, &VersionSelector::Current)
            .await?
            .ok_or_else(|| InstanceError::FunctionNotFound(function.to_owned()))?;
        let started = self
            .inner
            .store
            .start_instance(&NewInstance {
                tenant: tenant.to_owned(),
                function: function.to_owned(),
                version: target.version,
                input: input.clone(),
                idempotency_key: idempotency_key.clone(),
                timeout: timeout.unwrap_or(self.inner.config.default_timeout),
            })
            .await?;
        if started.created {
            self.inner
                .timers
                .schedule(started.instance.id.clone(), SystemTime::now());
        } else if started.instance.function != function || started.instance.input != input {
            return Err(InstanceError::IdempotencyConflict(
                idempotency_key.unwrap_or_default(),
            ));
        }
        Ok(started)
    }

    pub async fn instance(&self, tenant: &str, id: &str) -> Result<Option<InstanceRecord>, InstanceError> {
        if !is_instance_id(id) {
            return Ok(None);
        }
        Ok(self.inner.store.instance(tenant, id).await?)
    }

    pub async fn list(
        &self,
        tenant: &str,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceRecord>, InstanceError> {
        Ok(self.inner.store.list_instances(tenant, filter).await?)
    }

    pub async fn checkpoints(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Vec<CheckpointRecord>>, InstanceError> {
        if !is_instance_id(id) {
            return Ok(None);
        }
        Ok(self.inner.store.instance_checkpoints(tenant, id).await?)
    }

    pub async fn events(&self, tenant: &str, id: &str) -> Result<Option<Vec<InstanceEvent>>, InstanceError> {
        if !is_instance_id(id) {
            return Ok(None);
        }
        Ok(self.inner.store.instance_events(tenant, id).await?)
    }

    /// Stores signal `name` for the tenant's instance `id` and applies it; an instance the
    /// signal made due is scheduled on this node at once.
    pub async fn signal(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        payload: &Value,
    ) -> Result<SignalOutcome, InstanceError> {
        if !is_instance_id(id) {
            return Ok(SignalOutcome::NotFound);
        }
        let limit = self.inner.config.value_limit;
        if json_len(payload) > limit {
            return Err(InstanceError::TooLarge {
                what: "the payload",
                limit,
            });
        }
        let outcome = self
            .inner
            .store
            .signal_instance(tenant, id, name, payload)
            .await?;
        if let SignalOutcome::Sent { due: Some(due), .. } = &outcome {
            self.inner.timers.schedule(id.to_owned(), *due);
        }
        Ok(outcome)
    }

    /// Stops claiming instances and waits up to `grace` for the dispatches in flight; their
    /// leases stay renewed meanwhile. Dispatches cut short afterwards (their containers are
    /// deleted) give their instances back without counting a failure.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.claiming.cancel();
        if !self.drained(grace).await {
            tracing::warn!(
                "instance dispatches still running after the grace period; they will be given back"
            );
        }
    }

    /// Waits up to `within` for the last dispatches to record how they ended, then stops
    /// the upkeep. Anything still running is recovered when this node starts again, or by
    /// another node once its lease runs out.
    pub async fn finish(&self, within: Duration) {
        self.drained(within).await;
        self.inner.upkeeping.cancel();
    }

    async fn drained(&self, within: Duration) -> bool {
        let all = u32::try_from(self.inner.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let capacity = &self.inner.capacity;
        // The permits are only borrowed: dropping them at once keeps `finish` able to wait too.
        tokio::time::timeout(within, capacity.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Instance ids are UUIDs; anything else cannot name an instance.
pub fn is_instance_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(index, character)| match index {
            8 | 13 | 18 | 23 => character == '-',
            _ => character.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::is_instance_id;

    #[test]
    fn only_uuids_name_instances() {
        assert!(is_instance_id("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2"));
        assert!(!is_instance_id("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c"));
        assert!(!is_instance_id("6f1c2a3b00d4e-4f5a-8b6c-7d8e9fa0b1c2"));
        assert!(!is_instance_id("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1cz"));
        assert!(!is_instance_id("'; DROP TABLE instances; --"));
    }
}
