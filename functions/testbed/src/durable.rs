//! The testbed's durable scenarios, picked by the instance input's `"scenario"` field (the
//! table is at the top of `main.rs`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_sdk::{Failure, Instance, Interrupt};
use serde_json::{Value, json};

use crate::BIG_LIMIT;

pub fn handle(instance: &mut Instance) -> Result<Value, Interrupt> {
    let input = instance.input().clone();
    match input["scenario"].as_str().unwrap_or_default() {
        "replay" => replay(instance, &input),
        "sleep" => sleep(instance, &input),
        "wait" => wait(instance, &input),
        "slow" => slow(instance, &input),
        "checkpoints" => checkpoints(instance, &input),
        "fail" => Err(Failure::new("TestFailure", "failed on purpose").into()),
        // JSON that PostgreSQL's jsonb refuses.
        "nul_output" => Ok(json!({"text": "a\u{0}b"})),
        "big" => {
            let bytes = number(&input, "bytes", 0)?.min(BIG_LIMIT);
            let big: String = instance.checkpoint("big", || Ok("x".repeat(bytes as usize)))?;
            Ok(json!({"bytes": big.len()}))
        }
        "crash" => {
            let before: String = instance.checkpoint("before", || Ok(unique()))?;
            if input["crash"] == Value::Bool(true) && instance.attempt() == 1 {
                eprintln!("testbed: crash scenario, exiting with code 3 on attempt 1");
                std::process::exit(3);
            }
            Ok(json!({"before": before, "attempt": instance.attempt()}))
        }
        other => Err(Failure::new("UnknownScenario", format!("no testbed scenario {other:?}")).into()),
    }
}

/// Two checkpoints around a sleep; `ran` names the steps whose work ran in this dispatch.
fn replay(instance: &mut Instance, input: &Value) -> Result<Value, Interrupt> {
    let mut ran = Vec::new();
    let a: String = instance.checkpoint("a", || {
        ran.push("a");
        Ok(unique())
    })?;
    instance.sleep("nap", Duration::from_millis(number(input, "sleep_ms", 1000)?))?;
    let b: String = instance.checkpoint("b", || {
        ran.push("b");
        Ok(unique())
    })?;
    Ok(json!({"a": a, "b": b, "ran": ran, "attempt": instance.attempt()}))
}

/// Sleeps `sleep_ms` (or until `wake_at_ms`), then reports the stored wake time and the time it woke.
fn sleep(instance: &mut Instance, input: &Value) -> Result<Value, Interrupt> {
    match input.get("wake_at_ms").filter(|at| !at.is_null()) {
        Some(_) => {
            let at = UNIX_EPOCH + Duration::from_millis(number(input, "wake_at_ms", 0)?);
            instance.sleep_until("nap", at)?;
        }
        None => instance.sleep("nap", Duration::from_millis(number(input, "sleep_ms", 1000)?))?,
    }
    let wake_at_ms = instance.stored("nap").map(|stored| stored["wake_at_ms"].clone());
    Ok(json!({"wake_at_ms": wake_at_ms, "woke_at_ms": now_ms()}))
}

/// Optionally sleeps `sleep_ms` first (so an event can be sent before the wait), then waits.
fn wait(instance: &mut Instance, input: &Value) -> Result<Value, Interrupt> {
    if input.get("sleep_ms").is_some_and(|ms| !ms.is_null()) {
        instance.sleep("nap", Duration::from_millis(number(input, "sleep_ms", 0)?))?;
    }
    let event = input["event"].as_str().unwrap_or("go");
    let timeout = Duration::from_millis(number(input, "timeout_ms", 60_000)?);
    let payload = instance.wait_for_event(event, timeout)?;
    Ok(json!({"timed_out": payload.is_none(), "event": payload}))
}

/// A checkpoint, `busy_ms` of work, and a checkpoint recording the attempt that stored it.
fn slow(instance: &mut Instance, input: &Value) -> Result<Value, Interrupt> {
    let before: String = instance.checkpoint("before", || Ok(unique()))?;
    std::thread::sleep(Duration::from_millis(number(input, "busy_ms", 1000)?));
    let attempt = instance.attempt();
    let after: Value = instance.checkpoint("after", || Ok(json!({"attempt": attempt})))?;
    Ok(json!({"before": before, "after": after}))
}

/// `count` checkpoints in a row, timing the round trip of each one posted in this dispatch.
fn checkpoints(instance: &mut Instance, input: &Value) -> Result<Value, Interrupt> {
    let count = number(input, "count", 100)?;
    let pad = "x".repeat(number(input, "pad", 0)?.min(BIG_LIMIT) as usize);
    let mut latencies = Vec::new();
    let started_ms = now_ms();
    for i in 0..count {
        let mut posted = false;
        let round_trip = Instant::now();
        let _: Value = instance.checkpoint(&format!("c{i}"), || {
            posted = true;
            Ok(if pad.is_empty() {
                json!({"i": i})
            } else {
                json!({"i": i, "pad": pad})
            })
        })?;
        if posted {
            latencies.push(round_trip.elapsed());
        }
    }
    let ended_ms = now_ms();
    let total: Duration = latencies.iter().sum();
    let per_second = if total.is_zero() {
        0.0
    } else {
        latencies.len() as f64 / total.as_secs_f64()
    };
    let micros: Vec<u64> = latencies
        .iter()
        .map(|latency| latency.as_micros() as u64)
        .collect();
    Ok(json!({
        "count": latencies.len(),
        "p50_us": percentile(&micros, 0.50),
        "p99_us": percentile(&micros, 0.99),
        "per_second": per_second,
        "latencies_us": micros,
        "started_ms": started_ms,
        "ended_ms": ended_ms,
    }))
}

