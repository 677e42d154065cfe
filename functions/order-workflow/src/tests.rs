//! The workflow's dispatches against a scripted runtime socket: what it calls and what it
//! posts on a first run, after an approval, and after the approval timed out.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use kiln_sdk::{Runtime, run_durable};
use serde_json::{Value, json};

use super::workflow;

/// One scripted answer: status, extra headers and a JSON body (none when null).
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

/// A runtime socket that answers the requests of one connection with `answers` in order, and
/// returns each request as `"METHOD target"` and its body (JSON, or null when empty).
struct Script {
    dir: PathBuf,
    socket: PathBuf,
    server: JoinHandle<Vec<(String, Value)>>,
}

impl Script {
    fn start(answers: Vec<Answer>) -> Script {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "order-workflow-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("runtime.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut requests = Vec::new();
            for Answer {
                status,
                headers,
                body,
            } in answers
            {
                requests.push(read_request(&mut reader));
                let body = if body.is_null() {
                    String::new()
                } else {
                    body.to_string()
                };
                let mut answer = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (name, value) in headers {
                    answer.push_str(&format!("{name}: {value}\r\n"));
                }
                answer.push_str("\r\n");
                answer.push_str(&body);
                reader.get_mut().write_all(answer.as_bytes()).unwrap();
            }
            requests
        });
        Script { dir, socket, server }
    }

    fn finish(self) -> Vec<(String, Value)> {
        let requests = self.server.join().expect("script server");
        let _ = std::fs::remove_dir_all(&self.dir);
        requests
    }
}

fn read_request(reader: &mut BufReader<std::os::unix::net::UnixStream>) -> (String, Value) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let call = line.trim_end().trim_end_matches(" HTTP/1.1").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        match header.split_once(": ") {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value.parse().unwrap();
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (call, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Kiln's answer to `next` with a dispatch of the order instance.
fn dispatch(input: Value, checkpoints: Value, attempt: u32) -> Answer {
    let headers = vec![
        ("kiln-invocation-id", "9".to_owned()),
        ("kiln-instance-id", "inst-42".to_owned()),
        ("kiln-instance-attempt", attempt.to_string()),
    ];
    Answer {
        status: 200,
        headers,
        body: json!({"input": input, "checkpoints": checkpoints}),
    }
}

fn value(value: Value) -> Answer {
    Answer::new(200, json!({"value": value}))
}

fn accepted() -> Answer {
    Answer::new(202, Value::Null)
}

fn retiring() -> Answer {
    Answer::new(
        503,
        json!({"error": {"code": "container_retiring", "message": "bye"}}),
    )
}

fn run(answers: Vec<Answer>) -> Vec<(String, Value)> {
    let script = Script::start(answers);
    let mut runtime = Runtime::connect(&script.socket).unwrap();
    run_durable(&mut runtime, workflow).unwrap();
    script.finish()
}

fn order() -> Value {
    json!({"order": 42, "amount_cents": 1999})
}

#[test]
fn the_first_dispatch_reserves_and_goes_to_sleep() {
    let requests = run(vec![
        dispatch(order(), json!({}), 1),
        value(json!({"reservation": "r-42"})),
        Answer::new(
            202,
            json!({"suspended": true, "wake_at_ms": 1_795_305_600_000u64}),
        ),
        retiring(),
    ]);
    assert_eq!(
        requests,
        [
            ("GET /v1/invocation/next".to_owned(), Value::Null),
            (
                "POST /v1/invocation/9/checkpoint".to_owned(),
                json!({"key": "reserve", "value": {"reservation": "r-42"}})
            ),
            (
                "POST /v1/invocation/9/sleep".to_owned(),
                json!({"key": "cool-off", "duration_ms": 5000})
            ),
            // Suspended: no response, on to the next invocation.
            ("GET /v1/invocation/next".to_owned(), Value::Null),
        ]
    );
}

#[test]
fn an_approval_charges_the_order() {
    let stored = json!({"reserve": {"reservation": "r-42"}, "cool-off": {"wake_at_ms": 1}});
    let approved = json!({"event": "approved", "payload": {"by": "ana"}});
    let requests = run(vec![
        dispatch(order(), stored, 3),
        value(approved),
        value(json!({"charge": "ch-42", "amount_cents": 1999})),
        accepted(),
        retiring(),
    ]);
    let calls: Vec<&str> = requests.iter().map(|(call, _)| call.as_str()).collect();
    assert_eq!(
        calls,
        [
            "GET /v1/invocation/next",
            "POST /v1/invocation/9/wait",
            "POST /v1/invocation/9/checkpoint",
            "POST /v1/invocation/9/response",
            "GET /v1/invocation/next",
        ],
        "the stored reservation and the past cool-off made no call"
    );
    assert_eq!(
        requests[1].1,
        json!({"key": "event:approved:1", "event": "approved", "timeout_ms": 3_600_000})
    );
    assert_eq!(
        requests[3].1,
        json!({"order": 42, "status": "charged", "reservation": "r-42", "charge": "ch-42", "approved_by": "ana"})
    );
}

#[test]
fn no_approval_in_time_releases_the_reservation() {
    let input = json!({"order": "A-7", "amount_cents": 5, "cool_off_s": 1, "approval_timeout_s": 2});
    let stored = json!({
        "reserve": {"reservation": "r-A-7"},
        "cool-off": {"wake_at_ms": 1},
        "event:approved:1": {"timed_out": true},
    });
    let requests = run(vec![
        dispatch(input, stored, 4),
        value(json!({"released": "r-A-7"})),
        accepted(),
        retiring(),
    ]);
    assert_eq!(
        requests[1],
        (
            "POST /v1/invocation/9/checkpoint".to_owned(),
            json!({"key": "release", "value": {"released": "r-A-7"}})
        )
    );
    assert_eq!(
        requests[2],
        (
            "POST /v1/invocation/9/response".to_owned(),
            json!({"order": "A-7", "status": "expired"})
        )
    );
}

#[test]
fn bad_input_fails_the_instance() {
    let requests = run(vec![
        dispatch(json!({"order": 42}), json!({}), 1),
        accepted(),
        retiring(),
    ]);
    assert_eq!(requests[1].0, "POST /v1/invocation/9/error");
    assert_eq!(requests[1].1["errorType"], "InvalidInput");
}
