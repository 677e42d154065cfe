//! Container lifecycle through a real kilnd: idle containers are reaped, `min_warm` ones kept.

use std::time::Duration;

use bytes::Bytes;
use e2e::Kiln;
use http::Method;

/// Polls the detailed health report until `field` of the containers equals `want`.
async fn wait_for(kiln: &Kiln, field: &str, want: u64, within: Duration) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let containers = kiln.containers().await;
        if containers[field] == want || std::time::Instant::now() > deadline {
            return containers;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_containers_are_reaped_after_the_idle_timeout() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.upload_testbed(&token, "brief", "idle_timeout_s=1")
            .await
            .status,
        201
    );
    assert_eq!(
        kiln.request(Method::GET, "/fn/acme/brief/instance", Some(&token), Bytes::new())
            .await
            .status,
        200
    );
    assert_eq!(kiln.containers().await["warm"], 1);
    let containers = wait_for(&kiln, "warm", 0, Duration::from_secs(5)).await;
    assert_eq!(containers["warm"], 0, "idle container not reaped: {containers}");
    // The container leaves its pool at once; the sandbox deletes it right after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !kiln.youki_containers().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        kiln.youki_containers().is_empty(),
        "reaped container left youki state"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_warm_containers_start_on_upload_stay_past_the_idle_timeout_and_survive_a_restart() {
    let mut kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.upload_testbed(&token, "ready", "min_warm=2&idle_timeout_s=1")
            .await
            .status,
        201
    );
    let containers = wait_for(&kiln, "warm", 2, Duration::from_secs(10)).await;
    assert_eq!(
        containers["warm"], 2,
        "min_warm containers not started: {containers}"
    );
    // A witness with the same idle timeout and no min_warm: once the reaper took its
    // container, the min_warm ones have been idle past the timeout too.
    assert_eq!(
        kiln.upload_testbed(&token, "witness", "idle_timeout_s=1")
            .await
            .status,
        201
    );
    let witness = kiln
        .request(
            Method::GET,
            "/fn/acme/witness/instance",
            Some(&token),
            Bytes::new(),
        )
        .await;
    assert_eq!(witness.status, 200);
    let containers = wait_for(&kiln, "warm", 3, Duration::from_secs(5)).await;
    assert_eq!(containers["warm"], 3, "{containers}");
    let containers = wait_for(&kiln, "warm", 2, Duration::from_secs(10)).await;
    assert_eq!(
        containers["warm"], 2,
        "the witness is reaped, the min_warm containers outlive the idle timeout: {containers}"
    );
    let reply = kiln
        .request(Method::GET, "/fn/acme/ready/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        kiln.containers().await["cold_starts_total"],
        1,
        "only the witness started cold; this call found a warm container"
    );

    assert_eq!(kiln.stop().await, Some(0));
    let restarted = kiln.start_peer(&[]).await;
    let containers = wait_for(&restarted, "warm", 2, Duration::from_secs(10)).await;
    assert_eq!(
        containers["warm"], 2,
        "min_warm containers not started after a restart: {containers}"
    );
    restarted.finish().await;
    kiln.finish().await;
}
