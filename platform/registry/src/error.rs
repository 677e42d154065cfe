//! Why an upload or lookup failed.

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
    #[error("storing the executable failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
