//! Writing an upload's body to a staged file as it arrives, within a limit, so a large image
//! archive never sits in memory; and telling what the body is from its first bytes.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::body::RequestBody;
use crate::error::ApiError;

/// What an upload body is, by its content.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadKind {
    /// Starts like an ELF file: goes the executable way (and its checks).
    Executable,
    /// A tar archive (`ustar` magic): an OCI image layout or a docker-archive.
    ImageArchive,
    Empty,
    /// Anything else; the executable checks say what is wrong with it.
    Unknown,
}

/// Bytes kept from the start of the body: a tar header is 512.
const HEAD_BYTES: usize = 512;

/// Streams the body into `path`; more than `limit` bytes is `413 upload_too_large`.
/// Returns the body's length and kind.
pub async fn stage_body<B: RequestBody>(
    request: Request<B>,
    path: &std::path::Path,
    limit: u64,
    limit_message: impl Fn() -> String,
) -> Result<(u64, UploadKind), ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", limit_message());
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    let mut body = std::pin::pin!(request.into_body());
    let mut length = 0u64;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            ApiError::bad_request(
                "body_unreadable",
                format!("could not read the request body: {}", error.into()),
            )
        })?;
        let Ok(data) = frame.into_data() else { continue };
        length += data.len() as u64;
        if length > limit {
            return Err(too_large());
        }
        if head.len() < HEAD_BYTES {
            head.extend_from_slice(&data[..data.len().min(HEAD_BYTES - head.len())]);
        }
        file.write_all(&data)
            .await
            .map_err(|error| ApiError::internal(&error))?;
    }
    file.flush().await.map_err(|error| ApiError::internal(&error))?;
    Ok((length, kind_of(&head)))
}

fn kind_of(head: &[u8]) -> UploadKind {
    if head.is_empty() {
        UploadKind::Empty
    } else if head.starts_with(b"\x7fELF") {
        UploadKind::Executable
    } else if head.get(257..262) == Some(b"ustar".as_slice()) {
        UploadKind::ImageArchive
    } else {
        UploadKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_content() {
        let mut tar = vec![0u8; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(kind_of(&tar), UploadKind::ImageArchive);
        assert_eq!(kind_of(b"\x7fELF\x02\x01"), UploadKind::Executable);
        assert_eq!(kind_of(b""), UploadKind::Empty);
        assert_eq!(kind_of(b"#!/bin/sh\n"), UploadKind::Unknown);
    }
}
