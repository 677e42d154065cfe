//! Durable instances across a crash of kilnd and across two nodes on one database: every
//! instance reaches its final state exactly once.

use std::time::Duration;

use e2e::Kiln;
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_and_restart_every_instance_finishes_exactly_once() {
    let mut kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "flow", "").await.status, 201);
    let mut sleepers = Vec::new();
    for _ in 0..3 {
        sleepers.push(
            kiln.started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 1500}))
                .await,
        );
    }
    let mut runners = Vec::new();
    for _ in 0..2 {
        runners.push(
            kiln.started_instance(&token, "flow", json!({"scenario": "slow", "busy_ms": 60000}))
                .await,
        );
    }
    for id in &sleepers {
        kiln.wait_status(&token, id, "sleeping", WITHIN).await;
    }
    for id in &runners {
        kiln.wait_status(&token, id, "running", WITHIN).await;
        let deadline = std::time::Instant::now() + WITHIN;
        while kiln.checkpoints(&token, id).await.get("before").is_none() {
            assert!(std::time::Instant::now() < deadline, "no first checkpoint");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let before: Vec<_> = {
        let mut values = Vec::new();
        for id in &runners {
            values.push(kiln.checkpoints(&token, id).await["before"].clone());
        }
        values
    };

    kiln.kill();
    kiln.wait_exit().await;
    // Down past the sleepers' wake time: they are overdue when kilnd comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    kiln.restart().await;

    for id in &sleepers {
        let done = kiln.wait_status(&token, id, "completed", WITHIN).await;
        assert!(done["output"]["woke_at_ms"].as_u64() >= done["output"]["wake_at_ms"].as_u64());
    }
    // The running ones were replayed: the step stored before the crash was not run again.
    for (id, stored) in runners.iter().zip(&before) {
        let running = kiln.wait_status(&token, id, "running", WITHIN).await;
        assert!(
            running["attempt"].as_i64() >= Some(2),
            "not re-dispatched: {running}"
        );
        assert_eq!(&kiln.checkpoints(&token, id).await["before"], stored);
        let reply = kiln.signal(&token, id, "cancel", json!(null)).await;
        assert_eq!(reply.status, 202);
    }
    for id in sleepers.iter().chain(&runners) {
        let finished = kiln.count_events(&token, id, "completed").await
            + kiln.count_events(&token, id, "cancelled").await
            + kiln.count_events(&token, id, "failed").await;
        assert_eq!(finished, 1, "instance {id} finished {finished} times");
    }
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_share_instances_and_run_each_once() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "flow", "").await.status, 201);
    let peer = kiln.start_peer(&[]).await;
    let mut ids = Vec::new();
    for index in 0..12 {
        let node = if index % 2 == 0 { &kiln } else { &peer };
        ids.push(
            // Long enough that a loaded machine still suspends the sleep rather than finding
            // its wake time already past.
            node.started_instance(&token, "flow", json!({"scenario": "replay", "sleep_ms": 1000}))
                .await,
        );
    }
    for id in &ids {
        let done = kiln.wait_status(&token, id, "completed", WITHIN).await;
        assert_eq!(done["output"]["ran"], json!(["b"]), "{done}");
        assert_eq!(kiln.count_events(&token, id, "completed").await, 1);
        assert_eq!(kiln.count_events(&token, id, "dispatched").await, 2);
    }
    peer.finish().await;
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_a_running_instance_back_without_counting_a_failure() {
    let mut kiln = Kiln::start(&[("KILN_SHUTDOWN_GRACE_MS", "500")]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "flow", "").await.status, 201);
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "slow", "busy_ms": 3000}))
        .await;
    kiln.wait_status(&token, &id, "running", WITHIN).await;
    assert_eq!(kiln.stop().await, Some(0));
    kiln.restart().await;
    let done = kiln.wait_status(&token, &id, "completed", WITHIN).await;
    assert_eq!(done["output"]["after"], json!({"attempt": 2}), "{done}");
    assert_eq!(kiln.count_events(&token, &id, "released").await, 1);
    assert_eq!(
        kiln.count_events(&token, &id, "retrying").await,
        0,
        "shutdown counted as a crash"
    );
    kiln.finish().await;
}
