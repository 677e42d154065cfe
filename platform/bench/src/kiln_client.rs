//! Talking to a running kilnd: invoke and upload over keep-alive HTTP/1.1.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

#[derive(Clone)]
pub struct KilnTarget {
    pub url: String,
    pub tenant: String,
    bearer: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl KilnTarget {
    pub fn new(url: String, token: String, tenant: String) -> KilnTarget {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Idle connections are dropped before kilnd closes them (KILN_HEADER_TIMEOUT_MS,
        // 10 s): a call on a connection kilnd is closing would fail. The warm bench leaves
        // them idle for 10 s while it measures the direct side.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        KilnTarget {
            url,
            tenant,
            bearer: format!("Bearer {token}"),
            client,
        }
    }

    /// The `Authorization` header value this target sends.
    pub fn bearer(&self) -> &str {
        &self.bearer
    }

    /// Sends one request; returns the status, the body and the time it took.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes, Duration)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", &self.bearer)
            .body(Full::new(body))?;
        let started = Instant::now();
        let response = self.client.request(request).await.context("request failed")?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body, started.elapsed()))
    }

    /// Sends `GET path` and returns the response as soon as its head arrived, with the
    /// body still to read.
    pub async fn open(&self, path: &str) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let request = Request::builder()
            .uri(format!("{}{path}", self.url))
            .header("authorization", &self.bearer)
            .body(Full::new(Bytes::new()))?;
        self.client.request(request).await.context("request failed")
    }

    /// Uploads the testbed as function `name` with `settings`.
    pub async fn upload(&self, name: &str, executable: &[u8], settings: &str) -> anyhow::Result<()> {
        let path = format!("/v1/functions/{name}?{settings}");
        let (status, body, _) = self
            .call(Method::PUT, &path, Bytes::copy_from_slice(executable))
            .await?;
        if status != 201 {
            bail!(
                "upload of {name} failed with {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Uploads the testbed at `testbed` as `name`, with `callers` containers kept warm and
    /// allowed at once; returns the path that invokes its `/echo`.
    pub async fn upload_warm(
        &self,
        name: &str,
        testbed: &std::path::Path,
        callers: usize,
    ) -> anyhow::Result<String> {
        let executable = std::fs::read(testbed).with_context(|| format!("reading {}", testbed.display()))?;
        self.upload(
            name,
            &executable,
            &format!("max_concurrency={callers}&min_warm={callers}"),
        )
        .await?;
        Ok(format!("/fn/{}/{name}/echo", self.tenant))
    }

    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, &format!("/v1/functions/{name}"), Bytes::new())
            .await?;
        Ok(())
    }
}
