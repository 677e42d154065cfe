//! Live events under load: many WebSocket subscribers (spread over tenants, as consoles
//! are) while invocations run at a fixed rate; how long after kilnd stamped an event each
//! subscriber has it, whether every event arrived, and kilnd's memory per subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::kiln_client::KilnTarget;
use crate::stats::{PeakRss, rss_kib};

/// The delivery lag histogram: 0.1 ms buckets up to 1 s, then one for everything later.
const BUCKETS: usize = 10_001;

pub struct EventSettings {
    pub subscribers: usize,
    pub rate: usize,
    pub seconds: u64,
}

/// One tenant of the run: its target (token) and the function its invocations go to.
pub struct EventTenant {
    pub target: KilnTarget,
}

struct Lags {
    buckets: Vec<AtomicU64>,
    received: AtomicU64,
}

impl Lags {
    fn record(&self, lag_ms: f64) {
        let bucket = ((lag_ms.max(0.0) * 10.0) as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    fn percentile(&self, quantile: f64) -> f64 {
        let total = self.received.load(Ordering::Relaxed);
        let wanted = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= wanted {
                return (bucket as f64 + 1.0) / 10.0;
            }
        }
        f64::INFINITY
    }
}

pub async fn run(
    tenants: &[EventTenant],
    testbed: &std::path::Path,
    pid: &str,
    settings: &EventSettings,
) -> anyhow::Result<()> {
    if tenants.is_empty() {
        bail!("no tenants given");
    }
    let executable = std::fs::read(testbed).with_context(|| format!("reading {}", testbed.display()))?;
    for tenant in tenants {
        tenant
            .target
            .upload("bench-events", &executable, "min_warm=1&max_concurrency=4")
            .await?;
        let path = format!("/fn/{}/bench-events/echo", tenant.target.tenant);
        tenant
            .target
            .call(Method::POST, &path, Bytes::from_static(b"warm"))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid)?;

    let lags = Arc::new(Lags {
        buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        received: AtomicU64::new(0),
    });
    let mut readers = Vec::with_capacity(settings.subscribers);
    for index in 0..settings.subscribers {
        let target = &tenants[index % tenants.len()].target;
        let address = target.url.trim_start_matches("http://").to_owned();
        let mut request = format!("ws://{address}/v1/events/ws?types=invocation").into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", target.bearer().parse()?);
        let stream = tokio::net::TcpStream::connect(&address).await?;
        let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .context("a WebSocket subscriber")?;
        let lags = lags.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && let Some(lag) = lag_ms(&text)
                {
                    lags.record(lag);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_subscribed = rss_kib(pid)?;

    let peak = PeakRss::start(pid, rss_subscribed, Duration::from_millis(50));
    let (sent, failed, elapsed) = drive(tenants, settings).await;
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = peak.stop().await?;
    for reader in readers {
        reader.abort();
    }

    let per_tenant = settings.subscribers as f64 / tenants.len() as f64;
    let expected = sent as f64 * per_tenant;
    let received = lags.received.load(Ordering::Relaxed);
    println!(
        "{} subscribers over {} tenants ({per_tenant:.0} each), invocations at {} /s asked for {} s",
        settings.subscribers,
        tenants.len(),
        settings.rate,
        settings.seconds
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| invocations | {sent} in {:.1} s ({:.0}/s), {failed} failed |",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| events delivered | {received} of {expected:.0} ({:.2} %) |",
        100.0 * received as f64 / expected.max(1.0)
    );
    println!(
        "| delivery lag p50 / p99 / max (kilnd's stamp → subscriber; 1 ms stamps) | {:.1} / {:.1} / {:.1} ms |",
        lags.percentile(0.5),
        lags.percentile(0.99),
        lags.percentile(1.0)
    );
    println!(
        "| kilnd RSS before the subscribers | {:.1} MB |",
        rss_before as f64 / 1024.0
    );
    println!(
        "| kilnd memory per idle subscriber | {:.1} KB |",
        rss_subscribed.saturating_sub(rss_before) as f64 / settings.subscribers as f64
    );
    println!("| kilnd RSS peak under load | {:.1} MB |", peak as f64 / 1024.0);
    for tenant in tenants {
        tenant.target.delete("bench-events").await?;
    }
    Ok(())
}

/// Invocations at `rate` per second for `seconds`, round-robin over the tenants, by up to
/// 64 callers at once; returns how many were answered 200, how many not, and how long it took.
async fn drive(tenants: &[EventTenant], settings: &EventSettings) -> (u64, u64, Duration) {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (settings.rate as f64 * TICK.as_secs_f64()).round().max(1.0) as usize;
    let ticks = settings.seconds * 1000 / TICK.as_millis() as u64;
    let callers = Arc::new(tokio::sync::Semaphore::new(64));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    let mut next = 0usize;
    for _ in 0..ticks {
        ticker.tick().await;
        for _ in 0..per_tick {
            let target = tenants[next % tenants.len()].target.clone();
            next += 1;
            let Ok(permit) = callers.clone().acquire_owned().await else {
                break;
            };
            let (ok, failed) = (ok.clone(), failed.clone());
            calls.spawn(async move {
                let path = format!("/fn/{}/bench-events/echo", target.tenant);
                match target
                    .call(Method::POST, &path, Bytes::from_static(b"event"))
                    .await
                {
                    Ok((200, _, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
            });
        }
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

/// How long ago (ms) the event in `text` was stamped by kilnd.
fn lag_ms(text: &str) -> Option<f64> {
    let event: serde_json::Value = serde_json::from_str(text).ok()?;
    let stamped = humantime::parse_rfc3339(event["data"]["time"].as_str()?).ok()?;
    let now = SystemTime::now();
    let since = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs_f64() * 1000.0)
    };
    Some(since(now).ok()? - since(stamped).ok()?)
}
