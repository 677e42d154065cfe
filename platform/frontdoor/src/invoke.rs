//! `ANY /fn/{tenant}/{function}[@version]/{*path}`: authorise, resolve, run, answer.

use std::time::Instant;

use crate::body::{BoxError, ResponseBody, full_body};
use auth::AuthError;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use pool::{FunctionBody, Invocation, Runner};
use registry::VersionSelector;

use crate::body::RequestBody;
use crate::body::{bearer_token, read_body};
use crate::error::ApiError;
use crate::{App, webhook_api};

/// What metrics learn of one invocation once it is over.
#[derive(Default)]
struct Served {
    /// Tenant and function, known once the caller was authorised and the function found:
    /// unauthorised callers must not be able to mint label values.
    labels: Option<(String, String)>,
    version: Option<i32>,
    cold: bool,
    /// Time that is the caller's or the function's, not Kiln's: reading the body, waiting
    /// for a busy function, running it. `None` until the function answered.
    not_kiln: Option<std::time::Duration>,
    body_read: std::time::Duration,
}

/// A request whose body was read already (to check its signature), or not yet.
enum Pending<B> {
    Read(http::request::Parts, bytes::Bytes),
    Unread(Request<B>),
}

/// `rest` is the request path after `/fn/`.
pub async fn invoke<R, B>(
    app: &App<R>,
    request: Request<B>,
    rest: &str,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let started = Instant::now();
    let mut served = Served::default();
    let result = run(app, request, rest, &mut served).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    let elapsed = started.elapsed();
    let (tenant, function) = served.labels.unwrap_or_default();
    let state = &app.inner;
    state
        .metrics
        .invocation(&tenant, &function, status.as_u16(), elapsed, served.not_kiln);
    if !tenant.is_empty() {
        state.events.invocation(
            &tenant,
            &function,
            served.version,
            status.as_u16(),
            elapsed,
            served.cold,
        );
    }
    result
}

async fn run<R, B>(
    app: &App<R>,
    request: Request<B>,
    rest: &str,
    served: &mut Served,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    app.refuse_while_draining()?;
    let state = &app.inner;
    let (tenant, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let (function_part, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if tenant.is_empty() || function_part.is_empty() {
        return Err(ApiError::not_found(
            "invoke functions at /fn/{tenant}/{function}/{path}",
        ));
    }
    let (function, selector) = parse_selector(function_part)?;
    let span = tracing::Span::current();
    span.record("tenant", tenant);
    span.record("function", function);
    // Without a bearer token the request may be a signed webhook (the signature is checked
    // over the raw body before anything else is looked at); otherwise the tenant's JWT decides.
    let bearer = bearer_token(request.headers());
    let webhook = match bearer {
        Some(_) => None,
        None => state.webhooks.get(&state.store, tenant, function).await?,
    };
    let request = match webhook {
        Some(webhook) => {
            // A signed delivery names the function, never an older version of it.
            if selector != VersionSelector::Current {
                return Err(AuthError::MissingToken.into());
            }
            // Nothing is verified yet: an anonymous sender gets a bounded time to send.
            let body_limit = state.config.body_limit;
            let (parts, body) =
                tokio::time::timeout(state.config.request_timeout, read_body(request, body_limit))
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            "the request body took too long to arrive",
                        )
                    })??;
            webhook_api::verify_request(&webhook, &parts.headers, &body)?;
            Pending::Read(parts, body)
        }
        None => {
            state.auth.authenticate(bearer, Some(tenant)).await?;
            Pending::Unread(request)
        }
    };
    let target = state
        .registry
        .resolve(tenant, function, &selector)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "function `{function_part}` not found for tenant `{tenant}`"
            ))
        })?;
    span.record("version", target.version);
    served.labels = Some((tenant.to_owned(), function.to_owned()));
    served.version = Some(target.version);
    let path = path.to_owned();
    let reading = Instant::now();
    let (mut parts, body) = match request {
        Pending::Read(parts, body) => (parts, body),
        Pending::Unread(request) => read_body(request, state.config.body_limit).await?,
    };
    served.body_read = reading.elapsed();
    // The caller's Kiln token is for Kiln, not for the function: it could manage functions.
    parts.headers.remove(http::header::AUTHORIZATION);
    let invocation = Invocation {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        durable: None,
    };
    let outcome = state.runner.invoke(target, invocation).await?;
    span.record("cold", outcome.cold);
    served.cold = outcome.cold;
    // A cold start is Kiln's work but not its per-call overhead: it has its own metric.
    if !outcome.cold {
        served.not_kiln = Some(served.body_read + outcome.queued + outcome.in_function);
    }
    if let Some(phases) = outcome.cold_start {
        state.metrics.cold_start(
            tenant,
            function,
            &[
                ("socket", phases.socket),
                ("container", phases.container),
                ("total", phases.total),
            ],
        );
    }
    let (body, streamed) = match outcome.response.body {
        FunctionBody::Full(bytes) => (full_body(bytes), false),
        FunctionBody::Streamed(stream) => (stream.map_err(BoxError::from).boxed_unsync(), true),
    };
    let mut response = Response::new(body);
    *response.status_mut() = outcome.response.status;
    *response.headers_mut() = outcome.response.headers;
    if streamed {
        // A proxy in front (nginx) passes each chunk on at once instead of buffering.
        response
            .headers_mut()
            .insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    }
    Ok(response)
}

/// `name`, `name@7` (version number) or `name@<sha256 hex>` (digest).
fn parse_selector(function_part: &str) -> Result<(&str, VersionSelector), ApiError> {
    let Some((name, version)) = function_part.split_once('@') else {
        return Ok((function_part, VersionSelector::Current));
    };
    if let Ok(number) = version.parse::<i32>() {
        return Ok((name, VersionSelector::Number(number)));
    }
    if version.len() == 64 && version.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok((name, VersionSelector::Digest(version.to_ascii_lowercase())));
    }
    Err(ApiError::bad_request(
        "invalid_version",
        format!("`{version}` is neither a version number nor a sha256 digest"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector("hello").unwrap(),
            ("hello", VersionSelector::Current)
        );
        assert_eq!(
            parse_selector("hello@3").unwrap(),
            ("hello", VersionSelector::Number(3))
        );
        let digest = "ab".repeat(32);
        assert_eq!(
            parse_selector(&format!("hello@{digest}")).unwrap(),
            ("hello", VersionSelector::Digest(digest))
        );
        assert_eq!(
            parse_selector("hello@latest").unwrap_err().code,
            "invalid_version"
        );
    }
}
