//! The registry: functions, their content-addressed versions, and resolving a name to the
//! version an invocation runs.
//!
//! An executable upload is checked (name, size, x86-64 ELF executable, statically linked),
//! stored once under its sha256 digest with a read-only root file system beside it, then
//! recorded in PostgreSQL. An image upload is checked and unpacked by the `images` store and
//! recorded under its config digest. **Invariant:** a rejected or failed upload leaves nothing behind on disk or in
//! the database.

mod blobs;
mod elf;
mod error;
mod image_upload;
mod names;
mod registry;
mod settings;

pub use elf::check_executable;
pub use error::RegistryError;
pub use image_pull::{PullError, PullSettings};
pub use image_upload::StagedUpload;
pub use images::{ImageError, ImageLimits};
pub use names::validate_name;
pub use registry::{Registry, RegistryConfig};
pub use settings::{FunctionSettings, image_reference};
pub use store::{FunctionRecord, VersionRecord, VersionSelector};
