//! Warm calls of a known tenant while its PostgreSQL is stopped, then frozen: the share
//! that succeeded and how long they took, phase by phase, against the database up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;

use crate::kiln_client::KilnTarget;
use crate::stats::{ms, summarize};

const FUNCTION: &str = "bench-outage";

/// Shell commands that act on the database kilnd uses.
pub struct DatabaseControl {
    pub stop: String,
    pub start: String,
    pub freeze: String,
    pub thaw: String,
}

pub struct OutageSettings {
    pub concurrency: usize,
    /// Length of each phase.
    pub seconds: u64,
}

pub async fn run(
    kiln: &KilnTarget,
    testbed: &Path,
    database: &DatabaseControl,
    settings: &OutageSettings,
) -> anyhow::Result<()> {
    let concurrency = settings.concurrency;
    let path = kiln.upload_warm(FUNCTION, testbed, concurrency).await?;
    for _ in 0..100 {
        let (status, body, _) = kiln
            .call(Method::POST, &path, Bytes::from_static(b"warm"))
            .await?;
        if status != 200 {
            bail!(
                "warm-up call answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let span = Duration::from_secs(settings.seconds);
    println!(
        "| phase ({concurrency} callers, {}s each) | calls | succeeded | p50 | p99 | slowest |",
        settings.seconds
    );
    println!("|---|---|---|---|---|---|");
    print_row("PostgreSQL up", load(kiln, &path, concurrency, span).await);
    shell(&database.stop)?;
    print_row("PostgreSQL stopped", load(kiln, &path, concurrency, span).await);
    shell(&database.start)?;
    let (first, _, took) = kiln
        .call(Method::POST, &path, Bytes::from_static(b"first"))
        .await?;
    println!(
        "| first call after PostgreSQL started again | 1 | {} | {} | | |",
        u8::from(first == 200),
        ms(took)
    );
    print_row("PostgreSQL back", load(kiln, &path, concurrency, span).await);
    shell(&database.freeze)?;
    let frozen = load(kiln, &path, concurrency, span).await;
    shell(&database.thaw)?;
    print_row("PostgreSQL frozen (SIGSTOP, connections open)", frozen);
    kiln.delete(FUNCTION).await?;
    Ok(())
}

/// Outcome of every call made in one phase.
struct Phase {
    latencies: Vec<Duration>,
    succeeded: usize,
}

/// `callers` loops calling for `span`; a call that fails to get an answer counts as failed.
async fn load(kiln: &KilnTarget, path: &str, callers: usize, span: Duration) -> Phase {
    let deadline = Instant::now() + span;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (kiln, path) = (kiln.clone(), path.to_owned());
        tasks.spawn(async move {
            let mut phase = Phase {
                latencies: Vec::new(),
                succeeded: 0,
            };
            while Instant::now() < deadline {
                let started = Instant::now();
                let answered = kiln.call(Method::POST, &path, Bytes::from_static(b"call")).await;
                phase.latencies.push(started.elapsed());
                phase.succeeded += usize::from(matches!(answered, Ok((200, _, _))));
            }
            phase
        });
    }
    let mut all = Phase {
        latencies: Vec::new(),
        succeeded: 0,
    };
    for phase in tasks.join_all().await {
        all.latencies.extend(phase.latencies);
        all.succeeded += phase.succeeded;
    }
    all
}

fn print_row(name: &str, phase: Phase) {
    let calls = phase.latencies.len();
    let slowest = phase.latencies.iter().max().copied().unwrap_or_default();
    let summary = summarize(phase.latencies);
    println!(
        "| {name} | {calls} | {} ({:.2} %) | {} | {} | {} |",
        phase.succeeded,
        phase.succeeded as f64 * 100.0 / calls.max(1) as f64,
        ms(summary.p50),
        ms(summary.p99),
        ms(slowest)
    );
}

fn shell(command: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .with_context(|| format!("running `{command}`"))?;
    if !status.success() {
        bail!("`{command}` failed with {status}");
    }
    Ok(())
}
