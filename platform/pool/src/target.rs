//! What the dispatcher needs to know about the function version it runs.

use std::path::PathBuf;
use std::time::Duration;

/// One version of one tenant's function, resolved by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub digest: String,
    /// Read-only root file system holding `/function`.
    pub rootfs: PathBuf,
    pub limits: FunctionLimits,
}

/// Per-function settings that shape its containers and its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLimits {
    pub memory_bytes: i64,
    pub cpu_shares: u64,
    pub cpu_quota_us: Option<i64>,
    pub pids_limit: i64,
    pub timeout: Duration,
    /// Containers of this version that may run at once; each serves one invocation at a time.
    pub max_concurrency: usize,
    pub min_warm: usize,
    pub idle_timeout: Duration,
    pub env: Vec<(String, String)>,
    pub network: bool,
}

impl FunctionTarget {
    /// The pool this target's invocations share.
    pub(crate) fn pool_key(&self) -> (String, String, i32) {
        (self.tenant.clone(), self.function.clone(), self.version)
    }
}
