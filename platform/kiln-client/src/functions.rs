//! The function API under `/v1/functions`: upload, list, show, delete, roll back or forward.

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::body::{self, Progress};
use crate::client::{parse, segment, success};
use crate::{Client, Error};

/// A function as listed: its current version's digest, size and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    pub current_version: i32,
    pub digest: String,
    pub size_bytes: u64,
    /// `memory_mb`, `timeout_ms`, `env`, ... as Kiln stored them.
    pub settings: Map<String, Value>,
    /// Where to invoke it: `/fn/{tenant}/{name}/`.
    pub invoke_path: String,
    pub created_at: String,
    pub updated_at: String,
    /// Fields this client does not know yet, kept so that `--json` output stays complete.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A function with every version it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDetail {
    #[serde(flatten)]
    pub function: Function,
    pub versions: Vec<Version>,
}

/// One uploaded executable with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: i32,
    pub digest: String,
    pub size_bytes: u64,
    pub settings: Map<String, Value>,
    pub created_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to an upload: the new version, now the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uploaded {
    pub name: String,
    pub invoke_path: String,
    #[serde(flatten)]
    pub version: Version,
}

#[derive(Deserialize)]
struct FunctionList {
    functions: Vec<Function>,
}

impl Client {
    /// `PUT /v1/functions/{name}?{settings}` with the executable as the body; `progress`
    /// is told `(sent, total)` as the bytes go out.
    pub async fn upload_function(
        &self,
        name: &str,
        settings: &[(String, String)],
        executable: Bytes,
        progress: Progress,
    ) -> Result<Uploaded, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        let path = format!("/v1/functions/{}{}", segment(name), settings_query(settings));
        let answer = self
            .send(Method::PUT, &path, headers, body::counted(executable, progress))
            .await?;
        parse(&success(answer)?.body)
    }

    /// `GET /v1/functions`.
    pub async fn list_functions(&self) -> Result<Vec<Function>, Error> {
        let list: FunctionList = self.json(Method::GET, "/v1/functions", None::<&()>).await?;
        Ok(list.functions)
    }

    /// `GET /v1/functions/{name}`.
    pub async fn get_function(&self, name: &str) -> Result<FunctionDetail, Error> {
        let path = format!("/v1/functions/{}", segment(name));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `DELETE /v1/functions/{name}`: the function, its versions and its containers.
    pub async fn delete_function(&self, name: &str) -> Result<(), Error> {
        self.empty(Method::DELETE, &format!("/v1/functions/{}", segment(name)))
            .await
    }

    /// `PUT /v1/functions/{name}/current`: makes `version` the current one.
    pub async fn set_current(&self, name: &str, version: i32) -> Result<FunctionDetail, Error> {
        let path = format!("/v1/functions/{}/current", segment(name));
        self.json(Method::PUT, &path, Some(&json!({"version": version})))
            .await
    }
}

/// The upload query for settings such as `[("memory_mb", "64"), ("env", "A=B")]`:
/// `?memory_mb=64&env=A%3DB`, or nothing when there are none.
fn settings_query(settings: &[(String, String)]) -> String {
    crate::client::query(
        settings
            .iter()
            .map(|(key, value)| (key.as_str(), Some(value.clone()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn settings_become_the_upload_query() {
        assert_eq!(settings_query(&[]), "");
        assert_eq!(
            settings_query(&pairs(&[
                ("memory_mb", "64"),
                ("env", "GREETING=hello world"),
                ("env", "B=1&2")
            ])),
            "?memory_mb=64&env=GREETING%3Dhello+world&env=B%3D1%262"
        );
    }

    #[test]
    fn function_details_keep_unknown_fields() {
        let body = json!({
            "name": "hello", "current_version": 2, "digest": "ab", "size_bytes": 10,
            "settings": {"memory_mb": 64}, "invoke_path": "/fn/acme/hello/",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-02T00:00:00.000Z",
            "owner": "ops",
            "versions": [{"version": 1, "digest": "cd", "size_bytes": 9, "settings": {},
                          "created_at": "2026-01-01T00:00:00.000Z"}]
        });
        let detail: FunctionDetail = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(detail.function.current_version, 2);
        assert_eq!(detail.versions[0].digest, "cd");
        assert_eq!(detail.function.extra["owner"], "ops");
        assert_eq!(serde_json::to_value(&detail).unwrap(), body);
    }
}
