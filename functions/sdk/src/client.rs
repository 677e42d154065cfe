//! A blocking HTTP/1.1 client for one Unix socket, keeping its connection alive between requests.
//!
//! A kept connection may have been closed by Kiln while idle. When a request on such a
//! connection fails before any byte of the response arrived, the client reconnects and
//! sends it once more; a failure on a fresh connection is returned as is.

use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::http::{self, HttpResponse, ReadError, RequestFraming};
use crate::runtime_socket::RuntimeSocket;

/// Bodies up to this size are written together with the request head in one write.
const COALESCE_LIMIT: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Client {
    path: PathBuf,
    connection: Option<BufReader<RuntimeSocket>>,
}

/// How one request/response exchange on a connection failed.
enum ExchangeError {
    /// Nothing of the response arrived because the peer had closed the connection.
    Stale(io::Error),
    Other(io::Error),
}

impl Client {
    /// Connects to the socket at `path` right away, so a missing socket shows up early.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let connection = open(path)?;
        Ok(Client {
            path: path.to_owned(),
            connection: Some(connection),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and reads its response.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        let head = http::encode_head(method, target, headers, RequestFraming::Length(body.len()))?;
        if let Some(mut kept) = self.connection.take() {
            match exchange(&mut kept, &head, body) {
                Ok(response) => return Ok(self.keep(kept, response)),
                // The kept connection was closed while idle: reconnect once below.
                Err(ExchangeError::Stale(_)) => {}
                Err(ExchangeError::Other(error)) => return Err(self.context(method, target, error)),
            }
        }
        let mut fresh = open(&self.path).map_err(|error| self.context(method, target, error))?;
        match exchange(&mut fresh, &head, body) {
            Ok(response) => Ok(self.keep(fresh, response)),
            Err(ExchangeError::Stale(error) | ExchangeError::Other(error)) => {
                Err(self.context(method, target, error))
            }
        }
    }

    /// Keeps `connection` for the next request if the response allows it.
    fn keep(&mut self, connection: BufReader<RuntimeSocket>, response: HttpResponse) -> HttpResponse {
        // Bytes beyond the response mean the two sides disagree about framing: start over.
        if response.keep_alive && connection.buffer().is_empty() {
            self.connection = Some(connection);
        }
        response
    }

    /// Starts a request whose body follows in chunks, on a connection of its own: a kept one
    /// may have gone stale, and a streamed body cannot be sent again.
    pub fn start_chunked(&mut self, target: &str, headers: &[(&str, &str)]) -> io::Result<ChunkedRequest> {
        let head = http::encode_head("POST", target, headers, RequestFraming::Chunked)?;
        let mut connection = open(&self.path)?;
        connection.get_mut().write_all(&head)?;
        Ok(ChunkedRequest { connection })
    }

    fn context(&self, method: &str, target: &str, error: io::Error) -> io::Error {
        io::Error::new(
            error.kind(),
            format!("{method} {target} on {}: {error}", self.path.display()),
        )
    }
}

/// A request whose body is being sent in chunks; its connection closes with it.
#[derive(Debug)]
pub(crate) struct ChunkedRequest {
    connection: BufReader<RuntimeSocket>,
}

impl ChunkedRequest {
    /// Sends `data` as one chunk, at once.
    pub fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            // An empty chunk would end the body.
            return Ok(());
        }
        let size = format!("{:x}\r\n", data.len());
        let stream = self.connection.get_mut();
        if data.len() <= COALESCE_LIMIT {
            let mut chunk = Vec::with_capacity(size.len() + data.len() + 2);
            chunk.extend_from_slice(size.as_bytes());
            chunk.extend_from_slice(data);
            chunk.extend_from_slice(b"\r\n");
            stream.write_all(&chunk)
        } else {
            stream.write_all(size.as_bytes())?;
            stream.write_all(data)?;
            stream.write_all(b"\r\n")
        }
    }

    /// Ends the body, with `trailers` (checked like headers), and reads the response.
    pub fn finish(mut self, trailers: &[(&str, &str)]) -> io::Result<HttpResponse> {
        let mut end = b"0\r\n".to_vec();
        for (name, value) in trailers {
            http::check_field(name, value)?;
            end.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        end.extend_from_slice(b"\r\n");
        match self.connection.get_mut().write_all(&end) {
            // Kiln stopped taking the body just now; its answer says why.
            Err(error) if !http::is_disconnect(&error) => return Err(error),
            _ => {}
        }
        self.response()
    }

    /// Reads the response Kiln sent, e.g. after it stopped taking the body.
    pub fn response(mut self) -> io::Result<HttpResponse> {
        Ok(http::read_response(&mut self.connection)?)
    }
}

fn open(path: &Path) -> io::Result<BufReader<RuntimeSocket>> {
    let stream = RuntimeSocket::connect(path).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot connect to {}: {error}", path.display()),
        )
    })?;
    Ok(BufReader::with_capacity(64 * 1024, stream))
}

fn exchange(
    connection: &mut BufReader<RuntimeSocket>,
    head: &[u8],
    body: &[u8],
) -> Result<HttpResponse, ExchangeError> {
    write_request(connection.get_mut(), head, body).map_err(|error| {
        if http::is_disconnect(&error) {
            ExchangeError::Stale(error)
        } else {
            ExchangeError::Other(error)
        }
    })?;
    http::read_response(connection).map_err(|error| match error {
        ReadError::Closed(error) => ExchangeError::Stale(error),
        ReadError::Failed(error) => ExchangeError::Other(error),
    })
}

fn write_request(stream: &mut RuntimeSocket, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.len() <= COALESCE_LIMIT {
        let mut message = Vec::with_capacity(head.len() + body.len());
        message.extend_from_slice(head);
        message.extend_from_slice(body);
        stream.write_all(&message)?;
    } else {
        stream.write_all(head)?;
        stream.write_all(body)?;
    }
    stream.flush()
}
