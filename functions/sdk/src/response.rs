//! The response a function gives for one invocation: status, headers and body.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with `status` (Kiln accepts 200–599; others are refused when posted).
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
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

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.body
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
        assert_eq!(Response::default(), Response::new(200));
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
