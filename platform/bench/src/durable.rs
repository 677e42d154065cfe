//! Durable instance figures: checkpoint round trips measured inside the function (function →
//! Kiln → committed row → answer), and mass sleepers whose wake-ups `scripts/bench.sh`
//! then reads from PostgreSQL.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::kiln_client::KilnTarget;
use crate::stats::{ms, summarize};

const CHECKPOINT_FUNCTION: &str = "bench-checkpoints";
const SLEEPER_FUNCTION: &str = "bench-sleepers";

/// Runs `instances` instances at once, each storing `count` checkpoints in a row, and
/// prints latency percentiles over every checkpoint and the combined rate.
pub async fn checkpoints(
    kiln: &KilnTarget,
    testbed: &Path,
    instances: usize,
    count: usize,
) -> anyhow::Result<()> {
    let executable = std::fs::read(testbed).with_context(|| format!("reading {}", testbed.display()))?;
    kiln.upload(
        CHECKPOINT_FUNCTION,
        &executable,
        &format!("max_concurrency={instances}&min_warm={instances}"),
    )
    .await?;
    // One short round first: containers started, connections open.
    run_checkpoint_round(kiln, instances, 50).await?;
    let outputs = run_checkpoint_round(kiln, instances, count).await?;
    let mut latencies = Vec::new();
    let (mut first_start, mut last_end) = (u64::MAX, 0);
    for output in &outputs {
        for micros in output["latencies_us"].as_array().context("latencies_us")? {
            latencies.push(Duration::from_micros(micros.as_u64().unwrap_or_default()));
        }
        first_start = first_start.min(output["started_ms"].as_u64().context("started_ms")?);
        last_end = last_end.max(output["ended_ms"].as_u64().context("ended_ms")?);
    }
    let total = latencies.len();
    let seconds = (last_end.saturating_sub(first_start)).max(1) as f64 / 1000.0;
    let summary = summarize(latencies);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| checkpoints ({instances} instances × {count}, in a row each) | {total} |");
    println!("| round trip p50 | {} |", ms(summary.p50));
    println!("| round trip p99 | {} |", ms(summary.p99));
    println!("| round trip mean | {} |", ms(summary.mean));
    println!(
        "| checkpoints per second (all instances) | {:.0} |",
        total as f64 / seconds
    );
    Ok(())
}

async fn run_checkpoint_round(
    kiln: &KilnTarget,
    instances: usize,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut ids = Vec::new();
    for _ in 0..instances {
        let input = json!({"scenario": "checkpoints", "count": count});
        ids.push(start_instance(kiln, CHECKPOINT_FUNCTION, &input).await?);
    }
    let mut outputs = Vec::new();
    for id in ids {
        outputs.push(wait_completed(kiln, &id, Duration::from_secs(300)).await?);
    }
    Ok(outputs)
}

/// Starts `count` sleeping instances whose wake times are spread evenly over `spread`,
/// beginning `lead` from now, with `concurrency` starts in flight; prints the start rate
/// and kilnd's memory once they all sleep.
pub async fn sleepers(
    kiln: &KilnTarget,
    testbed: &Path,
    count: usize,
    concurrency: usize,
    lead: Duration,
    spread: Duration,
    kilnd_pid: &str,
) -> anyhow::Result<()> {
    let executable = std::fs::read(testbed).with_context(|| format!("reading {}", testbed.display()))?;
    kiln.upload(SLEEPER_FUNCTION, &executable, "max_concurrency=8&min_warm=8")
        .await?;
    let first_wake_ms = unix_ms(SystemTime::now() + lead);
    let step = spread.as_secs_f64() * 1000.0 / count as f64;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (kiln, next) = (kiln.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(());
                }
                let wake_at_ms = first_wake_ms + (index as f64 * step) as u64;
                let input = json!({"scenario": "sleep", "wake_at_ms": wake_at_ms});
                start_instance(&kiln, SLEEPER_FUNCTION, &input).await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "| instances started (`202`) | {count} in {:.1} s ({:.0}/s) |",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    // Every start is dispatched once before it sleeps; wait for the last to fall asleep.
    while has_instances(kiln, "pending").await? || has_instances(kiln, "running").await? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let asleep = started.elapsed();
    println!(
        "| all started, dispatched once and asleep | after {:.1} s ({:.0}/s) |",
        asleep.as_secs_f64(),
        count as f64 / asleep.as_secs_f64()
    );
    if SystemTime::now() > UNIX_EPOCH + Duration::from_millis(first_wake_ms) {
        println!("| warning | the first wake times passed before every instance slept: raise the lead |");
    }
    let rss = crate::stats::rss_kib(kilnd_pid)?;
    println!(
        "| kilnd RSS while holding the sleepers | {:.1} MB |",
        rss as f64 / 1024.0
    );
    Ok(())
}

async fn has_instances(kiln: &KilnTarget, status: &str) -> anyhow::Result<bool> {
    let path = format!("/v1/instances?function={SLEEPER_FUNCTION}&status={status}&limit=1");
    let (_, body, _) = kiln.call(Method::GET, &path, Bytes::new()).await?;
    let page: Value = serde_json::from_slice(&body)?;
    Ok(page["instances"]
        .as_array()
        .is_some_and(|instances| !instances.is_empty()))
}

pub async fn start_instance(kiln: &KilnTarget, function: &str, input: &Value) -> anyhow::Result<String> {
    let path = format!("/v1/functions/{function}/instances");
    let (status, body, _) = kiln
        .call(Method::POST, &path, Bytes::from(input.to_string()))
        .await?;
    if status != 202 {
        bail!(
            "starting an instance failed with {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let reply: Value = serde_json::from_slice(&body)?;
    Ok(reply["id"].as_str().context("instance id")?.to_owned())
}

async fn wait_completed(kiln: &KilnTarget, id: &str, within: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (_, body, _) = kiln
            .call(Method::GET, &format!("/v1/instances/{id}"), Bytes::new())
            .await?;
        let instance: Value = serde_json::from_slice(&body)?;
        match instance["status"].as_str() {
            Some("completed") => return Ok(instance["output"].clone()),
            Some("failed" | "cancelled") => bail!("instance {id} ended: {instance}"),
            _ if Instant::now() > deadline => bail!("instance {id} did not complete: {instance}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}
