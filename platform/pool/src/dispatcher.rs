//! The dispatcher: finds or starts a container of the right version for each invocation,
//! waits for the function's answer within its timeout, and retires containers that crash,
//! time out or sit idle too long.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sandbox::{ContainerExit, ContainerSpec, Sandbox};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::container::Container;
use crate::pool::{Handoff, Lease, Pool};
use crate::runtime_api::{Assignment, RuntimeChannel, serve_runtime_api};
use crate::{FunctionTarget, Invocation, InvokeError, InvokeOutcome, Runner};

/// Settings shared by every pool.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Holds one folder per container with its runtime socket; keep the path short (sockets ≤ 107 bytes).
    pub run_dir: PathBuf,
    /// Holds one log file per container (the function's stdout and stderr).
    pub log_dir: PathBuf,
    pub response_limit: usize,
    /// Callers that may wait per function version once it is at max concurrency.
    pub queue_limit: usize,
    /// How long a queued caller waits before getting "busy".
    pub queue_timeout: Duration,
    pub tmpfs_bytes: u64,
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
    inner: Arc<Inner>,
}

/// Every live container with its pool, by container id.
type LiveContainers = HashMap<String, (Arc<Pool>, Arc<Container>)>;

struct Inner {
    sandbox: Sandbox,
    config: DispatcherConfig,
    pools: Mutex<HashMap<(String, String, i32), Arc<Pool>>>,
    /// Routes exit reports to the container and its pool.
    containers: Mutex<LiveContainers>,
    /// Makes container ids (and so cgroup paths) unique among kilnd processes on one host.
    id_prefix: String,
    next_container: AtomicU64,
    closing: AtomicBool,
    cold_starts: AtomicU64,
    warm_starts: AtomicU64,
    /// Stops the background tasks on shutdown.
    stop: CancellationToken,
}

