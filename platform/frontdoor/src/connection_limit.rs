//! The cap on open client connections (`KILN_MAX_CONNECTIONS`): each connection holds a
//! permit while it is open; one past the cap gets a short `503 too_many_connections` with
//! `Connection: close` and is closed cleanly, and no more than [`REFUSING_AT_ONCE`] such
//! refusals are in progress at a time (past that, the connection is closed at once), so a
//! flood of connections costs a bounded number of sockets and tasks.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refusals being written at once.
const REFUSING_AT_ONCE: usize = 256;
/// Longest a refusal may take, from writing it to the client's close.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 123\r\n\
\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"this node is at its connection limit; retry, or use fewer connections\"}}";

pub(crate) struct ConnectionLimit {
    max: usize,
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            max,
            open: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(Semaphore::new(REFUSING_AT_ONCE)),
        }
    }

    /// A permit for one more connection, held until it closes; `None` at the cap.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.open.clone().try_acquire_owned().ok()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.open.available_permits()
    }

    /// Answers a connection past the cap in the background.
    pub fn refuse(&self, stream: TcpStream) {
        let Ok(refusing) = self.refusing.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let mut stream = stream;
            let refuse = async {
                stream.write_all(REFUSAL).await?;
                stream.shutdown().await?;
                // Reads what the client sent until it closes: closing on unread input would
                // reset the connection and destroy the answer.
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(REFUSAL_TIME, refuse).await;
            drop(refusing);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }
}

/// What a request that takes its connection over (a WebSocket) needs of the connection:
/// its place under the limit, kept while the session lasts, and its descriptor, to tune.
/// Only requests asking for an upgrade carry it, so ordinary requests pay nothing.
#[derive(Clone)]
pub(crate) struct UpgradableConnection {
    pub permit: std::sync::Arc<OwnedSemaphorePermit>,
    /// Open while the request is served, not after.
    fd: std::os::fd::RawFd,
}

impl UpgradableConnection {
    pub(crate) fn new(permit: std::sync::Arc<OwnedSemaphorePermit>, fd: std::os::fd::RawFd) -> Self {
        UpgradableConnection { permit, fd }
    }

    /// Fixes the kernel's send buffer for this connection at `bytes` (the kernel doubles
    /// it), instead of letting it grow to `tcp_wmem`'s maximum (4 MiB by default) for a
    /// peer that does not read.
    ///
    /// # Safety
    ///
    /// Only while the request whose extensions held this is being served: its connection
    /// owns the descriptor until then. Later the number may name another socket.
    pub(crate) unsafe fn limit_send_buffer(&self, bytes: usize) {
        // SAFETY: the caller serves this connection's request, so the descriptor is open.
        let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        if let Err(error) = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBuf, &bytes) {
            tracing::debug!(%error, "cannot limit a connection's send buffer");
        }
    }
}
