//! Per-function settings that shape a version's containers and its pool.

use std::time::Duration;

use crate::{EgressRule, NetworkMode};

/// Resource limits and pool sizing of one function version.
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
    /// The function's own variables from its settings; they win over the image's.
    pub env: Vec<(String, String)>,
    pub network: NetworkMode,
    /// When not empty, the only destinations an egress container may reach (within what the
    /// operator allows).
    pub egress_allow: Vec<EgressRule>,
}
