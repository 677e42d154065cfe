//! A handler's report that it could not handle an invocation (`POST .../error`).

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;

/// The error a handler returns instead of a [`Response`](crate::Response): the caller gets
/// `502 function_error` with `error_type`; `message` only goes to Kiln's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error_type: String,
    pub message: String,
}

impl Failure {
    /// The error type used when a handler gives only a message.
    pub const DEFAULT_TYPE: &'static str = "HandlerError";

    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    /// The JSON body of the error endpoint: `{"errorType":"...","errorMessage":"..."}`.
    pub(crate) fn to_json(&self) -> String {
        let mut json = String::with_capacity(32 + self.error_type.len() + self.message.len());
        json.push_str("{\"errorType\":");
        push_json_string(&mut json, &self.error_type);
        json.push_str(",\"errorMessage\":");
        push_json_string(&mut json, &self.message);
        json.push('}');
        json
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(Failure::DEFAULT_TYPE, message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(Failure::DEFAULT_TYPE, message)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::new("IoError", error.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl Error for Failure {}

/// What a caught panic said, for the `Panic` error type.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "the handler panicked".to_owned()
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                json.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_escaped_json() {
        let failure = Failure::new("Type\"X", "line1\nline2\t\\ \u{1} é \u{2028}");
        assert_eq!(
            failure.to_json(),
            r#"{"errorType":"Type\"X","errorMessage":"line1\nline2\t\\ \u0001 é \u2028"}"#
        );
    }

    #[test]
    fn conversions_pick_types() {
        assert_eq!(Failure::from("boom"), Failure::new("HandlerError", "boom"));
        assert_eq!(Failure::from(String::from("boom")).error_type, "HandlerError");
        assert_eq!(Failure::from(io::Error::other("disk")).error_type, "IoError");
        assert_eq!(Failure::new("T", "m").to_string(), "T: m");
    }
}
