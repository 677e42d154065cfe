//! Finds the images of an archive: an OCI image layout (`oci-layout`, `index.json`) or a
//! docker-archive (`manifest.json`), each image as its config and its layers in order.

use serde::Deserialize;

use crate::ImageError;
use crate::archive::{ArchiveIndex, blob_member};
use crate::digest::is_sha256_hex;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image an archive holds.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Names it can be chosen by (`repo:tag`, a tag, ...); may be empty.
    pub refs: Vec<String>,
    pub config: Member,
    pub layers: Vec<Member>,
}

/// A member of the archive and, where the format gives one, the digest its bytes must have.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub digest: Option<String>,
    pub size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Every image of the archive, in the order the archive lists them.
pub(crate) fn candidates(archive: &ArchiveIndex) -> Result<Vec<Candidate>, ImageError> {
    if archive.contains("oci-layout") && archive.contains("index.json") {
        let index: Index = parse("index.json", &archive.read_document("index.json")?)?;
        let mut found = Vec::new();
        for descriptor in index.manifests {
            oci_images(archive, descriptor, &mut found, 0)?;
        }
        return Ok(found);
    }
    if archive.contains("manifest.json") {
        let images: Vec<DockerImage> = parse("manifest.json", &archive.read_document("manifest.json")?)?;
        return Ok(images.into_iter().map(docker_image).collect());
    }
    Err(ImageError::invalid(
        "the upload is a tar archive but neither an OCI image layout (oci-layout, index.json) \
         nor a docker-archive (manifest.json)",
    ))
}

/// Chooses the image `wanted` names, or the only one when nothing is named.
pub(crate) fn choose(candidates: Vec<Candidate>, wanted: Option<&str>) -> Result<Candidate, ImageError> {
    let choices: Vec<String> = candidates
        .iter()
        .map(|candidate| {
            candidate
                .refs
                .first()
                .cloned()
                .unwrap_or_else(|| candidate.config.name.clone())
        })
        .collect();
    match wanted {
        None if candidates.len() == 1 => Ok(candidates.into_iter().next().expect("one candidate")),
        None if candidates.is_empty() => Err(ImageError::invalid("the archive holds no image")),
        None => Err(ImageError::Ambiguous(choices)),
        Some(wanted) => candidates
            .into_iter()
            .find(|candidate| candidate.refs.iter().any(|name| ref_matches(name, wanted)))
            .ok_or_else(|| ImageError::NotInArchive {
                wanted: wanted.to_owned(),
                choices,
            }),
    }
}

/// `python-hello` matches `python-hello:latest`; `localhost/app:1` matches `app:1`.
fn ref_matches(name: &str, wanted: &str) -> bool {
    let with_tag = |reference: &str| {
        let last = reference.rsplit('/').next().unwrap_or(reference);
        if last.contains(':') {
            reference.to_owned()
        } else {
            format!("{reference}:latest")
        }
    };
    let (name, wanted) = (with_tag(name), with_tag(wanted));
    name == wanted || name.ends_with(&format!("/{wanted}"))
}

fn oci_images(
    archive: &ArchiveIndex,
    descriptor: Descriptor,
    found: &mut Vec<Candidate>,
    depth: usize,
) -> Result<(), ImageError> {
    if let Some(platform) = &descriptor.platform
        && (platform.os != "linux" || platform.architecture != "amd64")
    {
        return Ok(());
    }
    match descriptor.media_type.as_str() {
        OCI_INDEX | DOCKER_LIST if depth < 2 => {
            let index: Index = parse(
                &descriptor.digest,
                &archive.read_blob(&descriptor.digest, Some(descriptor.size))?,
            )?;
            let before = found.len();
            for nested in index.manifests {
                oci_images(archive, nested, found, depth + 1)?;
            }
            for candidate in &mut found[before..] {
                candidate.refs.extend(names(&descriptor));
            }
            Ok(())
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let manifest: Manifest = parse(
                &descriptor.digest,
                &archive.read_blob(&descriptor.digest, Some(descriptor.size))?,
            )?;
            if manifest
                .media_type
                .as_deref()
                .is_some_and(|kind| kind != descriptor.media_type)
            {
                return Err(ImageError::invalid(format!(
                    "manifest {} says it is a {} but its descriptor says {}",
                    descriptor.digest,
                    manifest.media_type.unwrap_or_default(),
                    descriptor.media_type
                )));
            }
            let layers = manifest
                .layers
                .iter()
                .map(oci_layer)
                .collect::<Result<Vec<_>, _>>()?;
            found.push(Candidate {
                refs: names(&descriptor),
                config: oci_member(&manifest.config)?,
                layers,
            });
            Ok(())
        }
        other => Err(ImageError::invalid(format!(
            "index entry {} has media type `{other}`, which is not an image manifest or index",
            descriptor.digest
        ))),
    }
}

fn oci_layer(descriptor: &Descriptor) -> Result<Member, ImageError> {
    if !descriptor.urls.is_empty() {
        return Err(ImageError::invalid(format!(
            "layer {} is a foreign layer kept elsewhere ({}); include it in the archive",
            descriptor.digest, descriptor.urls[0]
        )));
    }
    let kind = descriptor.media_type.as_str();
    let is_tar = kind.contains(".layer.") || kind.contains(".rootfs.diff.") || kind.ends_with(".tar");
    if !is_tar || kind.contains("encrypted") {
        return Err(ImageError::invalid(format!(
            "layer {} has media type `{kind}`; Kiln reads plain, gzip and zstd tar layers",
            descriptor.digest
        )));
    }
    oci_member(descriptor)
}

fn oci_member(descriptor: &Descriptor) -> Result<Member, ImageError> {
    Ok(Member {
        name: blob_member(&descriptor.digest)?,
        digest: Some(descriptor.digest.clone()),
        size: Some(descriptor.size),
    })
}

fn names(descriptor: &Descriptor) -> Vec<String> {
    [CONTAINERD_NAME, REF_NAME]
        .iter()
        .filter_map(|key| descriptor.annotations.get(*key).cloned())
        .collect()
}

fn docker_image(image: DockerImage) -> Candidate {
    Candidate {
        refs: image.repo_tags.unwrap_or_default(),
        config: docker_member(image.config),
        layers: image.layers.into_iter().map(docker_member).collect(),
    }
}

/// docker-archives name members by their digest (`<hex>.json`, `blobs/sha256/<hex>`)
/// or not at all (`<id>/layer.tar`, checked through the config's diff ids instead).
fn docker_member(name: String) -> Member {
    let name = name.trim_start_matches("./").to_owned();
    let stem = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or("");
    let digest = is_sha256_hex(stem).then(|| format!("sha256:{stem}"));
    Member {
        name,
        digest,
        size: None,
    }
}

fn parse<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ImageError::invalid(format!("`{what}` is not valid: {error}")))
}

#[cfg(test)]
mod tests {
    use super::ref_matches;

    #[test]
    fn references_match_with_or_without_tag_and_registry() {
        assert!(ref_matches("python-hello:latest", "python-hello"));
        assert!(ref_matches("localhost/app:1", "app:1"));
        assert!(ref_matches("docker.io/library/app:1", "library/app:1"));
        assert!(!ref_matches("app:1", "app:2"));
        assert!(!ref_matches("myapp:1", "app:1"));
    }
}
