//! kilnd or its sandbox process dying: no container, youki state or cgroup outlives them
//! for long, and a restart on the same data folder serves again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::Kiln;
use http::Method;

/// Polls until no youki state is left and none of `cgroups` exists, or `within` passes.
async fn wait_until_clean(kiln: &Kiln, cgroups: &[PathBuf], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if kiln.youki_containers().is_empty() && !cgroups.iter().any(|dir| dir.exists()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Runtime socket folders in the data folder (one per container).
fn runtime_folders(kiln: &Kiln) -> usize {
    std::fs::read_dir(kiln.data_dir.join("run")).unwrap().count()
}

/// A kilnd with tenant `acme`, function `echo` and one warm container (whose id is
/// returned, with its cgroup folders, found from its process).
async fn kiln_with_one_container() -> (Kiln, String, Vec<String>, Vec<PathBuf>) {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    assert_eq!(
        kiln.request(Method::GET, "/fn/acme/echo/instance", Some(&token), Bytes::new())
            .await
            .status,
        200
    );
    let containers = kiln.youki_containers();
    assert_eq!(containers.len(), 1);
    let cgroups = kiln.container_cgroups(&containers[0]);
    assert!(!cgroups.is_empty(), "no cgroup found for {}", containers[0]);
    assert!(cgroups.iter().all(|dir| dir.is_dir()), "{cgroups:?}");
    (kiln, token, containers, cgroups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_kilnd_is_killed_its_sandbox_deletes_every_container() {
    let (mut kiln, token, _, cgroups) = kiln_with_one_container().await;

    kiln.kill();
    kiln.wait_exit().await;
    assert!(
        wait_until_clean(&kiln, &cgroups, Duration::from_secs(10)).await,
        "containers outlived kilnd"
    );
    assert_eq!(
        runtime_folders(&kiln),
        1,
        "the killed kilnd's container left its runtime folder"
    );

    kiln.restart().await;
    assert_eq!(
        runtime_folders(&kiln),
        0,
        "the restart removes the runtime folders it finds"
    );
    let again = kiln
        .request(Method::GET, "/fn/acme/echo/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_sandbox_dies_kilnd_exits_and_its_restart_deletes_the_leftovers() {
    let (mut kiln, token, containers, cgroups) = kiln_with_one_container().await;

    let sandbox = nix::unistd::Pid::from_raw(kiln.sandbox_pid());
    nix::sys::signal::kill(sandbox, nix::sys::signal::Signal::SIGKILL).unwrap();
    let code = kiln.wait_exit().await;
    assert_eq!(
        code,
        Some(1),
        "kilnd must stop with an error without its sandbox: {}",
        kiln.log()
    );
    assert!(kiln.log().contains("sandbox process died"), "{}", kiln.log());
    assert_eq!(
        kiln.youki_containers(),
        containers,
        "the orphaned container is still there before the restart"
    );

    kiln.restart().await;
    assert!(
        wait_until_clean(&kiln, &cgroups, Duration::from_secs(10)).await,
        "restart left the orphans"
    );
    let again = kiln
        .request(Method::GET, "/fn/acme/echo/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    kiln.finish().await;
}
