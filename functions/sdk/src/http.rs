//! HTTP/1.1 messages on the runtime socket: encoding requests and parsing responses.
//!
//! httparse reads the status line, header fields and chunk sizes; this module frames the
//! sections and bodies around it: repeated fields kept in order, obsolete line folding
//! joined, `Content-Length`, chunked and read-until-close bodies, interim `1xx` responses
//! skipped, every line and section bounded. Malformed input becomes an `io::Error`, never
//! a panic.

use std::io::{self, BufRead, Read};

/// Longest status, header or chunk-size line accepted, in bytes.
const MAX_LINE: usize = 64 * 1024;
/// Largest header (or trailer) section accepted, in bytes.
const MAX_SECTION: usize = 1024 * 1024;
/// Most header fields accepted in one section.
const MAX_FIELDS: usize = 1000;
/// Largest up-front buffer reservation for a body of announced length.
const MAX_RESERVE: u64 = 8 * 1024 * 1024;

/// A response read from the runtime socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub status: u16,
    /// Header fields as received: original name spelling, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Why reading a response failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed or reset the connection before sending a single byte: on a kept-alive
    /// connection this means the connection went stale and the request may be retried.
    Closed(io::Error),
    /// Anything else: a broken or malformed response.
    Failed(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Failed(error)
    }
}

impl From<ReadError> for io::Error {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Closed(error) | ReadError::Failed(error) => error,
        }
    }
}

/// The first value of header `name` in `headers` (case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// A body of this many bytes, sent whole.
    Length(usize),
    /// A body sent in chunks as it is produced.
    Chunked,
}

/// Encodes a request head (request line, `Host: kiln`, `headers`, framing). Fails with
/// `InvalidInput` on a header that cannot be sent verbatim.
pub(crate) fn encode_head(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    framing: RequestFraming,
) -> io::Result<Vec<u8>> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(invalid_input(format!("bad request method {method:?}")));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_input(format!("bad request target {target:?}")));
    }
    let mut head =
        Vec::with_capacity(128 + headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nHost: kiln\r\n");
    for (name, value) in headers {
        check_field(name, value)?;
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        RequestFraming::Length(0) if method == "GET" => {}
        RequestFraming::Length(length) => {
            head.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes())
        }
        RequestFraming::Chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    Ok(head)
}

/// Checks that a header field can be written as-is: a token name and a value without
/// control characters (horizontal tab allowed), so nothing can break the message framing.
pub(crate) fn check_field(name: &str, value: &str) -> io::Result<()> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(invalid_input(format!("bad header name {name:?}")));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(invalid_input(format!(
            "header {name} has a control character in its value"
        )));
    }
    Ok(())
}

/// Reads one complete response (skipping interim `1xx` responses) from `reader`.
pub(crate) fn read_response<R: BufRead>(reader: &mut R) -> Result<HttpResponse, ReadError> {
    wait_for_first_byte(reader)?;
    loop {
        let head = read_section(reader, "connection closed before the end of the response head")?;
        let Head {
            minor_version,
            status,
            headers,
        } = parse_head(&head)?;
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(invalid_data("unexpected 101 Switching Protocols").into());
            }
            continue;
        }
        let framing = framing(status, &headers)?;
        let body = match framing {
            Framing::Empty => Vec::new(),
            Framing::Length(length) => read_exact_body(reader, length)?,
            Framing::Chunked => read_chunked_body(reader)?,
            Framing::UntilClose => {
                let mut body = Vec::new();
                reader.read_to_end(&mut body)?;
                body
            }
        };
        // Both framings at once is suspect (RFC 9112 section 6.3): use the body, not the connection.
        let ambiguous = find_header(&headers, "transfer-encoding").is_some()
            && find_header(&headers, "content-length").is_some();
        let persistent = if minor_version == 0 {
            has_token(&headers, "connection", "keep-alive")
        } else {
            !has_token(&headers, "connection", "close")
        };
        let keep_alive = framing != Framing::UntilClose && !ambiguous && persistent;
        return Ok(HttpResponse {
            status,
            headers,
            body,
            keep_alive,
        });
    }
}

/// A response's status line and header fields.
struct Head {
    minor_version: u8,
    status: u16,
    headers: Vec<(String, String)>,
}

/// A response head (status line and header fields, through the empty line) as httparse
/// reads it.
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut response, head);
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(invalid_data(format!(
                "incomplete response head {:?}",
                preview(head)
            )));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid_data(format!("more than {MAX_FIELDS} header fields")));
        }
        Err(error) => return Err(invalid_data(format!("{error} in {:?}", preview(head)))),
    }
    let (Some(minor_version), Some(status @ 100..=999)) = (response.version, response.code) else {
        return Err(invalid_data(format!("bad status line {:?}", preview(head))));
    };
    Ok(Head {
        minor_version,
        status,
        headers: fields_of(response.headers),
    })
}

