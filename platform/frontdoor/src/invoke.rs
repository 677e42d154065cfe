//! `ANY /fn/{tenant}/{function}[@version]/{*path}`: authorise, resolve, run, answer.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pool::{Invocation, Runner};
use registry::VersionSelector;

use crate::App;
use crate::body::RequestBody;
use crate::body::{bearer_token, read_body};
use crate::error::ApiError;

/// `rest` is the request path after `/fn/`.
pub async fn invoke<R, B>(
    app: &App<R>,
    request: Request<B>,
    rest: &str,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
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
    state
        .auth
        .authenticate(bearer_token(request.headers()), Some(tenant))
        .await?;
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
    let path = path.to_owned();
    let (mut parts, body) = read_body(request, state.config.body_limit).await?;
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
    let mut response = Response::new(Full::new(outcome.response.body));
    *response.status_mut() = outcome.response.status;
    *response.headers_mut() = outcome.response.headers;
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
