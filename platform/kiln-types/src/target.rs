//! One resolved version of one tenant's function: everything the pool needs to run it.

use std::path::PathBuf;

use crate::{FunctionLimits, ProcessSpec};

/// One version of one tenant's function, resolved by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub tenant: String,
    pub function: String,
    pub version: i32,
    pub digest: String,
    /// Read-only root file system, shared by every container of this version (and of any
    /// version with the same executable or image).
    pub rootfs: PathBuf,
    /// How the function's process starts inside that root.
    pub process: ProcessSpec,
    pub limits: FunctionLimits,
}

impl FunctionTarget {
    /// The pool this target's invocations share: one per tenant, function and version.
    pub fn pool_key(&self) -> (String, String, i32) {
        (self.tenant.clone(), self.function.clone(), self.version)
    }
}
