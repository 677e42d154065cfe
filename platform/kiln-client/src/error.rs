//! The client's errors, split by who is at fault: the server refused (`Api`, `Status`), the
//! server could not be reached or answered nonsense, or the local setup is wrong.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Any error of a [`Client`](crate::Client) call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kiln refused the request with its JSON error body `{"error": {"code", "message"}}`.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A 4xx/5xx answer without Kiln's error body (a proxy in between, for example).
    #[error("the server answered {status} without a kiln error body: {body}")]
    Status { status: u16, body: String },
    #[error("cannot reach {url}")]
    Connect {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The connection failed after it was made (reset, closed, protocol error).
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The server answered, but not with what this API promises.
    #[error("invalid response from the server: {0}")]
    InvalidResponse(String),
    #[error("invalid server url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot use the ca certificate file {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    /// A request this client cannot build (a header that is not valid HTTP, for example).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
}

impl Error {
    /// True when Kiln (or a proxy in front of it) answered with an error status.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Api { .. } | Error::Status { .. })
    }

    /// The error a 4xx/5xx answer stands for: Kiln's `code` and `message` when its body
    /// is Kiln's error JSON, else the status and the start of the body.
    pub fn from_status(status: u16, body: &[u8]) -> Error {
        #[derive(Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(Body { error }) => Error::Api {
                status,
                code: error.code,
                message: error.message,
            },
            Err(_) => Error::Status {
                status,
                body: snippet(body),
            },
        }
    }
}

/// The start of a body, as text on one line, for error messages.
fn snippet(body: &[u8]) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > LIMIT {
        let mut end = LIMIT;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    if line.is_empty() { "(empty)".into() } else { line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiln_error_bodies_become_api_errors() {
        let body = br#"{"error": {"code": "function_not_found", "message": "function `x` not found"}}"#;
        let error = Error::from_status(404, body);
        assert!(
            matches!(&error, Error::Api { status: 404, code, message }
                if code == "function_not_found" && message == "function `x` not found"),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "function_not_found: function `x` not found");
        assert!(error.is_refusal());
    }

    #[test]
    fn other_bodies_become_status_errors_with_a_short_snippet() {
        let error = Error::from_status(502, b"<html>\n  <body>Bad   Gateway</body>\n</html>");
        assert_eq!(
            error.to_string(),
            "the server answered 502 without a kiln error body: <html> <body>Bad Gateway</body> </html>"
        );
        assert!(error.is_refusal());
        let long = Error::from_status(500, "é".repeat(300).as_bytes());
        let Error::Status { body, .. } = long else {
            panic!("{long:?}")
        };
        assert!(body.ends_with("...") && body.len() <= 203, "{body}");
        assert!(matches!(Error::from_status(503, b""), Error::Status { body, .. } if body == "(empty)"));
        let wrong_shape = Error::from_status(400, br#"{"error": "nope"}"#);
        assert!(matches!(wrong_shape, Error::Status { status: 400, .. }));
    }
}