/// Header fields as owned text: values decoded lossily, folded lines joined by a space.
fn fields_of(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|header| {
            let pieces: Vec<_> = header
                .value
                .split(|&b| b == b'\n')
                .map(|piece| trim_whitespace(piece.strip_suffix(b"\r").unwrap_or(piece)))
                .filter(|piece| !piece.is_empty())
                .map(String::from_utf8_lossy)
                .collect();
            (header.name.to_owned(), pieces.join(" "))
        })
        .collect()
}

/// Blocks until the response starts; a clean close or reset before that is `ReadError::Closed`.
fn wait_for_first_byte<R: BufRead>(reader: &mut R) -> Result<(), ReadError> {
    loop {
        match reader.fill_buf() {
            Ok([]) => return Err(ReadError::Closed(eof("connection closed before the response"))),
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if is_disconnect(&error) => return Err(ReadError::Closed(error)),
            Err(error) => return Err(ReadError::Failed(error)),
        }
    }
}

/// Errors that mean the peer went away.
pub(crate) fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

/// Reads a header or trailer section through the empty line that ends it, line endings
/// kept (httparse reads them). `closed` names what was cut short if the stream ends first.
fn read_section<R: BufRead>(reader: &mut R, closed: &str) -> io::Result<Vec<u8>> {
    let mut section = Vec::new();
    loop {
        let start = section.len();
        let content = read_line_into(reader, MAX_LINE, &mut section)?.ok_or_else(|| eof(closed))?;
        if content == 0 {
            return Ok(section);
        }
        if start + content > MAX_SECTION {
            return Err(invalid_data(format!(
                "header section larger than {MAX_SECTION} bytes"
            )));
        }
    }
}

/// How a response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(status: u16, headers: &[(String, String)]) -> io::Result<Framing> {
    if status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut codings = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty())
        .peekable();
    if codings.peek().is_some() {
        // Chunked must be the final coding; without it, the body runs until the connection closes.
        let last = codings.last().unwrap_or_default();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, value)| value.split(','))
    {
        let value = value.trim();
        let parsed = parse_number(value.as_bytes(), 10, 19)
            .ok_or_else(|| invalid_data(format!("bad Content-Length {value:?}")))?;
        if length.is_some_and(|earlier| earlier != parsed) {
            return Err(invalid_data("conflicting Content-Length values"));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

fn read_exact_body<R: BufRead>(reader: &mut R, length: u64) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    append_exact(reader, length, &mut body)?;
    Ok(body)
}

/// Appends exactly `length` bytes from `reader` to `body`.
fn append_exact<R: BufRead>(reader: &mut R, length: u64, body: &mut Vec<u8>) -> io::Result<()> {
    // Bounded reservation: the announced length is not trusted with memory up front.
    body.reserve(usize::try_from(length.min(MAX_RESERVE)).unwrap_or(0));
    let read = reader.by_ref().take(length).read_to_end(body)?;
    if (read as u64) < length {
        return Err(eof(&format!(
            "connection closed after {read} of {length} body bytes"
        )));
    }
    Ok(())
}

/// Decodes a chunked body; chunk extensions are ignored and trailer fields dropped.
pub(crate) fn read_chunked_body<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = read_line(reader, MAX_LINE)?.ok_or_else(|| eof("connection closed before a chunk"))?;
        line.extend_from_slice(b"\r\n");
        // httparse reads an empty size line as 0: a size starts with a digit.
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) if line[0].is_ascii_hexdigit() => size,
            _ => return Err(invalid_data(format!("bad chunk size line {:?}", preview(&line)))),
        };
        if size == 0 {
            let trailers = read_section(reader, "connection closed inside the trailer section")?;
            let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
            return match httparse::parse_headers(&trailers, &mut fields) {
                Ok(httparse::Status::Complete(_)) => Ok(body),
                _ => Err(invalid_data(format!(
                    "bad trailer section {:?}",
                    preview(&trailers)
                ))),
            };
        }
        append_exact(reader, size, &mut body)?;
        match read_line(reader, 2)? {
            Some(rest) if rest.is_empty() => {}
            Some(_) => return Err(invalid_data("chunk data not followed by CRLF")),
            None => return Err(eof("connection closed after chunk data")),
        }
    }
}

/// Reads one line ending in LF (a preceding CR is dropped). `None` when the stream ended
/// before any byte; an error when it ended mid-line or the line exceeds `max` bytes.
fn read_line<R: BufRead>(reader: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let Some(content) = read_line_into(reader, max, &mut line)? else {
        return Ok(None);
    };
    line.truncate(content);
    Ok(Some(line))
}

