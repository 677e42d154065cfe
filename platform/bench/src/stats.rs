//! Latency percentiles and process memory readings.

use std::time::Duration;

use anyhow::Context;

/// Summary of a set of latencies.
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |quantile: f64| samples[((samples.len() - 1) as f64 * quantile).round() as usize];
    let total: Duration = samples.iter().sum();
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        mean: total / samples.len() as u32,
    }
}

/// A Markdown table of a baseline's and Kiln's latencies side by side, with their ratio.
pub fn print_comparison(
    caption: &str,
    baseline: &str,
    kiln: &str,
    baseline_samples: Vec<Duration>,
    kiln_samples: Vec<Duration>,
) {
    let (base, ours) = (summarize(baseline_samples), summarize(kiln_samples));
    println!("| {caption} | {baseline} | {kiln} | ratio |");
    println!("|---|---|---|---|");
    for (label, base, ours) in [
        ("p50", base.p50, ours.p50),
        ("p99", base.p99, ours.p99),
        ("mean", base.mean, ours.mean),
    ] {
        println!(
            "| {label} | {} | {} | {:.2}× |",
            ms(base),
            ms(ours),
            ours.as_secs_f64() / base.as_secs_f64()
        );
    }
}

pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// Summed RSS of a process's direct children (kilnd's sandbox process), in KiB.
pub fn child_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut total = 0;
    for child in children.split_whitespace() {
        let command = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if command.contains("sandbox") {
            total += rss_kib(child)?;
        }
    }
    Ok(total)
}

/// kilnd's highest RSS while something runs, sampled by a task of its own.
pub struct PeakRss {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling process `pid` every `every`, from `start` KiB.
    pub fn start(pid: &str, start: u64, every: Duration) -> PeakRss {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(start));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (peak, done, pid) = (peak.clone(), done.clone(), pid.to_owned());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(rss) = rss_kib(&pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        PeakRss { peak, done, sampler }
    }

    /// Stops sampling; the highest RSS seen, in KiB.
    pub async fn stop(self) -> anyhow::Result<u64> {
        use std::sync::atomic::Ordering;
        self.done.store(true, Ordering::Relaxed);
        self.sampler.await?;
        Ok(self.peak.load(Ordering::Relaxed))
    }
}
