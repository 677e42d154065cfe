//! Upload and invoke through a real kilnd: round trips, warm reuse, crashes, timeouts, limits.

use std::time::Duration;

use bytes::Bytes;
use e2e::Kiln;
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_invoke_round_trips_and_reuses_the_warm_container() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    let upload = kiln.upload_testbed(&token, "echo", "memory_mb=64").await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    assert_eq!(upload.json()["version"], 1);

    let headers = [
        ("authorization", &*format!("Bearer {token}")),
        ("x-trace", "abc-123"),
        ("content-type", "text/plain"),
    ];
    let reply = kiln
        .request_with(
            Method::POST,
            "/fn/acme/echo/echo/deep/path?a=1&b=two",
            &headers,
            "hello body",
        )
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), kiln.log());
    assert_eq!(reply.text(), "hello body");
    assert_eq!(reply.header("x-method"), Some("POST"));
    assert_eq!(reply.header("x-path"), Some("/echo/deep/path"));
    assert_eq!(reply.header("x-query"), Some("a=1&b=two"));
    assert_eq!(reply.header("x-trace"), Some("abc-123"));

    let first_call = kiln
        .request(Method::GET, "/fn/acme/echo/instance", Some(&token), Bytes::new())
        .await;
    let second_call = kiln
        .request(Method::GET, "/fn/acme/echo/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(first_call.status, 200);
    assert_eq!(
        first_call.text(),
        second_call.text(),
        "a second call should reach the same warm process"
    );
    let containers = kiln.containers().await;
    assert_eq!(containers["cold_starts_total"], 1, "{containers}");
    assert_eq!(containers["warm_starts_total"], 2, "{containers}");
    assert_eq!(containers["warm"], 1, "{containers}");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_gives_502_and_the_next_call_succeeds() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "fragile", "").await.status, 201);
    let crash = kiln
        .request(Method::POST, "/fn/acme/fragile/crash", Some(&token), Bytes::new())
        .await;
    assert_eq!(crash.status, 502, "{}", crash.text());
    assert_eq!(crash.error_code(), "function_crashed");
    let next = kiln
        .request(Method::POST, "/fn/acme/fragile/echo", Some(&token), "again")
        .await;
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.text(), "again");
    let reported = kiln
        .request(Method::POST, "/fn/acme/fragile/fail", Some(&token), Bytes::new())
        .await;
    assert_eq!(reported.status, 502);
    assert_eq!(reported.error_code(), "function_error");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_gives_504_and_its_container_is_killed() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.upload_testbed(&token, "slow", "timeout_ms=1500")
            .await
            .status,
        201
    );
    let warm_up = kiln
        .request(Method::GET, "/fn/acme/slow/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(warm_up.status, 200);
    let started = std::time::Instant::now();
    let slow = kiln
        .request(
            Method::GET,
            "/fn/acme/slow/sleep?ms=5000",
            Some(&token),
            Bytes::new(),
        )
        .await;
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(slow.error_code(), "function_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timeout took {:?}",
        started.elapsed()
    );
    let containers = kiln.containers().await;
    assert_eq!(
        containers["warm"], 0,
        "the timed-out container must be gone: {containers}"
    );
    assert_eq!(containers["busy"], 0, "{containers}");
    let after = kiln
        .request(Method::GET, "/fn/acme/slow/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(after.status, 200);
    assert_ne!(
        after.text(),
        warm_up.text(),
        "a fresh container should serve after a timeout"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_concurrency_gets_429_with_retry_after() {
    let kiln = Kiln::start(&[("KILN_QUEUE_LIMIT", "0")]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.upload_testbed(&token, "single", "max_concurrency=1")
            .await
            .status,
        201
    );
    let busy = kiln.request(
        Method::GET,
        "/fn/acme/single/sleep?ms=1500",
        Some(&token),
        Bytes::new(),
    );
    let second = async {
        kiln.wait_busy(1, Duration::from_secs(10)).await;
        kiln.request(
            Method::GET,
            "/fn/acme/single/instance",
            Some(&token),
            Bytes::new(),
        )
        .await
    };
    let (busy, second) = tokio::join!(busy, second);
    assert_eq!(busy.status, 200, "{}", busy.text());
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.error_code(), "function_busy");
    assert!(second.header("retry-after").is_some());
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_unknown_routes_get_clear_errors() {
    let kiln = Kiln::start(&[("KILN_MAX_BODY_BYTES", "2048")]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    let big = kiln
        .request(Method::POST, "/fn/acme/echo/echo", Some(&token), vec![b'x'; 4096])
        .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.error_code(), "body_too_large");
    let unknown = kiln.request(Method::GET, "/nowhere", None, Bytes::new()).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "not_found");
    let missing = kiln
        .request(Method::GET, "/fn/acme/ghost/", Some(&token), Bytes::new())
        .await;
    assert_eq!(missing.status, 404);
    let health = kiln.request(Method::GET, "/api/health", None, Bytes::new()).await;
    assert_eq!(health.json()["status"], "ok");
    let detailed = kiln
        .request(Method::GET, "/api/health/detailed", None, Bytes::new())
        .await;
    assert_eq!(detailed.status, 200);
    assert_eq!(detailed.json()["database"]["reachable"], true);
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_isolated_from_the_host_and_from_the_callers_token() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "probe", "").await.status, 201);
    let write = |path: &str| format!("/fn/acme/probe/write?path={path}");
    let runtime_dir = kiln
        .request(
            Method::GET,
            &write("/run/kiln/filler"),
            Some(&token),
            Bytes::new(),
        )
        .await
        .text();
    assert!(
        runtime_dir.starts_with("denied"),
        "the runtime folder must be read-only: {runtime_dir}"
    );
    let root = kiln
        .request(Method::GET, &write("/filler"), Some(&token), Bytes::new())
        .await
        .text();
    assert!(
        root.starts_with("denied"),
        "the root file system must be read-only: {root}"
    );
    let scratch = kiln
        .request(Method::GET, &write("/tmp/scratch"), Some(&token), Bytes::new())
        .await
        .text();
    assert_eq!(scratch, "written", "/tmp is the function's scratch space");

    let echo = kiln
        .request(Method::GET, "/fn/acme/probe/echo", Some(&token), Bytes::new())
        .await;
    assert_eq!(
        echo.header("x-saw-authorization"),
        Some("no"),
        "the Kiln token must not reach the function"
    );

    let network = kiln.upload_testbed(&token, "online", "network=true").await;
    assert_eq!(
        (network.status, network.error_code().as_str()),
        (400, "invalid_setting"),
        "{}",
        network.text()
    );
    assert!(network.text().contains("KILN_ALLOW_HOST_NETWORK"));
    kiln.finish().await;
}
