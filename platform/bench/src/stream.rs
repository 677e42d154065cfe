//! Streamed responses through kilnd: how long after the function wrote a chunk the caller
//! has it (the testbed stamps each chunk with its write time; caller and container share
//! the host's clock), and kilnd's memory while a 1 GiB stream passes through it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http_body_util::BodyExt;

use crate::kiln_client::KilnTarget;
use crate::stats::{PeakRss, ms, rss_kib, summarize};

/// How many streams the lag is measured over, and their shape.
pub struct StreamSettings {
    pub runs: usize,
    /// Bytes in the large stream.
    pub large_bytes: u64,
}

/// Each chunk of the large stream.
const LARGE_CHUNK: u64 = 64 * 1024;

pub async fn run(
    kiln: &KilnTarget,
    testbed: &std::path::Path,
    pid: &str,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    let executable = std::fs::read(testbed).with_context(|| format!("reading {}", testbed.display()))?;
    kiln.upload("bench-stream", &executable, "min_warm=1").await?;
    let base = format!("/fn/{}/bench-stream/stream", kiln.tenant);
    // Warm up the container and the connection.
    stamped_lags(kiln, &format!("{base}?chunks=1")).await?;

    let mut first = Vec::with_capacity(settings.runs);
    let mut later = Vec::with_capacity(settings.runs * 4);
    for _ in 0..settings.runs {
        let lags = stamped_lags(kiln, &format!("{base}?chunks=5&interval_ms=10&size=64")).await?;
        first.push(lags[0]);
        later.extend_from_slice(&lags[1..]);
    }
    let (first, later) = (summarize(first), summarize(later));
    println!("| measure | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| first chunk: function's write → caller has it ({} streams) | {} | {} |",
        settings.runs,
        ms(first.p50),
        ms(first.p99)
    );
    println!(
        "| later chunks, 10 ms apart ({} chunks) | {} | {} |",
        settings.runs * 4,
        ms(later.p50),
        ms(later.p99)
    );
    println!();

    let (rss_before, rss_peak, elapsed) = large_stream(kiln, &base, pid, settings.large_bytes).await?;
    let mib = settings.large_bytes as f64 / (1 << 20) as f64;
    println!("| {mib:.0} MiB streamed through kilnd | value |");
    println!("|---|---|");
    println!(
        "| time | {:.2} s ({:.0} MiB/s) |",
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64()
    );
    println!("| kilnd RSS before | {:.1} MB |", rss_before as f64 / 1024.0);
    println!(
        "| kilnd RSS peak during the stream | {:.1} MB |",
        rss_peak as f64 / 1024.0
    );
    println!(
        "| kilnd RSS growth | {:.1} MB |",
        rss_peak.saturating_sub(rss_before) as f64 / 1024.0
    );
    kiln.delete("bench-stream").await
}

/// Reads one stream of stamped lines; returns, for each line, how long after its stamp it
/// arrived.
async fn stamped_lags(kiln: &KilnTarget, path: &str) -> anyhow::Result<Vec<Duration>> {
    let response = kiln.open(path).await?;
    if response.status() != 200 {
        bail!("{path} answered {}", response.status());
    }
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut lags = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.context("the stream was cut")?.into_data() else {
            continue;
        };
        let now = unix_micros();
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let stamp: u64 = std::str::from_utf8(&line[..16.min(line.len())])
                .ok()
                .and_then(|text| text.parse().ok())
                .context("a chunk without a time stamp")?;
            lags.push(Duration::from_micros(now.saturating_sub(stamp)));
        }
    }
    if lags.is_empty() {
        bail!("{path} sent no chunk");
    }
    Ok(lags)
}

/// Streams `bytes` through kilnd while sampling its RSS; returns RSS before and at its
/// peak (KiB) and how long the stream took.
async fn large_stream(
    kiln: &KilnTarget,
    base: &str,
    pid: &str,
    bytes: u64,
) -> anyhow::Result<(u64, u64, Duration)> {
    let rss_before = rss_kib(pid)?;
    let peak = PeakRss::start(pid, rss_before, Duration::from_millis(10));
    let chunks = bytes.div_ceil(LARGE_CHUNK);
    let started = Instant::now();
    let response = kiln
        .open(&format!("{base}?chunks={chunks}&size={LARGE_CHUNK}"))
        .await?;
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the large stream was cut")?.into_data() {
            received += data.len() as u64;
        }
    }
    let elapsed = started.elapsed();
    let peak = peak.stop().await?;
    if received != chunks * LARGE_CHUNK {
        bail!(
            "the large stream brought {received} of {} bytes",
            chunks * LARGE_CHUNK
        );
    }
    Ok((rss_before, peak, elapsed))
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}
