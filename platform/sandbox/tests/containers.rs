//! Real youki containers through the real sandbox process: create, isolation, exit reports, delete.
//!
//! Needs root and busybox-static. The test binary doubles as the sandbox process
//! (`--sandbox-child STATE_DIR`), exactly as kilnd does with `kilnd sandbox`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox::{ContainerSpec, ProcessSpec, Sandbox};

#[path = "../../../tests/src/cgroups.rs"]
mod cgroups;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--sandbox-child") {
        // SAFETY: fd 0 is the control socket the parent handed over; nothing else owns it.
        let control = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
        sandbox::serve(control, Path::new(&args[2])).expect("sandbox serve");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run_all());
    println!("test result: ok. 4 passed; 0 failed");
}

async fn run_all() {
    let work = tempdir();
    let rootfs = busybox_rootfs(&work);
    let state = work.join("state");
    let exe = std::env::current_exe().unwrap();
    let (sandbox, mut exits) =
        Sandbox::spawn(&exe, &["--sandbox-child", state.to_str().unwrap()]).expect("spawn sandbox");

    // 1. A container runs its function, can write to its runtime folder and nowhere else.
    let spec = container_spec(&work, &rootfs, "kt-run");
    let pid = sandbox.create(spec.clone()).await.expect("create container");
    let report = wait_for_file(&spec.runtime_dir.join("report")).await;
    for (property, missing) in [
        ("started", "the function did not run"),
        ("rootfs read-only", "the root file system is writable"),
        ("no network", "the network namespace is missing"),
        ("seccomp filtered", "no seccomp filter"),
        ("no capabilities", "capabilities left"),
        ("unshare refused", "unshare was allowed"),
    ] {
        assert!(report.lines().any(|line| line == property), "{missing}: {report}");
    }
    let cgroups = cgroups::cgroup_dirs(pid, "kt-run");
    assert!(
        !cgroups.is_empty() && cgroups.iter().all(|dir| dir.is_dir()),
        "the container's cgroups, from /proc/{pid}/cgroup: {cgroups:?}"
    );
    println!("test container_runs_isolated ... ok");

    // 2. Delete kills it and leaves no state nor cgroup.
    sandbox.delete("kt-run").await.expect("delete container");
    assert!(!state.join("kt-run").exists(), "youki state left behind");
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "{} left behind", cgroup.display());
    }
    println!("test delete_leaves_nothing ... ok");

    // 3. A function that exits on its own is reported and cleaned up by the sandbox.
    let mut spec = container_spec(&work, &rootfs, "kt-exit");
    spec.process.env.push("MODE=exit".into());
    sandbox.create(spec).await.expect("create exiting container");
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv())
        .await
        .expect("no exit report within 10 s")
        .expect("exit channel closed");
    assert_eq!(exit.container, "kt-exit");
    assert_eq!(exit.status, "exited with code 3");
    assert!(
        !state.join("kt-exit").exists(),
        "exited container's state left behind"
    );
    println!("test exit_is_reported ... ok");

    // 4. Closing the control socket deletes every container still running.
    let spec = container_spec(&work, &rootfs, "kt-left");
    sandbox.create(spec.clone()).await.expect("create container");
    wait_for_file(&spec.runtime_dir.join("report")).await;
    sandbox.shutdown().await.expect("shutdown");
    assert!(
        !state.join("kt-left").exists(),
        "container survived sandbox shutdown"
    );
    println!("test shutdown_deletes_all ... ok");
    let _ = std::fs::remove_dir_all(&work);
}

fn container_spec(work: &Path, rootfs: &Path, id: &str) -> ContainerSpec {
    let runtime_dir = work.join("run").join(id);
    std::fs::create_dir_all(&runtime_dir).unwrap();
    std::fs::File::create(work.join(format!("{id}.log"))).unwrap();
    ContainerSpec {
        id: id.into(),
        rootfs: rootfs.into(),
        runtime_dir,
        stdout_path: work.join(format!("{id}.log")),
        stderr_path: work.join(format!("{id}.log")),
        process: ProcessSpec {
            env: vec!["PATH=/bin".into()],
            ..ProcessSpec::executable()
        },
        memory_bytes: 32 << 20,
        cpu_shares: 512,
        cpu_quota_us: None,
        pids_limit: 16,
        network: sandbox::ContainerNetwork::Isolated,
        tmpfs_bytes: 1 << 20,
    }
}

/// A root file system whose `/function` is a busybox shell script.
fn busybox_rootfs(work: &Path) -> PathBuf {
    let rootfs = work.join("rootfs");
    for dir in ["bin", "proc", "dev", "tmp", "run/kiln"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let script = r#"#!/bin/sh
[ "$MODE" = exit ] && exit 3
report=/run/kiln/report
{ echo started
  if touch /written 2>/dev/null; then echo "rootfs writable"; else echo "rootfs read-only"; fi
  if [ "$(/bin/busybox ls /sys/class/net 2>/dev/null | /bin/busybox wc -l)" -le 1 ]; then echo "no network"; fi
  /bin/busybox grep -q '^Seccomp:[[:space:]]*2' /proc/self/status && echo "seccomp filtered"
  /bin/busybox grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/self/status && echo "no capabilities"
  /bin/busybox unshare -n true 2>/dev/null || echo "unshare refused"
} > /run/kiln/report.tmp
/bin/busybox mv /run/kiln/report.tmp $report
exec /bin/busybox sleep 600
"#;
    std::fs::write(rootfs.join("function"), script).unwrap();
    std::fs::set_permissions(
        rootfs.join("function"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    rootfs
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} did not appear within 5 s", path.display());
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-sbx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
