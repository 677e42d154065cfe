//! Durable dispatches against a fake runtime API: replayed and new checkpoints, sleeps, waits,
//! refusals, and what the loop posts (or does not post) for each outcome.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{FakeRuntime, Recorded, Reply, accepted, dispatch, error, invocation, json_reply};
use kiln_sdk::{Failure, Interrupt, Response, Runtime, run, run_all, run_durable};
use serde_json::{Value, json};

/// Kiln's answer to `next` once the container is retiring: ends `run*` with `Ok`.
fn retiring() -> Reply {
    Reply::Send(error(503, "Service Unavailable", "container_retiring"))
}

fn ok_value(value: Value) -> Reply {
    Reply::Send(json_reply(200, "OK", &json!({"value": value}).to_string()))
}

fn suspended(wake_at_ms: u64) -> Reply {
    Reply::Send(json_reply(
        202,
        "Accepted",
        &json!({"suspended": true, "wake_at_ms": wake_at_ms}).to_string(),
    ))
}

/// Method and target of every request, in order.
fn calls(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|request| format!("{} {}", request.method, request.target))
        .collect()
}

fn json_of(request: &Recorded) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn a_stored_checkpoint_is_not_rerun_and_a_new_one_returns_what_kiln_stored() {
    let body = json!({"input": {"order": 42}, "checkpoints": {"a": "stored-a"}}).to_string();
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("7", "inst-1", 2, &body)),
        // Another dispatch stored "b" first: its value wins.
        ok_value(json!("theirs")),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut ran = Vec::new();
    let mut seen = None;
    run_durable(&mut runtime, |instance| {
        seen = Some((
            instance.id().to_owned(),
            instance.attempt(),
            instance.input().clone(),
        ));
        let a: String = instance.checkpoint("a", || {
            ran.push("a");
            Ok("new-a".to_owned())
        })?;
        let b: String = instance.checkpoint("b", || {
            ran.push("b");
            Ok("mine".to_owned())
        })?;
        // Known now: no second call.
        let again: String = instance.checkpoint("b", || {
            ran.push("b again");
            Ok("other".to_owned())
        })?;
        assert_eq!(instance.stored("b"), Some(&json!("theirs")));
        Ok(json!({"a": a, "b": b, "again": again}))
    })
    .unwrap();
    assert_eq!(ran, ["b"], "only the step without a stored result ran");
    assert_eq!(seen, Some(("inst-1".to_owned(), 2, json!({"order": 42}))));

    let requests = fake.finish();
    assert_eq!(
        calls(&requests),
        [
            "GET /v1/invocation/next",
            "POST /v1/invocation/7/checkpoint",
            "POST /v1/invocation/7/response",
            "GET /v1/invocation/next",
        ]
    );
    assert_eq!(json_of(&requests[1]), json!({"key": "b", "value": "mine"}));
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    assert_eq!(
        json_of(&requests[2]),
        json!({"a": "stored-a", "b": "theirs", "again": "theirs"})
    );
    assert_eq!(requests[2].header("content-type"), Some("application/json"));
}

#[test]
fn a_sleep_answered_202_suspends_and_one_answered_200_carries_on() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch(
            "1",
            "inst-1",
            1,
            r#"{"input": null, "checkpoints": {}}"#,
        )),
        suspended(now_ms() + 1500),
        Reply::Send(dispatch("2", "inst-2", 1, r#"{"input": null}"#)),
        ok_value(json!({"wake_at_ms": 5})),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut results = Vec::new();
    run_durable(&mut runtime, |instance| {
        let slept = instance.sleep("nap", Duration::from_millis(1500));
        results.push(slept.clone());
        slept?;
        Ok(json!({"stored": instance.stored("nap")}))
    })
    .unwrap();
    assert_eq!(results, [Err(Interrupt::Suspended), Ok(())]);

    let requests = fake.finish();
    assert_eq!(
        calls(&requests),
        [
            "GET /v1/invocation/next",
            "POST /v1/invocation/1/sleep",
            // Suspended: nothing posted, straight to the next invocation.
            "GET /v1/invocation/next",
            "POST /v1/invocation/2/sleep",
            "POST /v1/invocation/2/response",
            "GET /v1/invocation/next",
        ]
    );
    assert_eq!(json_of(&requests[1]), json!({"key": "nap", "duration_ms": 1500}));
    assert_eq!(json_of(&requests[4]), json!({"stored": {"wake_at_ms": 5}}));
}

#[test]
fn a_stored_sleep_in_the_past_makes_no_call_and_one_in_the_future_asks_kiln() {
    let later = now_ms() + 60_000;
    let body = json!({
        "input": {},
        "checkpoints": {"nap": {"wake_at_ms": 1000}, "later": {"wake_at_ms": later}},
    })
    .to_string();
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 2, &body)),
        suspended(later),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut results = Vec::new();
    run_durable(&mut runtime, |instance| {
        results.push(instance.sleep("nap", Duration::from_secs(3600)));
        let at = UNIX_EPOCH + Duration::from_millis(later + 5);
        results.push(instance.sleep_until("later", at));
        Err(Interrupt::Suspended)
    })
    .unwrap();
    assert_eq!(results, [Ok(()), Err(Interrupt::Suspended)]);

    let requests = fake.finish();
    assert_eq!(
        calls(&requests),
        [
            "GET /v1/invocation/next",
            "POST /v1/invocation/1/sleep",
            "GET /v1/invocation/next",
        ],
        "the past sleep made no call"
    );
    assert_eq!(
        json_of(&requests[1]),
        json!({"key": "later", "wake_at_ms": later + 5})
    );
}

