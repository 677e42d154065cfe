//! One invocation handed to the function by `GET /v1/invocation/next`.

use std::borrow::Cow;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{HttpResponse, find_header};

/// The original request behind one invocation, plus Kiln's bookkeeping for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Kiln's opaque id (`Kiln-Invocation-Id`), needed to answer.
    pub id: String,
    /// The original method (`Kiln-Method`), e.g. `GET`.
    pub method: String,
    /// The path after `/fn/{tenant}/{function}` (`Kiln-Path`), starting with `/`, percent-encoding untouched.
    pub path: String,
    /// The raw query string without `?` (`Kiln-Query`); `None` when the URL had none.
    pub query: Option<String>,
    /// The original request headers in order, repeats kept; names as Kiln sent them.
    /// Kiln's own `kiln-*` headers and the headers that framed the runtime message are not included.
    pub headers: Vec<(String, String)>,
    /// The original request body, byte for byte.
    pub body: Vec<u8>,
    /// Unix time in milliseconds at which Kiln gives up on this invocation (`Kiln-Deadline-Ms`); 0 if unknown.
    pub deadline_ms: u64,
    /// The durable instance this invocation dispatches (`Kiln-Instance-Id`); `None` for a
    /// plain invocation. See [`Instance`](crate::Instance).
    pub instance_id: Option<String>,
    /// How many times the instance has been dispatched, this one included
    /// (`Kiln-Instance-Attempt`); 0 for a plain invocation.
    pub attempt: u32,
}

impl Invocation {
    /// Whether this is a dispatch of a durable instance rather than a plain invocation.
    pub fn is_durable(&self) -> bool {
        self.instance_id.is_some()
    }

    /// The first value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of request header `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first value of query parameter `name`, with `+` and `%XX` decoded; `Some("")` for a
    /// bare `name` or `name=`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (!pair.is_empty() && decode_component(key) == name).then(|| decode_component(value))
        })
    }

    /// The body as text, with invalid UTF-8 replaced by U+FFFD.
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Time left until the deadline; `None` when Kiln sent none, zero once it has passed.
    pub fn time_left(&self) -> Option<Duration> {
        if self.deadline_ms == 0 {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Some(Duration::from_millis(self.deadline_ms).saturating_sub(now))
    }

    /// Builds the invocation from the answer to `GET /v1/invocation/next`.
    pub(crate) fn from_next_response(response: HttpResponse) -> io::Result<Invocation> {
        let id = match response.header("kiln-invocation-id") {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "runtime API sent an invocation without a Kiln-Invocation-Id header",
                ));
            }
        };
        let method = response
            .header("kiln-method")
            .filter(|m| !m.is_empty())
            .unwrap_or("GET")
            .to_owned();
        let path = response
            .header("kiln-path")
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/")
            .to_owned();
        let query = response.header("kiln-query").map(str::to_owned);
        let deadline_ms = response
            .header("kiln-deadline-ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        let instance_id = response
            .header("kiln-instance-id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        // At least 1 on a durable dispatch: the attempt counts this dispatch.
        let attempt = match &instance_id {
            Some(_) => response
                .header("kiln-instance-attempt")
                .and_then(|attempt| attempt.parse().ok())
                .unwrap_or(1)
                .max(1),
            None => 0,
        };
        let headers = response
            .headers
            .into_iter()
            .filter(|(name, _)| is_original(name))
            .collect();
        Ok(Invocation {
            id,
            method,
            path,
            query,
            headers,
            body: response.body,
            deadline_ms,
            instance_id,
            attempt,
        })
    }
}

/// Whether a header of the `next` response is one of the original request's headers, rather
/// than Kiln's (`kiln-*`) or one describing the runtime message itself.
fn is_original(name: &str) -> bool {
    const MESSAGE_HEADERS: [&str; 8] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ];
    let lower = name.to_ascii_lowercase();
    !lower.starts_with("kiln-") && !MESSAGE_HEADERS.contains(&lower.as_str())
}

