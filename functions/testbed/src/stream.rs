//! `/stream`: a streamed response, for the tests and benchmarks of streaming through Kiln.
//!
//! `?chunks=N&size=B&interval_ms=M&end=E&sse=1`: `N` (3) chunks of `B` (64) bytes, `M` (0)
//! ms apart. Each chunk starts with the Unix time in microseconds at which it was written
//! (16 digits), so a caller on the same host can tell how long the chunk took to reach it,
//! and ends with `\n`. `sse=1` sends them as server-sent events (`text/event-stream`, each
//! chunk a `data:` line). After the chunks, `end` decides: `ok` (the body ends), `fail` (the
//! body ends with error type `TestFailure`), `crash` (exit code 3), `hang` (60 s without a
//! write, then the body ends). A write that fails (the caller left) is logged on stderr.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_sdk::{Failure, Invocation, Response};

/// Largest chunk, and most chunks, a `/stream` may ask for.
const CHUNK_LIMIT: u64 = 1 << 20;
const CHUNKS_LIMIT: u64 = 1 << 24;

pub(crate) fn stream(invocation: &Invocation) -> Response {
    let param = |name: &str, default: u64| {
        invocation.query_param(name).map_or(Ok(default), |value| {
            value.parse::<u64>().map_err(|_| name.to_owned())
        })
    };
    let (chunks, size, interval) = match (param("chunks", 3), param("size", 64), param("interval_ms", 0)) {
        (Ok(chunks), Ok(size), Ok(interval))
            if chunks <= CHUNKS_LIMIT && (17..=CHUNK_LIMIT).contains(&size) =>
        {
            (chunks, size as usize, Duration::from_millis(interval))
        }
        _ => {
            return Response::text(
                400,
                format!(
                    "chunks (up to {CHUNKS_LIMIT}), size (17 to {CHUNK_LIMIT}) and interval_ms must be numbers"
                ),
            );
        }
    };
    let end = invocation.query_param("end").unwrap_or_else(|| "ok".to_owned());
    if !["ok", "fail", "crash", "hang"].contains(&end.as_str()) {
        return Response::text(400, "end must be ok, fail, crash or hang");
    }
    let sse = invocation.query_param("sse").as_deref() == Some("1");
    let content_type = if sse { "text/event-stream" } else { "text/plain" };
    Response::streamed(200, move |body| {
        let mut chunk = vec![b'x'; size];
        for number in 0..chunks {
            if number > 0 && !interval.is_zero() {
                std::thread::sleep(interval);
            }
            let prefix = if sse { "data: " } else { "" };
            let stamp = format!("{prefix}{:016}", unix_micros());
            chunk[..stamp.len()].copy_from_slice(stamp.as_bytes());
            if sse {
                chunk[size - 2] = b'\n';
            }
            chunk[size - 1] = b'\n';
            if let Err(error) = body.write_all(&chunk) {
                eprintln!("testbed: /stream write {number} failed: {error}");
                return Err(error.into());
            }
        }
        match end.as_str() {
            "fail" => Err(Failure::new(
                "TestFailure",
                "the testbed was asked to fail mid-stream",
            )),
            "crash" => {
                eprintln!("testbed: /stream asked to crash mid-stream, exiting with code 3");
                std::process::exit(3);
            }
            "hang" => {
                std::thread::sleep(Duration::from_secs(60));
                Ok(())
            }
            _ => Ok(()),
        }
    })
    .header("content-type", content_type)
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}
