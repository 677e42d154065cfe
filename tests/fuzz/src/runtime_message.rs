//! What a function sends the runtime API: the `Kiln-Status` of a response, an error
//! report, and the JSON bodies of checkpoint, sleep and wait calls. The first byte chooses
//! which; the rest is the header value or body.

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use pool::{
    DurableCall, ERROR_MESSAGE_LIMIT, ERROR_TYPE_LIMIT, ErrorReport, KEY_LIMIT, LONGEST_WAIT_MS,
    RESERVED_KEY_PREFIX, parse_durable_call, response_status,
};

use crate::Verdict;
use crate::input::mode;

pub fn check(data: &[u8]) -> Verdict {
    let Some((mode, body)) = mode(data) else {
        return Verdict::Refused;
    };
    match mode % 5 {
        0 => status(body),
        1 => error_report(body),
        2 => durable_call("checkpoint", body),
        3 => durable_call("sleep", body),
        _ => durable_call("wait", body),
    }
}

fn status(value: &[u8]) -> Verdict {
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return Verdict::Refused;
    };
    let Some(status) = response_status(Some(&value)) else {
        return Verdict::Refused;
    };
    assert!((200..=599).contains(&status.as_u16()), "status {status} accepted");
    Verdict::Accepted
}

fn error_report(body: &[u8]) -> Verdict {
    let report = ErrorReport::parse(body);
    assert!(report.error_type.chars().count() <= ERROR_TYPE_LIMIT);
    assert!(report.message.chars().count() <= ERROR_MESSAGE_LIMIT);
    assert!(!report.error_type.contains('\0') && !report.message.contains('\0'));
    Verdict::of(report.error_type != "Unspecified")
}

fn durable_call(verb: &str, body: &[u8]) -> Verdict {
    let before = SystemTime::now();
    let Ok(call) = parse_durable_call(verb, body) else {
        return Verdict::Refused;
    };
    let century = Duration::from_millis(LONGEST_WAIT_MS);
    let key = match &call {
        DurableCall::Checkpoint { key, .. } => key,
        DurableCall::Sleep { key, wake_at } => {
            // A minute of slack: the parser reads the clock a moment after `before`.
            assert!(
                *wake_at <= before + century + Duration::from_secs(60),
                "a sleep past a century"
            );
            key
        }
        DurableCall::Wait { key, event, timeout } => {
            assert!(
                !event.is_empty() && event.len() <= KEY_LIMIT,
                "event `{event}` accepted"
            );
            assert!(*timeout <= century, "a wait past a century");
            key
        }
        DurableCall::Oversized => panic!("a parsed body is never oversized"),
    };
    assert!(!key.is_empty() && key.len() <= KEY_LIMIT, "key `{key}` accepted");
    assert!(
        !key.starts_with(RESERVED_KEY_PREFIX),
        "reserved key `{key}` accepted"
    );
    Verdict::Accepted
}