/// Field `name` of the input as a whole number; `default` when absent or null.
fn number(input: &Value, name: &str, default: u64) -> Result<u64, Failure> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| {
            Failure::new(
                "BadInput",
                format!("{name} must be a non-negative integer, got {value}"),
            )
        }),
    }
}

/// The nearest-rank percentile `p` (0..=1) of `values`; `None` when there are none.
fn percentile(values: &[u64], p: f64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// A value no other call returns: the time in nanoseconds plus this process's id.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos}-{}", crate::instance_id())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use kiln_sdk::{Invocation, Runtime};

    use super::*;

    /// Runs `handle` on a dispatch with `input` and `checkpoints`. The runtime socket closes
    /// every connection at once, so any call to Kiln fails with error type `IoError`.
    fn offline(input: Value, checkpoints: Value, attempt: u32) -> Result<Value, Interrupt> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "testbed-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("runtime.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        let mut runtime = Runtime::connect(&socket).unwrap();
        let invocation = Invocation {
            id: "1".into(),
            instance_id: Some("inst-1".into()),
            attempt,
            body: json!({"input": input, "checkpoints": checkpoints})
                .to_string()
                .into_bytes(),
            ..Invocation::default()
        };
        let result = handle(&mut Instance::new(&mut runtime, &invocation).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn failure_type(result: Result<Value, Interrupt>) -> String {
        match result {
            Err(Interrupt::Failed(failure)) => failure.error_type,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_full_replay_reruns_nothing() {
        let stored = json!({"a": "A", "nap": {"wake_at_ms": 1}, "b": "B"});
        let output = offline(json!({"scenario": "replay"}), stored, 3).unwrap();
        assert_eq!(output, json!({"a": "A", "b": "B", "ran": [], "attempt": 3}));
        // Nothing stored: the first step runs and tries to store its result.
        assert_eq!(
            failure_type(offline(json!({"scenario": "replay"}), json!({}), 1)),
            "IoError"
        );
    }

    #[test]
    fn sleep_wait_and_slow_read_their_stored_results() {
        let output = offline(json!({"scenario": "sleep"}), json!({"nap": {"wake_at_ms": 5}}), 2).unwrap();
        assert_eq!(output["wake_at_ms"], 5);
        assert!(output["woke_at_ms"].as_u64().unwrap() > 1_700_000_000_000);

        let event = json!({"event:go:1": {"event": "go", "payload": {"n": 1}}});
        let output = offline(json!({"scenario": "wait"}), event, 2).unwrap();
        assert_eq!(output, json!({"event": {"n": 1}, "timed_out": false}));
        let timed_out = json!({"nap": {"wake_at_ms": 1}, "event:ready:1": {"timed_out": true}});
        let input = json!({"scenario": "wait", "event": "ready", "sleep_ms": 10});
        assert_eq!(
            offline(input, timed_out, 2).unwrap(),
            json!({"event": null, "timed_out": true})
        );

        let stored = json!({"before": "B", "after": {"attempt": 1}});
        let output = offline(json!({"scenario": "slow", "busy_ms": 1}), stored, 2).unwrap();
        assert_eq!(output, json!({"before": "B", "after": {"attempt": 1}}));
    }

    #[test]
    fn checkpoints_counts_only_the_ones_posted() {
        let stored = json!({"c0": {"i": 0}, "c1": {"i": 1}});
        let output = offline(json!({"scenario": "checkpoints", "count": 2}), stored, 1).unwrap();
        assert_eq!(output["count"], 0);
        assert_eq!(output["p50_us"], Value::Null);
        assert_eq!(output["per_second"], 0.0);
    }

    #[test]
    fn crash_fail_and_bad_input() {
        let stored = json!({"before": "B"});
        let output = offline(json!({"scenario": "crash", "crash": true}), stored, 2).unwrap();
        assert_eq!(output, json!({"before": "B", "attempt": 2}));
        assert_eq!(
            failure_type(offline(json!({"scenario": "fail"}), json!({}), 1)),
            "TestFailure"
        );
        assert_eq!(
            failure_type(offline(json!({"scenario": "nope"}), json!({}), 1)),
            "UnknownScenario"
        );
        let bad = json!({"scenario": "sleep", "sleep_ms": "soon"});
        assert_eq!(failure_type(offline(bad, json!({}), 1)), "BadInput");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&values, 0.50), Some(50));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
