//! One pull: the manifest (through an index to the linux/amd64 image when the reference
//! names several platforms), then the config and layers streamed into an OCI image layout
//! archive on disk. The archive then goes through the same checks as an uploaded one.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{IDLE_TIMEOUT, RegistryClient, read_small};
use crate::{ImageReference, PullError, PullSettings};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// Pulls `reference` into an OCI image layout archive at `destination`, naming the image by
/// the reference as written. Returns the parsed reference.
pub async fn pull(
    settings: &PullSettings,
    reference: &str,
    destination: &Path,
) -> Result<ImageReference, PullError> {
    let parsed = ImageReference::parse(reference)?;
    if !settings.is_allowed(&parsed.registry) {
        return Err(PullError::NotAllowed(if settings.allowed.is_empty() {
            "this Kiln pulls from no registry: the operator lists the allowed ones in KILN_REGISTRIES"
                .to_owned()
        } else {
            format!(
                "pulls from {} are not allowed here; allowed: {}",
                parsed.registry,
                settings.allowed.join(", ")
            )
        }));
    }
    let mut client = RegistryClient::new(settings, &parsed)?;
    let accept = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST].join(", ");
    let (mut kind, mut manifest) =
        fetch_manifest(&mut client, &parsed, parsed.manifest_reference(), &accept).await?;
    if let Some(wanted) = &parsed.digest {
        check_digest(wanted, &manifest)?;
    }
    if kind == OCI_INDEX || kind == DOCKER_LIST {
        let index: Index = parse("the image index", &manifest)?;
        let chosen = index
            .manifests
            .into_iter()
            .find(|entry| {
                entry
                    .platform
                    .as_ref()
                    .is_some_and(|platform| platform.os == "linux" && platform.architecture == "amd64")
            })
            .ok_or_else(|| PullError::NotFound(format!("{parsed} has no linux/amd64 image")))?;
        (kind, manifest) = fetch_manifest(&mut client, &parsed, &chosen.digest, &accept).await?;
        check_digest(&chosen.digest, &manifest)?;
    }
    if kind != OCI_MANIFEST && kind != DOCKER_MANIFEST {
        return Err(PullError::Protocol(format!(
            "{parsed}: the registry sent a `{kind}`, not an image manifest"
        )));
    }
    let image: Manifest = parse("the image manifest", &manifest)?;
    let total: u64 = image.config.size + image.layers.iter().map(|layer| layer.size).sum::<u64>();
    if total > settings.max_bytes {
        return Err(PullError::TooLarge(format!(
            "{parsed} is {total} bytes compressed; image archives are limited to {} bytes",
            settings.max_bytes
        )));
    }

    let mut archive = tokio::fs::File::create(destination).await?;
    let manifest_digest = format!("sha256:{}", hex(&Sha256::digest(&manifest)));
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": kind,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    write_member(&mut archive, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
    write_member(&mut archive, "index.json", index.to_string().as_bytes()).await?;
    write_member(&mut archive, &blob_name(&manifest_digest), &manifest).await?;
    let mut written = HashSet::new();
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        if written.insert(blob.digest.clone()) {
            stream_blob(&mut client, &mut archive, blob).await?;
        }
    }
    archive.write_all(&[0u8; 1024]).await?;
    archive.flush().await?;
    tracing::info!(image = %parsed, bytes = total, "image pulled");
    Ok(parsed)
}

async fn fetch_manifest(
    client: &mut RegistryClient,
    image: &ImageReference,
    reference: &str,
    accept: &str,
) -> Result<(String, Bytes), PullError> {
    let answer = client.get(&format!("manifests/{reference}"), accept).await?;
    check_status(image, answer.status(), "manifest")?;
    let kind = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let body = read_small(answer, MAX_MANIFEST_BYTES).await?;
    // Registries that answer with a generic type still name it in the document.
    let kind = if kind.contains("manifest") || kind.contains("image.index") {
        kind
    } else {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|document| document["mediaType"].as_str().map(str::to_owned))
            .unwrap_or(kind)
    };
    Ok((kind, body))
}

fn check_status(image: &ImageReference, status: StatusCode, what: &str) -> Result<(), PullError> {
    match status {
        status if status.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(PullError::NotFound(format!(
            "the registry has no {what} for {image}"
        ))),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PullError::Unauthorized(format!(
            "the registry refused Kiln access to {image} ({status}); the operator sets credentials in KILN_REGISTRY_AUTH_FILE"
        ))),
        status => Err(PullError::Unavailable(format!(
            "the registry answered {status} for the {what} of {image}"
        ))),
    }
}

fn check_digest(wanted: &str, bytes: &[u8]) -> Result<(), PullError> {
    let actual = format!("sha256:{}", hex(&Sha256::digest(bytes)));
    if actual == wanted {
        Ok(())
    } else {
        Err(PullError::Protocol(format!(
            "the registry sent a manifest hashing to {actual}, not {wanted}"
        )))
    }
}

/// Streams one blob into the archive as a member, checking its length and digest.
async fn stream_blob(
    client: &mut RegistryClient,
    archive: &mut tokio::fs::File,
    blob: &Descriptor,
) -> Result<(), PullError> {
    let answer = client.get(&format!("blobs/{}", blob.digest), "*/*").await?;
    let status = answer.status();
    if !status.is_success() {
        return Err(PullError::Unavailable(format!(
            "the registry answered {status} for blob {}",
            blob.digest
        )));
    }
    archive
        .write_all(member_header(&blob_name(&blob.digest), blob.size)?.as_bytes())
        .await?;
    let mut body = answer.into_body();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(error))) => {
                return Err(PullError::Unavailable(format!("blob {}: {error}", blob.digest)));
            }
            Ok(None) => break,
            Err(_) => {
                return Err(PullError::Unavailable(format!(
                    "the registry stopped sending blob {}",
                    blob.digest
                )));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        received += data.len() as u64;
        if received > blob.size {
            return Err(PullError::Protocol(format!(
                "blob {} is larger than its {} bytes",
                blob.digest, blob.size
            )));
        }
        hasher.update(&data);
        archive.write_all(&data).await?;
    }
    if received != blob.size {
        return Err(PullError::Protocol(format!(
            "blob {} ended after {received} of {} bytes",
            blob.digest, blob.size
        )));
    }
    let actual = format!("sha256:{}", hex(&hasher.finalize()));
    if actual != blob.digest {
        return Err(PullError::Protocol(format!(
            "the registry sent blob {} hashing to {actual}",
            blob.digest
        )));
    }
    archive.write_all(&vec![0u8; padding(blob.size)]).await?;
    Ok(())
}

async fn write_member(archive: &mut tokio::fs::File, name: &str, bytes: &[u8]) -> Result<(), PullError> {
    archive
        .write_all(member_header(name, bytes.len() as u64)?.as_bytes())
        .await?;
    archive.write_all(bytes).await?;
    archive.write_all(&vec![0u8; padding(bytes.len() as u64)]).await?;
    Ok(())
}

fn member_header(name: &str, size: u64) -> Result<tar::Header, PullError> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Zero bytes after a member's data up to the next 512-byte block.
fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, PullError> {
    serde_json::from_slice(bytes)
        .map_err(|error| PullError::Protocol(format!("{what} is not valid: {error}")))
}
