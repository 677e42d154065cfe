//! The HTTP application as a value: routes a request, times it, logs one span per request.
//! Tests call [`App::handle`] directly, without a socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auth::{AdminToken, Authenticator, Claims};
use http::{Request, Response, StatusCode};
use instances::Instances;
use pool::{FunctionLogs, Runner};
use registry::Registry;
use store::Store;
use telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth_failures::AuthFailureLimit;
use crate::body::{RequestBody, ResponseBody, bearer_token, close_connection};
use crate::client_addr::{PeerAddr, TrustedProxies};
use crate::connection_limit::ConnectionLimit;
use crate::error::{ApiError, CredentialRefused};
use crate::routes::{self, Lookup};
use crate::webhook_cache::WebhookCache;
use crate::{
    admin_api, audit, console, events_sse, events_ws, functions_api, health, instances_api, invoke, openapi,
};
use events::LiveEvents;

/// Limits of the HTTP API.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Largest invocation request body.
    pub body_limit: usize,
    /// Largest function upload.
    pub upload_limit: usize,
    /// Bound on management requests (invocations are bounded by the function's timeout).
    pub request_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Client connections open at once.
    pub max_connections: usize,
    /// How long tenant keys and webhook settings read before keep being used while
    /// PostgreSQL is unreachable.
    pub stale_serve_max: Duration,
    /// Failed authentications one client address may cause per minute (0: no limit).
    pub auth_failures_per_minute: u32,
    /// Live-event streams (SSE and WebSocket) one tenant may hold open on this node.
    pub live_streams_per_tenant: usize,
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

/// The parts the front door serves, each made and owned by the caller.
pub struct AppParts<R> {
    pub store: Store,
    pub registry: Registry,
    pub admin: AdminToken,
    pub runner: R,
    pub instances: Instances,
    pub metrics: Metrics,
    pub logs: FunctionLogs,
}

pub(crate) struct AppState<R> {
    pub store: Store,
    pub auth: Authenticator,
    pub admin: AdminToken,
    pub registry: Registry,
    pub runner: R,
    pub instances: Instances,
    pub metrics: Metrics,
    pub logs: FunctionLogs,
    pub events: LiveEvents,
    pub webhooks: WebhookCache,
    pub connections: ConnectionLimit,
    pub auth_failures: AuthFailureLimit,
    /// Cancelled when shutdown begins: open event and log streams end.
    pub closing: CancellationToken,
    /// Set when shutdown begins: new requests are refused (a flag, as it is read per request).
    pub draining: AtomicBool,
    pub config: AppConfig,
    /// For the uptime in health reports.
    pub started: Instant,
}

impl<R: Runner> App<R> {
    /// The claims of the request's tenant token (any tenant's), with the tenant recorded in
    /// the request's span.
    pub(crate) async fn tenant_claims<B>(&self, request: &Request<B>) -> Result<Claims, ApiError> {
        let claims = self
            .inner
            .auth
            .authenticate(bearer_token(request.headers()), None)
            .await?;
        tracing::Span::current().record("tenant", claims.tenant.as_str());
        Ok(claims)
    }

    pub fn new(parts: AppParts<R>, config: AppConfig) -> App<R> {
        let auth = Authenticator::new(parts.store.clone(), config.stale_serve_max);
        let closing = CancellationToken::new();
        let events = LiveEvents::start(
            parts.store.clone(),
            config.live_streams_per_tenant,
            closing.clone(),
        );
        let webhooks = WebhookCache::new(&parts.store, config.stale_serve_max);
        App {
            inner: Arc::new(AppState {
                store: parts.store,
                auth,
                admin: parts.admin,
                registry: parts.registry,
                runner: parts.runner,
                instances: parts.instances,
                metrics: parts.metrics,
                logs: parts.logs,
                events,
                webhooks,
                connections: ConnectionLimit::new(config.max_connections),
                auth_failures: AuthFailureLimit::new(config.auth_failures_per_minute),
                closing,
                draining: AtomicBool::new(false),
                config,
                started: Instant::now(),
            }),
        }
    }

    /// Shutdown has begun: new requests get `503 shutting_down`, every response from now on
    /// closes its HTTP/1 connection, and the open event and log streams and the live-events
    /// poller end. Requests already running finish.
    pub fn begin_shutdown(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        self.inner.closing.cancel();
    }

