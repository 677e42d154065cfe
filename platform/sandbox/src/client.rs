//! The async side's handle on the sandbox process: spawn it, create and delete containers,
//! hear of containers that exit on their own.

use std::collections::HashMap;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;
use thiserror::Error;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::process::{Child, Command as ProcessCommand};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::ContainerSpec;
use crate::protocol::{Command, Message, Reply, Request};

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("sandbox process is gone")]
    Gone,
    #[error("{0}")]
    Failed(String),
    #[error("sandbox i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A container whose init exited without being asked to.
#[derive(Debug, Clone)]
pub struct ContainerExit {
    pub container: String,
    pub status: String,
}

/// Callers waiting for replies, by request id; `None` once the sandbox is gone, so that
/// later requests fail at once instead of waiting for a reply that cannot come.
type PendingReplies = Arc<parking_lot::Mutex<Option<HashMap<u64, oneshot::Sender<Result<i32, String>>>>>>;

/// Longest wait for one reply; the sandbox works through requests in turn, so this bounds
/// a whole queue of container starts, not one.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the writer task puts on the control socket.
enum Outgoing {
    /// One whole request line: written entirely or not at all, whatever happens to the caller.
    Line(Vec<u8>),
    /// Close the socket after everything queued before: the sandbox then deletes every
    /// container and exits.
    Close(oneshot::Sender<()>),
}

/// Handle on one sandbox process; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// Replies not yet received, by request id.
    pending: PendingReplies,
    next_request: Arc<AtomicU64>,
    /// The process itself, awaited on shutdown.
    child: Arc<Mutex<Option<Child>>>,
}

impl Sandbox {
    /// Starts `program args...` as the sandbox process, its stdin being the control socket.
    /// Exits of containers arrive on the returned receiver.
    pub fn spawn(
        program: &Path,
        args: &[&str],
    ) -> Result<(Sandbox, mpsc::UnboundedReceiver<ContainerExit>), SandboxError> {
        let (ours, theirs) = StdUnixStream::pair()?;
        let child = ProcessCommand::new(program)
            .args(args)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            // Its own process group: a Ctrl-C or group-wide signal meant for kilnd must not
            // kill it before kilnd closes the control socket, which is what makes it clean up.
            .process_group(0)
            .spawn()?;
        ours.set_nonblocking(true)?;
        let (read_half, write_half) = UnixStream::from_std(ours)?.into_split();
        let pending: PendingReplies = Arc::new(parking_lot::Mutex::new(Some(HashMap::new())));
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        tokio::spawn(read_messages(
            BufReader::new(read_half),
            pending.clone(),
            exits_tx,
        ));
        let (outgoing, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_messages(write_half, queue, pending.clone()));
        let sandbox = Sandbox {
            outgoing,
            pending,
            next_request: Arc::new(AtomicU64::new(1)),
            child: Arc::new(Mutex::new(Some(child))),
        };
        Ok((sandbox, exits_rx))
    }

    /// Creates and starts a container; returns its init's pid.
    pub async fn create(&self, spec: ContainerSpec) -> Result<i32, SandboxError> {
        self.request(Command::Create(Box::new(spec))).await
    }

    /// Kills a container and deletes its state and cgroup. Deleting an unknown container succeeds.
    pub async fn delete(&self, container: &str) -> Result<(), SandboxError> {
        self.request(Command::Delete {
            container: container.to_owned(),
        })
        .await
        .map(|_| ())
    }

    /// Closes the control socket, which makes the sandbox delete every container and exit.
    pub async fn shutdown(&self) -> Result<(), SandboxError> {
        let (closed, on_close) = oneshot::channel();
        if self.outgoing.send(Outgoing::Close(closed)).is_ok() {
            let _ = on_close.await;
        }
        if let Some(mut child) = self.child.lock().await.take() {
            child.wait().await?;
        }
        Ok(())
    }

    async fn request(&self, command: Command) -> Result<i32, SandboxError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_vec(&Request { id, command })
            .map_err(|error| SandboxError::Failed(error.to_string()))?;
        line.push(b'\n');
        let (reply_tx, reply_rx) = oneshot::channel();
        match self.pending.lock().as_mut() {
            Some(pending) => pending.insert(id, reply_tx),
            None => return Err(SandboxError::Gone),
        };
        if self.outgoing.send(Outgoing::Line(line)).is_err() {
            forget_reply(&self.pending, id);
            return Err(SandboxError::Gone);
        }
        let reply = tokio::time::timeout(REPLY_TIMEOUT, reply_rx).await;
        forget_reply(&self.pending, id);
        match reply {
            Ok(Ok(outcome)) => outcome.map_err(SandboxError::Failed),
            Ok(Err(_)) => Err(SandboxError::Gone),
            Err(_) => Err(SandboxError::Failed(format!(
                "no reply from the sandbox within {REPLY_TIMEOUT:?}"
            ))),
        }
    }
}

fn forget_reply(pending: &PendingReplies, id: u64) {
    if let Some(pending) = pending.lock().as_mut() {
        pending.remove(&id);
    }
}

/// Writes queued requests in order; a request is never cut by its caller going away.
async fn write_messages(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    pending: PendingReplies,
) {
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Line(line) => {
                if let Err(error) = writer.write_all(&line).await {
                    tracing::error!(%error, "writing to the sandbox failed");
                    // Dropping the waiters tells every caller the sandbox is gone.
                    pending.lock().take();
                    return;
                }
            }
            Outgoing::Close(closed) => {
                let _ = writer.shutdown().await;
                let _ = closed.send(());
                return;
            }
        }
    }
}

/// Routes the sandbox's replies to their callers and its exit reports to the receiver.
async fn read_messages(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    pending: PendingReplies,
    exits: mpsc::UnboundedSender<ContainerExit>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Reply(Reply { id, outcome })) => {
                let waiter = pending.lock().as_mut().and_then(|pending| pending.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(outcome);
                }
            }
            Ok(Message::Exited { container, status }) => {
                let _ = exits.send(ContainerExit { container, status });
            }
            Err(error) => tracing::error!(%error, "unreadable message from sandbox"),
        }
    }
    tracing::warn!("sandbox control socket closed");
    // Dropping the waiters tells every caller the sandbox is gone.
    pending.lock().take();
}
