//! `/v1/functions/{name}/webhook`: a function's webhook signature settings (the secret is
//! written, never read back), and the check of a signed invocation.

use std::time::{Duration, SystemTime};

use auth::{
    AuthError, DEFAULT_HMAC_HEADER, DEFAULT_STRIPE_TOLERANCE, WebhookError, WebhookScheme, verify_webhook,
};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use pool::Runner;
use serde::Deserialize;
use serde_json::{Value, json};
use store::WebhookRecord;

use crate::App;
use crate::audit::{Actor, record};
use crate::body::{RequestBody, ResponseBody, empty_response, json_response, parse_json, read_body, rfc3339};
use crate::error::ApiError;

const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=256;
const TOLERANCE_SECONDS: std::ops::RangeInclusive<i32> = 1..=86_400;

/// `method` on `/v1/functions/{name}/webhook` for `actor`'s tenant.
pub async fn route<R, B>(
    app: &App<R>,
    actor: &Actor,
    name: &str,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let tenant = actor.tenant.as_str();
    let store = &app.inner.store;
    match *request.method() {
        Method::PUT => {
            let (_, body) = read_body(request, 4096).await?;
            let webhook = parse_settings(&body)?;
            let updated_at = store
                .put_webhook(tenant, name, &webhook)
                .await?
                .ok_or_else(|| ApiError::function_not_found(name))?;
            app.inner.webhooks.invalidate(tenant, name).await;
            let scheme = webhook.scheme.clone();
            record(
                app,
                actor,
                "function.webhook_set",
                name,
                json!({"scheme": scheme}),
            )
            .await;
            Ok(json_response(
                StatusCode::OK,
                &settings_json(&WebhookRecord {
                    updated_at,
                    ..webhook
                }),
            ))
        }
        Method::DELETE => {
            if !store.delete_webhook(tenant, name).await? {
                return Err(webhook_not_found(name));
            }
            app.inner.webhooks.invalidate(tenant, name).await;
            record(app, actor, "function.webhook_delete", name, json!({})).await;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        _ => {
            let webhook = store
                .webhook(tenant, name)
                .await?
                .ok_or_else(|| webhook_not_found(name))?;
            Ok(json_response(StatusCode::OK, &settings_json(&webhook)))
        }
    }
}

/// Checks a tokenless invocation's signature over its raw body. A request without the
/// signature header is answered like any request without a token, so anonymous callers
/// cannot learn which functions take webhooks, or how they are signed.
pub fn verify_request(webhook: &WebhookRecord, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let scheme = scheme_of(webhook);
    let signature = headers.get(scheme.header()).and_then(|value| value.to_str().ok());
    let secret = webhook.secret.as_bytes();
    verify_webhook(&scheme, secret, signature, body, SystemTime::now()).map_err(|error| match error {
        WebhookError::MissingSignature(_) => ApiError::from(AuthError::MissingToken),
        error => ApiError::new(StatusCode::UNAUTHORIZED, error.code(), format!("{error}")),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSettings {
    scheme: String,
    secret: String,
    header: Option<String>,
    tolerance_s: Option<i32>,
}

fn parse_settings(body: &[u8]) -> Result<WebhookRecord, ApiError> {
    let settings: WebhookSettings = parse_json(body)?;
    let invalid = |message: String| ApiError::bad_request("invalid_webhook", message);
    if !SECRET_BYTES.contains(&settings.secret.len()) {
        return Err(invalid(format!(
            "secret must be {} to {} bytes long",
            SECRET_BYTES.start(),
            SECRET_BYTES.end()
        )));
    }
    let (header, tolerance_s) = match settings.scheme.as_str() {
        "github" | "stripe" if settings.header.is_some() => {
            return Err(invalid(format!(
                "`header` is fixed for the {} scheme; leave it out",
                settings.scheme
            )));
        }
        "github" | "hmac-sha256" if settings.tolerance_s.is_some() => {
            return Err(invalid(
                "`tolerance_s` applies to the stripe scheme only".to_owned(),
            ));
        }
        "github" => (None, None),
        "stripe" => {
            let tolerance = settings
                .tolerance_s
                .unwrap_or(DEFAULT_STRIPE_TOLERANCE.as_secs() as i32);
            if !TOLERANCE_SECONDS.contains(&tolerance) {
                return Err(invalid(format!(
                    "tolerance_s must be from {} to {} seconds",
                    TOLERANCE_SECONDS.start(),
                    TOLERANCE_SECONDS.end()
                )));
            }
            (None, Some(tolerance))
        }
        "hmac-sha256" => {
            let header = settings.header.unwrap_or_else(|| DEFAULT_HMAC_HEADER.to_owned());
            if HeaderName::from_bytes(header.as_bytes()).is_err()
                || header.eq_ignore_ascii_case("authorization")
            {
                return Err(invalid(format!(
                    "`{header}` cannot be used as the signature header"
                )));
            }
            (Some(header), None)
        }
        other => {
            return Err(invalid(format!(
                "unknown scheme `{other}`; use github, stripe or hmac-sha256"
            )));
        }
    };
    Ok(WebhookRecord {
        scheme: settings.scheme,
        secret: settings.secret,
        header,
        tolerance_s,
        updated_at: SystemTime::now(),
    })
}

fn scheme_of(webhook: &WebhookRecord) -> WebhookScheme {
    match webhook.scheme.as_str() {
        "github" => WebhookScheme::GitHub,
        "stripe" => WebhookScheme::Stripe {
            tolerance: webhook.tolerance_s.map_or(DEFAULT_STRIPE_TOLERANCE, |seconds| {
                Duration::from_secs(seconds.max(0) as u64)
            }),
        },
        _ => WebhookScheme::HmacSha256 {
            header: webhook
                .header
                .clone()
                .unwrap_or_else(|| DEFAULT_HMAC_HEADER.to_owned()),
        },
    }
}

fn settings_json(webhook: &WebhookRecord) -> Value {
    json!({
        "scheme": webhook.scheme,
        "header": scheme_of(webhook).header(),
        "tolerance_s": webhook.tolerance_s,
        "updated_at": rfc3339(webhook.updated_at),
    })
}

fn webhook_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "webhook_not_found",
        format!("function `{name}` has no webhook; PUT one first"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<WebhookRecord, &'static str> {
        parse_settings(body.as_bytes()).map_err(|error| error.code)
    }

    #[test]
    fn settings_are_checked() {
        let secret = "s".repeat(16);
        let github = parse(&format!(r#"{{"scheme":"github","secret":"{secret}"}}"#)).unwrap();
        assert_eq!((github.header, github.tolerance_s), (None, None));
        let stripe = parse(&format!(r#"{{"scheme":"stripe","secret":"{secret}"}}"#)).unwrap();
        assert_eq!(stripe.tolerance_s, Some(300));
        let generic = parse(&format!(r#"{{"scheme":"hmac-sha256","secret":"{secret}"}}"#)).unwrap();
        assert_eq!(generic.header.as_deref(), Some("X-Kiln-Signature"));
        for bad in [
            r#"{"scheme":"github","secret":"short"}"#.to_owned(),
            format!(r#"{{"scheme":"gitlab","secret":"{secret}"}}"#),
            format!(r#"{{"scheme":"github","secret":"{secret}","header":"X-A"}}"#),
            format!(r#"{{"scheme":"github","secret":"{secret}","tolerance_s":5}}"#),
            format!(r#"{{"scheme":"stripe","secret":"{secret}","tolerance_s":0}}"#),
            format!(r#"{{"scheme":"hmac-sha256","secret":"{secret}","header":"bad header"}}"#),
            format!(r#"{{"scheme":"hmac-sha256","secret":"{secret}","header":"Authorization"}}"#),
        ] {
            assert_eq!(parse(&bad).unwrap_err(), "invalid_webhook", "{bad}");
        }
        assert_eq!(parse(r#"{"scheme":"github"}"#).unwrap_err(), "invalid_json");
    }
}
