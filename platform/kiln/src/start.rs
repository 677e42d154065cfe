//! Starting Kiln's parts in order (migrations, store, registry, sandbox, dispatcher,
//! instances, front door), and stopping them in order once asked (drain requests, finish
//! instance dispatches, delete containers, stop the sandbox).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use auth::AdminToken;
use frontdoor::{App, AppConfig, AppParts, ServerConfig};
use instances::{Instances, InstancesConfig};
use kiln_types::NetworkMode;
use network::{EgressConfig, EgressNetwork};
use pool::{Dispatcher, DispatcherConfig, FunctionLogs, StreamLimits};
use registry::{ImageLimits, Registry, RegistryConfig};
use sandbox::Sandbox;
use store::{Store, StoreConfig};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::builder::{Database, KilnBuilder};
use crate::node_id;
use crate::running::Running;
use crate::sandbox_entry::sandbox_args;

/// Longest data folder path: container sockets live below it, and Unix socket paths are
/// limited to 107 bytes.
const MAX_DATA_DIR_LEN: usize = 60;

pub(crate) async fn start(settings: KilnBuilder) -> anyhow::Result<Running> {
    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(
        data_dir.is_absolute() && data_dir.as_os_str().len() <= MAX_DATA_DIR_LEN,
        "the data folder must be an absolute path of at most {MAX_DATA_DIR_LEN} bytes, got `{}`",
        data_dir.display()
    );
    let store = match settings.database {
        Some(Database::Url {
            ref url,
            pool_size,
            timeout,
        }) => {
            let applied = store::migrate(url).await.context("running database migrations")?;
            tracing::info!(applied, "database migrations done");
            Store::new(&StoreConfig {
                url: url.clone(),
                pool_size,
                timeout,
            })?
        }
        Some(Database::Pool(ref pool)) => {
            let applied = store::migrate_pool(pool)
                .await
                .context("running database migrations")?;
            tracing::info!(applied, "database migrations done");
            Store::from_pool(pool.clone())
        }
        None => anyhow::bail!("no database: call database_url or database_pool on the builder"),
    };
    for folder in ["run", "logs", "sandbox"] {
        std::fs::create_dir_all(data_dir.join(folder))
            .with_context(|| format!("creating {}", data_dir.join(folder).display()))?;
    }
    let limits = &settings.limits;
    let registry = Registry::open(
        store.clone(),
        &data_dir,
        RegistryConfig {
            upload_limit: limits.upload_bytes,
            default_network: settings.network.default_mode,
            allow_host_network: settings.network.allow_host,
            images: ImageLimits {
                max_archive_bytes: limits.image_archive_bytes,
                max_rootfs_bytes: limits.image_rootfs_bytes,
                ..ImageLimits::default()
            },
            pulls: settings.image_pulls.clone(),
            stale_for: limits.stale_serve_max,
        },
    )
    .with_context(|| format!("opening the function store in {}", data_dir.display()))?;
    let program = match &settings.sandbox_program {
        Some(program) => program.clone(),
        None => std::env::current_exe().context("locating this program to start the sandbox")?,
    };
    let args = sandbox_args(&data_dir.join("sandbox"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (sandbox, exits) = Sandbox::spawn(&program, &args).context("starting the sandbox process")?;
    let logs = FunctionLogs::new(data_dir.join("logs"), limits.log_file_bytes);
    let network = &settings.network;
    let egress = EgressNetwork::start(
        EgressConfig {
            tag: network::node_tag(&data_dir),
            subnet: network.egress_subnet,
            subnet6: match network.egress_ipv6 {
                Some(true) => Some(network.egress_subnet6),
                Some(false) => None,
                None => network::host_has_ipv6_route().then_some(network.egress_subnet6),
            },
            allow: network.egress_allow.clone(),
            dns_upstream: network.egress_dns,
            prepared: network.egress_prepared,
        },
        &data_dir,
    )
    .await;
    if network.default_mode == NetworkMode::Egress {
        egress.prepare_ahead();
    }
    let metrics = Metrics::new();
    let dispatcher = Dispatcher::new(
        sandbox,
        exits,
        DispatcherConfig {
            run_dir: data_dir.join("run"),
            logs: logs.clone(),
            response_limit: limits.response_bytes,
            stream_limits: StreamLimits {
                idle_timeout: limits.stream_idle_timeout,
                max_duration: limits.stream_max_duration,
            },
            queue_limit: limits.queue_limit,
            queue_timeout: limits.queue_timeout,
            tmpfs_bytes: 16 << 20,
            egress: egress.clone(),
            allow_host_network: network.allow_host,
            metrics: metrics.clone(),
        },
    );
    for target in registry
        .targets_to_prewarm()
        .await
        .context("listing functions to pre-warm")?
    {
        tracing::info!(tenant = %target.tenant, function = %target.function, min_warm = target.limits.min_warm, "pre-warming");
        dispatcher.prewarm(Arc::new(target));
    }
    let node = match &settings.node_id {
        Some(node) => node.clone(),
        None => node_id::load_or_create(&data_dir).context("reading this node's id from the data folder")?,
    };
    tracing::info!(node = %node, "durable instances run as this node");
    let instance_settings = &settings.instances;
    let instances = Instances::start(
        store.clone(),
        registry.clone(),
        dispatcher.clone(),
        InstancesConfig {
            node,
            value_limit: instance_settings.value_limit,
            default_timeout: instance_settings.default_timeout,
            retention: instance_settings.retention,
            lease: instance_settings.lease,
            concurrency: instance_settings.concurrency,
            wheel_window: Duration::from_secs(30),
            refill_interval: Duration::from_secs(1),
        },
        metrics.clone(),
    )
    .await;
    let app = App::new(
        AppParts {
            store,
            registry,
            admin: AdminToken::new(settings.admin_token.clone()),
            runner: dispatcher.clone(),
            instances: instances.clone(),
            metrics,
            logs,
        },
        AppConfig {
            body_limit: limits.body_bytes,
            upload_limit: limits.upload_bytes,
            request_timeout: limits.request_timeout,
            trusted_proxies: settings.trusted_proxies.clone(),
            max_connections: limits.max_connections,
            stale_serve_max: limits.stale_serve_max,
            auth_failures_per_minute: limits.auth_failures_per_minute,
            live_streams_per_tenant: limits.live_streams_per_tenant,
        },
    );
    let listener = TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("binding {}", settings.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %data_dir.display(), "kiln listening");
    let server_config = ServerConfig {
        header_read_timeout: limits.header_read_timeout,
        shutdown_grace: limits.shutdown_grace,
    };
    let stop = CancellationToken::new();
    let grace = limits.shutdown_grace;
    let task = tokio::spawn(serve_until_stopped(
        listener,
        app,
        server_config,
        BehindTheFrontDoor {
            dispatcher,
            instances,
            egress,
        },
        stop.clone(),
        grace,
    ));
    Ok(Running { address, stop, task })
}

/// The parts stopped after the front door, in the order of their fields.
struct BehindTheFrontDoor {
    instances: Instances,
    dispatcher: Dispatcher,
    egress: EgressNetwork,
}

/// Serves until `stop` or the loss of the sandbox, then stops every part in order.
async fn serve_until_stopped(
    listener: TcpListener,
    app: App<Dispatcher>,
    server_config: ServerConfig,
    parts: BehindTheFrontDoor,
    stop: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let BehindTheFrontDoor {
        instances,
        dispatcher,
        egress,
    } = parts;
    let sandbox_lost = Arc::new(AtomicBool::new(false));
    let stopped = {
        let (dispatcher, sandbox_lost) = (dispatcher.clone(), sandbox_lost.clone());
        async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = dispatcher.sandbox_lost() => sandbox_lost.store(true, Ordering::SeqCst),
            }
        }
    };
    frontdoor::serve(listener, app.clone(), server_config, stopped).await;
    app.streams_closed().await;
    tracing::info!("requests drained; finishing instance dispatches");
    instances.shutdown(grace).await;
    tracing::info!("deleting containers");
    dispatcher.shutdown().await;
    egress.shutdown().await;
    instances.finish(Duration::from_secs(5)).await;
    if sandbox_lost.load(Ordering::SeqCst) {
        anyhow::bail!(
            "the sandbox process died; exiting so that a supervisor restarts the program (the next start deletes its containers)"
        );
    }
    tracing::info!("kiln stopped");
    Ok(())
}
