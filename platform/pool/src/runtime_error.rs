//! Why the runtime API refuses a function's request: typed where it happens, turned into a
//! status and a stable code (see docs/function-contract.md) in this one place.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::DurableError;
use crate::response_stream::StreamCut;

#[derive(Debug)]
pub(crate) enum RuntimeApiError {
    NoSuchRoute,
    /// The invocation was already answered, timed out, or never existed on this container.
    UnknownInvocation,
    /// The container is being retired and takes no more work.
    Retiring,
    BadStatus,
    ResponseTooLarge {
        limit: usize,
    },
    NotDurable,
    BadRequest(String),
    Fenced,
    ValueTooLarge {
        limit: usize,
    },
    StoreUnavailable(String),
    ValueRejected(String),
    /// The caller of a streamed response went away.
    CallerGone,
    StreamCut(StreamCut),
}

impl RuntimeApiError {
    fn status_code_message(&self) -> (StatusCode, &'static str, String) {
        match self {
            RuntimeApiError::NoSuchRoute => (StatusCode::NOT_FOUND, "not_found", "no such runtime API route".into()),
            RuntimeApiError::UnknownInvocation => (
                StatusCode::NOT_FOUND,
                "unknown_invocation",
                "no such invocation in flight on this container (already answered or timed out)".into(),
            ),
            RuntimeApiError::Retiring => (
                StatusCode::SERVICE_UNAVAILABLE,
                "container_retiring",
                "this container takes no more work".into(),
            ),
            RuntimeApiError::BadStatus => {
                (StatusCode::BAD_REQUEST, "bad_status", "Kiln-Status must be a number in 200-599".into())
            }
            RuntimeApiError::ResponseTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "response_too_large",
                format!("response bodies are limited to {limit} bytes"),
            ),
            RuntimeApiError::NotDurable => (
                StatusCode::BAD_REQUEST,
                "not_durable",
                "this invocation is not a durable instance dispatch".into(),
            ),
            RuntimeApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message.clone()),
            RuntimeApiError::Fenced => (
                StatusCode::CONFLICT,
                "instance_fenced",
                "this dispatch is stale (the instance was cancelled, paused, timed out or dispatched again); stop and ask for the next invocation".into(),
            ),
            RuntimeApiError::ValueTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                format!("durable values are limited to {limit} bytes of JSON; the instance has failed"),
            ),
            RuntimeApiError::StoreUnavailable(message) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message.clone())
            }
            RuntimeApiError::ValueRejected(message) => (StatusCode::BAD_REQUEST, "value_rejected", message.clone()),
            RuntimeApiError::CallerGone => (
                StatusCode::GONE,
                "caller_gone",
                "the caller closed the connection; ask for the next invocation".into(),
            ),
            RuntimeApiError::StreamCut(cut) => (StatusCode::REQUEST_TIMEOUT, "stream_cut", cut.to_string()),
        }
    }

    /// `{"error": {"code", "message"}}` with the status for this refusal.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        // The rest of a stream's body is never read: the connection cannot carry another request.
        let unread_body = matches!(self, RuntimeApiError::CallerGone | RuntimeApiError::StreamCut(_));
        let (status, code, message) = self.status_code_message();
        let mut response = json_body(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        );
        if unread_body {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A JSON answer of the runtime API, refusal or not.
pub(crate) fn json_body(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl From<DurableError> for RuntimeApiError {
    fn from(error: DurableError) -> RuntimeApiError {
        match error {
            DurableError::Fenced => RuntimeApiError::Fenced,
            DurableError::TooLarge { limit } => RuntimeApiError::ValueTooLarge { limit },
            DurableError::Unavailable(message) => RuntimeApiError::StoreUnavailable(message),
            DurableError::Rejected(message) => RuntimeApiError::ValueRejected(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_status_and_code() {
        let cases = [
            (RuntimeApiError::UnknownInvocation, 404, "unknown_invocation"),
            (RuntimeApiError::Retiring, 503, "container_retiring"),
            (RuntimeApiError::BadStatus, 400, "bad_status"),
            (
                RuntimeApiError::ResponseTooLarge { limit: 10 },
                413,
                "response_too_large",
            ),
            (
                RuntimeApiError::from(DurableError::Fenced),
                409,
                "instance_fenced",
            ),
            (
                RuntimeApiError::from(DurableError::TooLarge { limit: 5 }),
                413,
                "value_too_large",
            ),
            (
                RuntimeApiError::from(DurableError::Unavailable("down".into())),
                503,
                "store_unavailable",
            ),
            (
                RuntimeApiError::from(DurableError::Rejected("no".into())),
                400,
                "value_rejected",
            ),
        ];
        for (error, status, code) in cases {
            let (got_status, got_code, _) = error.status_code_message();
            assert_eq!((got_status.as_u16(), got_code), (status, code));
        }
    }
}
