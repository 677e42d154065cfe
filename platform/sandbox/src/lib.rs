//! The sandbox: the only code in Kiln that calls youki's `libcontainer`.
//!
//! libcontainer forks with raw `clone` and changes the process-wide working
//! directory, so it must never run on a tokio worker thread. It runs instead in
//! a small single-threaded process (`kilnd sandbox`, see [`serve`]) that the
//! async side drives over a Unix socket through [`Sandbox`].
//!
//! **Invariant:** containers belong to the sandbox process that created it;
//! when that process loses its control socket (kilnd exited or was killed) it
//! deletes every container it holds before exiting.

mod client;
mod oci;
mod protocol;
mod reaper;
mod server;
mod spec;
#[cfg(test)]
mod test_spec;

pub use client::{ContainerExit, Sandbox, SandboxError};
pub use server::serve;
pub use spec::{ContainerNetwork, ContainerSpec, ProcessSpec};
