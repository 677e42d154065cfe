//! HTTP to one registry for one repository: the distribution API's `GET`s, with its two
//! ways of authenticating (a bearer token from the registry's token service, or basic
//! auth) and the redirects registries use to send blobs from elsewhere.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;

use crate::{ImageReference, PullError, PullSettings};

/// How long a registry may take to start answering, and to send the next chunk of a body.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;
/// Token service answers larger than this are refused.
const MAX_TOKEN_BYTES: usize = 64 << 10;

pub(crate) struct RegistryClient {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    base: String,
    repository: String,
    credentials: Option<(String, String)>,
    authorization: Option<HeaderValue>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl RegistryClient {
    pub(crate) fn new(
        settings: &PullSettings,
        reference: &ImageReference,
    ) -> Result<RegistryClient, PullError> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| PullError::Protocol(format!("TLS setup: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(RegistryClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            base: format!(
                "{}://{}",
                settings.scheme(&reference.registry),
                reference.api_host()
            ),
            repository: reference.repository.clone(),
            credentials: settings.credentials.get(&reference.registry).cloned(),
            authorization: None,
        })
    }

    /// `GET /v2/<repository>/<path>`, authenticating when asked to and following redirects.
    pub(crate) async fn get(&mut self, path: &str, accept: &str) -> Result<Response<Incoming>, PullError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        let mut answer = self.send(&url, accept, true).await?;
        if answer.status() == StatusCode::UNAUTHORIZED && self.authenticate(&answer).await? {
            answer = self.send(&url, accept, true).await?;
        }
        for _ in 0..MAX_REDIRECTS {
            if !answer.status().is_redirection() {
                return Ok(answer);
            }
            let location = answer
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| PullError::Protocol(format!("{url}: a redirect without a Location")))?;
            let next = resolve(&url, location)?;
            // Credentials are for the registry, never for where it sends us, nor in clear
            // text where the registry itself is reached over HTTPS.
            let same_origin = host_of(&next) == host_of(&url) && scheme_of(&next) == scheme_of(&url);
            answer = self.send(&next, accept, same_origin).await?;
        }
        Err(PullError::Protocol(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn send(&self, url: &str, accept: &str, with_auth: bool) -> Result<Response<Incoming>, PullError> {
        let mut request = Request::get(url).header(header::ACCEPT, accept);
        if with_auth && let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|error| PullError::Protocol(format!("{url}: {error}")))?;
        match tokio::time::timeout(IDLE_TIMEOUT, self.http.request(request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(PullError::Unavailable(format!("cannot reach {url}: {error}"))),
            Err(_) => Err(PullError::Unavailable(format!(
                "{url} did not answer within {IDLE_TIMEOUT:?}"
            ))),
        }
    }

    /// Answers a `401`: fetches a bearer token or sets basic auth, as its challenge asks.
    /// False when there is nothing new to try.
    async fn authenticate(&mut self, answer: &Response<Incoming>) -> Result<bool, PullError> {
        if self.authorization.is_some() && self.credentials.is_none() {
            return Ok(false);
        }
        let challenge = answer
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let basic = self.credentials.as_ref().map(|(user, password)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value")
        });
        let (scheme, parameters) = challenge.split_once(' ').unwrap_or((challenge.as_str(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if basic.is_none() || self.authorization == basic {
                return Ok(false);
            }
            self.authorization = basic;
            return Ok(true);
        }
        if !scheme.eq_ignore_ascii_case("bearer")
            || self
                .authorization
                .as_ref()
                .is_some_and(|value| value.as_bytes().starts_with(b"Bearer"))
        {
            return Ok(false);
        }
        let parameter = |name: &str| challenge_parameter(parameters, name);
        let realm = parameter("realm")
            .ok_or_else(|| PullError::Protocol("a Bearer challenge without a realm".into()))?;
        if scheme_of(&realm) != Some("https") && !self.base.starts_with("http://") {
            return Err(PullError::Protocol(format!(
                "the registry names the token service {realm}, which is not HTTPS: Kiln sends no credentials there"
            )));
        }
        let mut query = form_query(&[("service", parameter("service")), ("scope", parameter("scope"))]);
        if !query.is_empty() {
            query.insert(0, if realm.contains('?') { '&' } else { '?' });
        }
        let token_url = format!("{realm}{query}");
        let mut request = Request::get(&token_url);
        if let Some(basic) = &basic {
            request = request.header(header::AUTHORIZATION, basic.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|error| PullError::Protocol(format!("{token_url}: {error}")))?;
        let reply = tokio::time::timeout(IDLE_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| PullError::Unavailable(format!("{token_url} did not answer")))?
            .map_err(|error| PullError::Unavailable(format!("cannot reach {token_url}: {error}")))?;
        if !reply.status().is_success() {
            return Err(PullError::Unauthorized(format!(
                "the token service {realm} refused Kiln ({})",
                reply.status()
            )));
        }
        let body = read_small(reply, MAX_TOKEN_BYTES).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|error| PullError::Protocol(format!("{realm} answered no token: {error}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| PullError::Protocol(format!("{realm} answered no token")))?;
        self.authorization = Some(
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| PullError::Protocol(format!("{realm} answered an unusable token")))?,
        );
        Ok(true)
    }
}

/// A whole small body, refused past `limit` bytes.
pub(crate) async fn read_small(answer: Response<Incoming>, limit: usize) -> Result<Bytes, PullError> {
    let limited = http_body_util::Limited::new(answer.into_body(), limit);
    match tokio::time::timeout(IDLE_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => Err(PullError::Protocol(format!("reading an answer: {error}"))),
        Err(_) => Err(PullError::Unavailable("the registry stopped sending".into())),
    }
}

/// `name="value"` out of a challenge's comma-separated parameters.
fn challenge_parameter(parameters: &str, name: &str) -> Option<String> {
    let mut rest = parameters;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(value.to_owned());
        }
        rest = after;
    }
    None
}

fn form_query(pairs: &[(&str, Option<String>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            query.append_pair(key, value);
        }
    }
    query.finish()
}

fn resolve(base: &str, location: &str) -> Result<String, PullError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let uri: Uri = base
        .parse()
        .map_err(|_| PullError::Protocol(format!("bad URL {base}")))?;
    let authority = uri
        .authority()
        .map(|authority| authority.as_str())
        .unwrap_or_default();
    let scheme = uri.scheme_str().unwrap_or("https");
    Ok(format!("{scheme}://{authority}{location}"))
}

fn scheme_of(url: &str) -> Option<&str> {
    url.split_once("://").map(|(scheme, _)| scheme)
}

fn host_of(url: &str) -> Option<String> {
    url.parse::<Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|authority| authority.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read() {
        let challenge = r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#;
        assert_eq!(
            challenge_parameter(challenge, "realm").as_deref(),
            Some("https://auth.example.com/token")
        );
        assert_eq!(
            challenge_parameter(challenge, "scope").as_deref(),
            Some("repository:a/b:pull")
        );
        assert_eq!(challenge_parameter(challenge, "missing"), None);
        assert_eq!(
            resolve("http://127.0.0.1:5000/v2/a/blobs/x", "/elsewhere/x").unwrap(),
            "http://127.0.0.1:5000/elsewhere/x"
        );
    }
}
