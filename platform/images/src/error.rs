//! Why an image was refused: each kind maps to one stable error code of the API.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImageError {
    /// The archive or one of its blobs is malformed, unsafe or does not match its digest.
    #[error("{0}")]
    Invalid(String),
    /// The archive or the unpacked image is larger than the operator allows.
    #[error("{0}")]
    TooLarge(String),
    /// The archive holds several images and the upload did not say which one.
    #[error("the archive holds several images; choose one with ?image=REF: {}", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// `?image=REF` names no image of the archive.
    #[error("the archive holds no image `{wanted}`; it holds: {}", .choices.join(", "))]
    NotInArchive { wanted: String, choices: Vec<String> },
    #[error("image store: {0}")]
    Io(#[from] std::io::Error),
}

impl ImageError {
    pub(crate) fn invalid(message: impl Into<String>) -> ImageError {
        ImageError::Invalid(message.into())
    }

    /// The stable API code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::Invalid(_) => "invalid_image",
            ImageError::TooLarge(_) => "image_too_large",
            ImageError::Ambiguous(_) => "image_ambiguous",
            ImageError::NotInArchive { .. } => "image_not_in_archive",
            ImageError::Io(_) => "internal",
        }
    }
}
