//! The client value and its plumbing: URLs, the bearer token, timeouts, and turning answers
//! into typed values or typed errors. The API methods live in one file per resource.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body::{self, RequestBody};
use crate::{Error, tls};

/// Where and how to reach Kiln.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, such as `https://kiln.example.com` (a path prefix is kept).
    pub url: String,
    /// Bearer token: a tenant JWT, or the admin token for the admin calls.
    pub token: Option<String>,
    /// A PEM file of extra CA certificates to trust for HTTPS.
    pub ca_cert: Option<PathBuf>,
    /// Bound on each call until its answer is read (until its headers, for log streams).
    pub timeout: Duration,
}

/// A Kiln API client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, RequestBody>,
    /// The base URL without a trailing `/`; API paths are appended to it.
    base: String,
    token: Option<String>,
    timeout: Duration,
}

/// A complete answer: status, headers and body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let base = config.url.trim_end_matches('/').to_owned();
        check_url(&base).map_err(|reason| Error::InvalidUrl {
            url: config.url.clone(),
            reason,
        })?;
        let connector = tls::connector(config.ca_cert.as_deref())?;
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            http,
            base,
            token: config.token,
            timeout: config.timeout,
        })
    }

    /// The base URL calls go to.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads the whole answer, within the timeout, whatever its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: RequestBody,
    ) -> Result<Answer, Error> {
        let url = self.full_url(path);
        let exchange = async {
            let response = self.start(method, &url, headers, body).await?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| transport(&url, error))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(&url)))
    }

    /// Sends a request and returns once its headers arrived (within the timeout), with the
    /// body still streaming; an error status is read and turned into an error.
    pub(crate) async fn open(&self, path: &str) -> Result<Incoming, Error> {
        let url = self.full_url(path);
        let head = tokio::time::timeout(
            self.timeout,
            self.start(Method::GET, &url, HeaderMap::new(), body::empty()),
        )
        .await
        .unwrap_or_else(|_| Err(self.timed_out(&url)))?;
        let status = head.status().as_u16();
        if head.status().is_success() {
            return Ok(head.into_body());
        }
        let body = tokio::time::timeout(self.timeout, head.into_body().collect())
            .await
            .map_err(|_| self.timed_out(&url))?
            .map_err(|error| transport(&url, error))?
            .to_bytes();
        Err(Error::from_status(status, &body))
    }

    /// A call whose answer is JSON on success.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let answer = self.call(method, path, body).await?;
        parse(&answer.body)
    }

    /// A call whose success carries nothing of interest (`204`).
    pub(crate) async fn empty(&self, method: Method, path: &str) -> Result<(), Error> {
        self.call(method, path, None::<&()>).await.map(drop)
    }

    /// A call with an optional JSON body; a 4xx/5xx answer becomes an error.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, Error> {
        let mut headers = HeaderMap::new();
        let body = match body {
            Some(value) => {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                let json = serde_json::to_vec(value)
                    .map_err(|error| Error::InvalidRequest(format!("request body: {error}")))?;
                body::full(json)
            }
            None => body::empty(),
        };
        success(self.send(method, path, headers, body).await?)
    }

    async fn start(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: RequestBody,
    ) -> Result<Response<Incoming>, Error> {
        let uri: Uri = url.parse().map_err(|error| Error::InvalidUrl {
            url: url.to_owned(),
            reason: format!("{error}"),
        })?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|error| Error::InvalidRequest(error.to_string()))?;
        *request.headers_mut() = headers;
        if let Some(token) = &self.token {
            let value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::InvalidRequest("the token has characters not allowed in a header".into())
            })?;
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        self.http.request(request).await.map_err(|error| {
            if error.is_connect() {
                Error::Connect {
                    url: self.base.clone(),
                    source: error,
                }
            } else {
                transport(url, error)
            }
        })
    }

    fn full_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn timed_out(&self, url: &str) -> Error {
        Error::Timeout {
            url: url.to_owned(),
            timeout: self.timeout,
        }
    }
}

/// The answer if its status is not an error, else the error its body describes.
pub(crate) fn success(answer: Answer) -> Result<Answer, Error> {
    if answer.status >= 400 {
        return Err(Error::from_status(answer.status, &answer.body));
    }
    Ok(answer)
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|error| Error::InvalidResponse(error.to_string()))
}

/// One path segment, percent-encoded so that a name cannot reach another route.
pub(crate) fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'@') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `?key=value&...` from the pairs that are present, or an empty string.
pub(crate) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(key, &value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

fn transport(url: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Transport {
        url: url.to_owned(),
        source: Box::new(error),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|error| format!("{error}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("scheme `{other}` is not http or https")),
        None => return Err("it needs a scheme, such as http:// or https://".into()),
    }
    if uri.authority().is_none() {
        return Err("it needs a host".into());
    }
    if uri.query().is_some() {
        return Err("it cannot have a query".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:3001").is_ok());
        assert!(check_url("https://kiln.example.com/prefix").is_ok());
        assert!(check_url("127.0.0.1:3001").unwrap_err().contains("scheme"));
        assert!(check_url("ftp://host").unwrap_err().contains("ftp"));
        assert!(check_url("http://host/?a=1").unwrap_err().contains("query"));
    }

    #[tokio::test]
    async fn the_base_url_loses_its_trailing_slash() {
        let client = Client::new(ClientConfig {
            url: "http://127.0.0.1:3001/".into(),
            token: None,
            ca_cert: None,
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(
            client.full_url("/v1/functions"),
            "http://127.0.0.1:3001/v1/functions"
        );
        let refused = Client::new(ClientConfig {
            url: "localhost:3001".into(),
            token: None,
            ca_cert: None,
            timeout: Duration::from_secs(1),
        });
        assert!(matches!(refused, Err(Error::InvalidUrl { .. })));
    }

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(segment("hello"), "hello");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("fn@3"), "fn@3");
        assert_eq!(
            query([
                ("lines", Some("10".into())),
                ("follow", None),
                ("instance", Some("a&b".into()))
            ]),
            "?lines=10&instance=a%26b"
        );
        assert_eq!(query([("follow", None)]), "");
    }
}
