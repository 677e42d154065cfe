//! The `run` loop against a fake runtime API: outcomes, failures, panics, refusals and retirement.

mod common;

use common::{FakeRuntime, Reply, accepted, error, invocation};
use kiln_sdk::{Failure, Response, Runtime, run};

#[test]
fn run_posts_each_outcome_and_stops_when_the_container_retires() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[("Kiln-Path", "/ok")], &[], b"hi")),
        Reply::Send(accepted()),
        Reply::Send(invocation("2", &[("Kiln-Path", "/fail")], &[], b"")),
        Reply::Send(accepted()),
        Reply::Send(invocation("3", &[("Kiln-Path", "/panic")], &[], b"")),
        Reply::Send(accepted()),
        Reply::Send(invocation("4", &[("Kiln-Path", "/bad-status")], &[], b"")),
        Reply::Send(accepted()),
        Reply::Send(invocation("5", &[("Kiln-Path", "/late")], &[], b"")),
        Reply::Send(error(404, "Not Found", "unknown_invocation")),
        Reply::Send(error(503, "Service Unavailable", "container_retiring")),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut seen = Vec::new();
    run(&mut runtime, |invocation| {
        seen.push(invocation.id.clone());
        match invocation.path.as_str() {
            "/ok" => Ok(Response::text(200, invocation.body_text().to_uppercase())),
            "/fail" => Err(Failure::new("Custom", "nope")),
            "/panic" => panic!("handler bug"),
            "/bad-status" => Ok(Response::new(99)),
            _ => Err("plain message".into()),
        }
    })
    .expect("run ends cleanly on 503");
    assert_eq!(seen, ["1", "2", "3", "4", "5"]);

    let requests = fake.finish();
    let posted: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    let targets: Vec<_> = posted.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/v1/invocation/1/response",
            "/v1/invocation/2/error",
            "/v1/invocation/3/error",
            "/v1/invocation/4/error",
            "/v1/invocation/5/error",
        ]
    );
    assert_eq!(posted[0].body, b"HI");
    assert_eq!(posted[0].header("kiln-status"), Some("200"));
    assert_eq!(posted[1].body, br#"{"errorType":"Custom","errorMessage":"nope"}"#);
    assert_eq!(
        posted[2].body,
        br#"{"errorType":"Panic","errorMessage":"handler bug"}"#
    );
    assert!(String::from_utf8_lossy(&posted[3].body).starts_with(r#"{"errorType":"InvalidResponse""#));
    assert_eq!(
        posted[4].body,
        br#"{"errorType":"HandlerError","errorMessage":"plain message"}"#
    );
    assert!(
        requests.iter().all(|r| r.connection == 1),
        "one kept-alive connection throughout"
    );
}

#[test]
fn run_returns_the_error_when_the_socket_goes_away() {
    // The fake serves one invocation, then closes the connection and stops listening.
    let fake = FakeRuntime::start(vec![Reply::SendAndClose(invocation("1", &[], &[], b""))]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut calls = 0;
    let error = run(&mut runtime, |_| {
        calls += 1;
        fake.wait_until_stopped();
        Ok(Response::new(200))
    })
    .unwrap_err();
    assert!(error.to_string().contains("/v1/invocation/1/response"), "{error}");
    assert_eq!(calls, 1);
}
