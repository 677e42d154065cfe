//! The dispatcher: finds or starts a container of the right version for each invocation and
//! waits for the function's answer within its timeout.
//!
//! Each invocation runs in its own task, so a caller that disconnects cannot interrupt the
//! bookkeeping halfway: the container always goes back to its pool or is retired.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use network::EgressNetwork;
use sandbox::{ContainerExit, Sandbox};
use telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::container::Container;
use crate::logs::FunctionLogs;
use crate::pool::{Handoff, Lease, Pool};
use crate::response_stream::{StreamEnd, StreamLimits};
use crate::runtime_api::{Answer, Assignment};
use crate::{FunctionTarget, Invocation, InvokeError, InvokeOutcome, Runner};

/// Settings shared by every pool.
#[derive(Clone)]
pub struct DispatcherConfig {
    /// Holds one folder per container with its runtime socket; keep the path short (sockets ≤ 107 bytes).
    pub run_dir: PathBuf,
    /// Where the functions' stdout and stderr go.
    pub logs: FunctionLogs,
    /// The longest response body sent with `Content-Length`.
    pub response_limit: usize,
    pub stream_limits: StreamLimits,
    /// Callers that may wait per function version once it is at max concurrency.
    pub queue_limit: usize,
    /// How long a queued caller waits before getting "busy".
    pub queue_timeout: Duration,
    pub tmpfs_bytes: u64,
    /// Where `network=egress` containers get their namespaces.
    pub egress: EgressNetwork,
    /// Whether `network=host` versions may start: checked at each start, since the operator
    /// may have withdrawn it after they were uploaded.
    pub allow_host_network: bool,
    /// Counts the egress containers' traffic.
    pub metrics: Metrics,
}

/// Counts across every pool, for health reports and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    pub pools: usize,
    pub warm: usize,
    pub busy: usize,
    pub starting: usize,
    pub queued: usize,
    pub cold_starts: u64,
    pub warm_starts: u64,
}

/// Cheap to clone; all clones share the pools.
#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) inner: Arc<Inner>,
}

/// Pools by tenant, function and version.
pub(crate) type Pools = HashMap<(String, String, i32), Arc<Pool>>;
/// Every live container with its pool, by container id.
pub(crate) type LiveContainers = HashMap<String, (Arc<Pool>, Arc<Container>)>;

pub(crate) struct Inner {
    pub sandbox: Sandbox,
    pub config: DispatcherConfig,
    pub pools: Mutex<Pools>,
    /// Routes exit reports to the container and its pool.
    pub containers: Mutex<LiveContainers>,
    /// Makes container ids (and so cgroup paths) unique among kilnd processes on one host.
    pub id_prefix: String,
    pub next_container: AtomicU64,
    pub closing: AtomicBool,
    pub cold_starts: AtomicU64,
    pub warm_starts: AtomicU64,
    /// Stops the background tasks on shutdown.
    pub stop: CancellationToken,
    /// Cancelled when the sandbox process went away while kilnd still needed it.
    pub sandbox_lost: CancellationToken,
}

/// How often a caller looks for a pool again after the one it found closed under it.
const CLOSED_POOL_RETRIES: usize = 3;

impl Dispatcher {
    /// Starts the dispatcher's background tasks: exit reports and the idle reaper.
    pub fn new(
        sandbox: Sandbox,
        exits: mpsc::UnboundedReceiver<ContainerExit>,
        config: DispatcherConfig,
    ) -> Dispatcher {
        sweep_runtime_folders(&config.run_dir);
        let inner = Arc::new(Inner {
            sandbox,
            config,
            pools: Mutex::default(),
            containers: Mutex::default(),
            id_prefix: format!("{:x}", std::process::id() ^ (now_ms() as u32)),
            next_container: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            cold_starts: AtomicU64::new(0),
            warm_starts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            sandbox_lost: CancellationToken::new(),
        });
        let dispatcher = Dispatcher { inner };
        tokio::spawn(dispatcher.clone().watch_exits(exits));
        tokio::spawn(dispatcher.clone().reap_idle());
        dispatcher
    }

    /// Completes if the sandbox process dies while kilnd runs. kilnd cannot start or delete
    /// containers without it, so the binary shuts down for its supervisor to restart it; the
    /// next start deletes what the dead sandbox left.
    pub async fn sandbox_lost(&self) {
        self.inner.sandbox_lost.cancelled().await;
    }

