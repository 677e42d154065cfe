//! `GET /v1/functions/{name}/logs`: a function's recent stdout and stderr lines as NDJSON,
//! filtered by invocation or instance; `follow=1` keeps the response open and streams new
//! lines as the function writes them (an empty line every 15 s while it is quiet).

use bytes::Bytes;
use http::{HeaderValue, Response};
use pool::{LogLine, Runner};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::App;
use crate::body::{ResponseBody, full_body, parse_count, streamed_body};
use crate::error::ApiError;

const DEFAULT_LINES: usize = 100;
/// A quiet follow sends an empty line this often.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);
const MAX_LINES: usize = 1000;

/// Which lines the caller wants.
#[derive(Debug, Clone, Default, PartialEq)]
struct LogQuery {
    lines: usize,
    follow: bool,
    invocation: Option<String>,
    instance: Option<String>,
}

impl LogQuery {
    fn keeps(&self, line: &Value) -> bool {
        let matches = |wanted: &Option<String>, field: &str| {
            wanted
                .as_ref()
                .is_none_or(|wanted| line[field].as_str() == Some(wanted))
        };
        matches(&self.invocation, "invocation") && matches(&self.instance, "instance")
    }
}

pub async fn stream<R: Runner>(
    app: &App<R>,
    tenant: &str,
    name: &str,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let query = parse_query(query)?;
    let state = &app.inner;
    if state.registry.show(tenant, name).await?.is_none() {
        return Err(ApiError::function_not_found(name));
    }
    // Subscribe before reading the files, so no line falls between the two.
    let live = query.follow.then(|| state.logs.follow());
    let recent = {
        let (logs, tenant, name) = (state.logs.clone(), tenant.to_owned(), name.to_owned());
        let wanted = query.clone();
        tokio::task::spawn_blocking(move || {
            logs.recent(&tenant, &name, wanted.lines, |line| wanted.keeps(line))
        })
        .await
        .map_err(|error| ApiError::internal(&error))?
        .map_err(|error| ApiError::internal(&error))?
    };
    let mut text = String::new();
    for line in &recent {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let body = match live {
        None => full_body(text),
        Some(live) => {
            let (chunks, body) = mpsc::channel(64);
            let source = (tenant.to_owned(), name.to_owned());
            let closing = state.closing.clone();
            tokio::spawn(follow(live, chunks, Bytes::from(text), source, query, closing));
            streamed_body(body)
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Sends the stored lines, then every new line of `tenant/function` that the query keeps,
/// until the client goes away.
async fn follow(
    mut live: broadcast::Receiver<std::sync::Arc<LogLine>>,
    chunks: mpsc::Sender<Bytes>,
    stored: Bytes,
    (tenant, function): (String, String),
    query: LogQuery,
    closing: CancellationToken,
) {
    if !stored.is_empty() && chunks.send(stored).await.is_err() {
        return;
    }
    loop {
        let line = tokio::select! {
            line = live.recv() => line,
            // An empty line now and then keeps proxies from closing a quiet follow.
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                if chunks.send(Bytes::from_static(b"\n")).await.is_err() {
                    return;
                }
                continue;
            }
            _ = chunks.closed() => return,
            // Shutdown ends the stream, so the drain does not wait for the client.
            _ = closing.cancelled() => return,
        };
        let line = match line {
            Ok(line) if line.tenant == tenant && line.function == function => line,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let value = line.to_json();
        if !query.keeps(&value) {
            continue;
        }
        let mut text = value.to_string();
        text.push('\n');
        if chunks.send(Bytes::from(text)).await.is_err() {
            return;
        }
    }
}

fn parse_query(query: Option<&str>) -> Result<LogQuery, ApiError> {
    let mut parsed = LogQuery {
        lines: DEFAULT_LINES,
        ..LogQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "lines" => {
                parsed.lines = parse_count("lines", &value, MAX_LINES)?;
            }
            "follow" => {
                parsed.follow = match value.as_ref() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "follow must be 1, true, 0 or false",
                        ));
                    }
                };
            }
            "invocation" => parsed.invocation = Some(value.into_owned()),
            "instance" => parsed.instance = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter `{other}`; use lines, follow, invocation or instance"),
                ));
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_parse_and_filter() {
        let query = parse_query(Some("lines=5&follow=1&instance=abc")).unwrap();
        assert_eq!((query.lines, query.follow), (5, true));
        assert!(query.keeps(&json!({"instance": "abc", "invocation": "c-1"})));
        assert!(!query.keeps(&json!({"instance": "xyz"})));
        assert!(!query.keeps(&json!({"instance": null})));
        assert!(parse_query(None).unwrap().keeps(&json!({"instance": null})));
        assert_eq!(parse_query(Some("lines=0")).unwrap_err().code, "invalid_limit");
        assert_eq!(parse_query(Some("lines=1001")).unwrap_err().code, "invalid_limit");
        assert_eq!(parse_query(Some("follow=yes")).unwrap_err().code, "invalid_query");
        assert_eq!(parse_query(Some("tail=3")).unwrap_err().code, "invalid_query");
    }
}
