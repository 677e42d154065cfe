//! What the async side asks for when it wants a container.

use std::path::PathBuf;

pub use kiln_types::ProcessSpec;
use serde::{Deserialize, Serialize};

/// One container: a function's read-only root, its private runtime socket folder and limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerSpec {
    /// youki's container id; also names the cgroup (`/kiln/<id>`).
    pub id: String,
    /// Root file system holding `/function`; shared read-only by every container of a version.
    pub rootfs: PathBuf,
    /// Host folder bind-mounted at `/run/kiln`; holds the runtime socket.
    pub runtime_dir: PathBuf,
    /// Where the function's stdout goes: a FIFO kilnd reads, or a file; it must exist.
    pub stdout_path: PathBuf,
    /// Where the function's stderr goes.
    pub stderr_path: PathBuf,
    /// The function process: its arguments, full environment, directory and user.
    pub process: ProcessSpec,
    pub memory_bytes: i64,
    pub cpu_shares: u64,
    /// CFS quota per 100 ms period; `None` leaves CPU time unbounded (shares still apply).
    pub cpu_quota_us: Option<i64>,
    pub pids_limit: i64,
    pub network: ContainerNetwork,
    pub tmpfs_bytes: u64,
}

/// Which network namespace a container gets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ContainerNetwork {
    /// A new, empty namespace: loopback only.
    Isolated,
    /// The host's namespace, shared.
    Host,
    /// A namespace prepared for it (egress), with the resolv.conf naming its resolver.
    Join {
        namespace: PathBuf,
        resolv_conf: PathBuf,
    },
}