impl Dispatcher {
    /// Starts the dispatcher's background tasks: exit reports and the idle reaper.
    pub fn new(
        sandbox: Sandbox,
        exits: mpsc::UnboundedReceiver<ContainerExit>,
        config: DispatcherConfig,
    ) -> Dispatcher {
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
        });
        let dispatcher = Dispatcher { inner };
        tokio::spawn(dispatcher.clone().watch_exits(exits));
        tokio::spawn(dispatcher.clone().reap_idle());
        dispatcher
    }

    /// Makes sure the pool of `target` exists and starts its `min_warm` containers.
    pub fn prewarm(&self, target: Arc<FunctionTarget>) {
        let pool = self.pool_for(&target);
        self.fill_to_min_warm(&pool);
    }

    /// Retires every container of `tenant/function` (all versions), for example after a delete.
    /// Busy containers finish their invocation first.
    pub async fn retire_function(&self, tenant: &str, function: &str) {
        let closed: Vec<Arc<Pool>> = {
            let mut pools = self.inner.pools.lock().expect("pools lock");
            let keys: Vec<_> = pools
                .keys()
                .filter(|(pool_tenant, pool_function, _)| pool_tenant == tenant && pool_function == function)
                .cloned()
                .collect();
            keys.iter().filter_map(|key| pools.remove(key)).collect()
        };
        for pool in closed {
            for container in pool.close() {
                self.retire(&pool, &container).await;
            }
        }
    }

    pub fn figures(&self) -> PoolFigures {
        let pools: Vec<Arc<Pool>> = self
            .inner
            .pools
            .lock()
            .expect("pools lock")
            .values()
            .cloned()
            .collect();
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

    /// Refuses new work, deletes every container, and stops the sandbox process.
    /// Call after in-flight invocations have drained.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.stop.cancel();
        let containers: Vec<(Arc<Pool>, Arc<Container>)> = self
            .inner
            .containers
            .lock()
            .expect("containers lock")
            .values()
            .cloned()
            .collect();
        for (pool, container) in containers {
            self.retire(&pool, &container).await;
        }
        if let Err(error) = self.inner.sandbox.shutdown().await {
            tracing::warn!(%error, "sandbox shutdown failed");
        }
    }

    async fn dispatch(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(InvokeError::ShuttingDown);
        }
        let deadline = tokio::time::Instant::now() + target.limits.timeout;
        let pool = self.pool_for(&target);
        let (container, cold) = match pool.lease(self.inner.config.queue_limit) {
            Lease::Warm(container) => (container, false),
            Lease::StartSlot => (self.start(&pool, deadline, true).await?, true),
            Lease::Wait(receiver) => match self.wait_in_queue(receiver).await {
                Some(Handoff::Container(container)) => (container, false),
                Some(Handoff::StartSlot) => {
                    pool.slot_received();
                    (self.start(&pool, deadline, true).await?, true)
                }
                None => return Err(busy()),
            },
            Lease::Full => return Err(busy()),
        };
        let counter = if cold {
            &self.inner.cold_starts
        } else {
            &self.inner.warm_starts
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let result = self
            .run_on(&container, invocation, deadline, target.limits.timeout)
            .await;
        pool.end_busy();
        let keep = matches!(
            &result,
            Ok(_) | Err(InvokeError::FunctionError { .. } | InvokeError::ResponseTooLarge { .. })
        );
        if keep
            && !container.died.is_cancelled()
            && !pool.is_closed()
            && !self.inner.closing.load(Ordering::SeqCst)
        {
            pool.put_back(container.clone());
        } else {
            self.retire(&pool, &container).await;
        }
        result.map(|response| InvokeOutcome {
            response,
            cold,
            container: container.id.clone(),
        })
    }

    async fn wait_in_queue(&self, mut receiver: oneshot::Receiver<Handoff>) -> Option<Handoff> {
        tokio::select! {
            handoff = &mut receiver => handoff.ok(),
            _ = tokio::time::sleep(self.inner.config.queue_timeout) => {
                // A handoff may have landed just as the wait ended: take it rather than lose it.
                receiver.close();
                receiver.try_recv().ok()
            }
        }
    }

    async fn run_on(
        &self,
        container: &Container,
        invocation: Invocation,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<crate::FunctionResponse, InvokeError> {
        let (respond, response) = oneshot::channel();
        let deadline_ms = now_ms()
            + deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_millis() as u64;
        let assignment = Assignment {
            invocation,
            deadline_ms,
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

    /// Starts a container for `pool` in a slot already counted; busy for the caller or idle.
    async fn start(
        &self,
        pool: &Arc<Pool>,
        deadline: tokio::time::Instant,
        for_caller: bool,
    ) -> Result<Arc<Container>, InvokeError> {
        let started = tokio::time::timeout_at(deadline, self.create_container(pool)).await;
        match started {
            Ok(Ok(container)) => {
                pool.started(container.clone(), for_caller);
                Ok(container)
            }
            Ok(Err(error)) => {
                pool.start_failed();
                Err(error)
            }
            Err(_) => {
                pool.start_failed();
                Err(InvokeError::Timeout(pool.target.limits.timeout))
            }
        }
    }

    async fn create_container(&self, pool: &Arc<Pool>) -> Result<Arc<Container>, InvokeError> {
        let target = &pool.target;
        let number = self.inner.next_container.fetch_add(1, Ordering::Relaxed);
        let id = format!("kiln-{}-{number}", self.inner.id_prefix);
        let runtime_dir = self.inner.config.run_dir.join(&id);
        let start_failed =
            |what: &str, error: &dyn std::fmt::Display| InvokeError::StartFailed(format!("{what}: {error}"));
        std::fs::create_dir_all(&runtime_dir).map_err(|error| start_failed("runtime folder", &error))?;
        let listener = UnixListener::bind(runtime_dir.join("runtime.sock")).map_err(|error| {
            let _ = std::fs::remove_dir_all(&runtime_dir);
            start_failed("runtime socket", &error)
        })?;
        let (channel, assign) = RuntimeChannel::new(self.inner.config.response_limit);
        let server = tokio::spawn(serve_runtime_api(listener, channel)).abort_handle();
        let container = Arc::new(Container {
            id: id.clone(),
            runtime_dir: runtime_dir.clone(),
            assign,
            server,
            died: CancellationToken::new(),
            exit_status: Mutex::new(None),
            retired: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        });
        self.inner
            .containers
            .lock()
            .expect("containers lock")
            .insert(id.clone(), (pool.clone(), container.clone()));
        let spec = self.container_spec(target, &id, runtime_dir);
        let creating = Instant::now();
        let created = self.inner.sandbox.create(spec).await;
        if let Err(error) = created {
            container.begin_retirement();
            self.cleanup(&container).await;
            return Err(start_failed("create container", &error));
        }
        tracing::debug!(
            container = %id,
            tenant = %target.tenant,
            function = %target.function,
            create_ms = creating.elapsed().as_secs_f64() * 1000.0,
            "container started"
        );
        Ok(container)
    }

    fn container_spec(&self, target: &FunctionTarget, id: &str, runtime_dir: PathBuf) -> ContainerSpec {
        let limits = &target.limits;
        let mut env = vec![
            "PATH=/".to_owned(),
            "KILN_RUNTIME_SOCKET=/run/kiln/runtime.sock".to_owned(),
            format!("KILN_TENANT={}", target.tenant),
            format!("KILN_FUNCTION={}", target.function),
            format!("KILN_VERSION={}", target.version),
        ];
        env.extend(limits.env.iter().map(|(key, value)| format!("{key}={value}")));
        ContainerSpec {
            id: id.to_owned(),
            rootfs: target.rootfs.clone(),
            runtime_dir,
            log_path: self.inner.config.log_dir.join(format!("{id}.log")),
            env,
            memory_bytes: limits.memory_bytes,
            cpu_shares: limits.cpu_shares,
            cpu_quota_us: limits.cpu_quota_us,
            pids_limit: limits.pids_limit,
            network: limits.network,
            tmpfs_bytes: self.inner.config.tmpfs_bytes,
        }
    }

    /// Takes a container out of its pool and deletes it; only the first call does anything.
    async fn retire(&self, pool: &Pool, container: &Arc<Container>) {
        if !container.begin_retirement() {
            return;
        }
        pool.remove(container);
        self.cleanup(container).await;
    }

    async fn cleanup(&self, container: &Container) {
        self.inner
            .containers
            .lock()
            .expect("containers lock")
            .remove(&container.id);
        container.server.abort();
        if !container.died.is_cancelled() {
            let deleting = Instant::now();
            match self.inner.sandbox.delete(&container.id).await {
                Ok(()) => tracing::debug!(
                    container = %container.id,
                    delete_ms = deleting.elapsed().as_secs_f64() * 1000.0,
                    "container deleted"
                ),
                Err(error) => tracing::warn!(container = %container.id, %error, "deleting container failed"),
            }
        }
        let _ = std::fs::remove_dir_all(&container.runtime_dir);
        let log = self.inner.config.log_dir.join(format!("{}.log", container.id));
        let _ = std::fs::remove_file(log);
    }

    fn pool_for(&self, target: &Arc<FunctionTarget>) -> Arc<Pool> {
        let mut pools = self.inner.pools.lock().expect("pools lock");
        pools
            .entry(target.pool_key())
            .or_insert_with(|| Arc::new(Pool::new(target.clone())))
            .clone()
    }

    fn fill_to_min_warm(&self, pool: &Arc<Pool>) {
        while pool.warm_slot() {
            let dispatcher = self.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let deadline =
                    tokio::time::Instant::now() + pool.target.limits.timeout.max(Duration::from_secs(10));
                if let Err(error) = dispatcher.start(&pool, deadline, false).await {
                    tracing::warn!(function = %pool.target.function, %error, "pre-warming a container failed");
                }
            });
        }
    }

    async fn watch_exits(self, mut exits: mpsc::UnboundedReceiver<ContainerExit>) {
        while let Some(exit) = exits.recv().await {
            let found = self
                .inner
                .containers
                .lock()
                .expect("containers lock")
                .get(&exit.container)
                .cloned();
            let Some((pool, container)) = found else { continue };
            tracing::warn!(container = %exit.container, status = %exit.status, function = %pool.target.function, "container exited");
            container.mark_died(exit.status);
            self.retire(&pool, &container).await;
        }
    }

    async fn reap_idle(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.stop.cancelled() => return,
            }
            let pools: Vec<Arc<Pool>> = self
                .inner
                .pools
                .lock()
                .expect("pools lock")
                .values()
                .cloned()
                .collect();
            for pool in pools {
                for container in pool.take_expired(Instant::now()) {
                    tracing::debug!(container = %container.id, "retiring idle container");
                    self.retire(&pool, &container).await;
                }
                self.fill_to_min_warm(&pool);
            }
            self.inner
                .pools
                .lock()
                .expect("pools lock")
                .retain(|_, pool| !pool.is_empty());
        }
    }
}

impl Runner for Dispatcher {
    async fn invoke(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.dispatch(target, invocation).await
    }

    fn prewarm(&self, target: Arc<FunctionTarget>) {
        Dispatcher::prewarm(self, target);
    }

    async fn retire_function(&self, tenant: &str, function: &str) {
        Dispatcher::retire_function(self, tenant, function).await;
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}
