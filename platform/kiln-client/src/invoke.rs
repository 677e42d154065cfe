//! Invocations: `ANY /fn/{tenant}/{function}/{*path}`, answered with the function's own
//! status, headers and body (any status is a result here, not an error).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::body;
use crate::client::segment;
use crate::{Client, Error};

/// One invocation to send.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub tenant: String,
    /// `name`, `name@7` (a version) or `name@<sha256>` (a digest).
    pub function: String,
    pub method: Method,
    /// The path (and query) the function sees, such as `/echo?x=1`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the function answered (or Kiln, for its own errors such as `401` or `504`).
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Client {
    pub async fn invoke(&self, invocation: Invocation) -> Result<InvokeResponse, Error> {
        let mut headers = HeaderMap::new();
        for (name, value) in &invocation.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| Error::InvalidRequest(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| Error::InvalidRequest(format!("the value of header `{name}` is not valid")))?;
            headers.append(name, value);
        }
        let path = invoke_path(&invocation.tenant, &invocation.function, &invocation.path);
        let answer = self
            .send(invocation.method, &path, headers, body::full(invocation.body))
            .await?;
        Ok(InvokeResponse {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}

/// `/fn/{tenant}/{function}{path}`, with `path` given a leading `/` if it lacks one.
fn invoke_path(tenant: &str, function: &str, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("/fn/{}/{}{slash}{path}", segment(tenant), segment(function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_paths_keep_the_function_path_and_query() {
        assert_eq!(
            invoke_path("acme", "echo", "/echo/x?a=1"),
            "/fn/acme/echo/echo/x?a=1"
        );
        assert_eq!(invoke_path("acme", "echo@2", "status"), "/fn/acme/echo@2/status");
        assert_eq!(invoke_path("acme", "echo", ""), "/fn/acme/echo/");
    }
}