#[test]
fn waits_are_keyed_by_event_name_and_count() {
    let body = json!({
        "input": null,
        "checkpoints": {"event:approved:1": {"event": "approved", "payload": {"by": "ana"}}},
    })
    .to_string();
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 3, &body)),
        ok_value(json!({"timed_out": true})),
        ok_value(json!({"event": "other", "payload": 7})),
        suspended(now_ms() + 60_000),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut results = Vec::new();
    run_durable(&mut runtime, |instance| {
        let minute = Duration::from_secs(60);
        results.push(instance.wait_for_event("approved", minute));
        results.push(instance.wait_for_event("approved", minute));
        results.push(instance.wait_for_event("other", Duration::from_millis(1500)));
        results.push(instance.wait_for_event("approved", minute));
        Err(Interrupt::Suspended)
    })
    .unwrap();
    assert_eq!(
        results,
        [
            Ok(Some(json!({"by": "ana"}))),
            Ok(None),
            Ok(Some(json!(7))),
            Err(Interrupt::Suspended),
        ]
    );

    let requests = fake.finish();
    let waits: Vec<Value> = requests
        .iter()
        .filter(|request| request.target == "/v1/invocation/1/wait")
        .map(json_of)
        .collect();
    assert_eq!(
        waits,
        [
            json!({"key": "event:approved:2", "event": "approved", "timeout_ms": 60000}),
            json!({"key": "event:other:1", "event": "other", "timeout_ms": 1500}),
            json!({"key": "event:approved:3", "event": "approved", "timeout_ms": 60000}),
        ],
        "the first wait for `approved` was stored and made no call"
    );
    assert_eq!(requests.len(), 5, "nothing posted after the suspension");
}

#[test]
fn fenced_and_stopped_dispatches_post_nothing_and_other_refusals_fail_the_instance() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 1, "{}")),
        Reply::Send(error(409, "Conflict", "instance_fenced")),
        Reply::Send(dispatch("2", "inst-1", 2, "{}")),
        Reply::Send(json_reply(
            413,
            "Payload Too Large",
            r#"{"error":{"code":"value_too_large","message":"limited to 2048 bytes"}}"#,
        )),
        Reply::Send(dispatch("3", "inst-1", 3, "{}")),
        Reply::Send(error(400, "Bad Request", "bad_request")),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut results = Vec::new();
    run_durable(&mut runtime, |instance| {
        let stored = instance.checkpoint("a", || Ok(1));
        results.push(stored.clone());
        stored?;
        Ok(json!("unreachable"))
    })
    .unwrap();
    assert_eq!(results[0], Err(Interrupt::Fenced));
    assert_eq!(
        results[1],
        Err(Interrupt::Stopped(
            "value_too_large: limited to 2048 bytes".into()
        ))
    );
    let Err(Interrupt::Failed(failure)) = &results[2] else {
        panic!("a 400 did not fail the dispatch: {:?}", results[2]);
    };
    assert_eq!(failure.error_type, "RuntimeApiError");
    assert!(failure.message.contains("400"), "{failure}");

    let requests = fake.finish();
    assert_eq!(
        calls(&requests),
        [
            "GET /v1/invocation/next",
            "POST /v1/invocation/1/checkpoint",
            "GET /v1/invocation/next",
            "POST /v1/invocation/2/checkpoint",
            "GET /v1/invocation/next",
            "POST /v1/invocation/3/checkpoint",
            "POST /v1/invocation/3/error",
            "GET /v1/invocation/next",
        ]
    );
    assert_eq!(json_of(&requests[6])["errorType"], "RuntimeApiError");
}

