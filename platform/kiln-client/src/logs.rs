//! Function logs: `GET /v1/functions/{name}/logs`, an NDJSON stream of the lines the
//! function's containers wrote, read here one line at a time.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{query, segment};
use crate::{Client, Error};

/// Which lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// How many of the last lines (1-1000; Kiln's default is 100).
    pub lines: Option<u32>,
    /// Keep the stream open and deliver new lines as they are written.
    pub follow: bool,
    /// Only the lines of this invocation.
    pub invocation: Option<String>,
    /// Only the lines of this durable instance.
    pub instance: Option<String>,
}

/// One line a function wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: String,
    pub container: String,
    pub invocation: Option<String>,
    pub instance: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The lines of a log request, as they arrive.
pub struct LogStream {
    body: Incoming,
    buffer: BytesMut,
    done: bool,
}

impl Client {
    pub async fn function_logs(&self, name: &str, logs: &LogQuery) -> Result<LogStream, Error> {
        let path = format!("/v1/functions/{}/logs{}", segment(name), log_query(logs));
        let body = self.open(&path).await?;
        Ok(LogStream {
            body,
            buffer: BytesMut::new(),
            done: false,
        })
    }
}

impl LogStream {
    /// The next line, `None` at the end of the stream. Blank lines are skipped.
    pub async fn next(&mut self) -> Option<Result<LogLine, Error>> {
        loop {
            if let Some(line) = take_line(&mut self.buffer, self.done) {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(&line)
                        .map_err(|error| Error::InvalidResponse(format!("log line: {error}"))),
                );
            }
            if self.done {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(Error::InvalidResponse(format!("log stream broke: {error}"))));
                }
                None => self.done = true,
            }
        }
    }
}

/// The next complete line of `buffer` without its `\n`; at the end of the stream, whatever
/// is left counts as a last line.
fn take_line(buffer: &mut BytesMut, at_end: bool) -> Option<Vec<u8>> {
    if let Some(newline) = buffer.iter().position(|&byte| byte == b'\n') {
        let line = buffer.split_to(newline).to_vec();
        buffer.advance(1);
        return Some(line);
    }
    (at_end && !buffer.is_empty()).then(|| buffer.split().to_vec())
}

fn log_query(logs: &LogQuery) -> String {
    query([
        ("lines", logs.lines.map(|lines| lines.to_string())),
        ("follow", logs.follow.then(|| "1".to_owned())),
        ("invocation", logs.invocation.clone()),
        ("instance", logs.instance.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_only_what_is_asked() {
        assert_eq!(log_query(&LogQuery::default()), "");
        let query = LogQuery {
            lines: Some(20),
            follow: true,
            invocation: None,
            instance: Some("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2".into()),
        };
        assert_eq!(
            log_query(&query),
            "?lines=20&follow=1&instance=6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2"
        );
    }

    #[test]
    fn lines_are_split_across_chunks() {
        let mut buffer = BytesMut::from(&b"{\"a\":1}\n{\"b\""[..]);
        assert_eq!(take_line(&mut buffer, false).unwrap(), b"{\"a\":1}");
        assert_eq!(take_line(&mut buffer, false), None);
        buffer.extend_from_slice(b":2}");
        assert_eq!(take_line(&mut buffer, true).unwrap(), b"{\"b\":2}");
        assert_eq!(take_line(&mut buffer, true), None);
    }

    #[test]
    fn log_lines_parse() {
        let line = br#"{"time":"2026-01-01T00:00:00.000Z","container":"c1","invocation":"i1","instance":null,"stream":"stderr","line":"boom"}"#;
        let parsed: LogLine = serde_json::from_slice(line).unwrap();
        assert_eq!(parsed.stream, "stderr");
        assert_eq!(parsed.invocation.as_deref(), Some("i1"));
        assert_eq!(parsed.instance, None);
        assert_eq!(parsed.line, "boom");
    }
}
