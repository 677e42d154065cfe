//! Container images: uploading image archives through kilnd (rate, and kilnd's memory
//! meanwhile); cold invocations of an image function against raw youki create+start of the
//! same image root, timed until the function asks for its first invocation; and warm
//! invocations of the Python example through kilnd against the same handler as a plain
//! process on its runtime socket.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use images::{ImageLimits, ImageStore};
use sandbox::Sandbox;
use tokio::io::AsyncReadExt;

use crate::cold::{self, settle};
use crate::direct::DirectFunction;
use crate::kiln_client::KilnTarget;
use crate::stats::{PeakRss, ms, print_comparison, rss_kib, summarize};
use crate::synthetic_image;

pub struct ImageBench<'a> {
    /// A real image archive whose upload is timed.
    pub upload_image: &'a Path,
    /// Sizes (MB) of synthetic single-layer images whose uploads are timed too.
    pub synthetic_sizes: Vec<u64>,
    /// The archive whose cold starts are timed.
    pub cold_image: &'a Path,
    /// The Python example's handler and SDK, run as a plain process for the warm baseline.
    pub python_handler: &'a Path,
    pub python_sdk: &'a Path,
    pub kilnd: &'a Path,
    pub kilnd_pid: &'a str,
    pub runs: usize,
    pub requests: usize,
}

pub async fn run(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    uploads(kiln, bench).await?;
    println!();
    cold(kiln, bench).await?;
    println!();
    warm(kiln, bench).await
}

