//! Containers coming and going: starting one for a pool, retiring one (crashed, timed out,
//! idle, superseded, deleted), and the background tasks that drive both.

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_types::NetworkMode;
use sandbox::{ContainerExit, ContainerNetwork, ContainerSpec};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container::Container;
use crate::logs::{Capture, SharedAttribution};
use crate::pool::Pool;
use crate::runtime_api::{RuntimeChannel, serve_runtime_api};
use crate::{Dispatcher, FunctionTarget, InvokeError, StartPhases};

/// Live egress containers' traffic is counted every this many idle-reaper ticks (seconds).
const EGRESS_SAMPLE_TICKS: u64 = 5;

impl Dispatcher {
    /// Marks `target` as its function's current version (call on every upload and roll-back):
    /// its `min_warm` containers start now and are kept, and the pools of the function's
    /// other versions close.
    pub fn prewarm(&self, target: Arc<FunctionTarget>) {
        let superseded: Vec<Arc<Pool>> = {
            let mut pools = self.inner.pools.lock();
            let keys: Vec<_> = pools
                .keys()
                .filter(|(tenant, function, version)| {
                    *tenant == target.tenant && *function == target.function && *version != target.version
                })
                .cloned()
                .collect();
            keys.iter().filter_map(|key| pools.remove(key)).collect()
        };
        for pool in superseded {
            self.close_pool(&pool);
        }
        let pool = self.current_pool_for(&target);
        self.fill_to_min_warm(&pool);
    }

    /// Retires every container of `tenant/function` (all versions), for example after a delete.
    /// Busy containers finish their invocation first.
    pub fn retire_function(&self, tenant: &str, function: &str) {
        let closed: Vec<Arc<Pool>> = {
            let mut pools = self.inner.pools.lock();
            let keys: Vec<_> = pools
                .keys()
                .filter(|(pool_tenant, pool_function, _)| pool_tenant == tenant && pool_function == function)
                .cloned()
                .collect();
            keys.iter().filter_map(|key| pools.remove(key)).collect()
        };
        for (_, container) in self.inner.containers.lock().values() {
            if container.target.tenant == tenant && container.target.function == function {
                container.counts_traffic.store(false, Ordering::SeqCst);
            }
        }
        for pool in closed {
            self.close_pool(&pool);
        }
    }

    /// Starts a container for `pool` in a slot already counted; busy for the caller or parked.
    /// The start is never cancelled halfway: past the deadline the caller gets a timeout and
    /// the container, once up, joins the pool as a warm one.
    pub(crate) async fn start(
        &self,
        pool: &Arc<Pool>,
        deadline: tokio::time::Instant,
        for_caller: bool,
    ) -> Result<Arc<Container>, InvokeError> {
        let creating = {
            let (dispatcher, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { dispatcher.create_container(&pool).await })
        };
        let finish = {
            let (dispatcher, pool) = (self.clone(), pool.clone());
            move |created: Result<Arc<Container>, InvokeError>, for_caller: bool| match created {
                Ok(container) => {
                    if let Some(leftover) = pool.started(container.clone(), for_caller) {
                        dispatcher.retire(&pool, &leftover);
                    }
                    Ok(container)
                }
                Err(error) => {
                    pool.start_failed();
                    Err(error)
                }
            }
        };
        let joined = |joined: Result<Result<Arc<Container>, InvokeError>, tokio::task::JoinError>| {
            joined
                .unwrap_or_else(|error| Err(InvokeError::StartFailed(format!("start task failed: {error}"))))
        };
        let mut creating = creating;
        match tokio::time::timeout_at(deadline, &mut creating).await {
            Ok(created) => finish(joined(created), for_caller),
            Err(_) => {
                tokio::spawn(async move {
                    let _ = finish(joined(creating.await), false);
                });
                Err(InvokeError::Timeout(pool.target.limits.timeout))
            }
        }
    }

