//! Streamed responses through kilnd into a real container: chunks reach the caller as the
//! function writes them, a function's own event stream passes through, a caller that leaves
//! or a function that fails mid-stream leaves a container that serves on, and a stream that
//! goes quiet, runs too long or loses its function is cut (the caller sees the cut) and its
//! container replaced.

use std::time::{Duration, Instant};

use e2e::{Kiln, Streaming, sample};
use http::Method;

/// The warm process behind `function`.
async fn instance(kiln: &Kiln, token: &str, function: &str) -> String {
    let reply = kiln
        .request(
            Method::GET,
            &format!("/fn/acme/{function}/instance"),
            Some(token),
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

/// Waits until `series` in `/metrics` reaches `wanted`.
async fn wait_for_sample(kiln: &Kiln, series: &str, wanted: f64) {
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = kiln.request(Method::GET, "/metrics", None, "").await.text();
        if sample(&metrics, series) >= wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} did not reach {wanted}:\n{metrics}");
}

/// Reads a stream to its end: when each line arrived, and whether it ended cleanly.
async fn read_lines(stream: &mut Streaming) -> (Vec<Instant>, Result<(), String>) {
    let mut arrivals = Vec::new();
    loop {
        match stream.next_data(Duration::from_secs(10)).await {
            Some(Ok(data)) => {
                let lines = data.iter().filter(|&&byte| byte == b'\n').count();
                arrivals.extend(std::iter::repeat_n(Instant::now(), lines));
            }
            Some(Err(error)) => return (arrivals, Err(error)),
            None => return (arrivals, Ok(())),
        }
    }
}

#[tokio::test]
async fn chunks_arrive_as_written_and_the_container_serves_on_after_a_caller_leaves() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "streamer", "").await.status, 201);
    let warm = instance(&kiln, &token, "streamer").await;

    // Server-sent events of the function's own, 400 ms apart.
    let mut events = kiln
        .stream("/fn/acme/streamer/stream?chunks=3&interval_ms=400&sse=1", &token)
        .await;
    assert_eq!(events.status, 200);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    assert_eq!(events.headers["x-accel-buffering"], "no");
    let (arrivals, ended) = read_lines(&mut events).await;
    assert_eq!(ended, Ok(()));
    // Two lines per event (`data: ...`, then the empty line).
    assert_eq!(arrivals.len(), 6, "{}", events.received);
    assert_eq!(events.received.matches("data: ").count(), 3);
    let spread = arrivals[5] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(700),
        "the events arrived together ({spread:?} apart): the stream was buffered"
    );
    assert_eq!(
        instance(&kiln, &token, "streamer").await,
        warm,
        "a completed stream keeps its container"
    );

    // The caller leaves a long stream after its first chunks.
    let mut endless = kiln
        .stream("/fn/acme/streamer/stream?chunks=100000&interval_ms=5", &token)
        .await;
    for _ in 0..3 {
        assert!(matches!(
            endless.next_data(Duration::from_secs(5)).await,
            Some(Ok(_))
        ));
    }
    drop(endless);
    wait_for_sample(
        &kiln,
        "kiln_streamed_responses_total{outcome=\"caller_gone\"}",
        1.0,
    )
    .await;
    assert_eq!(
        instance(&kiln, &token, "streamer").await,
        warm,
        "the function noticed its caller left and serves on"
    );
    let logs = kiln
        .request(Method::GET, "/v1/functions/streamer/logs", Some(&token), "")
        .await
        .text();
    assert!(
        logs.contains("/stream write"),
        "the failed write was not logged: {logs}"
    );

    // The function fails after its chunks: the caller's body is cut, the container kept.
    let mut failing = kiln
        .stream("/fn/acme/streamer/stream?chunks=2&end=fail", &token)
        .await;
    let (arrivals, ended) = read_lines(&mut failing).await;
    assert_eq!(arrivals.len(), 2);
    assert!(ended.is_err(), "a failed stream looked whole to the caller");
    wait_for_sample(
        &kiln,
        "kiln_streamed_responses_total{outcome=\"function_error\"}",
        1.0,
    )
    .await;
    assert_eq!(instance(&kiln, &token, "streamer").await, warm);
    kiln.finish().await;
}

#[tokio::test]
async fn a_stream_that_goes_quiet_runs_too_long_or_loses_its_function_is_cut() {
    let kiln = Kiln::start(&[
        ("KILN_STREAM_IDLE_TIMEOUT_MS", "500"),
        ("KILN_STREAM_MAX_DURATION_MS", "2000"),
    ])
    .await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "streamer", "").await.status, 201);
    let cases = [
        ("chunks=1&end=hang", "idle_timeout"),
        // Never idle for 500 ms, but 5 s in all.
        ("chunks=50&interval_ms=100", "too_long"),
        // Crashes 200 ms after its first chunk: had it crashed at once, hyper might cut the
        // connection before the head went out, and the caller would see no response at all.
        ("chunks=2&interval_ms=200&end=crash", "function_gone"),
    ];
    for (query, outcome) in cases {
        let before = instance(&kiln, &token, "streamer").await;
        let started = Instant::now();
        let mut stream = kiln
            .stream(&format!("/fn/acme/streamer/stream?{query}"), &token)
            .await;
        assert_eq!(stream.status, 200);
        let (arrivals, ended) = read_lines(&mut stream).await;
        assert!(!arrivals.is_empty(), "{query}: the first chunk did not arrive");
        assert!(ended.is_err(), "{query}: a cut stream looked whole to the caller");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{query}: cut after {:?}",
            started.elapsed()
        );
        wait_for_sample(
            &kiln,
            &format!("kiln_streamed_responses_total{{outcome=\"{outcome}\"}}"),
            1.0,
        )
        .await;
        assert_ne!(
            instance(&kiln, &token, "streamer").await,
            before,
            "{query}: the container of a cut stream was kept"
        );
    }
    kiln.finish().await;
}
