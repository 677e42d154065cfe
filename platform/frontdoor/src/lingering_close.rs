//! A clean close of a client connection: once kilnd has said everything (the response is
//! out and the write side shut down), whatever the client still sends is read and thrown
//! away for a short while. Closing a socket with unread input makes the kernel answer with a
//! reset, which destroys the response before the client has read it (nginx calls the same
//! remedy a lingering close).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Longest a closed connection keeps reading what the client still sends.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes thrown away that way; past it the connection is closed outright.
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A TCP stream that lingers when dropped after its write side was shut down.
pub(crate) struct LingeringStream {
    /// `None` only while dropping.
    stream: Option<TcpStream>,
    write_shut: bool,
}

impl LingeringStream {
    pub fn new(stream: TcpStream) -> LingeringStream {
        LingeringStream {
            stream: Some(stream),
            write_shut: false,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("the stream is present until dropped"))
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(context, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(context, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shut = self.stream().poll_shutdown(context);
        if matches!(shut, Poll::Ready(Ok(()))) {
            self.write_shut = true;
        }
        shut
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // A connection that ended in an error (or a timeout) closes at once.
        if !self.write_shut || client_closed(&stream) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(discard_until_closed(stream));
        }
    }
}

/// One read that does not wait: true when the client has closed its side too (the usual
/// end of a connection), so there is nothing to linger for.
fn client_closed(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    match stream.try_read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != io::ErrorKind::WouldBlock,
    }
}

async fn discard_until_closed(mut stream: TcpStream) {
    let mut buffer = vec![0u8; 8 * 1024];
    let mut discarded = 0;
    let discard = async {
        while discarded <= LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => discarded += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// The server answers and closes while the client is still sending: without lingering
    /// the client's read fails with a reset instead of returning the answer.
    #[tokio::test]
    async fn the_answer_survives_unread_input() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = LingeringStream::new(stream);
            let mut first = [0u8; 16];
            stream.read_exact(&mut first).await.unwrap();
            stream.write_all(b"early answer").await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(&[b'x'; 16]).await.unwrap();
        server.await.unwrap();
        // More input arrives after the server has closed, as a body still on its way does.
        client.write_all(&[b'y'; 64 * 1024]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"early answer");
    }
}
