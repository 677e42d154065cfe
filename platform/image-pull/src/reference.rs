//! Image references as people write them: `registry.example.com:5000/team/app:1.2`,
//! `app@sha256:...`, `python:3.12` (Docker Hub's `library/python`).

use std::fmt;

use crate::PullError;

const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `host[:port]`, as the operator lists it in `KILN_REGISTRIES`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`: the manifest must hash to it.
    pub digest: Option<String>,
}

/// A part of a repository name as the OCI distribution spec writes it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, so never `..` or a leading or trailing separator.
fn is_path_component(part: &str) -> bool {
    let alphanumeric = |byte: &u8| matches!(byte, b'a'..=b'z' | b'0'..=b'9');
    let bytes = part.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alphanumeric(first) || !alphanumeric(last) {
        return false;
    }
    bytes
        .split(alphanumeric)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|byte| *byte == b'-')
        })
}

impl ImageReference {
    pub fn parse(text: &str) -> Result<ImageReference, PullError> {
        let invalid =
            |why: &str| PullError::InvalidReference(format!("`{text}` is not an image reference: {why}"));
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid("the digest must be sha256:<hex>"))?;
                if hex.len() != 64 || !hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(invalid(
                        "the digest must be sha256 followed by 64 lower-case hex digits",
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), rest.to_owned()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository.to_owned(), Some(tag.to_owned())),
            _ => (path, None),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(is_path_component) {
            return Err(invalid(
                "each part of a repository name is lower-case letters and digits, joined by `.`, `_`, `__` or dashes",
            ));
        }
        if let Some(tag) = &tag
            && (tag.len() > 128
                || !tag.starts_with(|first: char| first.is_ascii_alphanumeric() || first == '_')
                || !tag
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte)))
        {
            return Err(invalid(
                "tags are letters, digits, `.`, `_` and `-`, at most 128, and start with a letter, digit or `_`",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API answers on.
    pub(crate) fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The digest if there is one, else the tag: what `/manifests/` is asked for.
    pub(crate) fn manifest_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_and_podman_read_them() {
        let local = ImageReference::parse("127.0.0.1:5000/demo/python-hello:1").unwrap();
        assert_eq!(
            (local.registry.as_str(), local.repository.as_str()),
            ("127.0.0.1:5000", "demo/python-hello")
        );
        assert_eq!(local.tag.as_deref(), Some("1"));
        let hub = ImageReference::parse("python").unwrap();
        assert_eq!(hub.to_string(), "docker.io/library/python:latest");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        let pinned = ImageReference::parse(&format!("ghcr.io/acme/app@sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.manifest_reference(), format!("sha256:{}", "a".repeat(64)));
        let spec_names = ImageReference::parse("host:5000/a__b/c-d--e/f.g_h:_1.0-rc").unwrap();
        assert_eq!(spec_names.repository, "a__b/c-d--e/f.g_h");
        for bad in [
            "Upper/Case:1",
            "app@md5:abc",
            "host:5000/app:",
            "a//b",
            "",
            "host:5000/team/..",
            "host:5000/team/../app",
            "app.",
            "-app",
            "a___b",
            "a._b",
            "app:.hidden",
            "app:-rc",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad}");
        }
    }
}
