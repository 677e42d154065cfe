//! What the operator allows: registries to pull from, those reached over plain HTTP, and
//! credentials in the `auth.json` format podman, skopeo and docker write
//! (`{"auths": {"host:port": {"auth": "<base64 user:password>"}}}`).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Clone, Default)]
pub struct PullSettings {
    /// `host[:port]` of every registry pulls may use; empty means no pulls.
    pub allowed: Vec<String>,
    /// Allowed registries reached over `http://` instead of `https://`.
    pub insecure: Vec<String>,
    /// User and password by registry.
    pub credentials: HashMap<String, (String, String)>,
    /// Largest sum of an image's blob sizes.
    pub max_bytes: u64,
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl PullSettings {
    /// Reads a credentials file; every problem names the file and what to fix.
    pub fn read_credentials(path: &Path) -> Result<HashMap<String, (String, String)>, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
        let file: AuthFile = serde_json::from_str(&text)
            .map_err(|error| format!("{shown} is not an auth.json file ({{\"auths\": {{...}}}}): {error}"))?;
        let mut credentials = HashMap::new();
        for (registry, entry) in file.auths {
            let registry = registry
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
            let pair = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .ok_or_else(|| {
                            format!("{shown}: the auth of {registry} is not base64 of user:password")
                        })?;
                    let (user, password) = decoded
                        .split_once(':')
                        .ok_or_else(|| format!("{shown}: the auth of {registry} is not user:password"))?;
                    (user.to_owned(), password.to_owned())
                }
                (None, Some(user), Some(password)) => (user, password),
                _ => {
                    return Err(format!(
                        "{shown}: {registry} has neither auth nor username and password"
                    ));
                }
            };
            credentials.insert(registry, pair);
        }
        Ok(credentials)
    }

    pub(crate) fn is_allowed(&self, registry: &str) -> bool {
        self.allowed.iter().any(|allowed| allowed == registry)
    }

    pub(crate) fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|insecure| insecure == registry) {
            "http"
        } else {
            "https"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_as_podman_writes_them_are_read() {
        let path = std::env::temp_dir().join(format!("kiln-auth-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"auths": {"127.0.0.1:5000": {"auth": "a2lsbjpzM2NyM3Q6eA=="}, "https://ghcr.io/": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let credentials = PullSettings::read_credentials(&path).unwrap();
        assert_eq!(
            credentials["127.0.0.1:5000"],
            ("kiln".to_owned(), "s3cr3t:x".to_owned())
        );
        assert_eq!(credentials["ghcr.io"], ("u".to_owned(), "p".to_owned()));
        std::fs::write(&path, r#"{"auths": {"r": {"auth": "not base64!"}}}"#).unwrap();
        let error = PullSettings::read_credentials(&path).unwrap_err();
        assert!(error.contains("not base64"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }
}
