//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): the few W3C WebDriver commands the console test needs, sent as JSON
//! over HTTP to a chromedriver of the test's own.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::client::new_client;

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    client: Client<HttpConnector, Full<Bytes>>,
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver installed (scripts/test.sh installs chromium-driver)");
        let profile = std::env::temp_dir().join(format!("kiln-chromium-{}-{port}", std::process::id()));
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: new_client(),
            profile,
        };
        for _ in 0..100 {
            if browser.raw(Method::GET, "/status", None).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root in a container: Chromium's own sandbox needs user namespaces it may not get.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", format!("--user-data-dir={}", browser.profile.display())],
            },
        }}});
        let session = browser.command(Method::POST, "/session", capabilities).await;
        browser.session = session["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| error.to_string())?;
        let ok = response.status().is_success();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|error| error.to_string())?;
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].to_string())
        }
    }

    async fn command(&self, method: Method, path: &str, body: Value) -> Value {
        let body = (method != Method::GET).then_some(body);
        self.raw(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"))
    }

    async fn session_command(&self, method: Method, path: &str, body: Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.session_command(Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// The first element matching `css`, or `None`.
    async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .raw(
                Method::POST,
                &format!("/session/{}/element", self.session),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    async fn element(&self, css: &str) -> String {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element `{css}` on the page"))
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.session_command(
            Method::POST,
            &format!("/element/{element}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.session_command(Method::POST, &format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// The rendered text of the first element matching `css` (empty if there is none).
    pub async fn text(&self, css: &str) -> String {
        let Some(element) = self.find(css).await else {
            return String::new();
        };
        self.session_command(Method::GET, &format!("/element/{element}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the text of `css` contains `wanted`; panics after `within`.
    pub async fn wait_for_text(&self, css: &str, wanted: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let text = self.text(css).await;
            if text.contains(wanted) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{wanted}` did not appear in `{css}` within {within:?}; it shows: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        self.session_command(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Saves a PNG of the window at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.session_command(Method::GET, "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .unwrap();
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self
            .raw(Method::DELETE, &format!("/session/{}", self.session), None)
            .await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
