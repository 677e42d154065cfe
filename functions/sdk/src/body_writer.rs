//! Where a streamed response's body is written: every write goes to Kiln as one chunk at
//! once, so the caller sees it without waiting for the rest.

use std::io::{self, Write};

use crate::client::ChunkedRequest;

/// The body of a [`Response::streamed`](crate::Response::streamed) response. Wrap it in a
/// `BufWriter` to send fewer, larger chunks.
#[derive(Debug)]
pub struct BodyWriter {
    request: ChunkedRequest,
    /// Set by the first failed write: Kiln stopped taking the body, and says why in its answer.
    broken: bool,
}

impl BodyWriter {
    pub(crate) fn new(request: ChunkedRequest) -> BodyWriter {
        BodyWriter {
            request,
            broken: false,
        }
    }

    /// Whether a write failed (the caller left, or Kiln cut the stream).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    pub(crate) fn into_request(self) -> ChunkedRequest {
        self.request
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the response stream was closed by Kiln",
            ));
        }
        match self.request.send_chunk(data) {
            Ok(()) => Ok(data.len()),
            Err(error) => {
                self.broken = true;
                Err(error)
            }
        }
    }

    /// Every write is sent as it is made: there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
