//! The HTTP app in-process with a fake runner (real PostgreSQL, no containers): what the
//! front door hands the runner, and how runner outcomes become responses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth::AdminToken;
use bytes::Bytes;
use e2e::{TestDatabase, testbed_path};
use frontdoor::{App, AppConfig, AppParts, TrustedProxies};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use instances::{Instances, InstancesConfig};
use pool::{
    FunctionBody, FunctionLogs, FunctionResponse, FunctionTarget, Invocation, InvokeError, InvokeOutcome,
    PoolFigures, Runner,
};
use registry::{FunctionSettings, Registry, RegistryConfig};
use store::{KeyRecord, NewTenant, Store, StoreConfig};
use telemetry::Metrics;

/// The operator token of the app under test.
const ADMIN: &str = "frontdoor-admin";

/// Every invocation the fake was asked to run, with its target.
type Seen = Arc<Mutex<Vec<(Arc<FunctionTarget>, Invocation)>>>;

/// Records what it is asked to run and answers with a canned outcome.
#[derive(Clone)]
struct FakeRunner {
    seen: Seen,
    answer: Arc<Mutex<Result<Canned, InvokeError>>>,
}

/// The fake's whole response: status, headers, body.
type Canned = (StatusCode, HeaderMap, Bytes);

impl Runner for FakeRunner {
    async fn invoke(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.seen.lock().unwrap().push((target, invocation));
        let answer = self.answer.lock().unwrap().clone();
        answer.map(|(status, headers, body)| InvokeOutcome {
            response: FunctionResponse {
                status,
                headers,
                body: FunctionBody::Full(body),
            },
            cold: false,
            container: "fake".into(),
            in_function: Duration::from_millis(1),
            queued: Duration::ZERO,
            cold_start: None,
        })
    }

    fn prewarm(&self, _: Arc<FunctionTarget>) {}

    async fn retire_function(&self, _: &str, _: &str) {}

    fn figures(&self) -> PoolFigures {
        PoolFigures::default()
    }
}

struct Harness {
    app: App<FakeRunner>,
    runner: FakeRunner,
    token: String,
    database: TestDatabase,
    data_dir: std::path::PathBuf,
}

