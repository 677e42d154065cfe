//! Why a pull failed: each kind maps to one stable error code of the API.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PullError {
    #[error("{0}")]
    InvalidReference(String),
    /// The operator does not allow pulls from this registry.
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials Kiln has for it (or Kiln has none).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    TooLarge(String),
    /// The registry could not be reached or answered with an error of its own.
    #[error("{0}")]
    Unavailable(String),
    /// The registry answered, but not as the distribution API says.
    #[error("{0}")]
    Protocol(String),
    #[error("writing the pulled image: {0}")]
    Io(#[from] std::io::Error),
}

impl PullError {
    /// The stable API code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            PullError::InvalidReference(_) => "invalid_image_reference",
            PullError::NotAllowed(_) => "registry_not_allowed",
            PullError::NotFound(_) => "image_not_found",
            PullError::Unauthorized(_) => "registry_unauthorized",
            PullError::TooLarge(_) => "image_too_large",
            PullError::Unavailable(_) => "registry_unavailable",
            PullError::Protocol(_) => "registry_error",
            PullError::Io(_) => "internal",
        }
    }
}
