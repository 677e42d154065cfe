//! The operator's API under `/v1/admin`, behind `KILN_ADMIN_TOKEN`: tenants and their keys.

use crate::body::ResponseBody;
use http::{Method, Request, Response, StatusCode};
use pool::Runner;
use serde::Deserialize;
use serde_json::json;
use store::{KeyRecord, NewTenant};

use crate::App;
use crate::audit::{self, Actor};
use crate::body::{RequestBody, bearer_token, empty_response, json_response, parse_json, read_body, rfc3339};
use crate::error::ApiError;

const ADMIN_BODY_LIMIT: usize = 64 * 1024;

pub async fn route<R, B>(
    app: &App<R>,
    request: Request<B>,
    rest: &[&str],
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let state = &app.inner;
    if !state.admin.is_enabled() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off; set KILN_ADMIN_TOKEN to enable it",
        ));
    }
    state.admin.check(bearer_token(request.headers()))?;
    // The route table already refused other methods.
    match (rest, request.method()) {
        (["tenants"], &Method::POST) => create_tenant(app, request).await,
        (["tenants"], _) => list_tenants(app).await,
        (["tenants", tenant, "keys"], _) => add_key(app, &Actor::admin(tenant), request).await,
        (["tenants", tenant, "keys", kid], _) => delete_key(app, &Actor::admin(tenant), kid).await,
        (["audit"], _) => audit::list(app, None, request.uri().query()).await,
        _ => Err(ApiError::not_found("no such admin route")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRequest {
    name: String,
    issuer: Option<String>,
    audience: Option<String>,
    #[serde(default)]
    keys: Vec<KeyRequest>,
}

/// A key as sent by the operator: `secret` for HS256, `public_key` (PEM) otherwise.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    kid: String,
    algorithm: String,
    secret: Option<String>,
    public_key: Option<String>,
}

impl KeyRequest {
    fn into_record(self) -> Result<KeyRecord, ApiError> {
        let material = match (self.algorithm.as_str(), self.secret, self.public_key) {
            ("HS256", Some(secret), None) => secret,
            ("HS256", _, _) => {
                return Err(ApiError::bad_request(
                    "invalid_key",
                    "an HS256 key needs `secret` (and no `public_key`)",
                ));
            }
            (_, None, Some(public_key)) => public_key,
            (_, _, _) => {
                return Err(ApiError::bad_request(
                    "invalid_key",
                    "an asymmetric key needs `public_key` in PEM (and no `secret`)",
                ));
            }
        };
        let record = KeyRecord {
            kid: self.kid,
            algorithm: self.algorithm,
            material,
        };
        auth::validate_key(&record)
            .map_err(|error| ApiError::bad_request("invalid_key", error.to_string()))?;
        Ok(record)
    }
}

async fn create_tenant<R, B>(app: &App<R>, request: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let (_, body) = read_body(request, ADMIN_BODY_LIMIT).await?;
    let tenant: TenantRequest = parse_json(&body)?;
    registry::validate_name("tenant name", &tenant.name)?;
    let keys = tenant
        .keys
        .into_iter()
        .map(KeyRequest::into_record)
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewTenant {
        issuer: tenant.issuer.unwrap_or_else(|| "kiln".into()),
        audience: tenant.audience.unwrap_or_else(|| format!("kiln:{}", tenant.name)),
        name: tenant.name,
        keys,
    };
    app.inner
        .store
        .create_tenant(&new, &Actor::admin(&new.name).name)
        .await?;
    app.inner.auth.invalidate(&new.name).await;
    tracing::info!(tenant = %new.name, keys = new.keys.len(), "tenant created");
    let kids: Vec<&str> = new.keys.iter().map(|key| key.kid.as_str()).collect();
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": new.name, "issuer": new.issuer, "audience": new.audience, "kids": kids}),
    ))
}

async fn list_tenants<R: Runner>(app: &App<R>) -> Result<Response<ResponseBody>, ApiError> {
    let tenants = app.inner.store.list_tenants().await?;
    let tenants: Vec<_> = tenants
        .iter()
        .map(|tenant| {
            json!({
                "name": tenant.name,
                "issuer": tenant.issuer,
                "audience": tenant.audience,
                "kids": tenant.kids,
                "created_at": rfc3339(tenant.created_at),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"tenants": tenants})))
}

async fn add_key<R, B>(
    app: &App<R>,
    actor: &Actor,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let tenant = actor.tenant.as_str();
    let (_, body) = read_body(request, ADMIN_BODY_LIMIT).await?;
    let key = parse_json::<KeyRequest>(&body)?.into_record()?;
    if !app.inner.store.add_tenant_key(tenant, &key).await? {
        return Err(ApiError::not_found(format!("tenant `{tenant}` not found")));
    }
    app.inner.auth.invalidate(tenant).await;
    tracing::info!(tenant, kid = %key.kid, "tenant key added");
    let details = json!({"kid": key.kid, "algorithm": key.algorithm});
    audit::record(app, actor, "tenant.key_add", tenant, details).await;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"tenant": tenant, "kid": key.kid, "algorithm": key.algorithm}),
    ))
}

async fn delete_key<R: Runner>(
    app: &App<R>,
    actor: &Actor,
    kid: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let tenant = actor.tenant.as_str();
    if !app.inner.store.delete_tenant_key(tenant, kid).await? {
        return Err(ApiError::not_found(format!(
            "tenant `{tenant}` has no key `{kid}`"
        )));
    }
    app.inner.auth.invalidate(tenant).await;
    tracing::info!(tenant, kid, "tenant key removed");
    audit::record(app, actor, "tenant.key_remove", tenant, json!({"kid": kid})).await;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
