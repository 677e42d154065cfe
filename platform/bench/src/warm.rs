//! Warm invocations: latency of sequential calls and throughput of concurrent callers,
//! through kilnd and directly on the function's socket, side by side.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::Method;

use crate::direct::DirectFunction;
use crate::kiln_client::KilnTarget;
use crate::stats::{ms, summarize};

pub struct WarmSettings {
    /// Sequential calls measured for latency.
    pub requests: usize,
    /// Concurrent callers (and function processes on both sides) for throughput.
    pub concurrency: usize,
    pub seconds: u64,
}

const FUNCTION: &str = "bench-warm";
const LOAD_FUNCTION: &str = "bench-load";

pub async fn run(kiln: &KilnTarget, testbed: &Path, settings: &WarmSettings) -> anyhow::Result<()> {
    let body = Bytes::from(vec![b'k'; 128]);
    let concurrency = settings.concurrency;
    let path = kiln.upload_warm(FUNCTION, testbed, concurrency).await?;

    let direct: Vec<Arc<DirectFunction>> = {
        let mut functions = Vec::new();
        for index in 0..concurrency {
            let dir = std::env::temp_dir().join(format!("kiln-bench-direct-{}-{index}", std::process::id()));
            let command = tokio::process::Command::new(testbed);
            functions.push(Arc::new(DirectFunction::start(command, dir).await?));
        }
        functions
    };

    // Warm both sides up: containers started, connections open, caches filled.
    for _ in 0..200 {
        check_kiln(kiln.call(Method::POST, &path, body.clone()).await?, &body)?;
        direct[0].call(body.clone()).await?;
    }

    let mut direct_latency = Vec::with_capacity(settings.requests);
    let mut kiln_latency = Vec::with_capacity(settings.requests);
    for _ in 0..settings.requests {
        let (echoed, elapsed) = direct[0].call(body.clone()).await?;
        if echoed != body {
            bail!("direct call echoed the wrong body");
        }
        direct_latency.push(elapsed);
        let reply = kiln.call(Method::POST, &path, body.clone()).await?;
        kiln_latency.push(reply.2);
        check_kiln(reply, &body)?;
    }

    let duration = Duration::from_secs(settings.seconds);
    let direct_rate = {
        let (functions, body) = (direct.clone(), body.clone());
        throughput(concurrency, duration, move |caller| {
            let (function, body) = (functions[caller].clone(), body.clone());
            async move { function.call(body).await.map(|_| ()) }
        })
        .await?
    };
    let kiln_rate = {
        let (kiln, path, body) = (kiln.clone(), path.clone(), body.clone());
        throughput(concurrency, duration, move |_| {
            let (kiln, path, body) = (kiln.clone(), path.clone(), body.clone());
            async move { check_kiln(kiln.call(Method::POST, &path, body.clone()).await?, &body) }
        })
        .await?
    };
    kiln.delete(FUNCTION).await?;

    let direct = summarize(direct_latency);
    let through = summarize(kiln_latency);
    println!("| measure | direct on the socket | through kilnd | Kiln's overhead |");
    println!("|---|---|---|---|");
    for (name, direct, kiln) in [
        ("p50", direct.p50, through.p50),
        ("p99", direct.p99, through.p99),
        ("mean", direct.mean, through.mean),
    ] {
        println!(
            "| {name} latency ({} sequential calls) | {} | {} | +{} |",
            settings.requests,
            ms(direct),
            ms(kiln),
            ms(kiln.saturating_sub(direct))
        );
    }
    println!(
        "| throughput ({concurrency} callers, {concurrency} function processes, {}s) | {:.0}/s | {:.0}/s | {:.2}× direct |",
        settings.seconds,
        direct_rate,
        kiln_rate,
        kiln_rate / direct_rate
    );
    Ok(())
}

/// Warm calls through kilnd from `concurrency` callers for `seconds`, and nothing else: the
/// load `scripts/bench.sh profile` records kilnd under.
pub async fn load(kiln: &KilnTarget, testbed: &Path, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    let body = Bytes::from(vec![b'k'; 128]);
    let path = kiln.upload_warm(LOAD_FUNCTION, testbed, concurrency).await?;
    for _ in 0..200 {
        check_kiln(kiln.call(Method::POST, &path, body.clone()).await?, &body)?;
    }
    let rate = {
        let (kiln, path) = (kiln.clone(), path.clone());
        throughput(concurrency, Duration::from_secs(seconds), move |_| {
            let (kiln, path, body) = (kiln.clone(), path.clone(), body.clone());
            async move { check_kiln(kiln.call(Method::POST, &path, body.clone()).await?, &body) }
        })
        .await?
    };
    kiln.delete(LOAD_FUNCTION).await?;
    println!("| warm calls through kilnd ({concurrency} callers, {seconds}s) | {rate:.0}/s |");
    Ok(())
}

pub(crate) fn check_kiln(reply: (u16, Bytes, Duration), body: &Bytes) -> anyhow::Result<()> {
    if reply.0 != 200 || reply.1 != body {
        bail!(
            "kilnd answered {}: {}",
            reply.0,
            String::from_utf8_lossy(&reply.1)
        );
    }
    Ok(())
}

/// Calls per second achieved by `callers` loops running `call` for `duration`.
pub(crate) async fn throughput<F, Fut>(callers: usize, duration: Duration, call: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let call = call.clone();
        tasks.spawn(async move {
            let mut count = 0u64;
            while Instant::now() < deadline {
                call(caller).await?;
                count += 1;
            }
            Ok::<u64, anyhow::Error>(count)
        });
    }
    let mut total = 0;
    while let Some(finished) = tasks.join_next().await {
        total += finished??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