/// Appends one line, its ending included, to `buffer`; returns its length without the
/// ending (LF or CRLF), `None` when the stream ended before any byte. An error when it
/// ended mid-line or the line exceeds `max` bytes.
fn read_line_into<R: BufRead>(reader: &mut R, max: usize, buffer: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let start = buffer.len();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
    let read = reader.by_ref().take(limit).read_until(b'\n', buffer)?;
    if read == 0 {
        return Ok(None);
    }
    let line = &buffer[start..];
    if line.last() != Some(&b'\n') {
        return Err(if read as u64 >= limit {
            invalid_data(format!("line longer than {max} bytes"))
        } else {
            eof("connection closed in the middle of a line")
        });
    }
    let content = line.len() - 1 - usize::from(line.ends_with(b"\r\n"));
    if content > max {
        return Err(invalid_data(format!("line longer than {max} bytes")));
    }
    Ok(Some(content))
}

/// Parses 1 to `max_digits` digits in `radix` (no sign, no prefix); the limit keeps it in a `u64`.
fn parse_number(digits: &[u8], radix: u32, max_digits: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_digits {
        return None;
    }
    digits.iter().try_fold(0u64, |total, &digit| {
        let value = char::from(digit).to_digit(radix)?;
        total.checked_mul(u64::from(radix))?.checked_add(u64::from(value))
    })
}

/// Whether any `name` header lists `token` in its comma-separated value (case-insensitive).
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A short printable excerpt of raw input for error messages.
fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

fn invalid_data(message: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed runtime API response: {}", message.into()),
    )
}

