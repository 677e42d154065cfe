//! `Runtime` against a fake runtime API: what the client parses and what it sends.

mod common;

use std::io;

use common::{FakeRuntime, Reply, accepted, error, invocation};
use kiln_sdk::{ApiError, Response, Runtime};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

#[test]
fn next_parses_the_invocation_and_respond_posts_the_response() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation(
            "7",
            &[
                ("Kiln-Method", "POST"),
                ("Kiln-Path", "/orders/a%2Fb"),
                ("Kiln-Query", "dry_run=1&note=two+words"),
                ("Kiln-Deadline-Ms", "1795305600000"),
            ],
            &[
                ("content-type", "application/json"),
                ("x-tag", "one"),
                ("accept", "*/*"),
                ("X-Tag", "two"),
            ],
            b"{\"order\": 42}\r\n\xff",
        )),
        Reply::Send(accepted()),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();

    let got = runtime.next().unwrap();
    assert_eq!(got.id, "7");
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/orders/a%2Fb");
    assert_eq!(got.query.as_deref(), Some("dry_run=1&note=two+words"));
    assert_eq!(got.query_param("note").as_deref(), Some("two words"));
    assert_eq!(got.deadline_ms, 1_795_305_600_000);
    assert_eq!(
        got.headers,
        pairs(&[
            ("content-type", "application/json"),
            ("x-tag", "one"),
            ("accept", "*/*"),
            ("X-Tag", "two"),
            ("date", "Sat, 22 Nov 2025 00:00:00 GMT"),
        ])
    );
    assert_eq!(got.header("X-TAG"), Some("one"));
    assert_eq!(got.body, b"{\"order\": 42}\r\n\xff");

    let response = Response::json(201, r#"{"ok":true}"#)
        .header("x-a", "1")
        .header("x-a", "2")
        .header("Content-Length", "999")
        .header("kiln-status", "500");
    runtime.respond(&got.id, response).unwrap();

    let requests = fake.finish();
    assert_eq!(requests.len(), 2);
    let next = &requests[0];
    assert_eq!(
        (next.method.as_str(), next.target.as_str()),
        ("GET", "/v1/invocation/next")
    );
    assert_eq!(next.headers, pairs(&[("Host", "kiln")]));
    assert!(next.body.is_empty());

    let posted = &requests[1];
    assert_eq!(
        (posted.method.as_str(), posted.target.as_str()),
        ("POST", "/v1/invocation/7/response")
    );
    assert_eq!(
        posted.headers,
        pairs(&[
            ("Host", "kiln"),
            ("Kiln-Status", "201"),
            ("content-type", "application/json"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("Content-Length", "11"),
        ])
    );
    assert_eq!(posted.body, br#"{"ok":true}"#);
    assert_eq!(
        (next.connection, posted.connection),
        (1, 1),
        "keep-alive: one connection for both"
    );
}

#[test]
fn fail_posts_an_error_report() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("abc/9", &[], &[], b"")),
        Reply::Send(accepted()),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let got = runtime.next().unwrap();
    runtime.fail(&got.id, "TestFailure", "it \"broke\"\n").unwrap();

    let requests = fake.finish();
    let posted = &requests[1];
    assert_eq!(posted.target, "/v1/invocation/abc%2F9/error");
    assert_eq!(posted.header("content-type"), Some("application/json"));
    assert_eq!(
        posted.body,
        br#"{"errorType":"TestFailure","errorMessage":"it \"broke\"\n"}"#
    );
}

#[test]
fn reconnects_once_when_the_kept_connection_was_closed() {
    let fake = FakeRuntime::start(vec![
        Reply::SendAndClose(invocation("1", &[], &[], b"first")),
        Reply::Send(accepted()),
        Reply::Send(invocation("2", &[], &[], b"second")),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    assert_eq!(runtime.next().unwrap().body, b"first");
    runtime.respond("1", Response::new(200)).unwrap();
    assert_eq!(runtime.next().unwrap().body, b"second");

    let requests = fake.finish();
    let connections: Vec<_> = requests
        .iter()
        .map(|r| (r.connection, r.target.as_str()))
        .collect();
    assert_eq!(
        connections,
        [
            (1, "/v1/invocation/next"),
            (2, "/v1/invocation/1/response"),
            (2, "/v1/invocation/next")
        ]
    );
}

#[test]
fn connection_close_is_honoured() {
    let close = b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec();
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[], &[], b"")),
        Reply::Send(close),
        Reply::Send(invocation("2", &[], &[], b"")),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    runtime.next().unwrap();
    runtime.respond("1", Response::new(204)).unwrap();
    assert_eq!(runtime.next().unwrap().id, "2");
    let connections: Vec<_> = fake.finish().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [1, 1, 2]);
}

