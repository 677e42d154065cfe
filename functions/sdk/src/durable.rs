//! The durable calls of the runtime API (`checkpoint`, `sleep`, `wait`) and the ways a durable
//! dispatch can be interrupted before it completes.

use std::error::Error;
use std::fmt;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::failure::Failure;
use crate::http::HttpResponse;
use crate::runtime::{ApiError, Runtime, encode_segment};

/// Pauses before each retry of a call Kiln answered `503 store_unavailable`; when they are
/// used up the call fails with error type `StoreUnavailable`.
const STORE_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

/// Why a durable handler stopped before producing its output. Every durable call returns it;
/// pass it on with `?`.
///
/// Only [`Interrupt::Failed`] is reported to Kiln (the instance fails); the other kinds end
/// the dispatch without posting anything, as the function contract asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    /// A sleep or wait was answered `202`: the instance sleeps, and Kiln replays it from the
    /// start after the wake time or when the awaited event arrives.
    Suspended,
    /// Kiln answered `409 instance_fenced`: this dispatch is stale (the instance was
    /// cancelled, paused, timed out or dispatched again) and nothing of it was written.
    Fenced,
    /// Kiln stopped the instance itself and says why, e.g. `413 value_too_large`: the
    /// instance has already failed.
    Stopped(String),
    /// The handler or the SDK gives up: posted as the dispatch's error report, and the
    /// instance fails (it is not retried).
    Failed(Failure),
}

impl From<Failure> for Interrupt {
    fn from(failure: Failure) -> Interrupt {
        Interrupt::Failed(failure)
    }
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interrupt::Suspended => f.write_str("the instance is suspended until its wake time or event"),
            Interrupt::Fenced => f.write_str("this dispatch is stale (instance_fenced)"),
            Interrupt::Stopped(message) => write!(f, "Kiln stopped the instance: {message}"),
            Interrupt::Failed(failure) => write!(f, "the dispatch failed: {failure}"),
        }
    }
}

impl Error for Interrupt {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Interrupt::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Kiln's successful answer to a sleep or wait.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableReply {
    /// `200`: carry on; the value is what Kiln stored under the call's key.
    Value(Value),
    /// `202`: the instance sleeps until this Unix time in milliseconds; the dispatch is over.
    Suspended { wake_at_ms: u64 },
}

/// When a sleep ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// This long after Kiln first sees the key (by Kiln's clock).
    After(Duration),
    /// At this time.
    At(SystemTime),
}

/// The durable calls, for functions that drive the loop themselves; most use
/// [`Instance`](crate::Instance), which also skips calls whose answer the dispatch already has.
///
/// `id` is the invocation id ([`Invocation::id`](crate::Invocation::id)), not the instance id.
/// Kiln's refusals map to [`Interrupt`]: `409 instance_fenced` and `404 unknown_invocation`
/// are `Fenced`, `413` is
/// `Stopped`, `503` is retried a few times with a short back-off, anything else is `Failed`.
impl Runtime {
    /// `POST /v1/invocation/{id}/checkpoint`: stores `value` under `key` unless the key is
    /// stored already, and returns the stored value (the first one wins).
    pub fn checkpoint(&mut self, id: &str, key: &str, value: &Value) -> Result<Value, Interrupt> {
        match self.durable_call(id, "checkpoint", &json!({"key": key, "value": value}))? {
            DurableReply::Value(stored) => Ok(stored),
            DurableReply::Suspended { .. } => Err(unexpected("checkpoint", "202 to a checkpoint")),
        }
    }

    /// `POST /v1/invocation/{id}/sleep`: Kiln stores the wake time under `key` the first time
    /// and uses the stored time on every later call with that key.
    pub fn sleep(&mut self, id: &str, key: &str, wake: Wake) -> Result<DurableReply, Interrupt> {
        let body = match wake {
            Wake::After(duration) => json!({"key": key, "duration_ms": whole_ms(duration)}),
            Wake::At(at) => json!({"key": key, "wake_at_ms": unix_ms(at)}),
        };
        self.durable_call(id, "sleep", &body)
    }

    /// `POST /v1/invocation/{id}/wait`: consumes the oldest unconsumed `event` signal, or
    /// reports that the wait's deadline (fixed by the first call with `key`) has passed.
    pub fn wait(
        &mut self,
        id: &str,
        key: &str,
        event: &str,
        timeout: Duration,
    ) -> Result<DurableReply, Interrupt> {
        let body = json!({"key": key, "event": event, "timeout_ms": whole_ms(timeout)});
        self.durable_call(id, "wait", &body)
    }