    pub fn figures(&self) -> PoolFigures {
        let pools = self.all_pools();
        let mut figures = PoolFigures {
            pools: pools.len(),
            cold_starts: self.inner.cold_starts.load(Ordering::Relaxed),
            warm_starts: self.inner.warm_starts.load(Ordering::Relaxed),
            ..PoolFigures::default()
        };
        for pool in pools {
            let counts = pool.counts();
            figures.warm += counts.idle;
            figures.busy += counts.busy;
            figures.starting += counts.starting;
            figures.queued += counts.queued;
        }
        figures
    }

    /// Refuses new work, closes every pool, and stops the sandbox process, which deletes
    /// every container it runs; then removes their sockets and logs. Call after in-flight
    /// work drained. The pools' counts are left as they are: nothing uses them any more.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.stop.cancel();
        let pools: Vec<Arc<Pool>> = self.inner.pools.lock().drain().map(|(_, pool)| pool).collect();
        for pool in pools {
            pool.close();
        }
        if let Err(error) = self.inner.sandbox.shutdown().await {
            tracing::warn!(%error, "sandbox shutdown failed");
        }
        let containers: Vec<Arc<Container>> = self
            .inner
            .containers
            .lock()
            .drain()
            .map(|(_, (_, container))| container)
            .collect();
        for container in containers {
            container.server.abort();
            container.stop_capture();
            let _ = std::fs::remove_dir_all(&container.runtime_dir);
        }
    }

    async fn dispatch(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        let deadline = tokio::time::Instant::now() + target.limits.timeout;
        let asked = std::time::Instant::now();
        for _ in 0..CLOSED_POOL_RETRIES {
            if self.inner.closing.load(Ordering::SeqCst) {
                return Err(InvokeError::ShuttingDown);
            }
            let pool = self.pool_for(&target);
            let (container, cold) = match pool.lease(self.inner.config.queue_limit) {
                Lease::Warm(container) => (container, false),
                Lease::StartSlot => (self.start(&pool, deadline, true).await?, true),
                Lease::Wait(receiver) => match self.wait_in_queue(receiver, deadline).await {
                    // Capacity that arrives after the caller's deadline goes back unused:
                    // running work nobody waits for would only cost a container.
                    Some(handoff) if tokio::time::Instant::now() >= deadline => {
                        self.give_back(&pool, handoff);
                        return Err(busy());
                    }
                    Some(Handoff::Container(container)) => (container, false),
                    Some(Handoff::StartSlot) => {
                        pool.slot_received();
                        (self.start(&pool, deadline, true).await?, true)
                    }
                    None if pool.is_closed() => continue,
                    None => return Err(busy()),
                },
                Lease::Full => return Err(busy()),
                Lease::Closed => continue,
            };
            let counter = if cold {
                &self.inner.cold_starts
            } else {
                &self.inner.warm_starts
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let handed = std::time::Instant::now();
            let queued = handed.duration_since(asked);
            let result = self
                .run_on(&container, invocation, deadline, target.limits.timeout)
                .await;
            let in_function = handed.elapsed();
            let response = match result {
                Ok(Answer {
                    response,
                    stream_end: Some(stream_end),
                }) => {
                    self.release_after_stream(pool, container.clone(), stream_end);
                    response
                }
                Ok(Answer { response, .. }) => {
                    self.release(&pool, &container, true);
                    response
                }
                Err(error) => {
                    let healthy = matches!(
                        error,
                        InvokeError::FunctionError { .. }
                            | InvokeError::ResponseTooLarge { .. }
                            | InvokeError::Suspended
                    );
                    self.release(&pool, &container, healthy);
                    return Err(error);
                }
            };
            return Ok(InvokeOutcome {
                response,
                cold,
                container: container.id.clone(),
                in_function,
                queued,
                cold_start: cold.then(|| *container.start_phases.lock()),
            });
        }
        Err(busy())
    }

    /// Ends a container's invocation: it goes back to its pool if it is `healthy` and may
    /// serve again, else it is retired.
    fn release(&self, pool: &Pool, container: &Arc<Container>, healthy: bool) {
        pool.end_busy();
        let back = healthy && !container.died.is_cancelled() && !self.inner.closing.load(Ordering::SeqCst);
        let leftover = if back {
            pool.put_back(container.clone())
        } else {
            Some(container.clone())
        };
        if let Some(container) = leftover {
            self.retire(pool, &container);
        }
    }

    /// Keeps a container busy while its streamed response runs, then releases it: a stream
    /// that was cut (the function went quiet, ran too long or broke off) retires it.
    fn release_after_stream(
        &self,
        pool: Arc<Pool>,
        container: Arc<Container>,
        stream_end: oneshot::Receiver<StreamEnd>,
    ) {
        let dispatcher = self.clone();
        tokio::spawn(async move {
            let end = tokio::select! {
                end = stream_end => end.ok(),
                _ = container.died.cancelled() => None,
            };
            let outcome = end.as_ref().map_or("function_gone", StreamEnd::outcome);
            dispatcher.inner.config.metrics.streamed_response(outcome);
            let reusable = end.as_ref().is_some_and(StreamEnd::container_reusable);
            dispatcher.release(&pool, &container, reusable);
        });
    }

    /// Waits for capacity until the queue timeout or the caller's deadline, whichever is first.
    async fn wait_in_queue(
        &self,
        mut receiver: oneshot::Receiver<Handoff>,
        deadline: tokio::time::Instant,
    ) -> Option<Handoff> {
        let until = deadline.min(tokio::time::Instant::now() + self.inner.config.queue_timeout);
        tokio::select! {
            handoff = &mut receiver => handoff.ok(),
            _ = tokio::time::sleep_until(until) => {
                // A handoff may have landed just as the wait ended: take it rather than lose it.
                receiver.close();
                receiver.try_recv().ok()
            }
        }
    }

    /// Returns capacity a caller received but will not use.
    fn give_back(&self, pool: &Pool, handoff: Handoff) {
        match handoff {
            Handoff::Container(container) => {
                pool.end_busy();
                if let Some(leftover) = pool.put_back(container) {
                    self.retire(pool, &leftover);
                }
            }
            Handoff::StartSlot => {
                pool.slot_received();
                pool.start_failed();
            }
        }
    }

    async fn run_on(
        &self,
        container: &Container,
        invocation: Invocation,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Answer, InvokeError> {
        let (respond, response) = oneshot::channel();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let assignment = Assignment {
            invocation,
            deadline_ms: now_ms() + remaining.as_millis() as u64,
            respond,
        };
        if container.assign.try_send(assignment).is_err() {
            return Err(InvokeError::Crashed("container stopped taking work".into()));
        }
        tokio::select! {
            outcome = response => outcome.unwrap_or_else(|_| Err(InvokeError::Crashed(container.exit_status()))),
            _ = container.died.cancelled() => Err(InvokeError::Crashed(container.exit_status())),
            _ = tokio::time::sleep_until(deadline) => Err(InvokeError::Timeout(timeout)),
        }
    }

    /// A snapshot of every pool, taken without holding the map's lock afterwards.
    pub(crate) fn all_pools(&self) -> Vec<Arc<Pool>> {
        self.inner.pools.lock().values().cloned().collect()
    }

    pub(crate) fn pool_for(&self, target: &Arc<FunctionTarget>) -> Arc<Pool> {
        let mut pools = self.inner.pools.lock();
        pools
            .entry(target.pool_key())
            .or_insert_with(|| Arc::new(Pool::new(target.clone())))
            .clone()
    }

    /// The pool of `target`, marked as its function's current version, under the map's lock
    /// so the idle reaper cannot drop it between the two steps.
    pub(crate) fn current_pool_for(&self, target: &Arc<FunctionTarget>) -> Arc<Pool> {
        let mut pools = self.inner.pools.lock();
        let pool = pools
            .entry(target.pool_key())
            .or_insert_with(|| Arc::new(Pool::new(target.clone())));
        pool.keep_warm();
        pool.clone()
    }
}

impl Runner for Dispatcher {
    async fn invoke(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        let dispatcher = self.clone();
        tokio::spawn(async move { dispatcher.dispatch(target, invocation).await })
            .await
            .unwrap_or_else(|error| {
                Err(InvokeError::StartFailed(format!(
                    "invocation task failed: {error}"
                )))
            })
    }

    fn prewarm(&self, target: Arc<FunctionTarget>) {
        Dispatcher::prewarm(self, target);
    }

    async fn retire_function(&self, tenant: &str, function: &str) {
        Dispatcher::retire_function(self, tenant, function);
    }

    fn figures(&self) -> PoolFigures {
        Dispatcher::figures(self)
    }
}

fn busy() -> InvokeError {
    InvokeError::Busy {
        retry_after: Duration::from_secs(1),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

/// Removes the runtime socket folders a killed kilnd left: their containers are gone (the
/// sandbox deleted them when it noticed, or deletes them as it starts), and no container of
/// this life has started yet.
fn sweep_runtime_folders(run_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Err(error) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(folder = %entry.path().display(), %error, "cannot remove a leftover runtime folder");
        }
    }
}