#[test]
fn store_unavailable_is_retried_then_fails_the_instance() {
    let unavailable = || Reply::Send(error(503, "Service Unavailable", "store_unavailable"));
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 1, "{}")),
        unavailable(),
        ok_value(json!(1)),
        unavailable(),
        unavailable(),
        unavailable(),
        unavailable(),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    let mut results = Vec::new();
    run_durable(&mut runtime, |instance| {
        results.push(instance.checkpoint("a", || Ok(1)));
        results.push(instance.checkpoint("b", || Ok(2)));
        results.last().unwrap().clone()?;
        Ok(json!("unreachable"))
    })
    .unwrap();
    assert_eq!(results[0], Ok(1), "retried after one 503");
    let Err(Interrupt::Failed(failure)) = &results[1] else {
        panic!("four 503s did not fail the step: {:?}", results[1]);
    };
    assert_eq!(failure.error_type, "StoreUnavailable");

    let requests = fake.finish();
    let checkpoints = requests
        .iter()
        .filter(|r| r.target.ends_with("/checkpoint"))
        .count();
    assert_eq!(checkpoints, 6, "2 tries of a, 4 of b");
    let error = requests
        .iter()
        .find(|r| r.target == "/v1/invocation/1/error")
        .unwrap();
    assert_eq!(json_of(error)["errorType"], "StoreUnavailable");
}

#[test]
fn failures_panics_and_the_wrong_kind_of_invocation_are_reported() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 1, r#"{"input": "fail"}"#)),
        Reply::Send(accepted()),
        Reply::Send(dispatch("2", "inst-2", 1, r#"{"input": "panic"}"#)),
        Reply::Send(accepted()),
        Reply::Send(dispatch("3", "inst-3", 1, "not json")),
        Reply::Send(accepted()),
        Reply::Send(invocation("4", &[("Kiln-Path", "/plain")], &[], b"")),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    run_durable(&mut runtime, |instance| match instance.input().as_str() {
        Some("fail") => Err(Failure::new("TestFailure", "failed on purpose"))?,
        Some("panic") => panic!("durable handler bug"),
        _ => Ok(json!("unexpected")),
    })
    .unwrap();
    let requests = fake.finish();
    let errors: Vec<(String, Value)> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| (r.target.clone(), json_of(r)["errorType"].clone()))
        .collect();
    assert_eq!(
        errors,
        [
            ("/v1/invocation/1/error".to_owned(), json!("TestFailure")),
            ("/v1/invocation/2/error".to_owned(), json!("Panic")),
            ("/v1/invocation/3/error".to_owned(), json!("InvalidDispatch")),
            ("/v1/invocation/4/error".to_owned(), json!("NotDurable")),
        ]
    );
    assert_eq!(json_of(&requests[3])["errorMessage"], "durable handler bug");
}

#[test]
fn plain_run_refuses_dispatches_and_run_all_routes_both_kinds() {
    let fake = FakeRuntime::start(vec![
        Reply::Send(dispatch("1", "inst-1", 1, "{}")),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    run(&mut runtime, |_| Ok(Response::new(200))).unwrap();
    let requests = fake.finish();
    assert_eq!(requests[1].target, "/v1/invocation/1/error");
    assert_eq!(json_of(&requests[1])["errorType"], "NotDurable");

    let fake = FakeRuntime::start(vec![
        Reply::Send(invocation("1", &[], &[], b"plain")),
        Reply::Send(accepted()),
        Reply::Send(dispatch("2", "inst-1", 1, r#"{"input": 5}"#)),
        Reply::Send(accepted()),
        retiring(),
    ]);
    let mut runtime = Runtime::connect(&fake.socket).unwrap();
    run_all(
        &mut runtime,
        |invocation| Ok(Response::text(200, invocation.body_text().to_uppercase())),
        |instance| Ok(json!({"doubled": instance.input().as_u64().unwrap_or_default() * 2})),
    )
    .unwrap();
    let requests = fake.finish();
    assert_eq!(requests[1].target, "/v1/invocation/1/response");
    assert_eq!(requests[1].body, b"PLAIN");
    assert_eq!(requests[3].target, "/v1/invocation/2/response");
    assert_eq!(json_of(&requests[3]), json!({"doubled": 10}));
}
