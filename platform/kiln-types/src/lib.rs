//! Descriptors shared by the registry, the images store and the pool.
//!
//! **Invariant:** this crate knows no containers, no PostgreSQL and no HTTP: it only says
//! what a function version is (its root, its process, its limits), so the parts that
//! produce those descriptors never depend on the parts that run them.

mod limits;
mod network;
mod process;
mod target;

pub use limits::FunctionLimits;
pub use network::{EgressRule, NetworkMode};
pub use process::ProcessSpec;
pub use target::FunctionTarget;
