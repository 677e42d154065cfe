//! The production edge against a real kilnd, real PostgreSQL and real containers:
//! metrics that move, webhook signatures, function logs, live events and the audit log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{ADMIN_TOKEN, Kiln, sample};
use http::Method;

const SECRET: &str = "a-webhook-secret-of-some-length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_invocations_cold_starts_and_rejections() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hello", "").await.status, 201);
    let before = kiln.request(Method::GET, "/metrics", None, "").await;
    assert_eq!(before.status, 200);
    assert_eq!(
        before.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let ok = r#"kiln_invocations_total{tenant="acme",function="hello",status="200"}"#;
    assert_eq!(sample(&before.text(), ok), 0.0);
    for _ in 0..3 {
        let reply = kiln
            .request(Method::POST, "/fn/acme/hello/echo", Some(&token), "hi")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let refused = kiln
        .request(Method::POST, "/fn/acme/hello/echo", Some("not-a-token"), "hi")
        .await;
    assert_eq!(refused.status, 401);
    let after = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert_eq!(sample(&after, ok), 3.0, "{after}");
    // The refused call is counted without minting labels from an unverified path.
    assert_eq!(
        sample(
            &after,
            r#"kiln_invocations_total{tenant="",function="",status="401"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"kiln_cold_starts_total{tenant="acme",function="hello"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"kiln_cold_start_duration_seconds_count{phase="container"}"#
        ),
        1.0
    );
    // Kiln's overhead is measured on warm calls only (the cold one has its own figures).
    assert_eq!(sample(&after, "kiln_invocation_overhead_seconds_count"), 2.0);
    assert_eq!(sample(&after, r#"kiln_containers{state="warm"}"#), 1.0);
    assert!(sample(&after, r#"kiln_db_pool_connections{state="size"}"#) >= 1.0);
    let upload = r#"kiln_api_requests_total{route="/v1/functions/{name}",method="PUT",status="201"}"#;
    assert_eq!(sample(&after, upload), 1.0, "{after}");
    // Made-up methods do not become label values.
    let odd = kiln
        .request(
            Method::from_bytes(b"BREW").unwrap(),
            "/v1/functions",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(odd.status, 405);
    let scraped = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert!(!scraped.contains("BREW"), "{scraped}");

    // A durable instance: start, two checkpoints, a sleep, a wake, completion.
    let input = serde_json::json!({"scenario": "replay", "sleep_ms": 1000});
    let id = kiln.started_instance(&token, "hello", input).await;
    kiln.wait_status(&token, &id, "completed", Duration::from_secs(30))
        .await;
    let durable = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert!(
        sample(&durable, r#"kiln_checkpoints_total{outcome="stored"}"#) >= 2.0,
        "{durable}"
    );
    assert_eq!(sample(&durable, r#"kiln_sleeps_total{kind="sleep"}"#), 1.0);
    assert_eq!(sample(&durable, r#"kiln_wakes_total{reason="start"}"#), 1.0);
    assert_eq!(sample(&durable, r#"kiln_wakes_total{reason="wake"}"#), 1.0);
    assert_eq!(
        sample(&durable, r#"kiln_wake_lateness_seconds_count{reason="wake"}"#),
        1.0
    );
    assert_eq!(
        sample(&durable, r#"kiln_instances_finished_total{status="completed"}"#),
        1.0
    );

    // A deleted function's series go with it; the tenant's other functions keep theirs.
    assert_eq!(kiln.upload_testbed(&token, "stays", "").await.status, 201);
    let reply = kiln
        .request(Method::POST, "/fn/acme/stays/echo", Some(&token), "hi")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deleted = kiln
        .request(Method::DELETE, "/v1/functions/hello", Some(&token), "")
        .await;
    assert_eq!(deleted.status, 204);
    let pruned = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert!(!pruned.contains(r#"function="hello""#), "{pruned}");
    assert_eq!(
        sample(
            &pruned,
            r#"kiln_invocations_total{tenant="acme",function="stays",status="200"}"#
        ),
        1.0,
        "{pruned}"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_open_a_function_to_signed_requests_only() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hook", "").await.status, 201);
    let body = r#"{"action":"opened"}"#;
    let path = "/fn/acme/hook/echo";
    // No webhook yet: a tokenless call is a missing token.
    let unsigned = kiln.request(Method::POST, path, None, body).await;
    assert_eq!(unsigned.error_code(), "missing_token");
    let settings = format!(r#"{{"scheme":"github","secret":"{SECRET}"}}"#);
    let set = kiln
        .request(Method::PUT, "/v1/functions/hook/webhook", Some(&token), settings)
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["header"], "X-Hub-Signature-256");
    assert!(!set.text().contains(SECRET), "the secret is never shown");
    let bad = kiln
        .request(
            Method::PUT,
            "/v1/functions/hook/webhook",
            Some(&token),
            r#"{"scheme":"gitlab","secret":"0123456789abcdef"}"#,
        )
        .await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "invalid_webhook"));

    let signature = format!("sha256={}", auth::sign_hex(SECRET.as_bytes(), &[body.as_bytes()]));
    let signed = kiln
        .request_with(Method::POST, path, &[("x-hub-signature-256", &signature)], body)
        .await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert_eq!(signed.text(), body, "the function sees the raw body");
    let tampered = kiln
        .request_with(
            Method::POST,
            path,
            &[("x-hub-signature-256", &signature)],
            r#"{"action":"closed"}"#,
        )
        .await;
    assert_eq!(
        (tampered.status, tampered.error_code().as_str()),
        (401, "invalid_webhook_signature")
    );
    // Without the signature the answer is the same as for any tokenless call: anonymous
    // callers cannot tell which functions take webhooks.
    let missing = kiln.request(Method::POST, path, None, body).await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (401, "missing_token")
    );
    // A signed delivery reaches the current version only.
    let pinned = kiln
        .request_with(
            Method::POST,
            "/fn/acme/hook@1/echo",
            &[("x-hub-signature-256", &signature)],
            body,
        )
        .await;
    assert_eq!(pinned.error_code(), "missing_token");
    // A bearer token still works, and a wrong one is not rescued by the webhook.
    assert_eq!(
        kiln.request(Method::POST, path, Some(&token), body).await.status,
        200
    );
    assert_eq!(
        kiln.request(Method::POST, path, Some("bad"), body).await.status,
        401
    );

    // Stripe: the timestamp is signed with the body and must be recent.
    let stripe = format!(r#"{{"scheme":"stripe","secret":"{SECRET}","tolerance_s":60}}"#);
    assert_eq!(
        kiln.request(Method::PUT, "/v1/functions/hook/webhook", Some(&token), stripe)
            .await
            .status,
        200
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let stripe_header = |at: u64| {
        let hex = auth::sign_hex(SECRET.as_bytes(), &[format!("{at}.").as_bytes(), body.as_bytes()]);
        format!("t={at},v1={hex}")
    };
    let fresh = kiln
        .request_with(
            Method::POST,
            path,
            &[("stripe-signature", &stripe_header(now))],
            body,
        )
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let stale = kiln
        .request_with(
            Method::POST,
            path,
            &[("stripe-signature", &stripe_header(now - 600))],
            body,
        )
        .await;
    assert_eq!(stale.error_code(), "signature_expired");
    let old_github = kiln
        .request_with(Method::POST, path, &[("x-hub-signature-256", &signature)], body)
        .await;
    assert_eq!(old_github.error_code(), "missing_token");

    let deleted = kiln
        .request(Method::DELETE, "/v1/functions/hook/webhook", Some(&token), "")
        .await;
    assert_eq!(deleted.status, 204);
    let gone = kiln
        .request(Method::GET, "/v1/functions/hook/webhook", Some(&token), "")
        .await;
    assert_eq!(gone.error_code(), "webhook_not_found");
    let after = kiln
        .request_with(
            Method::POST,
            path,
            &[("stripe-signature", &stripe_header(now))],
            body,
        )
        .await;
    assert_eq!(after.error_code(), "missing_token");
    // Another tenant's token cannot read or change this tenant's webhook.
    let other = kiln.create_tenant("other").await;
    let foreign = kiln
        .request(Method::GET, "/v1/functions/hook/webhook", Some(&other), "")
        .await;
    assert_eq!(foreign.error_code(), "webhook_not_found");
    let missing_function = kiln
        .request(
            Method::PUT,
            "/v1/functions/nope/webhook",
            Some(&token),
            format!(r#"{{"scheme":"github","secret":"{SECRET}"}}"#),
        )
        .await;
    assert_eq!(missing_function.error_code(), "function_not_found");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_output_is_kept_per_invocation_bounded_and_followed() {
    let kiln = Kiln::start(&[("KILN_LOG_FILE_BYTES", "8192")]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "chatty", "").await.status, 201);
    let logged = kiln
        .request(
            Method::GET,
            "/fn/acme/chatty/log?lines=3&tag=first",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(logged.text(), "logged 3");
    // Output travels through a pipe: wait until all four lines are in.
    let mut lines = Vec::new();
    for _ in 0..50 {
        let reply = kiln
            .request(Method::GET, "/v1/functions/chatty/logs", Some(&token), "")
            .await;
        assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
        lines = reply
            .text()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .collect();
        if lines.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    let texts: Vec<&str> = lines.iter().map(|line| line["line"].as_str().unwrap()).collect();
    assert!(
        texts.contains(&"first out 2") && texts.contains(&"first err"),
        "{texts:?}"
    );
    let stderr = lines.iter().find(|line| line["line"] == "first err").unwrap();
    assert_eq!(stderr["stream"], "stderr");
    let invocation = lines[0]["invocation"]
        .as_str()
        .expect("attributed to its invocation")
        .to_owned();

    // Follow: stored lines first, then new ones as the function writes them.
    let mut follow = kiln
        .stream("/v1/functions/chatty/logs?follow=1&lines=1", &token)
        .await;
    assert_eq!(follow.status, 200);
    let second = kiln
        .request(
            Method::GET,
            "/fn/acme/chatty/log?lines=2&tag=second",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(second.status, 200);
    follow.read_until("second out 1", Duration::from_secs(10)).await;
    let filtered = kiln
        .request(
            Method::GET,
            &format!("/v1/functions/chatty/logs?invocation={invocation}"),
            Some(&token),
            "",
        )
        .await;
    assert_eq!(filtered.text().lines().count(), 4, "{}", filtered.text());

    // A chatty function cannot grow its logs past twice the file limit.
    let flood = kiln
        .request(
            Method::GET,
            "/fn/acme/chatty/log?lines=3000&tag=flood",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(flood.status, 200);
    // The flood's last stdout line has reached the log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tail = kiln
            .request(Method::GET, "/v1/functions/chatty/logs?lines=5", Some(&token), "")
            .await;
        if tail.text().contains("flood out 2999") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never reached the log: {}",
            tail.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let folder = kiln.data_dir.join("logs/acme");
    let total: u64 = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 2 * 8192, "{total} bytes of logs");
    let bad = kiln
        .request(Method::GET, "/v1/functions/chatty/logs?lines=0", Some(&token), "")
        .await;
    assert_eq!(bad.error_code(), "invalid_limit");
    let missing = kiln
        .request(Method::GET, "/v1/functions/nope/logs", Some(&token), "")
        .await;
    assert_eq!(missing.error_code(), "function_not_found");
    assert_eq!(
        kiln.request(Method::DELETE, "/v1/functions/chatty", Some(&token), "")
            .await
            .status,
        204
    );
    assert!(
        std::fs::read_dir(&folder).unwrap().next().is_none(),
        "a deleted function's logs go with it"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_only_their_tenant() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    let other = kiln.create_tenant("other").await;
    assert_eq!(kiln.upload_testbed(&acme, "hello", "").await.status, 201);
    assert_eq!(kiln.upload_testbed(&other, "secret-fn", "").await.status, 201);
    // Finished before anyone listened: history, never sent as news.
    let old = kiln
        .started_instance(
            &acme,
            "hello",
            serde_json::json!({"scenario": "replay", "sleep_ms": 1}),
        )
        .await;
    kiln.wait_status(&acme, &old, "completed", Duration::from_secs(30))
        .await;
    let mut events = kiln.stream("/v1/events", &acme).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.headers.get("content-type").unwrap(), "text/event-stream");
    events.read_until(": connected", Duration::from_secs(5)).await;
    // At once after connecting: an idle poller must still start from this point.
    let started = kiln
        .request(
            Method::POST,
            "/v1/functions/hello/instances",
            Some(&acme),
            r#"{"scenario":"quick"}"#,
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text());
    events
        .read_until("event: instance", Duration::from_secs(10))
        .await;
    events
        .read_until(r#""kind":"created""#, Duration::from_secs(10))
        .await;
    assert_eq!(
        kiln.request(Method::POST, "/fn/other/secret-fn/echo", Some(&other), "x")
            .await
            .status,
        200
    );
    assert_eq!(
        kiln.request(Method::POST, "/fn/acme/hello/echo", Some(&acme), "x")
            .await
            .status,
        200
    );
    events
        .read_until("event: invocation\ndata: {", Duration::from_secs(10))
        .await;
    // Its data (keys in order) names the function; an instance event's has `instance` next.
    events
        .read_until(r#""function":"hello","status":200"#, Duration::from_secs(10))
        .await;
    assert!(!events.received.contains("secret-fn"), "{}", events.received);
    assert!(!events.received.contains(&old), "{}", events.received);
    let refused = kiln.request(Method::GET, "/v1/events", Some("bad"), "").await;
    assert_eq!(refused.status, 401);
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_actions_are_audited_per_tenant() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    let other = kiln.create_tenant("other").await;
    assert_eq!(kiln.upload_testbed(&acme, "hello", "").await.status, 201);
    assert_eq!(kiln.upload_testbed(&other, "theirs", "").await.status, 201);
    assert_eq!(
        kiln.request(Method::DELETE, "/v1/functions/hello", Some(&acme), "")
            .await
            .status,
        204
    );
    let key = r#"{"kid":"k2","algorithm":"HS256","secret":"another-secret-that-is-long-enough-for-hs256"}"#;
    assert_eq!(
        kiln.request(
            Method::POST,
            "/v1/admin/tenants/acme/keys",
            Some(ADMIN_TOKEN),
            key
        )
        .await
        .status,
        201
    );

    let own = kiln.request(Method::GET, "/v1/audit", Some(&acme), "").await;
    assert_eq!(own.status, 200, "{}", own.text());
    let entries = own.json()["entries"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.key_add",
            "function.delete",
            "function.upload",
            "tenant.create"
        ]
    );
    assert_eq!(entries[1]["actor"], "tenant:acme/acme-cli");
    assert_eq!(entries[1]["target"], "hello");
    assert_eq!(entries[0]["actor"], "admin");
    assert!(
        !own.text().contains("theirs"),
        "a tenant sees only its own entries"
    );

    let page = kiln
        .request(Method::GET, "/v1/audit?limit=3", Some(&acme), "")
        .await
        .json();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = kiln
        .request(
            Method::GET,
            &format!("/v1/audit?limit=3&cursor={cursor}"),
            Some(&acme),
            "",
        )
        .await
        .json();
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    let all = kiln
        .request(Method::GET, "/v1/admin/audit?tenant=other", Some(ADMIN_TOKEN), "")
        .await
        .json();
    let theirs: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(theirs, ["function.upload", "tenant.create"]);
    let bad = kiln
        .request(Method::GET, "/v1/audit?tenant=other", Some(&acme), "")
        .await;
    assert_eq!(bad.error_code(), "invalid_query");
    assert_eq!(
        kiln.request(Method::GET, "/v1/admin/audit", Some(&acme), "")
            .await
            .status,
        401
    );
    kiln.finish().await;
}
