//! The messages between kilnd and its sandbox process: one JSON object per line.

use serde::{Deserialize, Serialize};

use crate::ContainerSpec;

/// kilnd → sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the matching [`Reply`].
    pub id: u64,
    pub command: Command,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Command {
    /// Create and start a container.
    Create(Box<ContainerSpec>),
    /// Kill a container's processes and delete its state and cgroup.
    Delete { container: String },
}

/// sandbox → kilnd.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    Reply(Reply),
    /// A container's init exited on its own; the sandbox already deleted it.
    Exited {
        container: String,
        status: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    /// On success the container init's pid (0 for a delete), else the error text.
    pub outcome: Result<i32, String>,
}
