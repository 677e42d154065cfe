//! Starts Kiln: migrations, store, registry, sandbox, dispatcher, front door; and stops it
//! in order on SIGTERM or SIGINT (drain requests, delete containers, stop the sandbox).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use auth::AdminToken;
use frontdoor::{App, AppConfig, AppParts, ServerConfig};
use instances::{Instances, InstancesConfig};
use pool::{Dispatcher, DispatcherConfig, FunctionLogs};
use registry::{Registry, RegistryConfig};
use sandbox::Sandbox;
use store::{Store, StoreConfig};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::node_id;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let applied = store::migrate(&config.database_url)
        .await
        .context("running database migrations")?;
    tracing::info!(applied, "database migrations done");
    let store = Store::new(&StoreConfig {
        url: config.database_url.clone(),
        pool_size: config.db_pool_size,
        timeout: config.db_timeout,
    })?;
    let data_dir = &config.data_dir;
    for folder in ["run", "logs", "sandbox"] {
        std::fs::create_dir_all(data_dir.join(folder))
            .with_context(|| format!("creating {}", data_dir.join(folder).display()))?;
    }
    let registry = Registry::open(
        store.clone(),
        data_dir,
        RegistryConfig {
            upload_limit: config.upload_limit,
            allow_network: config.allow_network,
        },
    )
    .with_context(|| format!("opening the function store in {}", data_dir.display()))?;
    let logs = FunctionLogs::new(data_dir.join("logs"), config.log_file_limit);
    let executable = std::env::current_exe().context("locating the kilnd executable")?;
    let state_dir = data_dir.join("sandbox");
    let (sandbox, exits) = Sandbox::spawn(&executable, &["sandbox", "--state", &state_dir.to_string_lossy()])
        .context("starting the sandbox process")?;
    let dispatcher = Dispatcher::new(
        sandbox,
        exits,
        DispatcherConfig {
            run_dir: data_dir.join("run"),
            logs: logs.clone(),
            response_limit: config.response_limit,
            queue_limit: config.queue_limit,
            queue_timeout: config.queue_timeout,
            tmpfs_bytes: 16 << 20,
        },
    );
    for target in registry
        .targets_to_prewarm()
        .await
        .context("listing functions to pre-warm")?
    {
        tracing::info!(tenant = %target.tenant, function = %target.function, min_warm = target.limits.min_warm, "pre-warming");
        dispatcher.prewarm(std::sync::Arc::new(target));
    }
    let node = match &config.node_id {
        Some(node) => node.clone(),
        None => node_id::load_or_create(data_dir).context("reading this node's id from the data folder")?,
    };
    tracing::info!(node = %node, "durable instances run as this node");
    let metrics = Metrics::new();
    let instances = Instances::start(
        store.clone(),
        registry.clone(),
        dispatcher.clone(),
        InstancesConfig {
            node,
            value_limit: config.instance_value_limit,
            default_timeout: config.instance_timeout,
            retention: config.instance_retention,
            lease: config.instance_lease,
            concurrency: config.instance_concurrency,
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
            admin: AdminToken::new(config.admin_token.clone()),
            runner: dispatcher.clone(),
            instances: instances.clone(),
            metrics,
            logs,
        },
        AppConfig {
            body_limit: config.body_limit,
            upload_limit: config.upload_limit,
            request_timeout: config.request_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
        },
    );
    let listener = TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.host, config.port))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %data_dir.display(), "kilnd listening");
    // Scripts and tests read the bound address from this line (KILN_PORT=0 picks a free port).
    println!("kilnd listening on http://{address}");
    let server_config = ServerConfig {
        header_read_timeout: config.header_read_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    let sandbox_lost = Arc::new(AtomicBool::new(false));
    let stop = {
        let (dispatcher, sandbox_lost) = (dispatcher.clone(), sandbox_lost.clone());
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = dispatcher.sandbox_lost() => sandbox_lost.store(true, Ordering::SeqCst),
            }
        }
    };
    frontdoor::serve(listener, app, server_config, stop).await;
    tracing::info!("requests drained; finishing instance dispatches");
    instances.shutdown(config.shutdown_grace).await;
    tracing::info!("deleting containers");
    dispatcher.shutdown().await;
    instances.finish(Duration::from_secs(5)).await;
    if sandbox_lost.load(Ordering::SeqCst) {
        anyhow::bail!(
            "the sandbox process died; exiting so that a supervisor restarts kilnd (the next start deletes its containers)"
        );
    }
    tracing::info!("kilnd stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            }
        }
        _ => {
            tracing::error!("cannot listen for signals; stop kilnd with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