/// Decodes `+` as a space and `%XX` escapes; malformed escapes stay as they are.
pub(crate) fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex_value),
                bytes.get(i + 2).and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 2;
                }
                _ => decoded.push(b'%'),
            },
            other => decoded.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_value(digit: &u8) -> Option<u8> {
    char::from(*digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_query(query: Option<&str>) -> Invocation {
        Invocation {
            id: "1".into(),
            method: "GET".into(),
            path: "/".into(),
            query: query.map(str::to_owned),
            headers: vec![
                ("Accept".into(), "text/plain".into()),
                ("x-multi".into(), "a".into()),
                ("X-Multi".into(), "b".into()),
            ],
            body: b"caf\xe9".to_vec(),
            ..Invocation::default()
        }
    }

    #[test]
    fn query_params_are_decoded() {
        let invocation = with_query(Some(
            "a=1&b=two+words&c=%41%2f%zz%&d&e=&a=second&na%6De=x&=empty&&",
        ));
        assert_eq!(invocation.query_param("a").as_deref(), Some("1"));
        assert_eq!(invocation.query_param("b").as_deref(), Some("two words"));
        assert_eq!(invocation.query_param("c").as_deref(), Some("A/%zz%"));
        assert_eq!(invocation.query_param("d").as_deref(), Some(""));
        assert_eq!(invocation.query_param("e").as_deref(), Some(""));
        assert_eq!(invocation.query_param("name").as_deref(), Some("x"));
        assert_eq!(invocation.query_param("").as_deref(), Some("empty"));
        assert_eq!(invocation.query_param("missing"), None);
        assert_eq!(with_query(None).query_param("a"), None);
        assert_eq!(with_query(Some("")).query_param(""), None);
    }

    #[test]
    fn decoding_keeps_utf8_and_replaces_invalid_bytes() {
        assert_eq!(decode_component("caf%C3%A9"), "café");
        assert_eq!(decode_component("%FF"), "\u{fffd}");
        assert_eq!(decode_component("100%"), "100%");
    }

    #[test]
    fn header_lookup_ignores_case() {
        let invocation = with_query(None);
        assert_eq!(invocation.header("accept"), Some("text/plain"));
        assert_eq!(invocation.header("X-MULTI"), Some("a"));
        assert_eq!(
            invocation.header_values("x-multi").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(invocation.header("nope"), None);
        assert_eq!(invocation.body_text(), "caf\u{fffd}");
    }

    #[test]
    fn time_left_follows_the_deadline() {
        let mut invocation = with_query(None);
        assert_eq!(invocation.time_left(), None);
        invocation.deadline_ms = 1;
        assert_eq!(invocation.time_left(), Some(Duration::ZERO));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        invocation.deadline_ms = now + 60_000;
        let left = invocation.time_left().unwrap();
        assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }

    #[test]
    fn builds_from_the_next_response() {
        let response = HttpResponse {
            status: 200,
            headers: vec![
                ("kiln-invocation-id".into(), "42".into()),
                ("Kiln-Method".into(), "PUT".into()),
                ("kiln-path".into(), "/a%20b".into()),
                ("kiln-deadline-ms".into(), "1795305600000".into()),
                ("content-type".into(), "text/plain".into()),
                ("content-length".into(), "2".into()),
                ("kiln-future".into(), "x".into()),
                ("date".into(), "today".into()),
            ],
            body: b"hi".to_vec(),
            keep_alive: true,
        };
        let invocation = Invocation::from_next_response(response.clone()).unwrap();
        assert_eq!(invocation.id, "42");
        assert_eq!(invocation.method, "PUT");
        assert_eq!(invocation.path, "/a%20b");
        assert_eq!(invocation.query, None);
        assert_eq!(invocation.deadline_ms, 1_795_305_600_000);
        let expected: Vec<(String, String)> = vec![
            ("content-type".into(), "text/plain".into()),
            ("date".into(), "today".into()),
        ];
        assert_eq!(invocation.headers, expected);
        assert_eq!(invocation.body, b"hi");
        assert_eq!((invocation.instance_id, invocation.attempt), (None, 0));

        let mut without_id = response;
        without_id.headers.remove(0);
        let error = Invocation::from_next_response(without_id).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn missing_optional_kiln_headers_get_defaults() {
        let response = HttpResponse {
            status: 200,
            headers: vec![
                ("Kiln-Invocation-Id".into(), "x".into()),
                ("Kiln-Query".into(), "".into()),
            ],
            body: Vec::new(),
            keep_alive: true,
        };
        let invocation = Invocation::from_next_response(response).unwrap();
        assert_eq!(
            (
                invocation.method.as_str(),
                invocation.path.as_str(),
                invocation.query.as_deref(),
                invocation.deadline_ms
            ),
            ("GET", "/", Some(""), 0)
        );
    }

    #[test]
    fn durable_dispatches_carry_their_instance_and_attempt() {
        let dispatch = |attempt: Option<&str>| {
            let mut headers = vec![
                ("Kiln-Invocation-Id".into(), "9".into()),
                ("Kiln-Instance-Id".into(), "6f1c2a3b".into()),
            ];
            if let Some(attempt) = attempt {
                headers.push(("Kiln-Instance-Attempt".into(), attempt.into()));
            }
            let response = HttpResponse {
                status: 200,
                headers,
                body: br#"{"input":null}"#.to_vec(),
                keep_alive: true,
            };
            Invocation::from_next_response(response).unwrap()
        };
        let invocation = dispatch(Some("3"));
        assert!(invocation.is_durable());
        assert_eq!(invocation.instance_id.as_deref(), Some("6f1c2a3b"));
        assert_eq!(invocation.attempt, 3);
        assert!(
            invocation.headers.is_empty(),
            "kiln-* headers are not request headers"
        );
        assert_eq!(dispatch(None).attempt, 1);
        assert_eq!(dispatch(Some("x")).attempt, 1);
        assert_eq!(dispatch(Some("0")).attempt, 1);
        assert!(!with_query(None).is_durable());
    }
}