#[test]
fn a_fresh_connection_failing_is_an_error_not_a_retry_loop() {
    // The fake answers one request, then closes and stops listening.
    let fake = FakeRuntime::start(vec![Reply::SendAndClose(invocation("1", &[], &[], b""))]);
    let socket = fake.socket.clone();
    let mut runtime = Runtime::connect(&socket).unwrap();
    runtime.next().unwrap();
    fake.finish();
    let error = runtime.respond("1", Response::new(200)).unwrap_err();
    assert!(error.to_string().contains("/v1/invocation/1/response"), "{error}");
}

#[test]
fn chunked_invocation_bodies_are_decoded() {
    let raw = b"HTTP/1.1 200 OK\r\nKiln-Invocation-Id: 5\r\nTransfer-Encoding: chunked\r\nx-a: b\r\n\r\n\
        4\r\nchun\r\n3;ext=1\r\nked\r\n0\r\n\r\n"
        .to_vec();
    let fake = FakeRuntime::start(vec![Reply::Send(raw), Reply::Send(accepted())]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let got = runtime.next().unwrap();
    assert_eq!(got.body, b"chunked");
    assert_eq!(got.headers, pairs(&[("x-a", "b")]));
    // The connection stays usable after a chunked message.
    runtime.respond("5", Response::new(200)).unwrap();
    let connections: Vec<_> = fake.finish().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [1, 1]);
}

#[test]
fn refusals_become_api_errors() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[], &[], b"")),
        Reply::Send(error(404, "Not Found", "unknown_invocation")),
        Reply::Send(error(503, "Service Unavailable", "container_retiring")),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    runtime.next().unwrap();
    let refused = runtime.respond("1", Response::new(200)).unwrap_err();
    let api = ApiError::of(&refused).expect("an ApiError");
    assert_eq!(api.status, 404);
    assert!(api.body.contains("unknown_invocation"));
    let retiring = runtime.next().unwrap_err();
    assert_eq!(ApiError::of(&retiring).map(|api| api.status), Some(503));
    fake.finish();
}

#[test]
fn unsendable_responses_fail_before_sending() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[], &[], b"")),
        Reply::Send(accepted()),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    runtime.next().unwrap();
    for bad in [
        Response::new(199),
        Response::new(600),
        Response::new(200).header("bad name", "x"),
        Response::new(200).header("x-a", "line\r\nInjected: yes"),
    ] {
        let error = runtime.respond("1", bad).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    }
    runtime.respond("1", Response::new(599)).unwrap();
    let requests = fake.finish();
    assert_eq!(requests.len(), 2, "only the valid response was sent");
    assert_eq!(requests[1].header("kiln-status"), Some("599"));
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    let fake = FakeRuntime::start(vec![Reply::SendAndClose(
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n".to_vec(),
    )]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let error = runtime.next().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    fake.finish();

    let fake = FakeRuntime::start(vec![Reply::Send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
    )]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let error = runtime.next().unwrap_err();
    assert!(error.to_string().contains("Kiln-Invocation-Id"), "{error}");
    fake.finish();
}

#[test]
fn large_bodies_round_trip() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[], &[], &big)),
        Reply::Send(accepted()),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let got = runtime.next().unwrap();
    assert_eq!(got.body, big);
    runtime
        .respond("1", Response::new(200).body(got.body.clone()))
        .unwrap();
    let requests = fake.finish();
    assert_eq!(requests[1].body, big);
}

#[test]
fn connect_reports_a_missing_socket() {
    let error = Runtime::connect("/nonexistent/kiln/runtime.sock").unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/kiln/runtime.sock"),
        "{error}"
    );
}