async fn uploads(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("kiln-bench-uploads-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    println!(
        "| archive | size | first upload (streamed, checked, unpacked, root built) | same image again (checked, nothing written) | kilnd RSS before → peak |"
    );
    println!("|---|---|---|---|---|");
    upload(kiln, bench, bench.upload_image).await?;
    for &megabytes in &bench.synthetic_sizes {
        let archive = work.join(format!("synthetic-{megabytes}mb.oci.tar"));
        synthetic_image::write(&archive, &work, megabytes)?;
        let uploaded = upload(kiln, bench, &archive).await;
        std::fs::remove_file(&archive)?;
        uploaded?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Uploads `archive` twice while sampling kilnd's RSS; prints one table row.
async fn upload(kiln: &KilnTarget, bench: &ImageBench<'_>, archive: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(archive).with_context(|| format!("reading {}", archive.display()))?;
    let before = rss_kib(bench.kilnd_pid)?;
    let peak = PeakRss::start(bench.kilnd_pid, before, Duration::from_millis(5));
    let started = Instant::now();
    kiln.upload("bench-image-upload", &bytes, "").await?;
    let first = started.elapsed();
    let started = Instant::now();
    kiln.upload("bench-image-again", &bytes, "").await?;
    let again = started.elapsed();
    let peak = peak.stop().await?;
    kiln.delete("bench-image-again").await?;
    kiln.delete("bench-image-upload").await?;

    let megabytes = bytes.len() as f64 / 1e6;
    let rate = |elapsed: Duration| megabytes / elapsed.as_secs_f64();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| {} | {megabytes:.1} MB | {} ({:.1} MB/s) | {} ({:.1} MB/s) | {:.1} → {:.1} MiB (+{:.1}) |",
        archive.file_name().unwrap_or_default().to_string_lossy(),
        ms(first),
        rate(first),
        ms(again),
        rate(again),
        mib(before),
        mib(peak),
        mib(peak - before),
    );
    Ok(())
}

async fn cold(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("kiln-bench-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    // The same root Kiln runs, made by the same code, for the raw side.
    let store = ImageStore::open(&work.join("images"), ImageLimits::default())?;
    let image = store.ingest(bench.cold_image, None)?;
    let rootfs = store.root_path(&image.digest);
    let state = work.join("state");
    let (sandbox, _exits) = Sandbox::spawn(bench.kilnd, &["sandbox", "--state", &state.to_string_lossy()])?;
    let archive = std::fs::read(bench.cold_image)?;
    // Keeps the image stored in kilnd while functions come and go.
    kiln.upload("bench-image-anchor", &archive, "").await?;

    let mut raw = Vec::with_capacity(bench.runs);
    let mut through = Vec::with_capacity(bench.runs);
    for run in 0..bench.runs {
        let id = format!("kbi-{}-{run}", std::process::id());
        // The same limits and isolation as the binaries' baseline, with the image's process
        // and Kiln's variable added to the image's own, as under Kiln.
        let mut spec = cold::spec(&work, &rootfs, &id)?;
        spec.process = image.process.clone();
        spec.process
            .env
            .push("KILN_RUNTIME_SOCKET=/run/kiln/runtime.sock".into());
        let runtime_dir = spec.runtime_dir.clone();
        let socket = runtime_dir.join("runtime.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        let started = Instant::now();
        sandbox.create(spec).await.context("raw create+start")?;
        first_request(&listener)
            .await
            .context("the raw container never asked for work")?;
        raw.push(started.elapsed());
        sandbox.delete(&id).await?;
        settle().await;

        let name = format!("bench-image-cold-{run}");
        kiln.upload(&name, &archive, "").await?;
        let (status, body, elapsed) = kiln
            .call(
                Method::POST,
                &format!("/fn/{}/{name}/cold", kiln.tenant),
                Bytes::from_static(b"cold"),
            )
            .await?;
        if status != 200 {
            bail!("cold call answered {status}: {}", String::from_utf8_lossy(&body));
        }
        through.push(elapsed);
        kiln.delete(&name).await?;
        settle().await;
    }
    kiln.delete("bench-image-anchor").await?;
    sandbox.shutdown().await?;
    let _ = std::fs::remove_dir_all(&work);

    let name = bench.cold_image.file_name().unwrap_or_default().to_string_lossy();
    print_comparison(
        &format!("{name}, {} runs", bench.runs),
        "raw youki create+start until it asks for work",
        "cold invocation through kilnd",
        raw,
        through,
    );
    Ok(())
}

async fn warm(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    const FUNCTION: &str = "bench-image-warm";
    let archive = std::fs::read(bench.cold_image)?;
    kiln.upload(FUNCTION, &archive, "min_warm=1&max_concurrency=1")
        .await?;
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(bench.python_handler)
        .env("PYTHONPATH", bench.python_sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let dir = std::env::temp_dir().join(format!("kiln-bench-python-{}", std::process::id()));
    let direct = DirectFunction::start(command, dir).await?;
    let path = format!("/fn/{}/{FUNCTION}/echo", kiln.tenant);
    let body = Bytes::from(vec![b'k'; 128]);
    let call_kiln = || async {
        let (status, answer, elapsed) = kiln.call(Method::POST, &path, body.clone()).await?;
        if status != 200 {
            bail!(
                "warm call answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        anyhow::Ok(elapsed)
    };
    for _ in 0..200 {
        call_kiln().await?;
        direct.call(body.clone()).await?;
    }
    let mut direct_latency = Vec::with_capacity(bench.requests);
    let mut kiln_latency = Vec::with_capacity(bench.requests);
    for _ in 0..bench.requests {
        direct_latency.push(direct.call(body.clone()).await?.1);
        kiln_latency.push(call_kiln().await?);
    }
    kiln.delete(FUNCTION).await?;
    let (direct, through) = (summarize(direct_latency), summarize(kiln_latency));
    println!(
        "| python-hello, {} sequential calls | the handler as a plain process, on its socket | through kilnd | Kiln's overhead |",
        bench.requests
    );
    println!("|---|---|---|---|");
    for (label, direct, kiln) in [
        ("p50", direct.p50, through.p50),
        ("p99", direct.p99, through.p99),
        ("mean", direct.mean, through.mean),
    ] {
        println!(
            "| {label} | {} | {} | +{} |",
            ms(direct),
            ms(kiln),
            ms(kiln.saturating_sub(direct))
        );
    }
    Ok(())
}

/// Waits for the function's first request on its runtime socket (`GET /v1/invocation/next`).
async fn first_request(listener: &tokio::net::UnixListener) -> anyhow::Result<()> {
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await??;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await??;
        if read == 0 {
            bail!("the function closed its socket before asking for work");
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(())
}
