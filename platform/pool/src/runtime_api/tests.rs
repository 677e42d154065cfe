//! The runtime API over a real Unix socket, as a function speaks it: raw HTTP/1.1 in,
//! each answer read back whole, the caller's side seen through the assignment's channel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;
use crate::logs::Attribution;

/// How long the test's streams may go without a chunk.
const STREAM_IDLE: Duration = Duration::from_millis(300);

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
        let limits = StreamLimits {
            idle_timeout: STREAM_IDLE,
            max_duration: Duration::from_secs(60),
        };
        let (channel, assignments) = RuntimeChannel::new(response_limit, limits, "c1", attribution.clone());
        let server = tokio::spawn(serve_runtime_api(listener, channel));
        Served {
            socket,
            assignments: Some(assignments),
            server,
            attribution,
        }
    }

    /// Hands out one invocation; the receiver gets what the function answers.
    async fn assign(&self, path: &str) -> oneshot::Receiver<Result<Answer, InvokeError>> {
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
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn call(socket: &Path, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = UnixStream::connect(socket).await.expect("the runtime socket");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    read_reply(&mut stream).await
}

async fn read_reply(stream: &mut UnixStream) -> Reply {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head[9..12].parse().expect("a status");
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn code(answer: &Reply) -> String {
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

    let headers = [
        ("kiln-status", "201"),
        ("x-answer", "42"),
        ("kiln-private", "x"),
        ("service-worker-allowed", "/"),
    ];
    let posted = call(
        &served.socket,
        "POST",
        "/v1/invocation/1/response",
        &headers,
        b"made",
    )
    .await;
    assert_eq!(posted.status, 202);
    let Answer { response, stream_end } = answer.await.expect("an answer").expect("a response");
    let FunctionBody::Full(body) = response.body else {
        panic!("a Content-Length body is read whole");
    };
    assert_eq!((response.status.as_u16(), body.as_ref()), (201, &b"made"[..]));
    assert!(stream_end.is_none());
    assert_eq!(response.headers.get("x-answer").unwrap(), "42");
    assert!(response.headers.get("kiln-private").is_none());
    assert!(
        response.headers.get("service-worker-allowed").is_none(),
        "a function may not widen a service worker's scope to the origin"
    );
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

/// Starts a chunked response to invocation 1 and returns the function's open connection.
async fn start_stream(socket: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(socket).await.expect("the runtime socket");
    let head = "POST /v1/invocation/1/response HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\nKiln-Status: 200\r\n\
                Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn send_chunk(stream: &mut UnixStream, data: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await
}

/// The caller's side of a streamed answer: its stream, and word of how it ended.
async fn streamed(
    answer: oneshot::Receiver<Result<Answer, InvokeError>>,
) -> (ResponseStream, oneshot::Receiver<StreamEnd>) {
    let Answer { response, stream_end } = answer.await.expect("an answer").expect("a response");
    assert_eq!(response.headers.get("content-type").unwrap(), "text/event-stream");
    let FunctionBody::Streamed(stream) = response.body else {
        panic!("a chunked body is streamed");
    };
    (stream, stream_end.expect("a streamed answer says when it ends"))
}

async fn next_chunk(stream: &mut ResponseStream) -> Option<Result<Bytes, StreamCut>> {
    let frame = tokio::time::timeout(Duration::from_secs(5), stream.frame())
        .await
        .expect("the stream moves within 5 s")?;
    Some(frame.map(|frame| frame.into_data().expect("only data frames")))
}

/// A streamed response under way: invocation 1 handed out, the function's first chunk sent
/// and received by the caller. The runtime API stays served while `Served` lives.
async fn stream_under_way() -> (Served, UnixStream, ResponseStream, oneshot::Receiver<StreamEnd>) {
    let served = Served::start(1024);
    let answer = served.assign("/").await;
    call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    let mut function = start_stream(&served.socket).await;
    send_chunk(&mut function, b"first").await.unwrap();
    let (mut caller, stream_end) = streamed(answer).await;
    assert_eq!(next_chunk(&mut caller).await.unwrap().unwrap(), &b"first"[..]);
    (served, function, caller, stream_end)
}

#[tokio::test]
async fn a_chunked_response_reaches_the_caller_chunk_by_chunk() {
    let served = Served::start(8);
    let answer = served.assign("/").await;
    call(&served.socket, "GET", "/v1/invocation/next", &[], b"").await;
    let mut function = start_stream(&served.socket).await;
    send_chunk(&mut function, b"data: one\n\n").await.unwrap();
    let (mut caller, stream_end) = streamed(answer).await;
    // The first chunk arrives while the function has not sent the second: nothing is buffered.
    assert_eq!(
        next_chunk(&mut caller).await.unwrap().unwrap(),
        &b"data: one\n\n"[..]
    );
    // Longer than the Content-Length limit of 8 bytes: that limit is not a stream's.
    send_chunk(&mut function, b"data: two, longer\n\n").await.unwrap();
    assert_eq!(
        next_chunk(&mut caller).await.unwrap().unwrap(),
        &b"data: two, longer\n\n"[..]
    );
    function.write_all(b"0\r\n\r\n").await.unwrap();
    assert!(next_chunk(&mut caller).await.is_none(), "the stream ends cleanly");
    assert_eq!(read_reply(&mut function).await.status, 202);
    assert_eq!(stream_end.await.unwrap(), StreamEnd::Completed);
}

#[tokio::test]
async fn a_caller_that_leaves_ends_the_functions_request() {
    let (served, mut function, caller, mut stream_end) = stream_under_way().await;
    drop(caller);
    let reply = read_reply(&mut function).await;
    assert_eq!((reply.status, code(&reply)), (410, "caller_gone".to_owned()));
    assert!(reply.head.contains("connection: close"), "{}", reply.head);
    // The container stays busy until the function asks for its next invocation.
    tokio::time::sleep(STREAM_IDLE / 3).await;
    assert!(
        stream_end.try_recv().is_err(),
        "released before the function was back"
    );
    let socket = served.socket.clone();
    let asking = tokio::spawn(async move { call(&socket, "GET", "/v1/invocation/next", &[], b"").await });
    assert_eq!(stream_end.await.unwrap(), StreamEnd::CallerGone);
    asking.abort();
}

#[tokio::test]
async fn a_function_that_does_not_come_back_after_its_caller_left_is_replaced() {
    let (_served, mut function, caller, stream_end) = stream_under_way().await;
    drop(caller);
    assert_eq!(read_reply(&mut function).await.status, 410);
    // Never asks for more work: after the idle timeout its container is given up on.
    let end = stream_end.await.unwrap();
    assert_eq!(end, StreamEnd::Cut(StreamCut::Idle(STREAM_IDLE)));
    assert!(!end.container_reusable());
}

#[tokio::test]
async fn a_stream_that_goes_quiet_is_cut_and_the_caller_sees_an_error() {
    let (_served, mut function, mut caller, stream_end) = stream_under_way().await;
    // Nothing more for longer than STREAM_IDLE.
    assert_eq!(
        next_chunk(&mut caller).await.unwrap().unwrap_err(),
        StreamCut::Idle(STREAM_IDLE)
    );
    assert_eq!(
        stream_end.await.unwrap(),
        StreamEnd::Cut(StreamCut::Idle(STREAM_IDLE))
    );
    let reply = read_reply(&mut function).await;
    assert_eq!((reply.status, code(&reply)), (408, "stream_cut".to_owned()));
}

#[tokio::test]
async fn a_function_that_breaks_off_mid_stream_cuts_the_callers_body() {
    let (_served, function, mut caller, stream_end) = stream_under_way().await;
    drop(function);
    assert!(matches!(
        next_chunk(&mut caller).await,
        Some(Err(StreamCut::FunctionGone(_)))
    ));
    assert!(matches!(
        stream_end.await.unwrap(),
        StreamEnd::Cut(StreamCut::FunctionGone(_))
    ));
}

#[tokio::test]
async fn a_function_that_reports_an_error_mid_stream_cuts_the_callers_body_and_stays_usable() {
    let (_served, mut function, mut caller, stream_end) = stream_under_way().await;
    function
        .write_all(b"0\r\nKiln-Stream-Error: UpstreamFailed\r\n\r\n")
        .await
        .unwrap();
    let failed = StreamCut::FunctionFailed("UpstreamFailed".into());
    assert_eq!(next_chunk(&mut caller).await.unwrap().unwrap_err(), failed);
    assert_eq!(read_reply(&mut function).await.status, 202);
    let end = stream_end.await.unwrap();
    assert_eq!(end, StreamEnd::Cut(failed));
    assert!(end.container_reusable());
}
