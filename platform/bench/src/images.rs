//! Container images: uploading an image archive through kilnd (rate, and kilnd's memory
//! meanwhile), and cold invocations of an image function against raw youki create+start of
//! the same image root, timed until the function asks for its first invocation.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use images::{ImageLimits, ImageStore};
use sandbox::{ContainerSpec, Sandbox};
use tokio::io::AsyncReadExt;

use crate::kiln_client::KilnTarget;
use crate::stats::{ms, print_comparison, rss_kib};

pub struct ImageBench<'a> {
    /// The archive whose upload is timed (the larger the better for a rate).
    pub upload_image: &'a Path,
    /// The archive whose cold starts are timed.
    pub cold_image: &'a Path,
    pub kilnd: &'a Path,
    pub kilnd_pid: &'a str,
    pub runs: usize,
}

pub async fn run(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    upload(kiln, bench).await?;
    println!();
    cold(kiln, bench).await
}

async fn upload(kiln: &KilnTarget, bench: &ImageBench<'_>) -> anyhow::Result<()> {
    let archive = std::fs::read(bench.upload_image).context("reading the upload image")?;
    let before = rss_kib(bench.kilnd_pid)?;
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), bench.kilnd_pid.to_owned());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(rss) = rss_kib(&pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    kiln.upload("bench-image-upload", &archive, "").await?;
    let first = started.elapsed();
    let started = Instant::now();
    kiln.upload("bench-image-again", &archive, "").await?;
    let again = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    kiln.delete("bench-image-again").await?;
    kiln.delete("bench-image-upload").await?;

    let megabytes = archive.len() as f64 / 1e6;
    let name = bench
        .upload_image
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let peak = peak.load(Ordering::Relaxed);
    println!("| upload of {name} ({megabytes:.1} MB) | value |");
    println!("|---|---|");
    println!(
        "| first upload (streamed to disk, checked, unpacked, root built) | {} ({:.1} MB/s) |",
        ms(first),
        megabytes / first.as_secs_f64()
    );
    println!(
        "| same image again (every layer checked, nothing written) | {} ({:.1} MB/s) |",
        ms(again),
        megabytes / again.as_secs_f64()
    );
    println!("| kilnd RSS before | {:.1} MiB |", before as f64 / 1024.0);
    println!(
        "| kilnd RSS peak during both uploads | {:.1} MiB (+{:.1} MiB) |",
        peak as f64 / 1024.0,
        (peak - before) as f64 / 1024.0
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
        let runtime_dir = work.join("run").join(&id);
        std::fs::create_dir_all(&runtime_dir)?;
        let log = work.join("raw.log");
        std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        // As under Kiln: Kiln's variable added to the image's own.
        let mut process = image.process.clone();
        process
            .env
            .push("KILN_RUNTIME_SOCKET=/run/kiln/runtime.sock".into());
        let spec = ContainerSpec {
            id: id.clone(),
            rootfs: rootfs.clone(),
            runtime_dir: runtime_dir.clone(),
            stdout_path: log.clone(),
            stderr_path: log,
            process,
            memory_bytes: 128 << 20,
            cpu_shares: 1024,
            cpu_quota_us: None,
            pids_limit: 64,
            network: false,
            tmpfs_bytes: 16 << 20,
        };
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

/// As for binaries: lets the last container's teardown finish before the next start.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
