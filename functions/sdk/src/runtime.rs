//! The function's side of Kiln's runtime API: fetch the next invocation, post its outcome.
//! The durable calls (checkpoint, sleep, wait) are in `durable.rs`.

use std::error::Error;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use crate::body_writer::BodyWriter;
use crate::client::Client;
use crate::failure::{Failure, panic_message};
use crate::http::{self, HttpResponse};
use crate::invocation::Invocation;
use crate::response::{Body, BodyProducer, Response};

/// Where Kiln mounts the runtime socket when `KILN_RUNTIME_SOCKET` is not set.
pub const DEFAULT_SOCKET: &str = "/run/kiln/runtime.sock";

/// Longest part of a refusal's body kept in an [`ApiError`].
const ERROR_BODY_LIMIT: usize = 1024;

/// A connection to Kiln's runtime API (kept alive between calls).
#[derive(Debug)]
pub struct Runtime {
    client: Client,
}

/// Kiln answered a runtime API request with an unexpected status, e.g. `404
/// unknown_invocation` when the invocation already timed out, or `503` when the container
/// is retiring. Carried inside the `io::Error`; see [`ApiError::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The start of Kiln's answer, usually `{"error":{"code":"...","message":"..."}}`.
    pub body: String,
}

impl ApiError {
    /// The `ApiError` inside `error`, if it is one.
    pub fn of(error: &io::Error) -> Option<&ApiError> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<ApiError>())
    }

    pub(crate) fn from_response(response: &HttpResponse) -> ApiError {
        let end = response.body.len().min(ERROR_BODY_LIMIT);
        ApiError {
            status: response.status,
            body: String::from_utf8_lossy(&response.body[..end]).into_owned(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "runtime API answered {}: {}", self.status, self.body)
    }
}

impl Error for ApiError {}

impl Runtime {
    /// Connects to the socket named by `KILN_RUNTIME_SOCKET`, or [`DEFAULT_SOCKET`].
    pub fn connect_from_env() -> io::Result<Runtime> {
        match std::env::var_os("KILN_RUNTIME_SOCKET") {
            Some(path) if !path.is_empty() => Runtime::connect(path),
            _ => Runtime::connect(DEFAULT_SOCKET),
        }
    }

    /// Connects to the runtime socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Runtime> {
        Ok(Runtime {
            client: Client::connect(path.as_ref())?,
        })
    }

    /// The socket this runtime talks to.
    pub fn socket_path(&self) -> &Path {
        self.client.path()
    }

    /// Waits (without time limit) for the next invocation.
    #[allow(
        clippy::should_implement_trait,
        reason = "named after the contract's `/v1/invocation/next`"
    )]
    pub fn next(&mut self) -> io::Result<Invocation> {
        let response = self.client.send("GET", "/v1/invocation/next", &[], &[])?;
        if response.status != 200 {
            return Err(io::Error::other(ApiError::from_response(&response)));
        }
        Invocation::from_next_response(response)
    }

    /// Completes invocation `id` with `response`; a streamed one is produced and sent
    /// chunk by chunk before this returns.
    ///
    /// A status outside 200–599, or a header that cannot be sent, fails with
    /// `io::ErrorKind::InvalidInput` before anything is sent; the invocation stays open.
    /// When Kiln stops taking a streamed body (the caller left, or the stream was cut), the
    /// error carries Kiln's answer as an [`ApiError`] (`410 caller_gone`, `408 stream_cut`).
    pub fn respond(&mut self, id: &str, mut response: Response) -> io::Result<()> {
        let status = response.status();
        if !(200..=599).contains(&status) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("response status {status} is outside 200-599"),
            ));
        }
        let body = response.take_body();
        let status = status.to_string();
        let mut headers = vec![("Kiln-Status", status.as_str())];
        for (name, value) in response.headers_to_send() {
            http::check_field(name, value)?;
            headers.push((name, value));
        }
        let target = format!("/v1/invocation/{}/response", encode_segment(id));
        match body {
            Body::Whole(body) => self.post(&target, &headers, &body),
            Body::Streamed(produce) => self.stream(id, &target, &headers, produce),
        }
    }

    /// Sends a streamed response: the head, each write of `produce`, then the end (with a
    /// `Kiln-Stream-Error` trailer when `produce` failed, so the caller's body is cut).
    fn stream(
        &mut self,
        id: &str,
        target: &str,
        headers: &[(&str, &str)],
        produce: BodyProducer,
    ) -> io::Result<()> {
        let mut body = BodyWriter::new(self.client.start_chunked(target, headers)?);
        let produced = panic::catch_unwind(AssertUnwindSafe(|| produce(&mut body)))
            .unwrap_or_else(|payload| Err(Failure::new("Panic", panic_message(payload.as_ref()))));
        let broken = body.is_broken();
        let request = body.into_request();
        let answer = match produced {
            // Kiln stopped taking the body; its answer says why.
            _ if broken => request.response()?,
            Ok(()) => request.finish(&[])?,
            Err(failure) => {
                eprintln!("kiln-sdk: invocation {id}: the streamed body failed: {failure}");
                let error_type = if http::check_field("Kiln-Stream-Error", &failure.error_type).is_ok() {
                    failure.error_type.as_str()
                } else {
                    Failure::DEFAULT_TYPE
                };
                request.finish(&[("Kiln-Stream-Error", error_type)])?
            }
        };
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(io::Error::other(ApiError::from_response(&answer)))
        }
    }

    /// Reports that invocation `id` failed: the caller gets `502 function_error` with
    /// `error_type`; `message` goes to Kiln's log only.
    pub fn fail(&mut self, id: &str, error_type: &str, message: &str) -> io::Result<()> {
        let body = Failure::new(error_type, message).to_json();
        let target = format!("/v1/invocation/{}/error", encode_segment(id));
        self.post(&target, &[("Content-Type", "application/json")], body.as_bytes())
    }

    /// Posts a JSON `body` to `target` and returns Kiln's answer, whatever its status.
    pub(crate) fn post_json(&mut self, target: &str, body: &[u8]) -> io::Result<HttpResponse> {
        self.client
            .send("POST", target, &[("Content-Type", "application/json")], body)
    }

    fn post(&mut self, target: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        let response = self.client.send("POST", target, headers, body)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(io::Error::other(ApiError::from_response(&response)))
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for use as one path segment.
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("7"), "7");
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
    }

    #[test]
    fn api_errors_are_found_inside_io_errors() {
        let error = io::Error::other(ApiError {
            status: 404,
            body: "gone".into(),
        });
        assert_eq!(ApiError::of(&error).map(|api| api.status), Some(404));
        assert_eq!(error.to_string(), "runtime API answered 404: gone");
        assert_eq!(ApiError::of(&io::Error::other("plain")), None);
    }
}
