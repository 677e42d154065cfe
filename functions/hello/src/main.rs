//! The example Kiln function: answers every invocation with a JSON greeting describing the request.

use kiln_sdk::{Failure, Invocation, Response};
use serde_json::Value;

fn main() {
    kiln_sdk::serve(handle)
}

/// `200` JSON with the greeting, method, path, query and body; echoes `x-echo` if sent.
fn handle(invocation: &Invocation) -> Result<Response, Failure> {
    // Written field by field to keep the documented key order (serde_json's maps sort keys).
    let greeting = format!(
        r#"{{"greeting":"hello from kiln","method":{},"path":{},"query":{},"body":{}}}"#,
        Value::from(invocation.method.as_str()),
        Value::from(invocation.path.as_str()),
        Value::from(invocation.query.as_deref()),
        Value::from(invocation.body_text()),
    );
    let mut response = Response::json(200, greeting);
    if let Some(echo) = invocation.header("x-echo") {
        response = response.header("x-echo", echo);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invocation(query: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Invocation {
        Invocation {
            id: "1".into(),
            method: "POST".into(),
            path: "/greet".into(),
            query: query.map(str::to_owned),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            ..Invocation::default()
        }
    }

    #[test]
    fn greets_with_the_request_as_json() {
        let response = handle(&invocation(Some("a=1"), &[("X-Echo", "ping")], b"caf\xe9 \"q\"")).unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        assert!(headers.contains(&("x-echo".into(), "ping".into())));
        assert!(
            response
                .body_bytes()
                .starts_with(br#"{"greeting":"hello from kiln","method":"POST","path""#)
        );
        let body: Value = serde_json::from_slice(response.body_bytes()).unwrap();
        assert_eq!(
            body,
            json!({"greeting": "hello from kiln", "method": "POST", "path": "/greet", "query": "a=1",
                   "body": "caf\u{fffd} \"q\""})
        );
    }

    #[test]
    fn absent_query_is_null_and_no_echo_without_header() {
        let response = handle(&invocation(None, &[], b"")).unwrap();
        assert!(!response.headers().iter().any(|(name, _)| name == "x-echo"));
        let body: Value = serde_json::from_slice(response.body_bytes()).unwrap();
        assert_eq!(body["query"], Value::Null);
        assert_eq!(body["body"], "");
    }
}