fn invalid_input(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

fn eof(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsing `raw` must fail with an error of `kind`.
    fn assert_parse_error(raw: &[u8], kind: io::ErrorKind) {
        let error = parse(raw).unwrap_err();
        assert_eq!(error.kind(), kind, "{:?}", String::from_utf8_lossy(raw));
    }

    fn parse(raw: &[u8]) -> io::Result<HttpResponse> {
        read_response(&mut &raw[..]).map_err(io::Error::from)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_status_headers_and_length_body() {
        let response =
            parse(b"HTTP/1.1 202 Accepted\r\nX-A: 1\r\ncontent-length: 5\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!(response.status, 202);
        assert_eq!(
            response.headers,
            headers(&[("X-A", "1"), ("content-length", "5")])
        );
        assert_eq!(response.body, b"hello");
        assert!(response.keep_alive);
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_repeats_stay_in_order() {
        let raw = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Other: z\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n";
        let response = parse(raw).unwrap();
        assert_eq!(response.header("SET-COOKIE"), Some("a=1"));
        let cookies: Vec<_> = response
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(response.header("missing"), None);
    }

    #[test]
    fn trims_optional_whitespace_and_keeps_empty_values_and_colons() {
        let raw = b"HTTP/1.1 200 OK\r\nA:   spaced \t \r\nB:\r\nC: x:y: z\r\nContent-Length: 0\r\n\r\n";
        let response = parse(raw).unwrap();
        assert_eq!(response.header("a"), Some("spaced"));
        assert_eq!(response.header("b"), Some(""));
        assert_eq!(response.header("c"), Some("x:y: z"));
    }

    #[test]
    fn accepts_bare_lf_line_endings() {
        let response = parse(b"HTTP/1.1 200 OK\nA: 1\nContent-Length: 2\n\nok").unwrap();
        assert_eq!(
            (response.status, response.header("a"), &response.body[..]),
            (200, Some("1"), &b"ok"[..])
        );
    }

    #[test]
    fn joins_obsolete_line_folding() {
        let raw = b"HTTP/1.1 200 OK\r\nA: one\r\n  two\r\n\tthree\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(raw).unwrap().header("a"), Some("one two three"));
        let raw = b"HTTP/1.1 200 OK\r\n folded-first\r\n\r\n";
        assert_eq!(parse(raw).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn status_line_without_reason_is_fine() {
        let response = parse(b"HTTP/1.1 204\r\n\r\n").unwrap();
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());
    }

    #[test]
    fn rejects_malformed_status_lines() {
        for raw in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"garbage\r\n\r\n",
            b"\r\n",
        ] {
            assert_parse_error(raw, io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn rejects_malformed_header_lines() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nspace before : colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad\"name: x\r\n\r\n",
        ] {
            assert_parse_error(raw, io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn content_length_rules() {
        let same = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nokx").unwrap();
        assert_eq!(same.body, b"ok");
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        ] {
            assert_parse_error(raw, io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn truncated_messages_are_unexpected_eof() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nA: 1\r\n",
            b"HTTP/1.1 200 OK\r\nA: 1",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        ] {
            assert_parse_error(raw, io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn empty_input_is_a_closed_connection() {
        assert!(matches!(read_response(&mut &b""[..]), Err(ReadError::Closed(_))));
        assert!(matches!(read_response(&mut &b"H"[..]), Err(ReadError::Failed(_))));
    }

    #[test]
    fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
            5;name=value\r\nhello\r\nA \r\n, chunked!\r\n0\r\nTrailer-A: x\r\n\r\nnext";
        let response = parse(raw).unwrap();
        assert_eq!(response.body, b"hello, chunked!");
        assert!(response.keep_alive);
        assert_eq!(response.header("trailer-a"), None);
    }

    #[test]
    fn chunked_wins_over_content_length_but_closes_the_connection() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let response = parse(raw).unwrap();
        assert_eq!(response.body, b"ok");
        assert!(!response.keep_alive);
    }

    #[test]
    fn chunked_decoding_handles_binary_and_uppercase_hex() {
        let mut raw = b"1A\r\n".to_vec();
        raw.extend((0u8..26).collect::<Vec<_>>());
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(
            read_chunked_body(&mut &raw[..]).unwrap(),
            (0u8..26).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_bad_chunk_sizes() {
        for raw in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"+1\r\nx\r\n0\r\n\r\n",
            b"0x1\r\nx\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"2\r\nabc\r\n0\r\n\r\n",
        ] {
            let error = read_chunked_body(&mut &raw[..]).unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::InvalidData,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn non_chunked_transfer_coding_and_missing_length_read_until_close() {
        let response = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nall of it").unwrap();
        assert_eq!(
            (&response.body[..], response.keep_alive),
            (&b"all of it"[..], false)
        );
        let response = parse(b"HTTP/1.1 200 OK\r\n\r\nuntil close").unwrap();
        assert_eq!(
            (&response.body[..], response.keep_alive),
            (&b"until close"[..], false)
        );
    }

    #[test]
    fn connection_header_and_version_decide_keep_alive() {
        let close = parse(b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!close.keep_alive);
        let old = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!old.keep_alive);
        let old_kept =
            parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(old_kept.keep_alive);
    }

    #[test]
    fn skips_interim_responses_and_204_has_no_body() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        let response = parse(raw).unwrap();
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());
        assert!(parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").is_err());
    }

    #[test]
    fn limits_line_length_and_header_count() {
        let mut raw = b"HTTP/1.1 200 OK\r\nA: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_LINE));
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&raw).unwrap_err().kind(), io::ErrorKind::InvalidData);

        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_FIELDS {
            raw.extend_from_slice(b"A: 1\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse(&raw).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn lines_up_to_the_limit_are_accepted() {
        let value = "v".repeat(MAX_LINE - 3);
        let raw = format!("HTTP/1.1 200 OK\r\nA: {value}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap().header("a"), Some(value.as_str()));
    }

    #[test]
    fn non_utf8_header_values_are_decoded_lossily() {
        let response = parse(b"HTTP/1.1 200 OK\r\nA: caf\xe9\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(response.header("a"), Some("caf\u{fffd}"));
    }

    #[test]
    fn encodes_requests() {
        let head = encode_head(
            "POST",
            "/v1/invocation/7/response",
            &[("Kiln-Status", "201"), ("x-a", "b")],
            RequestFraming::Length(11),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/invocation/7/response HTTP/1.1\r\nHost: kiln\r\nKiln-Status: 201\r\nx-a: b\r\n\
             Content-Length: 11\r\n\r\n"
        );
        let head = encode_head("GET", "/v1/invocation/next", &[], RequestFraming::Length(0)).unwrap();
        assert_eq!(head, b"GET /v1/invocation/next HTTP/1.1\r\nHost: kiln\r\n\r\n");
        let head = encode_head("POST", "/x", &[], RequestFraming::Length(0)).unwrap();
        assert!(
            String::from_utf8(head)
                .unwrap()
                .ends_with("Content-Length: 0\r\n\r\n")
        );
        let head = encode_head("POST", "/x", &[], RequestFraming::Chunked).unwrap();
        let head = String::from_utf8(head).unwrap();
        assert!(head.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
    }

    #[test]
    fn refuses_to_encode_injectable_fields() {
        for (name, value) in [
            ("a\r\nb", "x"),
            ("", "x"),
            ("a b", "x"),
            ("a:", "x"),
            ("a", "x\r\nInjected: 1"),
            ("a", "x\0"),
        ] {
            let error = encode_head("POST", "/x", &[(name, value)], RequestFraming::Length(0)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{name:?}: {value:?}");
        }
        assert!(
            encode_head(
                "POST",
                "/x",
                &[("a", "tab\tand caf\u{e9}")],
                RequestFraming::Length(0)
            )
            .is_ok()
        );
        assert!(encode_head("POST", "/a b", &[], RequestFraming::Length(0)).is_err());
        assert!(encode_head("PO ST", "/a", &[], RequestFraming::Length(0)).is_err());
    }
}
