//! Cold invocations: the first call of a function with no warm container, through kilnd,
//! against a raw youki (libcontainer) create+start of the same kind of bundle; and the same
//! cold call of a `network=egress` function against a `network=none` one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use sandbox::{ContainerSpec, ProcessSpec, Sandbox};

use crate::kiln_client::KilnTarget;
use crate::stats::print_comparison;

pub async fn run(kiln: &KilnTarget, testbed: &Path, kilnd: &Path, runs: usize) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("kiln-bench-cold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let rootfs = make_rootfs(&work, testbed)?;
    let state = work.join("state");
    let (sandbox, _exits) = Sandbox::spawn(kilnd, &["sandbox", "--state", &state.to_string_lossy()])?;

    let executable = std::fs::read(testbed)?;
    let mut raw = Vec::with_capacity(runs);
    let mut through = Vec::with_capacity(runs);
    let mut egress = Vec::with_capacity(runs);
    // Interleaved, so drift on a shared machine affects both sides alike.
    for run in 0..runs {
        let spec = spec(&work, &rootfs, &format!("kb-{}-{run}", std::process::id()))?;
        // A listening runtime socket, as under Kiln, so the function starts and waits as it
        // would there; without one it exits at once and the start looks cheaper than it is.
        let _socket = tokio::net::UnixListener::bind(spec.runtime_dir.join("runtime.sock"))?;
        let started = Instant::now();
        sandbox.create(spec.clone()).await.context("raw create+start")?;
        raw.push(started.elapsed());
        sandbox.delete(&spec.id).await?;
        settle().await;

        through.push(cold_call(kiln, &executable, &format!("bench-cold-{run}"), "network=none").await?);
        settle().await;
        egress.push(
            cold_call(
                kiln,
                &executable,
                &format!("bench-cold-egress-{run}"),
                "network=egress",
            )
            .await?,
        );
        settle().await;
    }
    sandbox.shutdown().await?;
    let _ = std::fs::remove_dir_all(&work);

    print_comparison(
        &format!("measure ({runs} runs)"),
        "raw youki create+start",
        "cold invocation through kilnd",
        raw,
        through.clone(),
    );
    println!();
    print_comparison(
        &format!("measure ({runs} runs)"),
        "cold invocation, network=none",
        "cold invocation, network=egress",
        through,
        egress,
    );
    Ok(())
}

/// Uploads `name` with `settings`, times its first call (a cold start), deletes it.
async fn cold_call(
    kiln: &KilnTarget,
    executable: &[u8],
    name: &str,
    settings: &str,
) -> anyhow::Result<Duration> {
    let body = Bytes::from_static(b"cold");
    kiln.upload(name, executable, settings).await?;
    let (status, echoed, elapsed) = kiln
        .call(
            Method::POST,
            &format!("/fn/{}/{name}/echo", kiln.tenant),
            body.clone(),
        )
        .await?;
    if status != 200 || echoed != body {
        bail!(
            "cold call of {name} answered {status}: {}",
            String::from_utf8_lossy(&echoed)
        );
    }
    kiln.delete(name).await?;
    Ok(elapsed)
}

/// Lets the sandbox and the kernel finish tearing the last container down (network
/// namespaces and cgroups are freed asynchronously) so that no start pays for the one before.
pub(crate) async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

fn make_rootfs(work: &Path, testbed: &Path) -> anyhow::Result<PathBuf> {
    let rootfs = work.join("rootfs");
    for dir in ["proc", "dev", "tmp", "run/kiln"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::copy(testbed, rootfs.join("function")).context("copying the testbed")?;
    Ok(rootfs)
}

/// The same limits and isolation a Kiln container gets by default.
pub(crate) fn spec(work: &Path, rootfs: &Path, id: &str) -> anyhow::Result<ContainerSpec> {
    let runtime_dir = work.join("run").join(id);
    std::fs::create_dir_all(&runtime_dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(work.join("raw.log"))?;
    Ok(ContainerSpec {
        id: id.to_owned(),
        rootfs: rootfs.to_path_buf(),
        runtime_dir,
        stdout_path: work.join("raw.log"),
        stderr_path: work.join("raw.log"),
        process: ProcessSpec {
            env: vec![
                "PATH=/".into(),
                "KILN_RUNTIME_SOCKET=/run/kiln/runtime.sock".into(),
            ],
            ..ProcessSpec::executable()
        },
        memory_bytes: 128 << 20,
        cpu_shares: 1024,
        cpu_quota_us: None,
        pids_limit: 64,
        network: sandbox::ContainerNetwork::Isolated,
        tmpfs_bytes: 16 << 20,
    })
}