    async fn create_container(&self, pool: &Arc<Pool>) -> Result<Arc<Container>, InvokeError> {
        let target = &pool.target;
        let asked = Instant::now();
        let number = self.inner.next_container.fetch_add(1, Ordering::Relaxed);
        let id = format!("kiln-{}-{number}", self.inner.id_prefix);
        let runtime_dir = self.inner.config.run_dir.join(&id);
        let start_failed =
            |what: &str, error: &dyn std::fmt::Display| InvokeError::StartFailed(format!("{what}: {error}"));
        if target.limits.network == NetworkMode::Host && !self.inner.config.allow_host_network {
            return Err(InvokeError::NetworkNotAllowed(
                "this version has network=host, which this Kiln does not allow (KILN_ALLOW_HOST_NETWORK \
                 is off); upload the function again with network=egress or network=none"
                    .into(),
            ));
        }
        let listener = bind_runtime_socket(&runtime_dir).map_err(|error| {
            let _ = std::fs::remove_dir_all(&runtime_dir);
            start_failed("runtime socket", &error)
        })?;
        let attribution = SharedAttribution::default();
        let capture = self
            .inner
            .config
            .logs
            .capture(&id, &target.tenant, &target.function, attribution.clone())
            .map_err(|error| {
                let _ = std::fs::remove_dir_all(&runtime_dir);
                start_failed("output capture", &error)
            })?;
        let config = &self.inner.config;
        let (channel, assign) =
            RuntimeChannel::new(config.response_limit, config.stream_limits, &id, attribution);
        let server = tokio::spawn(serve_runtime_api(listener, channel)).abort_handle();
        let container = Arc::new(Container {
            id: id.clone(),
            target: target.clone(),
            runtime_dir: runtime_dir.clone(),
            assign,
            server,
            died: CancellationToken::new(),
            exit_status: Mutex::new(None),
            retired: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            start_phases: Mutex::new(StartPhases::default()),
            capture: Mutex::new(None),
            egress: Mutex::new(None),
            counts_traffic: AtomicBool::new(true),
        });
        let socket_bound = asked.elapsed();
        self.inner
            .containers
            .lock()
            .insert(id.clone(), (pool.clone(), container.clone()));
        *container.capture.lock() = Some(capture);
        // Never counted in the pool: a failed start cleans up without touching its counts.
        let abandon = |container: &Arc<Container>| {
            container.begin_retirement();
            self.forget(container);
            self.delete_in_background(container);
        };
        let network = match target.limits.network {
            NetworkMode::None => ContainerNetwork::Isolated,
            NetworkMode::Host => ContainerNetwork::Host,
            NetworkMode::Egress => match self.inner.config.egress.attach(&target.limits.egress_allow).await {
                Ok(attachment) => {
                    let join = ContainerNetwork::Join {
                        namespace: attachment.namespace.clone(),
                        resolv_conf: attachment.resolv_conf.clone(),
                    };
                    *container.egress.lock() = Some(Arc::new(attachment));
                    join
                }
                Err(error) => {
                    abandon(&container);
                    return Err(start_failed("egress network", &error));
                }
            },
        };
        let spec = {
            let capture = container.capture.lock();
            let capture = capture.as_ref().expect("capture set above");
            self.container_spec(target, &id, runtime_dir, capture, network)
        };
        let creating = Instant::now();
        if let Err(error) = self.inner.sandbox.create(spec).await {
            abandon(&container);
            return Err(start_failed("create container", &error));
        }
        *container.start_phases.lock() = StartPhases {
            socket: socket_bound,
            container: creating.elapsed(),
            total: asked.elapsed(),
        };
        tracing::debug!(
            container = %id,
            tenant = %target.tenant,
            function = %target.function,
            create_ms = creating.elapsed().as_secs_f64() * 1000.0,
            "container started"
        );
        Ok(container)
    }

    fn container_spec(
        &self,
        target: &FunctionTarget,
        id: &str,
        runtime_dir: PathBuf,
        capture: &Capture,
        network: ContainerNetwork,
    ) -> ContainerSpec {
        let limits = &target.limits;
        let kiln_env = [
            ("KILN_RUNTIME_SOCKET", "/run/kiln/runtime.sock".to_owned()),
            ("KILN_TENANT", target.tenant.clone()),
            ("KILN_FUNCTION", target.function.clone()),
            ("KILN_VERSION", target.version.to_string()),
        ];
        let mut process = target.process.clone();
        for (key, value) in kiln_env.iter().map(|(key, value)| (*key, value.as_str())).chain(
            limits
                .env
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        ) {
            set_variable(&mut process.env, key, value);
        }
        ContainerSpec {
            id: id.to_owned(),
            rootfs: target.rootfs.clone(),
            runtime_dir,
            stdout_path: capture.stdout.clone(),
            stderr_path: capture.stderr.clone(),
            process,
            memory_bytes: limits.memory_bytes,
            cpu_shares: limits.cpu_shares,
            cpu_quota_us: limits.cpu_quota_us,
            pids_limit: limits.pids_limit,
            network,
            tmpfs_bytes: self.inner.config.tmpfs_bytes,
        }
    }

    /// Takes a container out of its pool and deletes it in the background; only the first
    /// call for a container does anything.
    pub(crate) fn retire(&self, pool: &Pool, container: &Arc<Container>) {
        if self.take_out(pool, container) {
            self.delete_in_background(container);
        }
    }

    /// The synchronous half of retiring: out of the pool and the registry of containers,
    /// runtime API stopped, socket folder removed. True the first time only.
    fn take_out(&self, pool: &Pool, container: &Arc<Container>) -> bool {
        if !container.begin_retirement() {
            return false;
        }
        pool.remove(container);
        self.forget(container);
        true
    }

