//! Kiln embedded in another program: its own pool of PostgreSQL connections, a data folder,
//! a port, and a clean shutdown on Ctrl-C or SIGTERM.
//!
//! ```sh
//! DATABASE_URL=postgres://kiln:secret@127.0.0.1:5432/kiln KILN_DATA_DIR=/tmp/kiln-embed \
//!   KILN_ADMIN_TOKEN=admin cargo run -p kiln --example embed
//! ```
//!
//! It reads three of kilnd's variables and picks a free port; `KILN_EMBED_RESTARTS=N` starts
//! and stops Kiln N times first.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Config, PoolConfig, Runtime, Timeouts};
use kiln::{Kiln, Limits};
use tokio::signal::unix::{SignalKind, signal};
use tokio_postgres::NoTls;

fn main() -> anyhow::Result<()> {
    // Kiln re-executes this program as its sandbox: that must happen before any thread.
    kiln::run_sandbox_if_requested();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let data_dir = std::env::var("KILN_DATA_DIR").unwrap_or_else(|_| "/tmp/kiln-embed".into());
    // The host program's own pool, with the timeouts a pool needs; Kiln shares it.
    let mut database = Config::new();
    database.url = Some(url);
    let mut limits = PoolConfig::new(8);
    let timeout = Some(Duration::from_secs(5));
    limits.timeouts = Timeouts {
        wait: timeout,
        create: timeout,
        recycle: timeout,
    };
    database.pool = Some(limits);
    let pool = database.create_pool(Some(Runtime::Tokio1), NoTls)?;
    let kiln = || {
        Kiln::builder()
            .database_pool(pool.clone())
            .data_dir(&data_dir)
            .bind(([127, 0, 0, 1], 0).into())
            .admin_token(std::env::var("KILN_ADMIN_TOKEN").ok())
            .limits(Limits {
                shutdown_grace: Duration::from_secs(5),
                ..Limits::default()
            })
    };
    // A host may start and stop Kiln many times in one process (KILN_EMBED_RESTARTS times
    // here before the run that serves): each stop must leave nothing running.
    let restarts: usize = std::env::var("KILN_EMBED_RESTARTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    for _ in 0..restarts {
        kiln().start().await?.shutdown().await?;
    }
    let running = kiln().start().await?;
    println!("embedded kiln listening on http://{}", running.local_addr());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    running.shutdown().await
}
