//! The tenant's durable instance API: start (under `/v1/functions/{name}/instances`), read,
//! list, checkpoints, history and signals (under `/v1/instances`). The tenant comes from the
//! verified token; another tenant's instance is a 404.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response, StatusCode};
use instances::{InstanceFilter, InstanceRecord, InstanceStatus, SignalOutcome};
use pool::Runner;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::audit::{Actor, record};
use crate::body::{RequestBody, ResponseBody, json_response, parse_count, parse_json, read_body, rfc3339};
use crate::error::ApiError;

/// Longest idempotency key, in bytes.
const IDEMPOTENCY_KEY_LIMIT: usize = 255;
/// Longest signal name, in bytes.
const SIGNAL_NAME_LIMIT: usize = 200;
const DEFAULT_PAGE: i64 = 50;
/// Longest instance timeout a start may ask for.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
const MAX_PAGE: i64 = 1000;

/// `rest` holds the path segments after `/v1/instances`.
pub async fn route<R, B>(
    app: &App<R>,
    request: Request<B>,
    rest: &[&str],
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let claims = app.tenant_claims(&request).await?;
    let actor = Actor::from_claims(&claims, Actor::client_of(&request));
    let tenant = claims.tenant;
    // The route table already refused other methods.
    match rest {
        [] => list(app, &tenant, request.uri().query()).await,
        [id] => show(app, &tenant, id).await,
        [id, "checkpoints"] => checkpoints(app, &tenant, id).await,
        [id, "events"] => events(app, &tenant, id).await,
        [id, "signals"] => signal(app, &actor, id, request).await,
        _ => Err(ApiError::not_found("no such instance route")),
    }
}

/// `POST /v1/functions/{name}/instances`: the body is the instance's input (JSON; empty
/// means `null`); `?timeout=` overrides the instance timeout; `Idempotency-Key` makes
/// retries safe.
pub async fn start<R, B>(
    app: &App<R>,
    tenant: &str,
    function: &str,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    tracing::Span::current().record("function", function);
    let idempotency_key = idempotency_key(request.headers())?;
    let timeout = query_param(request.uri().query(), "timeout")
        .map(|text| match humantime::parse_duration(&text) {
            Ok(timeout) if timeout >= Duration::from_secs(1) && timeout <= LONGEST_TIMEOUT => Ok(timeout),
            _ => Err(ApiError::bad_request(
                "invalid_timeout",
                "timeout must be a duration from 1s to 100 years, such as 30s, 2h or 7d",
            )),
        })
        .transpose()?;
    let (_, body) = read_body(request, app.inner.config.body_limit).await?;
    let input: Value = if body.is_empty() {
        Value::Null
    } else {
        parse_json(&body)?
    };
    let started = app
        .inner
        .instances
        .start_instance(tenant, function, input, idempotency_key, timeout)
        .await?;
    let status = if started.created {
        tracing::info!(tenant, function, instance = %started.instance.id, "instance started");
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(status, &instance_json(&started.instance));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/instances/{}", started.instance.id)) {
        response.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(response)
}

async fn show<R: Runner>(app: &App<R>, tenant: &str, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let instance = app
        .inner
        .instances
        .instance(tenant, id)
        .await?
        .ok_or_else(|| instance_not_found(id))?;
    Ok(json_response(StatusCode::OK, &instance_json(&instance)))
}

async fn list<R: Runner>(
    app: &App<R>,
    tenant: &str,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut filter = list_filter(query)?;
    let page = filter.limit as usize;
    // One more than the page tells whether there is a next page.
    filter.limit += 1;
    let mut instances = app.inner.instances.list(tenant, &filter).await?;
    let next_cursor = if instances.len() > page {
        instances.truncate(page);
        instances.last().map(cursor_of)
    } else {
        None
    };
    let instances: Vec<Value> = instances.iter().map(instance_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"instances": instances, "next_cursor": next_cursor}),
    ))
}

async fn checkpoints<R: Runner>(
    app: &App<R>,
    tenant: &str,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let checkpoints = app
        .inner
        .instances
        .checkpoints(tenant, id)
        .await?
        .ok_or_else(|| instance_not_found(id))?;
    let checkpoints: Vec<Value> = checkpoints
        .iter()
        .map(|checkpoint| {
            json!({"key": checkpoint.key, "value": checkpoint.value, "created_at": rfc3339(checkpoint.created_at)})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"checkpoints": checkpoints}),
    ))
}

