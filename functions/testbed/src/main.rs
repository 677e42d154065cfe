//! The testbed function: one route (`Kiln-Path`) per behaviour Kiln's end-to-end tests and benchmarks need.
//!
//! Routes match on the first path segment, so `/echo/deep/path` is `/echo`.
//!
//! | route | behaviour |
//! |---|---|
//! | `/echo` | `200`, body = request body; `x-method`, `x-path`, `x-query` (only when the URL had a query), `x-saw-authorization` (`yes`/`no`) and every request header `x-*` echoed |
//! | `/status?code=N` | status `N`, body `status N` |
//! | `/crash` | a line on stderr, then exit code 3 without responding |
//! | `/segfault` | dies of SIGSEGV without responding |
//! | `/oom` | allocates memory until the container's memory limit kills it |
//! | `/hangup` | shuts down every socket it has (the runtime socket too), then sleeps 60 s and exits |
//! | `/sleep?ms=N` | sleeps `N` ms, then `200` `slept N` |
//! | `/fail` | error report with error type `TestFailure` |
//! | `/write?path=P` | `200`, body `written` if the file `P` could be written, else `denied: <error>` |
//! | `/instance` | `200`, body = an id unique to this process (same id = same warm process; the pid alone is always 1 in a container) |
//! | `/big?bytes=N` | `200`, `N` bytes of `x` |
//! | `/connect?to=HOST:PORT` | `200`, `connected: <first line of the answer to GET />` or `refused: <error>` |
//! | `/address` | `200`, the container's outward IPv4 address (`?family=6`: IPv6), or `none: <error>` |
//! | `/stream?chunks=N&size=B&interval_ms=M&end=E&sse=1` | a streamed body of `N` chunks, each starting with the time it was written (see `stream.rs`) |
//! | `/listen?port=P` | `200` `listening`: answers `HTTP/1.0 200 inside` on port P (IPv6 and IPv4) while the container lives |
//! | anything else | `404` `no such testbed route` |
//!
//! Durable instances (`durable.rs`) pick a scenario with their input's `"scenario"` field;
//! the other input fields are optional, with the defaults shown.
//!
//! | scenario | behaviour |
//! |---|---|
//! | `replay` | checkpoint `a` (a unique value), sleep `nap` for `sleep_ms` (1000), checkpoint `b`; output `{"a", "b", "ran", "attempt"}`, `ran` naming the steps whose work ran in the dispatch that completed |
//! | `sleep` | sleep `nap` for `sleep_ms` (1000), or until `wake_at_ms` if given; output `{"wake_at_ms": <stored wake time>, "woke_at_ms": <now>}` |
//! | `wait` | sleep `nap` for `sleep_ms` first if given, then wait for event `event` (`go`) for `timeout_ms` (60000); output `{"event": <payload or null>, "timed_out": bool}` |
//! | `slow` | checkpoint `before`, busy for `busy_ms` (1000) without calling Kiln, checkpoint `after` = `{"attempt": n}`; output `{"before", "after"}` |
//! | `checkpoints` | `count` (100) checkpoints `c0`, `c1`, ... = `{"i": i}` (plus `"pad"`: `pad` bytes of `x`, if given); output `{"count", "p50_us", "p99_us", "per_second", "latencies_us", "started_ms", "ended_ms"}` over the ones posted in the dispatch that completed |
//! | `fail` | fails with error type `TestFailure` |
//! | `nul_output` | completes with `{"text": "a\u0000b"}`, an output PostgreSQL cannot store |
//! | `big` | checkpoint `big` = a string of `bytes` (0) `x`s (over Kiln's value limit, the instance fails with `value_too_large`); output `{"bytes"}` |
//! | `crash` | checkpoint `before`; with `"crash": true`, exit code 3 on attempt 1; output `{"before", "attempt"}` |
//! | anything else | fails with error type `UnknownScenario` |

mod durable;
mod faults;
mod probe;
mod stream;

use std::time::Duration;

use kiln_sdk::{Failure, Invocation, Response};

/// Largest `/big` body (and durable `big` checkpoint), so a typo cannot exhaust the container's memory.
const BIG_LIMIT: u64 = 1 << 30;

fn main() {
    kiln_sdk::serve_all(handle, durable::handle)
}

