//! The response a function gives for one invocation: status, headers and a body that is
//! either whole or produced piece by piece (streamed to the caller as it is written).

use std::fmt;

use crate::body_writer::BodyWriter;
use crate::failure::Failure;

/// What the caller receives: built with [`Response::new`] and friends, posted by
/// [`Runtime::respond`](crate::Runtime::respond).
///
/// ```
/// use kiln_sdk::Response;
/// let response = Response::json(201, r#"{"ok":true}"#).header("x-request", "7");
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.headers()[0], ("content-type".to_owned(), "application/json".to_owned()));
/// assert_eq!(response.body_bytes(), br#"{"ok":true}"#);
/// ```
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

/// Writes a streamed response's body; see [`Response::streamed`].
pub type BodyProducer = Box<dyn FnOnce(&mut BodyWriter) -> Result<(), Failure>>;

pub(crate) enum Body {
    Whole(Vec<u8>),
    Streamed(BodyProducer),
}

impl Response {
    /// An empty response with `status` (Kiln accepts 200–599; others are refused when posted).
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Whole(Vec::new()),
        }
    }

    /// A response whose body `produce` writes after the head is sent: each write reaches
    /// the caller as it is made (server-sent events, progress, tokens of a long answer).
    ///
    /// - A write fails once the caller has gone away (or Kiln cut the stream for being idle
    ///   or too long); return the error with `?` and the SDK goes on to the next invocation.
    /// - An `Err` returned for any other reason, or a panic, ends the body early: the caller
    ///   sees its connection cut rather than a body that looks whole, and the error type is
    ///   logged by Kiln.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use kiln_sdk::Response;
    ///
    /// let response = Response::streamed(200, |body| {
    ///     for step in 1..=3 {
    ///         write!(body, "data: step {step}\n\n")?;
    ///         std::thread::sleep(std::time::Duration::from_millis(100));
    ///     }
    ///     Ok(())
    /// })
    /// .header("content-type", "text/event-stream");
    /// # let _ = response;
    /// ```
    pub fn streamed(
        status: u16,
        produce: impl FnOnce(&mut BodyWriter) -> Result<(), Failure> + 'static,
    ) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Streamed(Box::new(produce)),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// An `application/json` response; `json` must already be serialized JSON.
    pub fn json(status: u16, json: impl Into<String>) -> Response {
        Response::new(status)
            .header("content-type", "application/json")
            .body(json.into())
    }

    /// Adds a header; repeated names are sent repeated, in the order added.
    ///
    /// `Content-Length`, `Transfer-Encoding`, `Connection`, `Host` and `kiln-*` headers are
    /// not sent: the SDK frames the message itself and Kiln would drop them anyway. A name
    /// that is not an HTTP token or a value with control characters makes posting fail.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a whole body (in place of any body set before, streamed or not).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::Whole(body.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The whole body; empty for a streamed response.
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Whole(bytes) => bytes,
            Body::Streamed(_) => &[],
        }
    }

    pub fn is_streamed(&self) -> bool {
        matches!(self.body, Body::Streamed(_))
    }

    /// Takes the body out, leaving an empty one.
    pub(crate) fn take_body(&mut self) -> Body {
        std::mem::replace(&mut self.body, Body::Whole(Vec::new()))
    }

    /// The headers that are actually sent (see [`Response::header`]).
    pub(crate) fn headers_to_send(&self) -> impl Iterator<Item = (&str, &str)> {
        const SDK_OWNED: [&str; 7] = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "host",
            "te",
            "trailer",
        ];
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .filter(|(name, _)| {
                let lower = name.to_ascii_lowercase();
                !lower.starts_with("kiln-") && !SDK_OWNED.contains(&lower.as_str())
            })
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Response");
        debug
            .field("status", &self.status)
            .field("headers", &self.headers);
        match &self.body {
            Body::Whole(bytes) => debug.field("body", &String::from_utf8_lossy(bytes)),
            Body::Streamed(_) => debug.field("body", &"<streamed>"),
        };
        debug.finish()
    }
}

impl Default for Response {
    /// An empty `200`.
    fn default() -> Response {
        Response::new(200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_status_headers_and_body() {
        let response = Response::new(404)
            .header("x-a", "1")
            .header("X-A", "2")
            .body(&b"gone"[..]);
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers().len(), 2);
        assert_eq!(response.body_bytes(), b"gone");
        let text = Response::text(200, "hi");
        assert_eq!(text.headers()[0].1, "text/plain; charset=utf-8");
        assert_eq!(text.body_bytes(), b"hi");
        assert_eq!(Response::default().status(), 200);
        assert!(!text.is_streamed());
        let streamed = Response::streamed(200, |_| Ok(())).header("x-a", "1");
        assert!(streamed.is_streamed());
        assert_eq!(streamed.body_bytes(), b"");
        assert!(format!("{streamed:?}").contains("<streamed>"));
        assert!(!streamed.body("whole").is_streamed());
    }

    #[test]
    fn framing_and_kiln_headers_are_not_sent() {
        let response = Response::new(200)
            .header("Content-Length", "99")
            .header("transfer-encoding", "chunked")
            .header("Kiln-Status", "500")
            .header("x-kept", "yes")
            .header("Connection", "close")
            .header("content-type", "a/b");
        let sent: Vec<_> = response.headers_to_send().collect();
        assert_eq!(sent, [("x-kept", "yes"), ("content-type", "a/b")]);
    }
}