async fn events<R: Runner>(app: &App<R>, tenant: &str, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let events = app
        .inner
        .instances
        .events(tenant, id)
        .await?
        .ok_or_else(|| instance_not_found(id))?;
    let events: Vec<Value> = events
        .iter()
        .map(|event| json!({"id": event.id, "kind": event.kind, "detail": event.detail, "at": rfc3339(event.at)}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"events": events})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalRequest {
    name: String,
    #[serde(default)]
    payload: Value,
}

async fn signal<R, B>(
    app: &App<R>,
    actor: &Actor,
    id: &str,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let tenant = actor.tenant.as_str();
    let (_, body) = read_body(request, app.inner.config.body_limit).await?;
    let SignalRequest { name, payload } = parse_json(&body)?;
    if !is_signal_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_signal",
            format!(
                "signal name must be 1-{SIGNAL_NAME_LIMIT} letters, digits, `_`, `-`, `.` or `:` (cancel, pause and resume act on the instance; any other name is an event)"
            ),
        ));
    }
    match app.inner.instances.signal(tenant, id, &name, &payload).await? {
        SignalOutcome::Sent { signal, instance, .. } => {
            tracing::info!(tenant, instance = id, signal = %name, "signal sent");
            record(app, actor, "instance.signal", id, json!({"name": name})).await;
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({
                    "signal": {"id": signal.id, "name": signal.name, "created_at": rfc3339(signal.created_at)},
                    "instance": instance_json(&instance),
                }),
            ))
        }
        SignalOutcome::Finished(instance) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "instance_finished",
            format!(
                "instance {id} is {}; signals reach only live instances",
                instance.status.as_str()
            ),
        )),
        SignalOutcome::NotFound => Err(instance_not_found(id)),
    }
}

pub(crate) fn instance_json(instance: &InstanceRecord) -> Value {
    let error = match (&instance.error_code, &instance.error_message) {
        (Some(code), message) => json!({"code": code, "message": message}),
        _ => Value::Null,
    };
    json!({
        "id": instance.id,
        "function": instance.function,
        "version": instance.version,
        "status": instance.status.as_str(),
        "input": instance.input,
        "output": instance.output,
        "error": error,
        "attempt": instance.attempt,
        "wake_at": instance.wake_at.map(rfc3339),
        "waiting_for": instance.waiting_for,
        "idempotency_key": instance.idempotency_key,
        "deadline_at": rfc3339(instance.deadline_at),
        "created_at": rfc3339(instance.created_at),
        "updated_at": rfc3339(instance.updated_at),
        "finished_at": instance.finished_at.map(rfc3339),
    })
}

fn instance_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "instance_not_found",
        format!("instance `{id}` not found"),
    )
}

fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LIMIT => Ok(Some(key.to_owned())),
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1-{IDEMPOTENCY_KEY_LIMIT} visible ASCII characters"),
        )),
    }
}

fn is_signal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= SIGNAL_NAME_LIMIT
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':'))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn list_filter(query: Option<&str>) -> Result<InstanceFilter, ApiError> {
    let mut filter = InstanceFilter {
        limit: DEFAULT_PAGE,
        ..InstanceFilter::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "function" => filter.function = Some(value.into_owned()),
            "status" => {
                filter.status = Some(InstanceStatus::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_status",
                        "status must be one of pending, running, sleeping, paused, completed, failed, cancelled",
                    )
                })?);
            }
            "limit" => {
                filter.limit = parse_count("limit", &value, MAX_PAGE)?;
            }
            "cursor" => filter.after = Some(parse_cursor(&value)?),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter `{other}`; use function, status, limit or cursor"),
                ));
            }
        }
    }
    Ok(filter)
}

/// A page cursor names the last instance of the previous page: `{created_at µs}.{id}`.
fn cursor_of(instance: &InstanceRecord) -> String {
    let micros = instance
        .created_at
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_micros())
        .unwrap_or(0);
    format!("{micros}.{}", instance.id)
}

fn parse_cursor(cursor: &str) -> Result<(SystemTime, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor must be a next_cursor value from a previous page",
        )
    };
    let (micros, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let micros: u64 = micros.parse().map_err(|_| invalid())?;
    if !instances::is_instance_id(id) {
        return Err(invalid());
    }
    Ok((UNIX_EPOCH + Duration::from_micros(micros), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_checked() {
        let filter = list_filter(Some("function=orders&status=sleeping&limit=10")).expect("valid");
        assert_eq!(filter.function.as_deref(), Some("orders"));
        assert_eq!(filter.status, Some(InstanceStatus::Sleeping));
        assert_eq!(filter.limit, 10);
        for (query, code) in [
            ("status=asleep", "invalid_status"),
            ("limit=0", "invalid_limit"),
            ("limit=1001", "invalid_limit"),
            ("cursor=abc", "invalid_cursor"),
            ("cursor=12.not-a-uuid", "invalid_cursor"),
            ("colour=red", "invalid_query"),
        ] {
            assert_eq!(list_filter(Some(query)).expect_err(query).code, code, "{query}");
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let id = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2";
        let created = UNIX_EPOCH + Duration::from_micros(1_795_305_600_123_456);
        let (time, parsed) = parse_cursor(&format!("1795305600123456.{id}")).expect("valid cursor");
        assert_eq!((time, parsed.as_str()), (created, id));
    }

    #[test]
    fn signal_names_are_checked() {
        assert!(is_signal_name("approved"));
        assert!(is_signal_name("order.shipped:v2"));
        assert!(!is_signal_name(""));
        assert!(!is_signal_name("has space"));
        assert!(!is_signal_name(&"x".repeat(SIGNAL_NAME_LIMIT + 1)));
    }
}
