//! A scripted fake of Kiln's runtime API on a Unix socket in a temporary directory, for tests.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the fake waits for the client before giving up (failing the test instead of hanging).
const PATIENCE: Duration = Duration::from_secs(10);

/// What the fake does with the next request it reads.
pub enum Reply {
    /// Write these bytes and keep the connection.
    Send(Vec<u8>),
    /// Write these bytes, then close the connection (without saying so in the response).
    SendAndClose(Vec<u8>),
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which accepted connection (1, 2, ...) carried the request.
    pub connection: usize,
    pub method: String,
    pub target: String,
    /// Header fields after the request line, exactly as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeRuntime {
    pub socket: PathBuf,
    dir: PathBuf,
    server: Option<JoinHandle<Vec<Recorded>>>,
    listening: Arc<AtomicBool>,
}

impl FakeRuntime {
    /// Starts serving: each request read gets the next reply; the fake stops after the last.
    pub fn start(replies: Vec<Reply>) -> FakeRuntime {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kiln-sdk-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let socket = dir.join("runtime.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake runtime socket");
        let listening = Arc::new(AtomicBool::new(true));
        let flag = listening.clone();
        let server = thread::spawn(move || {
            let recorded = serve(listener, replies.into());
            flag.store(false, Ordering::SeqCst);
            recorded
        });
        FakeRuntime {
            socket,
            dir,
            server: Some(server),
            listening,
        }
    }

    /// Blocks until the fake has run its script and closed its socket.
    pub fn wait_until_stopped(&self) {
        let started = Instant::now();
        while self.listening.load(Ordering::SeqCst) {
            assert!(started.elapsed() < PATIENCE, "fake runtime never stopped");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the fake to finish its script and returns what it received.
    pub fn finish(mut self) -> Vec<Recorded> {
        self.server
            .take()
            .expect("server thread")
            .join()
            .expect("fake runtime failed")
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(listener: UnixListener, mut replies: VecDeque<Reply>) -> Vec<Recorded> {
    let mut recorded = Vec::new();
    let mut connection = 0;
    while !replies.is_empty() {
        let stream = accept(&listener);
        connection += 1;
        let mut reader = BufReader::new(stream);
        while let Some(mut request) = read_request(&mut reader) {
            request.connection = connection;
            recorded.push(request);
            let Some(reply) = replies.pop_front() else { break };
            let (bytes, close) = match reply {
                Reply::Send(bytes) => (bytes, false),
                Reply::SendAndClose(bytes) => (bytes, true),
            };
            reader.get_mut().write_all(&bytes).expect("write reply");
            if close || replies.is_empty() {
                break;
            }
        }
    }
    recorded
}

fn accept(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).expect("nonblocking listener");
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
                return stream;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(started.elapsed() < PATIENCE, "client never connected");
                thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("accept failed: {error}"),
        }
    }
}

/// Reads one request; `None` when the client closed the connection first.
fn read_request(reader: &mut BufReader<UnixStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "request line {line:?}");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read header line");
        assert!(line.ends_with("\r\n"), "header line not ending in CRLF: {line:?}");
        let line = line.trim_end_matches("\r\n");
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(": ").expect("header line");
        headers.push((name.to_owned(), value.to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("content-length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("read body");
    Some(Recorded {
        connection: 0,
        method,
        target,
        headers,
        body,
    })
}

/// A raw `200` answer to `next` carrying an invocation.
pub fn invocation(id: &str, kiln_headers: &[(&str, &str)], headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("HTTP/1.1 200 OK\r\nkiln-invocation-id: {id}\r\n");
    for (name, value) in kiln_headers.iter().chain(headers) {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!(
        "content-length: {}\r\ndate: Sat, 22 Nov 2025 00:00:00 GMT\r\n\r\n",
        body.len()
    ));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A raw `202 Accepted`, as Kiln answers a posted response or error.
pub fn accepted() -> Vec<u8> {
    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\ndate: Sat, 22 Nov 2025 00:00:00 GMT\r\n\r\n".to_vec()
}

/// A raw JSON error answer.
pub fn error(status: u16, reason: &str, code: &str) -> Vec<u8> {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"test"}}}}"#);
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A raw `200` answer to `next` carrying a dispatch of durable instance `instance`.
pub fn dispatch(id: &str, instance: &str, attempt: u32, body: &str) -> Vec<u8> {
    let attempt = attempt.to_string();
    invocation(
        id,
        &[
            ("Kiln-Method", "POST"),
            ("Kiln-Path", "/"),
            ("Kiln-Instance-Id", instance),
            ("Kiln-Instance-Attempt", &attempt),
        ],
        &[],
        body.as_bytes(),
    )
}

/// A raw JSON answer with any status, as Kiln answers durable calls.
pub fn json_reply(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