fn handle(invocation: &Invocation) -> Result<Response, Failure> {
    let route = invocation.path.split('/').nth(1).unwrap_or_default();
    Ok(match route {
        "echo" => echo(invocation),
        "status" => match number_param(invocation, "code") {
            Ok(code) => Response::text(u16::try_from(code).unwrap_or(u16::MAX), format!("status {code}")),
            Err(response) => response,
        },
        "crash" => {
            eprintln!("testbed: /crash requested, exiting with code 3 without responding");
            std::process::exit(3);
        }
        "segfault" => faults::segfault(),
        "oom" => faults::exhaust_memory(),
        "hangup" => faults::hang_up(),
        "sleep" => match number_param(invocation, "ms") {
            Ok(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Response::text(200, format!("slept {ms}"))
            }
            Err(response) => response,
        },
        "fail" => return Err(Failure::new("TestFailure", "the testbed was asked to fail")),
        "instance" => Response::text(200, instance_id()),
        "write" => match invocation.query_param("path") {
            Some(path) => match std::fs::write(&path, b"probe") {
                Ok(()) => Response::text(200, "written"),
                Err(error) => Response::text(200, format!("denied: {error}")),
            },
            None => Response::text(400, "path is required"),
        },
        "log" => match number_param(invocation, "lines") {
            Ok(lines) => {
                let tag = invocation.query_param("tag").unwrap_or_default();
                for number in 0..lines {
                    println!("{tag} out {number}");
                }
                eprintln!("{tag} err");
                Response::text(200, format!("logged {lines}"))
            }
            Err(response) => response,
        },
        "big" => match number_param(invocation, "bytes") {
            Ok(bytes) if bytes <= BIG_LIMIT => Response::new(200)
                .header("content-type", "text/plain")
                .body(vec![b'x'; bytes as usize]),
            Ok(_) => Response::text(400, format!("bytes is limited to {BIG_LIMIT}")),
            Err(response) => response,
        },
        "connect" => probe::connect(invocation),
        "address" => probe::address(invocation),
        "listen" => probe::listen(invocation),
        "stream" => stream::stream(invocation),
        _ => Response::text(404, "no such testbed route"),
    })
}

/// The pid plus the time of the first call: unique per process even across pid namespaces.
pub(crate) fn instance_id() -> String {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE
        .get_or_init(|| {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}-{}", std::process::id(), since_epoch.as_nanos())
        })
        .clone()
}

fn echo(invocation: &Invocation) -> Response {
    let saw_authorization = invocation.header("authorization").is_some();
    let mut response = Response::new(200)
        .header("x-method", invocation.method.as_str())
        .header("x-path", invocation.path.as_str())
        .header(
            "x-saw-authorization",
            if saw_authorization { "yes" } else { "no" },
        );
    if let Some(query) = &invocation.query {
        response = response.header("x-query", query.as_str());
    }
    for (name, value) in &invocation.headers {
        if name.len() >= 2 && name[..2].eq_ignore_ascii_case("x-") {
            response = response.header(name.as_str(), value.as_str());
        }
    }
    response.body(invocation.body.clone())
}

/// Query parameter `name` as a number, or a `400` response saying what is wrong.
fn number_param(invocation: &Invocation, name: &str) -> Result<u64, Response> {
    let value = invocation.query_param(name).unwrap_or_default();
    value.parse().map_err(|_| {
        Response::text(
            400,
            format!("{name} must be a non-negative integer, got {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(path: &str, query: Option<&str>) -> Result<Response, Failure> {
        handle(&Invocation {
            id: "1".into(),
            method: "PUT".into(),
            path: path.into(),
            query: query.map(str::to_owned),
            headers: vec![
                ("X-Trace".into(), "t1".into()),
                ("accept".into(), "*/*".into()),
                ("x-trace".into(), "t2".into()),
            ],
            body: b"\x00payload\xff".to_vec(),
            ..Invocation::default()
        })
    }

    fn text(response: &Response) -> String {
        String::from_utf8_lossy(response.body_bytes()).into_owned()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn echo_returns_body_and_request_details() {
        let response = call("/echo/deep/path", Some("a=1&b")).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body_bytes(), b"\x00payload\xff");
        let expected = pairs(&[
            ("x-method", "PUT"),
            ("x-path", "/echo/deep/path"),
            ("x-saw-authorization", "no"),
            ("x-query", "a=1&b"),
            ("X-Trace", "t1"),
            ("x-trace", "t2"),
        ]);
        assert_eq!(response.headers(), expected);
        let without_query = call("/echo", None).unwrap();
        assert!(!without_query.headers().iter().any(|(name, _)| name == "x-query"));
    }

    #[test]
    fn status_route_sets_the_status() {
        let response = call("/status", Some("code=418")).unwrap();
        assert_eq!(
            (response.status(), text(&response)),
            (418, "status 418".to_owned())
        );
        assert_eq!(call("/status", None).unwrap().status(), 400);
        assert_eq!(call("/status", Some("code=x")).unwrap().status(), 400);
    }

    #[test]
    fn sleep_instance_fail_big_and_unknown_routes() {
        assert_eq!(text(&call("/sleep", Some("ms=5")).unwrap()), "slept 5");
        let instance = text(&call("/instance", None).unwrap());
        assert!(instance.starts_with(&format!("{}-", std::process::id())));
        assert_eq!(
            text(&call("/instance", None).unwrap()),
            instance,
            "stable within a process"
        );
        assert_eq!(call("/fail", None).unwrap_err().error_type, "TestFailure");
        let big = call("/big", Some("bytes=1000")).unwrap();
        assert_eq!(big.body_bytes(), vec![b'x'; 1000]);
        assert_eq!(call("/big", Some("bytes=0")).unwrap().body_bytes().len(), 0);
        assert_eq!(call("/big", Some("bytes=99999999999")).unwrap().status(), 400);
        let missing = call("/nope", None).unwrap();
        assert_eq!(
            (missing.status(), text(&missing)),
            (404, "no such testbed route".to_owned())
        );
    }
}
