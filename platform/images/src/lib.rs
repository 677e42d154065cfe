//! Container images as functions: OCI image layouts and docker-archives, uploaded as tar
//! archives, checked blob by blob against their digests, unpacked layer by layer into a
//! store on disk and merged into read-only roots the sandbox runs.
//!
//! **Invariant:** nothing of an archive is used before its digest is checked, no entry of a
//! layer is ever written outside that layer's folder, and a refused image leaves nothing
//! behind.

mod archive;
mod config;
mod digest;
mod error;
mod layer;
mod manifest;
mod removal;
mod root;
mod store;

pub use error::ImageError;
pub use store::{ImageLimits, ImageStore, StoredImage};
