//! The client over real TLS against a small fake Kiln: trusted only with the extra CA file,
//! the bearer token sent, uploads counted as they go, both kinds of error answers parsed.
//!
//! `fixtures/` holds a test CA and a server certificate for `127.0.0.1` and `localhost` that
//! it signed (P-256, valid until 2126), made with openssl; the CA's key was not kept.

use parking_lot::Mutex;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kiln_client::{Client, ClientConfig, Error};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Serves HTTPS on a free port of 127.0.0.1 until the test ends; returns its URL.
async fn fake_kiln() -> String {
    let certificates = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake: no answer.
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service_fn(answer))
                        .await;
                }
            });
        }
    });
    url
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let authorized = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|value| value == "Bearer t0ken");
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let method = request.method().clone();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let (status, body) = match (method.as_str(), path.as_str()) {
        _ if !authorized => (
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "missing_token", "message": "send a bearer token"}}).to_string(),
        ),
        ("GET", "/v1/functions") => (StatusCode::OK, json!({"functions": []}).to_string()),
        ("PUT", "/v1/functions/hello") => (
            StatusCode::CREATED,
            json!({
                "name": "hello", "invoke_path": "/fn/acme/hello/", "version": 1,
                "digest": "d1", "size_bytes": body.len(), "settings": {"query": query},
                "created_at": "2026-01-01T00:00:00.000Z"
            })
            .to_string(),
        ),
        _ => (StatusCode::BAD_GATEWAY, "<html>upstream down</html>".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

fn client(url: &str, token: &str, ca_cert: Option<PathBuf>) -> Client {
    Client::new(ClientConfig {
        url: url.to_owned(),
        token: Some(token.to_owned()),
        ca_cert,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn https_works_with_the_extra_ca_and_only_with_it() {
    let url = fake_kiln().await;
    let untrusting = client(&url, "t0ken", None).list_functions().await;
    assert!(matches!(untrusting, Err(Error::Connect { .. })), "{untrusting:?}");

    let trusting = client(&url, "t0ken", Some(fixture("ca.pem")));
    assert_eq!(trusting.list_functions().await.unwrap(), []);

    let refused = client(&url, "wrong", Some(fixture("ca.pem")))
        .list_functions()
        .await;
    assert!(
        matches!(&refused, Err(Error::Api { status: 401, code, .. }) if code == "missing_token"),
        "{refused:?}"
    );
    let proxy_error = trusting.get_function("other").await;
    assert!(
        matches!(&proxy_error, Err(Error::Status { status: 502, body }) if body.contains("upstream down")),
        "{proxy_error:?}"
    );
}

#[tokio::test]
async fn uploads_send_every_byte_and_report_progress() {
    let url = fake_kiln().await;
    let client = client(&url, "t0ken", Some(fixture("ca.pem")));
    let executable = Bytes::from(vec![7u8; 200_000]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let settings = [
        ("memory_mb".to_owned(), "64".to_owned()),
        ("env".to_owned(), "A=B".to_owned()),
    ];
    let uploaded = client
        .upload_function(
            "hello",
            &settings,
            executable,
            Box::new(move |sent, total| record.lock().push((sent, total))),
        )
        .await
        .unwrap();
    assert_eq!(uploaded.version.size_bytes, 200_000);
    assert_eq!(uploaded.version.settings["query"], "memory_mb=64&env=A%3DB");
    let seen = seen.lock();
    assert_eq!(seen.last(), Some(&(200_000, 200_000)));
    assert_eq!(seen.len(), 4, "{seen:?}");
}
