//! Pulling container images from OCI distribution registries (`?image=REGISTRY/REPO:TAG`
//! with an empty upload body).
//!
//! **Invariant:** only registries the operator allows are contacted, over HTTPS unless the
//! operator marks one insecure; credentials go only to the registry they are for (and the
//! token service it names, over HTTPS unless the registry is insecure), never along a
//! redirect to another host or scheme; what is pulled is written as an OCI image layout
//! archive and checked by the images store exactly like an uploaded one.

mod client;
mod error;
mod pull;
mod reference;
mod settings;

pub use error::PullError;
pub use pull::pull;
pub use reference::ImageReference;
pub use settings::PullSettings;
