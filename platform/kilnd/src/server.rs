//! `kilnd serve`: Kiln from the typed configuration, through the same builder embedding
//! programs use; stops in order on SIGTERM or SIGINT.

use std::net::SocketAddr;

use kiln::{InstanceSettings, Kiln, Limits};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = Kiln::builder()
        .database_url(&config.database_url, config.db_pool_size, config.db_timeout)
        .data_dir(&config.data_dir)
        .bind(SocketAddr::new(config.host, config.port))
        .admin_token(config.admin_token.clone())
        .network(config.network.clone())
        .image_pulls(config.image_pulls.clone())
        .trusted_proxies(config.trusted_proxies.clone())
        .node_id(config.node_id.clone())
        .limits(Limits {
            body_bytes: config.body_limit,
            upload_bytes: config.upload_limit,
            image_archive_bytes: config.image_archive_limit as u64,
            image_rootfs_bytes: config.image_rootfs_limit as u64,
            response_bytes: config.response_limit,
            stream_idle_timeout: config.stream_idle_timeout,
            stream_max_duration: config.stream_max_duration,
            queue_limit: config.queue_limit,
            queue_timeout: config.queue_timeout,
            header_read_timeout: config.header_read_timeout,
            request_timeout: config.request_timeout,
            shutdown_grace: config.shutdown_grace,
            log_file_bytes: config.log_file_limit,
            max_connections: config.max_connections,
            stale_serve_max: config.stale_serve_max,
            auth_failures_per_minute: config.auth_failures_per_minute,
            live_streams_per_tenant: config.live_streams_per_tenant,
        })
        .instances(InstanceSettings {
            value_limit: config.instance_value_limit,
            default_timeout: config.instance_timeout,
            retention: config.instance_retention,
            lease: config.instance_lease,
            concurrency: config.instance_concurrency,
        })
        .start()
        .await?;
    // Scripts and tests read the bound address from this line (KILN_PORT=0 picks a free port).
    println!("kilnd listening on http://{}", running.local_addr());
    let stop = running.stop_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.stop();
    });
    running.wait().await
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
