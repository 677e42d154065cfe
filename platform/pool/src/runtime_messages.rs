//! What a function sends the runtime API, read into typed values: the status of a
//! response, an error report, and the body of a durable call. A function is untrusted, so
//! each reader bounds what it keeps and says what to fix in words (the fuzz targets in
//! `tests/fuzz` feed them arbitrary bytes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};

use crate::DurableCall;

/// Largest error report a function may post, in bytes.
pub const ERROR_REPORT_LIMIT: usize = 64 * 1024;
/// Longest error type kept from a report, in characters.
pub const ERROR_TYPE_LIMIT: usize = 128;
/// Longest error message kept from a report, in characters.
pub const ERROR_MESSAGE_LIMIT: usize = 4096;
/// Longest checkpoint key or event name, in bytes.
pub const KEY_LIMIT: usize = 512;
/// Longest sleep or wait a function may ask for: a century, in milliseconds.
pub const LONGEST_WAIT_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// Checkpoint keys Kiln keeps for itself (the deadlines of waits).
pub const RESERVED_KEY_PREFIX: &str = "kiln:";

/// The status a function's `Kiln-Status` header asks for: 200 when absent, `None` unless it
/// is a number in 200-599.
pub fn response_status(header: Option<&HeaderValue>) -> Option<StatusCode> {
    let Some(value) = header else {
        return Some(StatusCode::OK);
    };
    match value.to_str().ok()?.parse::<u16>().ok()? {
        code @ 200..=599 => StatusCode::from_u16(code).ok(),
        _ => None,
    }
}

/// A function's report of a failed invocation. Any body is accepted: what is not a JSON
/// object with string `errorType` and `errorMessage` reads as an unspecified error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub error_type: String,
    pub message: String,
}

impl ErrorReport {
    pub fn parse(body: &[u8]) -> ErrorReport {
        let report: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error_type = storable(
            report["errorType"].as_str().unwrap_or("Unspecified"),
            ERROR_TYPE_LIMIT,
        );
        let message = storable(
            report["errorMessage"].as_str().unwrap_or_default(),
            ERROR_MESSAGE_LIMIT,
        );
        ErrorReport { error_type, message }
    }
}

/// At most `limit` characters of `text`, without NUL (PostgreSQL text cannot hold it).
fn storable(text: &str, limit: usize) -> String {
    text.chars()
        .filter(|character| *character != '\0')
        .take(limit)
        .collect()
}

/// Reads the JSON body of a durable call (`verb` is `checkpoint`, `sleep` or `wait`); the
/// error says what to fix.
pub fn parse_durable_call(verb: &str, body: &[u8]) -> Result<DurableCall, String> {
    let body: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let key = match body["key"].as_str() {
        Some(key) if !key.is_empty() && key.len() <= KEY_LIMIT && !key.starts_with(RESERVED_KEY_PREFIX) => {
            key.to_owned()
        }
        _ => {
            return Err(format!(
                "\"key\" must be a non-empty string of at most {KEY_LIMIT} bytes, not starting with `{RESERVED_KEY_PREFIX}`"
            ));
        }
    };
    match verb {
        "checkpoint" => match body.get("value") {
            Some(value) => Ok(DurableCall::Checkpoint {
                key,
                value: value.clone(),
            }),
            None => Err("\"value\" is missing".to_owned()),
        },
        "sleep" => Ok(DurableCall::Sleep {
            key,
            wake_at: wake_time(&body, SystemTime::now())?,
        }),
        "wait" => {
            let event = match body["event"].as_str() {
                Some(event) if !event.is_empty() && event.len() <= KEY_LIMIT => event.to_owned(),
                _ => {
                    return Err(format!(
                        "\"event\" must be a non-empty string of at most {KEY_LIMIT} bytes"
                    ));
                }
            };
            let Some(timeout) = body["timeout_ms"]
                .as_u64()
                .filter(|timeout| *timeout <= LONGEST_WAIT_MS)
            else {
                return Err("\"timeout_ms\" must be a whole number of milliseconds".to_owned());
            };
            Ok(DurableCall::Wait {
                key,
                event,
                timeout: Duration::from_millis(timeout),
            })
        }
        other => Err(format!(
            "`{other}` is not a durable call; use checkpoint, sleep or wait"
        )),
    }
}