    /// `503 shutting_down` once shutdown has begun.
    pub(crate) fn refuse_while_draining(&self) -> Result<(), ApiError> {
        match self.inner.draining.load(Ordering::Relaxed) {
            true => Err(ApiError::shutting_down()),
            false => Ok(()),
        }
    }

    /// Waits until the app's own background task (the live-events poller) has ended, after
    /// [`App::begin_shutdown`].
    pub async fn streams_closed(&self) {
        self.inner.events.stopped().await;
    }

    /// Answers one request; never fails (errors become JSON error responses).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: RequestBody,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let version = request.version();
        let lookup = routes::lookup(&method, request.uri().path());
        let client = request.extensions().get::<PeerAddr>().map(|peer| {
            self.inner
                .config
                .trusted_proxies
                .client(peer.0, request.headers())
        });
        let mut request = request;
        if let Some(client) = client {
            request.extensions_mut().insert(ClientAddr(client));
        }
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            tenant = tracing::field::Empty,
            function = tracing::field::Empty,
            version = tracing::field::Empty,
            cold = tracing::field::Empty,
            client = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        async {
            if let Some(client) = client {
                tracing::Span::current().record("client", tracing::field::display(client));
            }
            let pattern = match &lookup {
                Lookup::Found(route) | Lookup::WrongMethod(route) => route.pattern,
                Lookup::Missing => "unmatched",
            };
            let method_label = routes::method_label(&method, &lookup);
            let needs_credential = pattern == routes::INVOKE || pattern.starts_with("/v1/");
            let refusal = client
                .filter(|_| needs_credential)
                .and_then(|client| self.inner.auth_failures.retry_after(client));
            let mut response = match refusal {
                Some(wait) => {
                    self.inner.metrics.auth_failure("refused");
                    ApiError::too_many_auth_failures(wait).into_response()
                }
                None => self
                    .route(request, lookup)
                    .await
                    .unwrap_or_else(ApiError::into_response),
            };
            // Kiln's own refusals only: a function may answer 401 to its callers.
            if response.extensions().get::<CredentialRefused>().is_some() {
                self.inner.metrics.auth_failure("failed");
                if let Some(client) = client {
                    self.inner.auth_failures.record(client);
                }
            }
            // Clients move on to another node before this one goes away.
            if version < http::Version::HTTP_2 && self.inner.draining.load(Ordering::Relaxed) {
                close_connection(&mut response);
            }
            let span = tracing::Span::current();
            let elapsed = started.elapsed();
            span.record("status", response.status().as_u16());
            span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
            // Invocations count themselves, with their tenant and function.
            if pattern != routes::INVOKE {
                let status = response.status().as_u16();
                self.inner
                    .metrics
                    .api_request(pattern, method_label, status, elapsed);
            }
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

    async fn route<B>(&self, request: Request<B>, lookup: Lookup) -> Result<Response<ResponseBody>, ApiError>
    where
        B: RequestBody,
    {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        match lookup {
            Lookup::Found(_) => {}
            Lookup::WrongMethod(route) => return Err(method_not_allowed(&route.methods.join(", "))),
            Lookup::Missing => return Err(ApiError::not_found(format!("no route for {method} {path}"))),
        }
        // An invocation refuses itself while draining, so the refusal is counted as one.
        if let Some(rest) = path.strip_prefix("/fn/") {
            return invoke::invoke(self, request, rest).await;
        }
        self.refuse_while_draining()?;
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        let bounded = async {
            match segments.as_slice() {
                ["api", "health"] => Ok(health::live()),
                ["api", "health", "detailed"] => Ok(health::detailed(self).await),
                ["api", "openapi.json"] => Ok(openapi::document()),
                ["metrics"] => Ok(health::metrics(self)),
                ["console", ..] => console::serve(path.strip_prefix("/console").unwrap_or_default()),
                ["v1", "audit"] => {
                    let claims = self.tenant_claims(&request).await?;
                    audit::list(self, Some(&claims.tenant), request.uri().query()).await
                }
                ["v1", "events"] => events_sse::stream(self, request).await,
                ["v1", "events", "ws"] => events_ws::upgrade(self, request).await,
                ["v1", "functions", rest @ ..] => functions_api::route(self, request, rest).await,
                ["v1", "instances", rest @ ..] => instances_api::route(self, request, rest).await,
                ["v1", "admin", rest @ ..] => admin_api::route(self, request, rest).await,
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

/// The client's address as Kiln believes it (see [`TrustedProxies`]), in request extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::IpAddr);

pub(crate) fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route accepts {allowed}"),
    )
}
