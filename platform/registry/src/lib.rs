//! The registry: functions, their content-addressed versions, and resolving a name to the
//! version an invocation runs.
//!
//! An upload is checked (name, size, x86-64 ELF executable, statically linked), stored once
//! under its sha256 digest with a read-only root file system beside it, then recorded in
//! PostgreSQL. **Invariant:** a rejected or failed upload leaves nothing behind on disk or in
//! the database.

mod blobs;
mod elf;
mod error;
mod names;
mod registry;
mod settings;

pub use error::RegistryError;
pub use names::validate_name;
pub use registry::{Registry, RegistryConfig};
pub use settings::FunctionSettings;
pub use store::{FunctionRecord, VersionRecord, VersionSelector};
