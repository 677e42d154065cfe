//! A small HTTP client for tests, on hyper-util's client.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The stable error code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

pub(crate) fn new_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub(crate) async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    try_send(client, method, url, headers, body)
        .await
        .unwrap_or_else(|error| panic!("request to {url} failed: {error}"))
}

/// [`send`], with a failure to get a whole answer (the connection reset, say) as an error.
pub(crate) async fn try_send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("valid request");
    let response = client.request(request).await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("response body: {error}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A response whose body is read as it arrives (live events, followed logs).
pub struct Streaming {
    pub status: u16,
    pub headers: HeaderMap,
    body: hyper::body::Incoming,
    /// Everything read so far.
    pub received: String,
}

impl Streaming {
    /// Reads until what was received contains `wanted`; panics after `within`.
    pub async fn read_until(&mut self, wanted: &str, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.received.contains(wanted) {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("`{wanted}` did not arrive; got: {}", self.received))
                .unwrap_or_else(|| panic!("stream ended before `{wanted}`; got: {}", self.received))
                .expect("stream frame");
            if let Some(data) = frame.data_ref() {
                self.received.push_str(&String::from_utf8_lossy(data));
            }
        }
    }
}

impl Streaming {
    /// The next piece of the body as it arrives: `None` when the body ended cleanly, an
    /// error when the connection was cut midway; panics after `within` without either.
    pub async fn next_data(&mut self, within: std::time::Duration) -> Option<Result<Bytes, String>> {
        loop {
            let frame = tokio::time::timeout(within, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("nothing arrived for {within:?}; got: {}", self.received))?;
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.received.push_str(&String::from_utf8_lossy(&data));
                        return Some(Ok(data));
                    }
                }
                Err(error) => return Some(Err(error.to_string())),
            }
        }
    }
}

pub(crate) async fn open_stream(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> Streaming {
    let mut request = Request::builder().uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).expect("valid request");
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|error| panic!("request to {url} failed: {error}"));
    Streaming {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.into_body(),
        received: String::new(),
    }
}