    fn durable_call(&mut self, id: &str, verb: &str, body: &Value) -> Result<DurableReply, Interrupt> {
        let target = format!("/v1/invocation/{}/{verb}", encode_segment(id));
        let body = body.to_string();
        let mut retries = STORE_RETRY_DELAYS.iter();
        loop {
            let response = self
                .post_json(&target, body.as_bytes())
                .map_err(|error| Interrupt::Failed(error.into()))?;
            match response.status {
                200 | 202 => return parse_reply(verb, &response),
                // A dispatch that already ended (timed out) is as stale as a fenced one.
                404 | 409
                    if matches!(
                        error_code(&response).as_deref(),
                        Some("instance_fenced" | "unknown_invocation")
                    ) =>
                {
                    return Err(Interrupt::Fenced);
                }
                413 => return Err(Interrupt::Stopped(error_message(&response))),
                503 => match retries.next() {
                    Some(delay) => thread::sleep(*delay),
                    None => {
                        return Err(Interrupt::Failed(Failure::new(
                            "StoreUnavailable",
                            format!("{verb}: {}", ApiError::from_response(&response)),
                        )));
                    }
                },
                _ => {
                    return Err(Interrupt::Failed(Failure::new(
                        "RuntimeApiError",
                        format!("{verb}: {}", ApiError::from_response(&response)),
                    )));
                }
            }
        }
    }
}

/// Reads `200 {"value": ...}` or `202 {"suspended": true, "wake_at_ms": ...}`.
fn parse_reply(verb: &str, response: &HttpResponse) -> Result<DurableReply, Interrupt> {
    let mut body: Value = serde_json::from_slice(&response.body)
        .map_err(|error| unexpected(verb, &format!("a body that is not JSON ({error})")))?;
    if response.status == 202 {
        let wake_at_ms = body["wake_at_ms"].as_u64().unwrap_or(0);
        return Ok(DurableReply::Suspended { wake_at_ms });
    }
    match body.get_mut("value") {
        Some(value) => Ok(DurableReply::Value(value.take())),
        None => Err(unexpected(verb, "200 without a \"value\"")),
    }
}

fn unexpected(verb: &str, what: &str) -> Interrupt {
    Interrupt::Failed(Failure::new(
        "RuntimeApiError",
        format!("{verb}: Kiln answered {what}"),
    ))
}

/// The `code` of a `{"error":{"code":"...","message":"..."}}` answer.
fn error_code(response: &HttpResponse) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    body["error"]["code"].as_str().map(str::to_owned)
}

/// The `message` of an error answer, with its code; the raw body when it is not one.
fn error_message(response: &HttpResponse) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    match (body["error"]["code"].as_str(), body["error"]["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => ApiError::from_response(response).to_string(),
    }
}

/// Whole milliseconds, rounded up so a sleep never ends early.
fn whole_ms(duration: Duration) -> u64 {
    let ms = duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Unix time in milliseconds; 0 before the epoch.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            keep_alive: true,
        }
    }

    #[test]
    fn replies_are_parsed() {
        assert_eq!(
            parse_reply("sleep", &response(200, r#"{"value":{"wake_at_ms":5}}"#)),
            Ok(DurableReply::Value(json!({"wake_at_ms": 5})))
        );
        assert_eq!(
            parse_reply("sleep", &response(202, r#"{"suspended":true,"wake_at_ms":7}"#)),
            Ok(DurableReply::Suspended { wake_at_ms: 7 })
        );
        for bad in ["{}", "not json"] {
            let Err(Interrupt::Failed(failure)) = parse_reply("wait", &response(200, bad)) else {
                panic!("{bad} was accepted");
            };
            assert_eq!(failure.error_type, "RuntimeApiError");
        }
    }

    #[test]
    fn error_answers_give_code_and_message() {
        let refused = response(413, r#"{"error":{"code":"value_too_large","message":"too big"}}"#);
        assert_eq!(error_code(&refused).as_deref(), Some("value_too_large"));
        assert_eq!(error_message(&refused), "value_too_large: too big");
        assert_eq!(
            error_message(&response(413, "nope")),
            "runtime API answered 413: nope"
        );
    }

    #[test]
    fn times_become_whole_milliseconds() {
        assert_eq!(whole_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(whole_ms(Duration::from_micros(1)), 1, "rounded up");
        assert_eq!(whole_ms(Duration::ZERO), 0);
        assert_eq!(whole_ms(Duration::MAX), u64::MAX);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(42)), 42);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn interrupts_display_and_convert() {
        let failed = Interrupt::from(Failure::new("T", "m"));
        assert_eq!(failed, Interrupt::Failed(Failure::new("T", "m")));
        assert_eq!(failed.to_string(), "the dispatch failed: T: m");
        assert!(failed.source().is_some());
        assert_eq!(
            Interrupt::Stopped("value_too_large: x".into()).to_string(),
            "Kiln stopped the instance: value_too_large: x"
        );
        assert!(Interrupt::Fenced.to_string().contains("instance_fenced"));
        assert!(Interrupt::Suspended.source().is_none());
    }
}
