//! The HTTP application as a value: routes a request, times it, logs one span per request.
//! Tests call [`App::handle`] directly, without a socket.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::{AdminToken, Authenticator};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use instances::Instances;
use pool::Runner;
use registry::Registry;
use store::Store;
use tracing::Instrument;

use crate::body::RequestBody;
use crate::error::ApiError;
use crate::{admin_api, functions_api, health, instances_api, invoke};

/// Limits of the HTTP API.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Largest invocation request body.
    pub body_limit: usize,
    /// Largest function upload.
    pub upload_limit: usize,
    /// Bound on management requests (invocations are bounded by the function's timeout).
    pub request_timeout: Duration,
}

/// Cheap to clone; every clone serves the same state.
pub struct App<R: Runner> {
    pub(crate) inner: Arc<AppState<R>>,
}

impl<R: Runner> Clone for App<R> {
    fn clone(&self) -> Self {
        App {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct AppState<R> {
    pub store: Store,
    pub auth: Authenticator,
    pub admin: AdminToken,
    pub registry: Registry,
    pub runner: R,
    pub instances: Instances,
    pub config: AppConfig,
    /// For the uptime in health reports.
    pub started: Instant,
}

impl<R: Runner> App<R> {
    pub fn new(
        store: Store,
        registry: Registry,
        admin: AdminToken,
        runner: R,
        instances: Instances,
        config: AppConfig,
    ) -> App<R> {
        let auth = Authenticator::new(store.clone());
        App {
            inner: Arc::new(AppState {
                store,
                auth,
                admin,
                registry,
                runner,
                instances,
                config,
                started: Instant::now(),
            }),
        }
    }

    /// Answers one request; never fails (errors become JSON error responses).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: RequestBody,
    {
        let started = Instant::now();
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            tenant = tracing::field::Empty,
            function = tracing::field::Empty,
            version = tracing::field::Empty,
            cold = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        async {
            let response = self.route(request).await.unwrap_or_else(ApiError::into_response);
            let span = tracing::Span::current();
            span.record("status", response.status().as_u16());
            span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
            if response.status().is_server_error() {
                tracing::warn!("request failed");
            } else {
                tracing::info!("request done");
            }
            response
        }
        .instrument(span)
        .await
    }

    async fn route<B>(&self, request: Request<B>) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: RequestBody,
    {
        let path = request.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix("/fn/") {
            return invoke::invoke(self, request, rest).await;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        let bounded = async {
            match (segments.as_slice(), &method) {
                (["api", "health"], &Method::GET) => Ok(health::live()),
                (["api", "health", "detailed"], &Method::GET) => Ok(health::detailed(self).await),
                (["api", "health"] | ["api", "health", "detailed"], _) => Err(method_not_allowed("GET")),
                (["v1", "functions", rest @ ..], _) => functions_api::route(self, request, rest).await,
                (["v1", "instances", rest @ ..], _) => instances_api::route(self, request, rest).await,
                (["v1", "admin", rest @ ..], _) => admin_api::route(self, request, rest).await,
                _ => Err(ApiError::not_found(format!("no route for {method} {path}"))),
            }
        };
        tokio::time::timeout(self.inner.config.request_timeout, bounded)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long; retry",
                ))
            })
    }
}

pub(crate) fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route accepts {allowed}"),
    )
}

impl<R: Runner> hyper::service::Service<Request<Incoming>> for App<R> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let app = self.clone();
        Box::pin(async move { Ok(app.handle(request).await) })
    }
}
