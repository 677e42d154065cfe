//! HTTP/1.1 over a bare TCP socket, byte by byte as the test writes it: for what a client
//! library hides (which connection a request goes on, a body sent in pieces or never, a
//! reset instead of an answer).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one response.
const RESPONSE_TIME: Duration = Duration::from_secs(10);

/// One response as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }

    pub fn error_code(&self) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        json["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// A client connection; `url` is the harness's `http://host:port`.
pub struct RawConnection {
    stream: TcpStream,
    /// Bytes read past the last response.
    unread: Vec<u8>,
}

impl RawConnection {
    pub async fn open(url: &str) -> io::Result<RawConnection> {
        let address = url.trim_start_matches("http://");
        Ok(RawConnection {
            stream: TcpStream::connect(address).await?,
            unread: Vec::new(),
        })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response with a `Content-Length` body.
    pub async fn response(&mut self) -> io::Result<RawResponse> {
        tokio::time::timeout(RESPONSE_TIME, self.read_response())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
    }

    /// True when the server closed the connection (end of stream, not a reset) with no
    /// further bytes.
    pub async fn closed_cleanly(&mut self) -> io::Result<bool> {
        let mut rest = Vec::new();
        tokio::time::timeout(RESPONSE_TIME, self.stream.read_to_end(&mut rest))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "still open"))??;
        Ok(rest.is_empty() && self.unread.is_empty())
    }

    /// True when the server ended the connection (closed or reset it) within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout(within, self.stream.read(&mut buffer)).await {
            Err(_) => false,
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(read)) => {
                self.unread.extend_from_slice(&buffer[..read]);
                false
            }
        }
    }

    async fn read_response(&mut self) -> io::Result<RawResponse> {
        let head_end = loop {
            if let Some(end) = find(&self.unread, b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.unread[..head_end]).into_owned();
        self.unread.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status line of {head:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        while self.unread.len() < length {
            self.fill().await?;
        }
        let body = self.unread.drain(..length).collect();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut buffer = [0u8; 16 * 1024];
        match self.stream.read(&mut buffer).await? {
            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")),
            read => {
                self.unread.extend_from_slice(&buffer[..read]);
                Ok(())
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The head of a request with a `Content-Length` body; `headers` are whole lines.
pub fn request_head(method: &str, path: &str, headers: &[&str], content_length: usize) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: kiln\r\ncontent-length: {content_length}\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}