    fn forget(&self, container: &Container) {
        self.inner.containers.lock().remove(&container.id);
        container.server.abort();
        let _ = std::fs::remove_dir_all(&container.runtime_dir);
    }

    fn delete_in_background(&self, container: &Arc<Container>) {
        let (dispatcher, container) = (self.clone(), container.clone());
        tokio::spawn(async move {
            if !container.died.is_cancelled() {
                let deleting = Instant::now();
                match dispatcher.inner.sandbox.delete(&container.id).await {
                    Ok(()) => tracing::debug!(
                        container = %container.id,
                        delete_ms = deleting.elapsed().as_secs_f64() * 1000.0,
                        "container deleted"
                    ),
                    Err(error) => {
                        tracing::warn!(container = %container.id, %error, "deleting container failed")
                    }
                }
            }
            container.stop_capture();
            let egress = container.egress.lock().take();
            if let Some(attachment) = egress {
                let traffic = dispatcher.inner.config.egress.detach(&attachment).await;
                dispatcher.count_egress(&container, traffic);
            }
        });
    }

    fn close_pool(&self, pool: &Pool) {
        for container in pool.close() {
            self.retire(pool, &container);
        }
    }

    fn fill_to_min_warm(&self, pool: &Arc<Pool>) {
        while pool.warm_slot() {
            let (dispatcher, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move {
                let deadline =
                    tokio::time::Instant::now() + pool.target.limits.timeout.max(Duration::from_secs(10));
                if let Err(error) = dispatcher.start(&pool, deadline, false).await {
                    tracing::warn!(function = %pool.target.function, %error, "pre-warming a container failed");
                }
            });
        }
    }

    pub(crate) async fn watch_exits(self, mut exits: mpsc::UnboundedReceiver<ContainerExit>) {
        while let Some(exit) = exits.recv().await {
            let found = self.inner.containers.lock().get(&exit.container).cloned();
            let Some((pool, container)) = found else { continue };
            tracing::warn!(container = %exit.container, status = %exit.status, function = %pool.target.function, "container exited");
            container.mark_died(exit.status);
            self.retire(&pool, &container);
        }
        // The reports end only when the sandbox's control socket closed.
        if !self.inner.closing.load(Ordering::SeqCst) {
            tracing::error!("the sandbox process is gone; containers can no longer be started or deleted");
            self.inner.sandbox_lost.cancel();
        }
    }

    pub(crate) async fn reap_idle(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.stop.cancelled() => return,
            }
            ticks += 1;
            if ticks.is_multiple_of(EGRESS_SAMPLE_TICKS) {
                self.sample_egress().await;
            }
            for pool in self.all_pools() {
                for container in pool.take_expired(Instant::now()) {
                    tracing::debug!(container = %container.id, "retiring idle container");
                    self.retire(&pool, &container);
                }
                self.fill_to_min_warm(&pool);
            }
            // Under the map's lock, so no caller can pick up a pool between its close and removal.
            self.inner.pools.lock().retain(|_, pool| !pool.close_if_unused());
        }
    }
}

/// Binds the container's runtime socket, then makes its folder read-only: the function
/// (root in the container but without capabilities) can use the socket, not fill the disk.
fn bind_runtime_socket(runtime_dir: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(runtime_dir)?;
    let socket = runtime_dir.join("runtime.sock");
    let listener = UnixListener::bind(&socket)?;
    // An image may run its function as any user: the socket is that container's alone.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    std::fs::set_permissions(runtime_dir, std::fs::Permissions::from_mode(0o555))?;
    Ok(listener)
}

/// Sets `key` in a `KEY=VALUE` list: replaces the image's value where it has one, so the
/// function's settings and Kiln's own variables win, and appends it otherwise.
fn set_variable(env: &mut Vec<String>, key: &str, value: &str) {
    let pair = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|entry| entry.split_once('=').is_some_and(|(name, _)| name == key))
    {
        Some(entry) => *entry = pair,
        None => env.push(pair),
    }
}

#[cfg(test)]
mod tests {
    use super::set_variable;

    #[test]
    fn settings_replace_image_variables_and_add_new_ones() {
        let mut env = vec![
            "PATH=/usr/bin".to_owned(),
            "GREETING=image".to_owned(),
            "EMPTY=".to_owned(),
        ];
        set_variable(&mut env, "GREETING", "settings");
        set_variable(&mut env, "KILN_TENANT", "acme");
        set_variable(&mut env, "EMPTY", "now=set");
        assert_eq!(
            env,
            [
                "PATH=/usr/bin",
                "GREETING=settings",
                "EMPTY=now=set",
                "KILN_TENANT=acme"
            ]
        );
    }
}
