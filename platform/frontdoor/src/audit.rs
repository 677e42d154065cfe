//! The audit trail of management actions: who (tenant token or operator), what, when; and
//! `GET /v1/audit` (a tenant's own entries) and `GET /v1/admin/audit` (all, for operators).

use auth::Claims;
use http::{Response, StatusCode};
use pool::Runner;
use serde_json::{Value, json};
use store::{AuditEntry, NewAuditEntry};

use crate::App;
use crate::app::ClientAddr;
use crate::body::{ResponseBody, json_response, parse_count, rfc3339};
use crate::error::ApiError;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 1000;

/// Who performed an action: a tenant's token (with its `sub`, if any) or the operator.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: String,
    /// How the actor is written in the audit log.
    pub name: String,
    /// Where the request came from, when known.
    pub client: Option<std::net::IpAddr>,
}

impl Actor {
    pub fn from_claims(claims: &Claims, client: Option<std::net::IpAddr>) -> Actor {
        let name = match &claims.sub {
            Some(sub) => format!("tenant:{}/{sub}", claims.tenant),
            None => format!("tenant:{}", claims.tenant),
        };
        Actor {
            tenant: claims.tenant.clone(),
            name,
            client,
        }
    }

    /// The operator acting on `tenant`'s behalf (key changes, tenant creation). The
    /// tenant reads these entries too, so the operator's address is left out.
    pub fn admin(tenant: &str) -> Actor {
        Actor {
            tenant: tenant.to_owned(),
            name: "admin".to_owned(),
            client: None,
        }
    }

    /// The client address of `request`, as the app worked it out.
    pub fn client_of<B>(request: &http::Request<B>) -> Option<std::net::IpAddr> {
        request.extensions().get::<ClientAddr>().map(|client| client.0)
    }
}

/// Records an action that already happened. A failure to record is logged, not returned:
/// the action itself stands.
pub async fn record<R: Runner>(app: &App<R>, actor: &Actor, action: &str, target: &str, mut details: Value) {
    if let (Some(client), Some(fields)) = (actor.client, details.as_object_mut()) {
        fields.insert("client".to_owned(), json!(client.to_string()));
    }
    let entry = NewAuditEntry {
        tenant: Some(&actor.tenant),
        actor: &actor.name,
        action,
        target,
        details,
    };
    if let Err(error) = app.inner.store.record_audit(&entry).await {
        tracing::error!(%error, action, target, "recording an audit entry failed");
    }
}

/// A page of entries, newest first; `tenant` limits them to one tenant.
pub async fn list<R: Runner>(
    app: &App<R>,
    tenant: Option<&str>,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut before = None;
    let mut tenant_filter = tenant.map(str::to_owned);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" => {
                limit = parse_count("limit", &value, MAX_PAGE)?;
            }
            "cursor" => {
                before = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_cursor",
                        "cursor must be a next_cursor from an earlier page",
                    )
                })?);
            }
            // Only the operator's view filters by tenant; a tenant sees its own entries.
            "tenant" if tenant.is_none() => tenant_filter = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter `{other}`; use limit or cursor"),
                ));
            }
        }
    }
    let mut entries = app
        .inner
        .store
        .audit_entries(tenant_filter.as_deref(), before, limit + 1)
        .await?;
    let next_cursor = (entries.len() as i64 > limit).then(|| {
        entries.truncate(limit as usize);
        entries.last().map(|entry| entry.id.to_string())
    });
    let entries: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"entries": entries, "next_cursor": next_cursor.flatten()}),
    ))
}

fn entry_json(entry: &AuditEntry) -> Value {
    json!({
        "id": entry.id,
        "time": rfc3339(entry.at),
        "tenant": entry.tenant,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
    })
}
