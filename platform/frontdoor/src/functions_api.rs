//! The tenant's function API under `/v1/functions`; the tenant comes from the verified token.

use crate::body::ResponseBody;
use http::{Method, Request, Response, StatusCode};
use pool::Runner;
use registry::{FunctionRecord, FunctionSettings, VersionRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{Actor, record};
use crate::body::{RequestBody, empty_response, json_response, parse_json, read_body, rfc3339};
use crate::error::ApiError;
use crate::upload_body::{UploadKind, stage_body};
use crate::{App, instances_api, logs_api, webhook_api};

/// `rest` holds the path segments after `/v1/functions`.
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
    let method = request.method().clone();
    match (rest, method) {
        ([], _) => list(app, &tenant).await,
        ([name], Method::PUT) => upload(app, &actor, name, request).await,
        ([name], Method::DELETE) => delete(app, &actor, name).await,
        ([name], _) => show(app, &tenant, name).await,
        ([name, "current"], _) => set_current(app, &actor, name, request).await,
        ([name, "instances"], _) => instances_api::start(app, &tenant, name, request).await,
        ([name, "logs"], _) => logs_api::stream(app, &tenant, name, request.uri().query()).await,
        ([name, "webhook"], _) => webhook_api::route(app, &actor, name, request).await,
        _ => Err(ApiError::not_found("no such function route")),
    }
}

async fn list<R: Runner>(app: &App<R>, tenant: &str) -> Result<Response<ResponseBody>, ApiError> {
    let functions = app.inner.registry.list(tenant).await?;
    let functions: Vec<Value> = functions
        .iter()
        .map(|function| function_json(tenant, function))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"functions": functions})))
}

async fn upload<R, B>(
    app: &App<R>,
    actor: &Actor,
    name: &str,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let state = &app.inner;
    let tenant = actor.tenant.as_str();
    tracing::Span::current().record("function", name);
    registry::validate_name("function name", name)?;
    let settings = FunctionSettings::from_query(request.uri().query(), state.registry.default_network())?;
    let image = registry::image_reference(request.uri().query());
    let registry = &state.registry;
    let executable_limit = state.config.upload_limit as u64;
    let image_limit = registry.image_archive_limit();
    let staged = registry.stage_upload();
    let (length, kind) = stage_body(request, staged.path(), executable_limit.max(image_limit), || {
        format!("executables are limited to {executable_limit} bytes, image archives to {image_limit} bytes")
    })
    .await?;
    let version = match kind {
        UploadKind::ImageArchive => {
            registry
                .upload_image(tenant, name, staged, image, &settings)
                .await?
        }
        UploadKind::Empty => match image {
            Some(reference) => registry.pull_image(tenant, name, &reference, &settings).await?,
            None => {
                return Err(ApiError::bad_request(
                    "empty_upload",
                    "the body is empty: send a static executable, an oci-archive or a docker-archive, \
                     or name an image to pull with ?image=REGISTRY/REPOSITORY:TAG",
                ));
            }
        },
        UploadKind::Executable | UploadKind::Unknown => {
            if image.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_setting",
                    "image= chooses an image of an archive, but the body is not a tar archive",
                ));
            }
            if length > executable_limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "upload_too_large",
                    format!("executables are limited to {executable_limit} bytes"),
                ));
            }
            let executable = tokio::fs::read(staged.path())
                .await
                .map_err(|error| ApiError::internal(&error))?;
            drop(staged);
            registry
                .upload(tenant, name, executable.into(), &settings)
                .await?
        }
    };
    tracing::info!(tenant, function = name, version = version.version, digest = %version.digest, "function uploaded");
    // The new version becomes the current one: its min_warm containers start, older
    // versions' pools close.
    state
        .runner
        .prewarm(std::sync::Arc::new(state.registry.target(&version)?));
    let details =
        json!({"version": version.version, "digest": version.digest, "size_bytes": version.size_bytes});
    record(app, actor, "function.upload", name, details).await;
    let mut body = version_json(&version);
    body["name"] = json!(name);
    body["invoke_path"] = json!(format!("/fn/{tenant}/{name}/"));
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn show<R: Runner>(app: &App<R>, tenant: &str, name: &str) -> Result<Response<ResponseBody>, ApiError> {
    let (function, versions) = app
        .inner
        .registry
        .show(tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("function `{name}` not found")))?;
    let mut body = function_json(tenant, &function);
    body["versions"] = json!(versions.iter().map(version_json).collect::<Vec<_>>());
    Ok(json_response(StatusCode::OK, &body))
}

async fn delete<R: Runner>(
    app: &App<R>,
    actor: &Actor,
    name: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let tenant = actor.tenant.as_str();
    if !app.inner.registry.delete(tenant, name).await? {
        return Err(ApiError::not_found(format!("function `{name}` not found")));
    }
    app.inner.runner.retire_function(tenant, name).await;
    app.inner.logs.remove(tenant, name).await;
    app.inner.metrics.forget_function(tenant, name);
    tracing::info!(tenant, function = name, "function deleted");
    record(app, actor, "function.delete", name, json!({})).await;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentVersion {
    version: i32,
}

async fn set_current<R, B>(
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
    let (_, body) = read_body(request, 4096).await?;
    let CurrentVersion { version } = parse_json(&body)?;
    if !app.inner.registry.set_current(tenant, name, version).await? {
        return Err(ApiError::not_found(format!(
            "function `{name}` has no version {version}"
        )));
    }
    record(
        app,
        actor,
        "function.set_current",
        name,
        json!({"version": version}),
    )
    .await;
    let selector = registry::VersionSelector::Number(version);
    if let Some(target) = app.inner.registry.resolve(tenant, name, &selector).await? {
        app.inner.runner.prewarm(target);
    }
    show(app, tenant, name).await
}

fn function_json(tenant: &str, function: &FunctionRecord) -> Value {
    json!({
        "name": function.name,
        "current_version": function.current.version,
        "digest": function.current.digest,
        "size_bytes": function.current.size_bytes,
        "settings": function.current.settings,
        "invoke_path": format!("/fn/{tenant}/{}/", function.name),
        "created_at": rfc3339(function.created_at),
        "updated_at": rfc3339(function.updated_at),
    })
}

fn version_json(version: &VersionRecord) -> Value {
    let mut body = json!({
        "version": version.version,
        "kind": if version.image.is_some() { "image" } else { "executable" },
        "digest": version.digest,
        "size_bytes": version.size_bytes,
        "settings": version.settings,
        "created_at": rfc3339(version.created_at),
    });
    if let Some(image) = &version.image {
        body["image"] = json!({
            "reference": image["reference"],
            "layers": image["layers"].as_array().map_or(0, Vec::len),
            "process": image["process"],
        });
    }
    body
}
