//! How a function's process starts inside its root: arguments, environment, directory, user.

use serde::{Deserialize, Serialize};

/// The process of a function container, before Kiln adds its own variables
/// (`KILN_RUNTIME_SOCKET`, ...) and the function's `env=` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// `argv`, the program first: an absolute path, or a name looked up in the image's `PATH`.
    pub args: Vec<String>,
    /// `NAME=VALUE` pairs from the image, in its order.
    pub env: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the image's user (from its `/etc/group`).
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

impl ProcessSpec {
    /// The process of a static executable uploaded as a function: `/function` as root in `/`.
    pub fn executable() -> ProcessSpec {
        ProcessSpec {
            args: vec!["/function".to_owned()],
            env: vec!["PATH=/".to_owned()],
            cwd: "/".to_owned(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        }
    }
}
