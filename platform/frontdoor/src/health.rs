//! Liveness and a detailed health report (database, containers, uptime, version).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use pool::Runner;
use serde_json::json;

use crate::App;
use crate::body::json_response;

pub fn live() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// 200 when PostgreSQL answers, else 503 with `"status": "degraded"`; always the figures.
pub async fn detailed<R: Runner>(app: &App<R>) -> Response<Full<Bytes>> {
    let state = &app.inner;
    let database = state.store.ping().await;
    if let Err(error) = &database {
        tracing::warn!(%error, "health check: database unreachable");
    }
    let pool = state.store.figures();
    let containers = state.runner.figures();
    let healthy = database.is_ok();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "database": {
            "reachable": healthy,
            "pool": {"max_size": pool.max_size, "open": pool.open, "idle": pool.idle, "waiting": pool.waiting},
        },
        "containers": {
            "warm": containers.warm,
            "busy": containers.busy,
            "starting": containers.starting,
            "queued": containers.queued,
            "pools": containers.pools,
            "cold_starts_total": containers.cold_starts,
            "warm_starts_total": containers.warm_starts,
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}
