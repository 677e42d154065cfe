//! Why an upload or lookup failed.

use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    NotExecutable(String),
    #[error("executable is larger than the upload limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    InvalidSetting(String),
    #[error(transparent)]
    Image(#[from] images::ImageError),
    #[error(transparent)]
    Pull(#[from] image_pull::PullError),
    #[error(
        "image {0} is not on this node: images stay on the node they were uploaded through \
         (upload it through this node too, or route its invocations to that node)"
    )]
    ImageNotOnThisNode(String),
    #[error("storing the executable failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A lookup's failure, shared by every caller that waited for it.
    #[error(transparent)]
    Lookup(Arc<RegistryError>),
}