async fn harness() -> Harness {
    let database = TestDatabase::create().await;
    store::migrate(&database.url).await.unwrap();
    let store = Store::new(&StoreConfig {
        url: database.url.clone(),
        pool_size: 2,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let secret = e2e::tenant_secret("acme");
    let key = KeyRecord {
        kid: "k1".into(),
        algorithm: "HS256".into(),
        material: secret.clone(),
    };
    let tenant = NewTenant {
        name: "acme".into(),
        issuer: "kiln".into(),
        audience: "kiln:acme".into(),
        keys: vec![key],
    };
    store.create_tenant(&tenant, "test").await.unwrap();
    let data_dir = std::env::temp_dir().join(format!("kiln-frontdoor-{}", database.name));
    let registry = Registry::open(
        store.clone(),
        &data_dir,
        RegistryConfig {
            upload_limit: 64 << 20,
            default_network: Default::default(),
            allow_host_network: false,
            images: Default::default(),
            pulls: Default::default(),
            stale_for: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let executable = Bytes::from(std::fs::read(testbed_path()).unwrap());
    registry
        .upload("acme", "echo", executable, &FunctionSettings::default())
        .await
        .unwrap();
    let runner = FakeRunner {
        seen: Arc::default(),
        answer: Arc::new(Mutex::new(Ok((
            StatusCode::CREATED,
            HeaderMap::from_iter([(
                http::header::HeaderName::from_static("x-fake"),
                "yes".parse().unwrap(),
            )]),
            Bytes::from_static(b"from the fake"),
        )))),
    };
    let config = AppConfig {
        body_limit: 1024,
        upload_limit: 64 << 20,
        request_timeout: Duration::from_secs(10),
        trusted_proxies: TrustedProxies::default(),
        max_connections: 100,
        stale_serve_max: Duration::from_secs(3600),
        auth_failures_per_minute: 60,
        live_streams_per_tenant: 100,
    };
    let instances = Instances::start(
        store.clone(),
        registry.clone(),
        runner.clone(),
        InstancesConfig {
            node: "frontdoor-test".to_owned(),
            value_limit: 1024,
            default_timeout: Duration::from_secs(60),
            retention: Duration::from_secs(60),
            lease: Duration::from_secs(15),
            concurrency: 4,
            wheel_window: Duration::from_secs(30),
            refill_interval: Duration::from_secs(1),
        },
        Metrics::new(),
    )
    .await;
    let app = App::new(
        AppParts {
            store,
            registry,
            admin: AdminToken::new(Some(ADMIN.to_owned())),
            runner: runner.clone(),
            instances,
            metrics: Metrics::new(),
            logs: FunctionLogs::new(data_dir.join("logs"), 1 << 20),
        },
        config,
    );
    let token = auth::mint_hs256("acme", "k1", &secret, "kiln", "kiln:acme", 60).unwrap();
    Harness {
        app,
        runner,
        token,
        database,
        data_dir,
    }
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &'static [u8],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-custom", "kept");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .app
            .handle(request.body(Full::new(Bytes::from_static(body))).unwrap())
            .await;
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    async fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        drop(self.app);
        self.database.drop().await;
    }
}

#[tokio::test]
async fn shutting_down_refuses_new_requests_and_ends_the_live_events_poller() {
    let harness = harness().await;
    let token = harness.token.clone();
    let (status, headers, _) = harness.call("GET", "/api/health", None, b"").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("connection").is_none(), "{headers:?}");
    harness.app.begin_shutdown();
    let refused = [
        ("GET", "/api/health", None),
        ("POST", "/fn/acme/echo/x", Some(token.as_str())),
    ];
    for (method, uri, token) in refused {
        let (status, headers, body) = harness.call(method, uri, token, b"payload").await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(json["error"]["code"], "shutting_down", "{uri}");
        assert_eq!(headers["retry-after"], "1", "{uri}");
        assert_eq!(headers["connection"], "close", "{uri}");
    }
    assert!(
        harness.runner.seen.lock().unwrap().is_empty(),
        "a refused call reached the runner"
    );
    tokio::time::timeout(Duration::from_secs(5), harness.app.streams_closed())
        .await
        .expect("the poller outlived the app's shutdown");
    harness.finish().await;
}

#[tokio::test]
async fn the_runner_gets_the_request_and_its_answer_goes_back() {
    let harness = harness().await;
    let token = harness.token.clone();
    let (status, headers, body) = harness
        .call("PATCH", "/fn/acme/echo/a/b%20c?x=1&y", Some(&token), b"payload")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-fake"], "yes");
    assert_eq!(body, "from the fake");
    let seen = harness.runner.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (target, invocation) = &seen[0];
    assert_eq!(
        (target.tenant.as_str(), target.function.as_str(), target.version),
        ("acme", "echo", 1)
    );
    assert_eq!(invocation.method, "PATCH");
    assert_eq!(invocation.path, "/a/b%20c");
    assert_eq!(invocation.query.as_deref(), Some("x=1&y"));
    assert_eq!(invocation.body, "payload");
    assert_eq!(invocation.headers["x-custom"], "kept");
    harness.finish().await;
}

#[tokio::test]
async fn refused_calls_never_reach_the_runner() {
    let harness = harness().await;
    let token = harness.token.clone();
    assert_eq!(
        harness.call("GET", "/fn/acme/echo/", None, b"").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        harness.call("GET", "/fn/other/echo/", Some(&token), b"").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        harness
            .call("GET", "/fn/acme/missing/", Some(&token), b"")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _, body) = harness
        .call("POST", "/fn/acme/echo/", Some(&token), &[b'x'; 2048])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body:?}");
    assert!(harness.runner.seen.lock().unwrap().is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn runner_errors_become_statuses_by_who_is_at_fault() {
    let harness = harness().await;
    let token = harness.token.clone();
    for (error, status, code) in [
        (
            InvokeError::Busy {
                retry_after: Duration::from_secs(3),
            },
            429,
            "function_busy",
        ),
        (
            InvokeError::Timeout(Duration::from_secs(1)),
            504,
            "function_timeout",
        ),
        (
            InvokeError::Crashed("exited with code 3".into()),
            502,
            "function_crashed",
        ),
        (InvokeError::StartFailed("no rootfs".into()), 503, "start_failed"),
    ] {
        *harness.runner.answer.lock().unwrap() = Err(error);
        let (got, headers, body) = harness.call("GET", "/fn/acme/echo/", Some(&token), b"").await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (got.as_u16(), json["error"]["code"].as_str().unwrap()),
            (status, code)
        );
        if status == 429 {
            assert_eq!(headers["retry-after"], "3");
        }
        assert!(
            !String::from_utf8_lossy(&body).contains("no rootfs"),
            "platform causes stay in the log"
        );
    }
    harness.finish().await;
}

/// Every route in the router's table is in the OpenAPI document and the other way round, and
/// the handlers answer each one (no route-level 404 or 405), while methods and paths outside
/// the table are refused before any handler runs.
#[tokio::test]
async fn the_openapi_document_and_the_router_agree() {
    let document: serde_json::Value = serde_json::from_str(frontdoor::OPENAPI_DOCUMENT).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                documented.push((path.clone(), method.to_uppercase()));
            }
        }
    }
    let mut routed: Vec<(String, String)> = frontdoor::ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (route.pattern.to_owned(), method.to_string()))
        })
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed, "openapi.json and the route table differ");

    let harness = harness().await;
    for (pattern, method) in &routed {
        let path = pattern
            .replace("{tenant}", "acme")
            .replace("{function}", "hello")
            .replace("{path}", "echo")
            .replace("{name}", "hello")
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{kid}", "k9")
            .replace("{file}", "console.js");
        let token = if path.starts_with("/v1/admin") {
            ADMIN
        } else {
            harness.token.as_str()
        };
        let (status, code, message) = probe(&harness, method, &path, token).await;
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !(code == "not_found" && message.starts_with("no ")),
            "{method} {path} is documented but not answered: {status} {code} {message}"
        );
    }
    for (method, path) in [
        ("POST", "/v1/functions"),
        ("PATCH", "/v1/functions/hello"),
        ("GET", "/v1/functions/hello/versions"),
        ("GET", "/v1/instances/x/y/z"),
        ("GET", "/v2/functions"),
        ("POST", "/metrics"),
    ] {
        let (status, _, _) = probe(&harness, method, path, &harness.token).await;
        assert!(
            [StatusCode::METHOD_NOT_ALLOWED, StatusCode::NOT_FOUND].contains(&status),
            "{method} {path} is not documented but answered {status}"
        );
    }
    harness.finish().await;
}

/// Status, error code and message of one request; streaming bodies are not read.
async fn probe(harness: &Harness, method: &str, path: &str, token: &str) -> (StatusCode, String, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = harness.app.handle(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value == "application/json");
    if !is_json || status.is_success() {
        return (status, String::new(), String::new());
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = |field: &str| error["error"][field].as_str().unwrap_or_default().to_owned();
    (status, text("code"), text("message"))
}
