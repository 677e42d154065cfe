//! Reading request bodies within a limit, and writing JSON responses.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame};
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

use crate::error::ApiError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body: whole (`full_body`), streamed from a channel (`streamed_body`), or
/// a function's streamed response, which may fail midway (the connection is then aborted,
/// so the caller never takes a cut body for a whole one).
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body whose chunks arrive on a channel; it ends when every sender is gone.
pub fn streamed_body(chunks: mpsc::Receiver<Bytes>) -> ResponseBody {
    ChannelBody { chunks }
        .map_err(|never| match never {})
        .boxed_unsync()
}

struct ChannelBody {
    chunks: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Any request body the app accepts: hyper's `Incoming` in production, `Full` in tests.
pub trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<T> RequestBody for T
where
    T: Body<Data = Bytes> + Send + 'static,
    T::Error: Into<BoxError>,
{
}

/// Collects a body of at most `limit` bytes; a larger one is a 413 `body_too_large`.
pub async fn read_body<B>(
    request: Request<B>,
    limit: usize,
) -> Result<(http::request::Parts, Bytes), ApiError>
where
    B: RequestBody,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(
            "body_unreadable",
            format!("could not read the request body: {error}"),
        )),
    }
}

/// A count from a query parameter (`limit`, `lines`): a number from 1 to `max`, else
/// `400 invalid_limit` naming the parameter.
pub fn parse_count<T>(name: &str, value: &str, max: T) -> Result<T, ApiError>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    value
        .parse()
        .ok()
        .filter(|count| (T::from(1)..=max).contains(count))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_limit",
                format!("{name} must be a number from 1 to {max}"),
            )
        })
}

/// Parses a JSON request body into `T`, with a message that says what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request("invalid_json", format!("request body: {error}")))
}

/// The bearer token of a request, the one way every route reads credentials:
/// `Authorization: Bearer <token>` (scheme case-insensitive), `None` if absent or empty.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Marks an HTTP/1 response as the connection's last: hyper closes the connection after it
/// (cleanly, see `lingering_close`).
pub fn close_connection(response: &mut Response<ResponseBody>) {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

pub fn empty_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = status;
    response
}

pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        http::HeaderMap::from_iter([(http::header::AUTHORIZATION, value.parse().unwrap())])
    }

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
    }
}
