//! The runtime API over a real Unix socket, as a function speaks it: raw HTTP/1.1 in,
//! each answer read back whole, the caller's side seen through the assignment's channel.

use std::path::{Path, PathBuf};

use http::{HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;
use crate::logs::Attribution;

/// A runtime API served on a socket of its own, with the way to hand it work.
struct Served {
    socket: PathBuf,
    /// `None` once retired: the container takes no more work.
    assignments: Option<mpsc::Sender<Assignment>>,
    server: tokio::task::JoinHandle<()>,
    attribution: SharedAttribution,
}

impl Served {
    fn start(response_limit: usize) -> Served {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let socket = std::env::temp_dir().join(format!(
            "kiln-runtime-api-test-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("a socket");
        let attribution: SharedAttribution = Arc::new(parking_lot::Mutex::new(Attribution::default()));
        let (channel, assignments) = RuntimeChannel::new(response_limit, "c1", attribution.clone());
        let server = tokio::spawn(serve_runtime_api(listener, channel));
        Served {
            socket,
            assignments: Some(assignments),
            server,
            attribution,
        }
    }

    /// Hands out one invocation; the receiver gets what the function answers.
    async fn assign(&self, path: &str) -> oneshot::Receiver<Result<FunctionResponse, InvokeError>> {
        let mut headers = HeaderMap::new();
        headers.insert("x-caller", HeaderValue::from_static("yes"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("kiln-secret", HeaderValue::from_static("never forwarded"));
        let (respond, answer) = oneshot::channel();
        let assignment = Assignment {
            invocation: Invocation {
                method: Method::POST,
                path: path.to_owned(),
                query: Some("a=1".to_owned()),
                headers,
                body: Bytes::from_static(b"caller body"),
                durable: None,
            },
            deadline_ms: 1_700_000_000_000,
            respond,
        };
        let assignments = self.assignments.as_ref().expect("not retired");
        assignments
            .send(assignment)
            .await
            .expect("the channel takes work");
        answer
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One answer of the runtime API: status, head text (lower-cased), body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn call(socket: &Path, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = UnixStream::connect(socket).await.expect("the runtime socket");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head[9..12].parse().expect("a status");
    Answer {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn code(answer: &Answer) -> String {
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("a JSON error");
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn next_hands_out_the_invocation_and_a_response_reaches_its_caller() {
    let served = Served::start(1024);
    let answer = served.assign("/orders/7").await;
    let next = call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    assert_eq!((next.status, next.body.as_slice()), (200, &b"caller body"[..]));
    for line in [
        "kiln-invocation-id: 1",
        "kiln-method: post",
        "kiln-path: /orders/7",
        "kiln-query: a=1",
        "kiln-deadline-ms: 1700000000000",
        "x-caller: yes",
    ] {
        assert!(next.head.contains(line), "{line} missing from\n{}", next.head);
    }
    assert!(
        !next.head.contains("kiln-secret"),
        "a kiln- header of the caller was passed on"
    );
    assert!(
        !next.head.contains("keep-alive"),
        "a hop-by-hop header was passed on"
    );
    assert_eq!(served.attribution.lock().invocation.as_deref(), Some("c1-1"));

    let headers = [("kiln-status", "201"), ("x-answer", "42"), ("kiln-private", "x")];
    let posted = call(
        &served.socket,
        "POST",
        "/v1/invocation/1/response",
        &headers,
        b"made",
    )
    .await;
    assert_eq!(posted.status, 202);
    let response = answer.await.expect("an answer").expect("a response");
    assert_eq!(
        (response.status.as_u16(), response.body.as_ref()),
        (201, &b"made"[..])
    );
    assert_eq!(response.headers.get("x-answer").unwrap(), "42");
    assert!(response.headers.get("kiln-private").is_none());
    // Answered once: a second response names an invocation no longer in flight.
    let again = call(&served.socket, "POST", "/v1/invocation/1/response", &[], b"again").await;
    assert_eq!(
        (again.status, code(&again)),
        (404, "unknown_invocation".to_owned())
    );
}

#[tokio::test]
async fn refusals_name_what_is_wrong_and_leave_the_invocation_answerable() {
    let served = Served::start(8);
    let answer = served.assign("/").await;
    call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    let refusals = [
        (
            "/v1/invocation/1/response",
            Some(("kiln-status", "700")),
            400,
            "bad_status",
        ),
        ("/v1/invocation/9/response", None, 404, "unknown_invocation"),
        ("/v1/invocation/x/response", None, 404, "unknown_invocation"),
        ("/v1/invocation/1/checkpoint", None, 400, "not_durable"),
        ("/v1/elsewhere", None, 404, "not_found"),
    ];
    for (path, header, status, wanted) in refusals {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let refused = call(
            &served.socket,
            "POST",
            path,
            &headers,
            br#"{"key":"k","value":1}"#,
        )
        .await;
        assert_eq!(
            (refused.status, code(&refused)),
            (status, wanted.to_owned()),
            "{path}"
        );
    }
    let reported = br#"{"errorType":"ValueError","errorMessage":"bad order"}"#;
    let posted = call(&served.socket, "POST", "/v1/invocation/1/error", &[], reported).await;
    assert_eq!(posted.status, 202);
    let failure = answer.await.expect("an answer").unwrap_err();
    assert_eq!(
        failure,
        InvokeError::FunctionError {
            error_type: "ValueError".into(),
            message: "bad order".into()
        }
    );
}

#[tokio::test]
async fn an_oversized_response_fails_the_invocation_and_a_retired_channel_says_so() {
    let mut served = Served::start(8);
    let answer = served.assign("/").await;
    call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    let big = call(
        &served.socket,
        "POST",
        "/v1/invocation/1/response",
        &[],
        b"more than eight",
    )
    .await;
    assert_eq!((big.status, code(&big)), (413, "response_too_large".to_owned()));
    assert_eq!(
        answer.await.expect("an answer").unwrap_err(),
        InvokeError::ResponseTooLarge { limit: 8 }
    );
    served.assignments = None;
    let retired = call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    assert_eq!(
        (retired.status, code(&retired)),
        (503, "container_retiring".to_owned())
    );
}
