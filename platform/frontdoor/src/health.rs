//! Liveness and a detailed health report (database, containers, uptime, version).

use crate::body::{ResponseBody, full_body};
use http::{HeaderValue, Response, StatusCode};
use pool::Runner;
use serde_json::json;
use telemetry::Gauges;

use crate::App;
use crate::body::json_response;

pub fn live() -> Response<ResponseBody> {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// 200 when PostgreSQL answers, else 503 with `"status": "degraded"`; always the figures.
pub async fn detailed<R: Runner>(app: &App<R>) -> Response<ResponseBody> {
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

/// `GET /metrics`: Prometheus text format, the counters plus levels read now.
pub fn metrics<R: Runner>(app: &App<R>) -> Response<ResponseBody> {
    let state = &app.inner;
    let pool = state.store.figures();
    let containers = state.runner.figures();
    let text = state.metrics.render(&Gauges {
        containers_warm: containers.warm,
        containers_busy: containers.busy,
        containers_starting: containers.starting,
        queued_callers: containers.queued,
        db_pool_size: pool.max_size,
        db_pool_open: pool.open,
        db_pool_idle: pool.idle,
        db_pool_waiting: pool.waiting,
        instances_running: state.instances.running(),
        connections_open: state.connections.open(),
        log_lines_dropped: state.logs.dropped(),
        lookups: vec![
            state.auth.key_lookups(),
            state.registry.lookups(),
            state.webhooks.lookups(),
        ],
        uptime: state.started.elapsed(),
    });
    let mut response = Response::new(full_body(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