/// When a sleep ends: `duration_ms` from `now`, or the absolute `wake_at_ms`, at most a
/// century ahead.
fn wake_time(body: &serde_json::Value, now: SystemTime) -> Result<SystemTime, String> {
    let now_ms = unix_ms(now);
    match (body["duration_ms"].as_u64(), body["wake_at_ms"].as_u64()) {
        (Some(duration), None) if duration <= LONGEST_WAIT_MS => Ok(now + Duration::from_millis(duration)),
        (None, Some(at)) if at <= now_ms + LONGEST_WAIT_MS => Ok(UNIX_EPOCH + Duration::from_millis(at)),
        (Some(_), None) | (None, Some(_)) => Err("a sleep may last at most 100 years".to_owned()),
        _ => Err("give exactly one of \"duration_ms\" and \"wake_at_ms\" (whole milliseconds)".to_owned()),
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_defaults_to_200_and_refuses_what_is_not_200_to_599() {
        assert_eq!(response_status(None), Some(StatusCode::OK));
        let header = |text: &'static str| HeaderValue::from_static(text);
        assert_eq!(response_status(Some(&header("201"))), Some(StatusCode::CREATED));
        assert_eq!(
            response_status(Some(&header("599"))).map(|status| status.as_u16()),
            Some(599)
        );
        for refused in ["199", "600", "abc", "", "-200", "2000"] {
            assert_eq!(response_status(Some(&header(refused))), None, "{refused}");
        }
    }

    #[test]
    fn error_reports_are_bounded_and_lose_nul() {
        let report = ErrorReport::parse(br#"{"errorType":"Bad\u0000Thing","errorMessage":"it broke"}"#);
        assert_eq!(
            (report.error_type.as_str(), report.message.as_str()),
            ("BadThing", "it broke")
        );
        let long = format!(r#"{{"errorMessage":"{}"}}"#, "é".repeat(ERROR_MESSAGE_LIMIT + 10));
        let report = ErrorReport::parse(long.as_bytes());
        assert_eq!(report.message.chars().count(), ERROR_MESSAGE_LIMIT);
        assert_eq!(report.error_type, "Unspecified");
        assert_eq!(ErrorReport::parse(b"not json").error_type, "Unspecified");
        assert_eq!(ErrorReport::parse(b"[1,2]").message, "");
    }

    #[test]
    fn durable_calls_name_what_to_fix() {
        let call = parse_durable_call("checkpoint", br#"{"key":"step-1","value":{"n":1}}"#).unwrap();
        assert_eq!(
            call,
            DurableCall::Checkpoint {
                key: "step-1".into(),
                value: serde_json::json!({"n": 1})
            }
        );
        let wait = parse_durable_call("wait", br#"{"key":"w","event":"paid","timeout_ms":1000}"#).unwrap();
        assert!(matches!(wait, DurableCall::Wait { timeout, .. } if timeout == Duration::from_secs(1)));
        for (verb, body, needle) in [
            ("checkpoint", &b"{"[..], "not JSON"),
            (
                "checkpoint",
                br#"{"key":"kiln:deadline","value":1}"#,
                "not starting with `kiln:`",
            ),
            ("checkpoint", br#"{"key":"k"}"#, "\"value\" is missing"),
            ("sleep", br#"{"key":"k"}"#, "exactly one of"),
            (
                "sleep",
                br#"{"key":"k","duration_ms":1,"wake_at_ms":1}"#,
                "exactly one of",
            ),
            (
                "sleep",
                br#"{"key":"k","duration_ms":18446744073709551615}"#,
                "100 years",
            ),
            ("wait", br#"{"key":"k","event":"","timeout_ms":1}"#, "\"event\""),
            (
                "wait",
                br#"{"key":"k","event":"e","timeout_ms":-1}"#,
                "\"timeout_ms\"",
            ),
            ("nap", br#"{"key":"k"}"#, "not a durable call"),
        ] {
            let error = parse_durable_call(verb, body).unwrap_err();
            assert!(
                error.contains(needle),
                "{verb} {}: {error}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_sleep_ends_after_its_duration_or_at_its_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after = wake_time(&serde_json::json!({"duration_ms": 1500}), now).unwrap();
        assert_eq!(after, now + Duration::from_millis(1500));
        let at = wake_time(&serde_json::json!({"wake_at_ms": 1_700_000_100_000u64}), now).unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_700_000_100));
    }
}
