//! Durable instances through a real kilnd, real PostgreSQL and real containers: replay from
//! checkpoints, sleeps that free the container, events, signals, fencing, idempotency,
//! tenant isolation and limits. Crash recovery is in `recovery.rs`.

use std::time::Duration;

use bytes::Bytes;
use e2e::Kiln;
use http::Method;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(20);

/// A kilnd with tenant `acme` and the testbed uploaded as `flow` with `settings`.
async fn kiln_with_flow(env: &[(&str, &str)], settings: &str) -> (Kiln, String) {
    let kiln = Kiln::start(env).await;
    let token = kiln.create_tenant("acme").await;
    let reply = kiln.upload_testbed(&token, "flow", settings).await;
    assert_eq!(reply.status, 201, "upload: {}", reply.text());
    (kiln, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_returns_stored_checkpoints_and_does_not_rerun_a_step() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "replay", "sleep_ms": 700}))
        .await;
    let done = kiln.wait_status(&token, &id, "completed", WITHIN).await;
    let output = &done["output"];
    assert_eq!(
        output["ran"],
        json!(["b"]),
        "the replay after the sleep re-ran a stored step: {done}"
    );
    assert_eq!(output["attempt"], 2, "{done}");
    assert_eq!(done["attempt"], 2);
    let checkpoints = kiln.checkpoints(&token, &id).await;
    assert_eq!(
        output["a"], checkpoints["a"],
        "the replay did not get the stored value"
    );
    assert_eq!(output["b"], checkpoints["b"]);
    assert!(checkpoints["nap"]["wake_at_ms"].is_u64(), "{checkpoints}");
    let kinds: Vec<Value> = kiln
        .instance_events(&token, &id)
        .await
        .into_iter()
        .map(|event| event["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        ["created", "dispatched", "sleeping", "dispatched", "completed"],
        "lifecycle history"
    );
    assert_eq!(done["error"], Value::Null);
    assert!(done["finished_at"].is_string());
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_frees_the_container_and_wakes_on_time() {
    // One container at most, and a short queue wait: a held container would make the
    // invocation below fail with 429.
    let (kiln, token) = kiln_with_flow(&[("KILN_QUEUE_TIMEOUT_MS", "300")], "max_concurrency=1").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 2000}))
        .await;
    let sleeping = kiln.wait_status(&token, &id, "sleeping", WITHIN).await;
    assert!(sleeping["wake_at"].is_string(), "{sleeping}");
    let reply = kiln
        .request(Method::GET, "/fn/acme/flow/echo", Some(&token), Bytes::new())
        .await;
    assert_eq!(
        reply.status,
        200,
        "the sleeping instance held the container: {}",
        reply.text()
    );
    assert_eq!(kiln.containers().await["busy"], 0);
    let done = kiln.wait_status(&token, &id, "completed", WITHIN).await;
    let late = done["output"]["woke_at_ms"].as_u64().unwrap() as i64
        - done["output"]["wake_at_ms"].as_u64().unwrap() as i64;
    assert!(
        (0..1000).contains(&late),
        "woke {late} ms after the wake time: {done}"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_whether_sent_before_or_during_the_wait() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    // Sent while the instance still sleeps before it waits.
    let early = kiln
        .started_instance(
            &token,
            "flow",
            json!({"scenario": "wait", "sleep_ms": 1500, "event": "go", "timeout_ms": 60000}),
        )
        .await;
    kiln.wait_status(&token, &early, "sleeping", WITHIN).await;
    let reply = kiln.signal(&token, &early, "go", json!({"n": 1})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(
        reply.json()["instance"]["status"],
        "sleeping",
        "an early event must not wake a plain sleep"
    );
    let done = kiln.wait_status(&token, &early, "completed", WITHIN).await;
    assert_eq!(done["output"]["event"], json!({"n": 1}), "{done}");

    // Sent while the instance waits for it: it wakes at once, long before the timeout.
    let waiting = kiln
        .started_instance(
            &token,
            "flow",
            json!({"scenario": "wait", "event": "go", "timeout_ms": 60000}),
        )
        .await;
    let parked = kiln
        .wait_instance(&token, &waiting, WITHIN, |instance| {
            instance["waiting_for"] == "go"
        })
        .await;
    assert_eq!(parked["status"], "sleeping");
    let reply = kiln.signal(&token, &waiting, "other", json!(null)).await;
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.json()["instance"]["status"],
        "sleeping",
        "another event must not wake it"
    );
    kiln.signal(&token, &waiting, "go", json!({"n": 2})).await;
    let done = kiln
        .wait_status(&token, &waiting, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(done["output"], json!({"event": {"n": 2}, "timed_out": false}));

    // Sent while the waiting instance is paused: delivered as soon as it is resumed.
    let paused = kiln
        .started_instance(
            &token,
            "flow",
            json!({"scenario": "wait", "event": "go", "timeout_ms": 60000}),
        )
        .await;
    kiln.wait_instance(&token, &paused, WITHIN, |instance| {
        instance["waiting_for"] == "go"
    })
    .await;
    assert_eq!(
        kiln.signal(&token, &paused, "pause", json!(null)).await.status,
        202
    );
    assert_eq!(
        kiln.signal(&token, &paused, "go", json!({"n": 3})).await.status,
        202
    );
    assert_eq!(kiln.instance(&token, &paused).await.json()["status"], "paused");
    kiln.signal(&token, &paused, "resume", json!(null)).await;
    let done = kiln
        .wait_status(&token, &paused, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(done["output"]["event"], json!({"n": 3}));

    // No event: the wait times out.
    let lonely = kiln
        .started_instance(
            &token,
            "flow",
            json!({"scenario": "wait", "event": "go", "timeout_ms": 500}),
        )
        .await;
    let done = kiln.wait_status(&token, &lonely, "completed", WITHIN).await;
    assert_eq!(done["output"], json!({"event": null, "timed_out": true}));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_pause_and_resume_act_on_a_sleeping_instance() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 1500}))
        .await;
    kiln.wait_status(&token, &id, "sleeping", WITHIN).await;
    let paused = kiln.signal(&token, &id, "pause", json!(null)).await;
    assert_eq!(paused.json()["instance"]["status"], "paused", "{}", paused.text());
    // Paused past its wake time, it stays put: a witness that sleeps as long, started after
    // it, completes first, so the scheduler has passed that wake time.
    let witness = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 1500}))
        .await;
    kiln.wait_status(&token, &witness, "completed", WITHIN).await;
    assert_eq!(kiln.instance(&token, &id).await.json()["status"], "paused");
    let resumed = kiln.signal(&token, &id, "resume", json!(null)).await;
    assert_eq!(resumed.status, 202);
    kiln.wait_status(&token, &id, "completed", WITHIN).await;

    let doomed = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 60000}))
        .await;
    kiln.wait_status(&token, &doomed, "sleeping", WITHIN).await;
    let reply = kiln.signal(&token, &doomed, "cancel", json!(null)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let cancelled = kiln.instance(&token, &doomed).await.json();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"]["code"], "cancelled");
    assert!(cancelled["finished_at"].is_string());
    let again = kiln.signal(&token, &doomed, "resume", json!(null)).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "instance_finished")
    );
    let bad = kiln.signal(&token, &doomed, "no spaces", json!(null)).await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "invalid_signal"));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_twice_with_one_idempotency_key_gives_one_instance() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let input = json!({"scenario": "sleep", "sleep_ms": 60000});
    let first = kiln
        .start_instance(&token, "flow", &input, Some("order-42"))
        .await;
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header("location"),
        Some(format!("/v1/instances/{id}").as_str())
    );
    let second = kiln
        .start_instance(&token, "flow", &input, Some("order-42"))
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["id"], id.as_str(), "a second instance was started");
    let other_input = kiln
        .start_instance(&token, "flow", &json!({"scenario": "sleep"}), Some("order-42"))
        .await;
    assert_eq!(
        (other_input.status, other_input.error_code().as_str()),
        (409, "idempotency_key_reused")
    );
    let listed = kiln
        .request(
            Method::GET,
            "/v1/instances?function=flow",
            Some(&token),
            Bytes::new(),
        )
        .await
        .json();
    assert_eq!(listed["instances"].as_array().unwrap().len(), 1, "{listed}");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_pages_without_overlap() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            kiln.started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 60000}))
                .await,
        );
    }
    let quick = kiln
        .started_instance(&token, "flow", json!({"scenario": "replay", "sleep_ms": 1}))
        .await;
    kiln.wait_status(&token, &quick, "completed", WITHIN).await;
    let list = |query: String| {
        let (kiln, token) = (&kiln, &token);
        async move {
            let reply = kiln
                .request(
                    Method::GET,
                    &format!("/v1/instances?{query}"),
                    Some(token),
                    Bytes::new(),
                )
                .await;
            assert_eq!(reply.status, 200, "{query}: {}", reply.text());
            reply.json()
        }
    };
    let completed = list("status=completed".into()).await;
    assert_eq!(completed["instances"].as_array().unwrap().len(), 1);
    assert_eq!(completed["instances"][0]["id"], quick.as_str());
    let first = list("limit=2".into()).await;
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = list(format!("limit=2&cursor={cursor}")).await;
    let mut seen: Vec<String> = first["instances"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["instances"].as_array().unwrap())
        .map(|instance| instance["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(second["next_cursor"], Value::Null);
    seen.sort();
    let mut all = ids.clone();
    all.push(quick);
    all.sort();
    assert_eq!(seen, all, "pages overlap or miss instances");
    let bad = kiln
        .request(
            Method::GET,
            "/v1/instances?status=asleep",
            Some(&token),
            Bytes::new(),
        )
        .await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "invalid_status"));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_can_neither_see_nor_signal_an_instance() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let other = kiln.create_tenant("globex").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 60000}))
        .await;
    for path in [
        format!("/v1/instances/{id}"),
        format!("/v1/instances/{id}/checkpoints"),
        format!("/v1/instances/{id}/events"),
    ] {
        let reply = kiln.request(Method::GET, &path, Some(&other), Bytes::new()).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (404, "instance_not_found"),
            "{path}"
        );
    }
    let reply = kiln.signal(&other, &id, "cancel", json!(null)).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (404, "instance_not_found")
    );
    let listed = kiln
        .request(Method::GET, "/v1/instances", Some(&other), Bytes::new())
        .await
        .json();
    assert_eq!(listed["instances"], json!([]));
    // The owner's instance was not touched.
    assert_ne!(kiln.instance(&token, &id).await.json()["status"], "cancelled");
    let unknown = kiln.start_instance(&other, "flow", &json!({}), None).await;
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (404, "function_not_found")
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_a_stale_dispatch_are_refused() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "slow", "busy_ms": 1500}))
        .await;
    kiln.wait_instance(&token, &id, WITHIN, |instance| instance["status"] == "running")
        .await;
    // Wait for the first step, then pause: the container is still busy with the dispatch
    // whose epoch the pause just retired.
    let deadline = std::time::Instant::now() + WITHIN;
    while kiln.checkpoints(&token, &id).await.get("before").is_none() {
        assert!(std::time::Instant::now() < deadline, "no first checkpoint");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = kiln.signal(&token, &id, "pause", json!(null)).await;
    assert_eq!(paused.json()["instance"]["status"], "paused", "{}", paused.text());
    // The stale dispatch ends when its container is free again; its writes are refused.
    kiln.wait_busy(0, WITHIN).await;
    let checkpoints = kiln.checkpoints(&token, &id).await;
    assert!(
        checkpoints.get("after").is_none(),
        "a stale dispatch wrote: {checkpoints}"
    );
    assert_eq!(
        kiln.instance(&token, &id).await.json()["status"],
        "paused",
        "a stale dispatch finished it"
    );
    kiln.signal(&token, &id, "resume", json!(null)).await;
    let done = kiln.wait_status(&token, &id, "completed", WITHIN).await;
    assert_eq!(done["output"]["after"], json!({"attempt": 2}), "{done}");
    assert_eq!(
        done["output"]["before"],
        kiln.checkpoints(&token, &id).await["before"]
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_crashes_timeouts_and_limits_end_instances_with_a_reason() {
    let (kiln, token) = kiln_with_flow(&[("KILN_INSTANCE_VALUE_LIMIT_BYTES", "2048")], "").await;
    let failing = kiln
        .started_instance(&token, "flow", json!({"scenario": "fail"}))
        .await;
    let failed = kiln.wait_status(&token, &failing, "failed", WITHIN).await;
    assert_eq!(failed["error"]["code"], "function_error");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TestFailure"),
        "{failed}"
    );

    let crashing = kiln
        .started_instance(&token, "flow", json!({"scenario": "crash", "crash": true}))
        .await;
    let recovered = kiln.wait_status(&token, &crashing, "completed", WITHIN).await;
    assert_eq!(
        recovered["output"]["attempt"], 2,
        "a crash is retried: {recovered}"
    );
    assert_eq!(kiln.count_events(&token, &crashing, "retrying").await, 1);

    let big = kiln
        .started_instance(&token, "flow", json!({"scenario": "big", "bytes": 4096}))
        .await;
    let failed = kiln.wait_status(&token, &big, "failed", WITHIN).await;
    assert_eq!(failed["error"]["code"], "value_too_large", "{failed}");

    let reply = kiln
        .start_instance(&token, "flow", &json!({"pad": "x".repeat(4096)}), None)
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (413, "value_too_large")
    );

    let reply = kiln
        .request(
            Method::POST,
            "/v1/functions/flow/instances?timeout=2s",
            Some(&token),
            json!({"scenario": "sleep", "sleep_ms": 60000}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let timed = reply.json()["id"].as_str().unwrap().to_owned();
    let failed = kiln.wait_status(&token, &timed, "failed", WITHIN).await;
    assert_eq!(failed["error"]["code"], "instance_timeout");

    let unstorable = kiln
        .started_instance(&token, "flow", json!({"scenario": "nul_output"}))
        .await;
    let failed = kiln.wait_status(&token, &unstorable, "failed", WITHIN).await;
    assert_eq!(failed["error"]["code"], "output_rejected", "{failed}");
    assert_eq!(
        kiln.instance(&token, &unstorable).await.json()["attempt"],
        1,
        "it was run again"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_instances_are_deleted_after_the_retention_period() {
    let (kiln, token) = kiln_with_flow(&[("KILN_INSTANCE_RETENTION", "1s")], "").await;
    let failing = kiln
        .started_instance(&token, "flow", json!({"scenario": "fail"}))
        .await;
    let living = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 60000}))
        .await;
    kiln.wait_status(&token, &failing, "failed", WITHIN).await;
    let deadline = std::time::Instant::now() + WITHIN;
    while kiln.instance(&token, &failing).await.status != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "finished instance not deleted after retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        kiln.instance(&token, &living).await.status,
        200,
        "a live instance was deleted"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_this_release_does_not_know_is_an_error_not_a_crash() {
    let (kiln, token) = kiln_with_flow(&[], "").await;
    let id = kiln
        .started_instance(&token, "flow", json!({"scenario": "sleep", "sleep_ms": 600000}))
        .await;
    kiln.wait_status(&token, &id, "sleeping", WITHIN).await;
    // What a newer node might write during a rolling upgrade.
    e2e::run_sql(
        &kiln.database_url,
        "ALTER TABLE instances DROP CONSTRAINT instances_status_check",
    )
    .await;
    e2e::run_sql(
        &kiln.database_url,
        &format!("UPDATE instances SET status = 'archived' WHERE id = '{id}'"),
    )
    .await;

    let reply = kiln.instance(&token, &id).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (500, "internal"),
        "{}",
        reply.text()
    );
    let listed = kiln
        .request(http::Method::GET, "/v1/instances", Some(&token), "")
        .await;
    assert_eq!(listed.status, 500, "{}", listed.text());
    let health = kiln.request(http::Method::GET, "/api/health", None, "").await;
    assert_eq!(health.status, 200, "kilnd still serves");
    assert!(
        kiln.log().contains("`archived`, which this Kiln does not know"),
        "{}",
        kiln.log()
    );
    kiln.finish().await;
}
