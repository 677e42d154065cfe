//! The host side of the function contract (`docs/function-contract.md`): the runtime API
//! served over HTTP/1.1 on each container's private Unix socket.
//!
//! **Invariant:** a socket belongs to one container, so every request on it concerns that
//! container's current invocation; there is no way to name another container's work.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

#[cfg(test)]
use crate::ResponseStream;
use crate::logs::{Attribution, SharedAttribution};
use crate::response_stream::{StreamCut, StreamEnd, StreamLimits, response_stream};
use crate::runtime_error::{RuntimeApiError, json_body};
use crate::runtime_messages::{
    ERROR_REPORT_LIMIT, ErrorReport, parse_durable_call, response_status, unix_ms,
};
use crate::{
    DurableCall, DurableError, DurableReply, DurableSession, FunctionBody, FunctionResponse, Invocation,
    InvokeError,
};

/// Room for a durable call's key and framing on top of its value.
const DURABLE_ENVELOPE_LIMIT: usize = 4096;

/// An invocation handed to one container, with the way back to its caller.
pub(crate) struct Assignment {
    pub invocation: Invocation,
    pub deadline_ms: u64,
    pub respond: Responder,
}

/// The function's response, and for a streamed body, word of how the stream ended (the
/// container is busy until then).
#[derive(Debug)]
pub(crate) struct Answer {
    pub response: FunctionResponse,
    pub stream_end: Option<oneshot::Receiver<StreamEnd>>,
}

pub(crate) type Responder = oneshot::Sender<Result<Answer, InvokeError>>;

/// The invocation a container is working on.
struct Current {
    id: u64,
    respond: Responder,
    durable: Option<Arc<dyn DurableSession>>,
}

/// State shared by the dispatcher (which assigns) and the runtime API (which hands out and completes).
pub(crate) struct RuntimeChannel {
    /// Assignments waiting for the function's next `GET /v1/invocation/next`.
    inbox: Mutex<mpsc::Receiver<Assignment>>,
    /// The invocation the function is working on: its id and its caller.
    current: parking_lot::Mutex<Option<Current>>,
    next_invocation_id: AtomicU64,
    response_limit: usize,
    stream_limits: StreamLimits,
    /// The container's id, in the invocation ids its log lines carry.
    container: String,
    /// What the container's log lines are attributed to: the invocation last handed out.
    attribution: SharedAttribution,
    /// Counts the function's `GET /v1/invocation/next` requests: after its caller left
    /// mid-stream, the container is free once the function asks for more work.
    asked_for_next: tokio::sync::watch::Sender<u64>,
}

impl RuntimeChannel {
    pub(crate) fn new(
        response_limit: usize,
        stream_limits: StreamLimits,
        container: &str,
        attribution: SharedAttribution,
    ) -> (Arc<RuntimeChannel>, mpsc::Sender<Assignment>) {
        let (sender, inbox) = mpsc::channel(1);
        let channel = RuntimeChannel {
            inbox: Mutex::new(inbox),
            current: parking_lot::Mutex::new(None),
            next_invocation_id: AtomicU64::new(1),
            response_limit,
            stream_limits,
            container: container.to_owned(),
            attribution,
            asked_for_next: tokio::sync::watch::Sender::new(0),
        };
        (Arc::new(channel), sender)
    }

    fn complete(&self, id: u64, outcome: Result<Answer, InvokeError>) -> bool {
        let mut current = self.current.lock();
        match current.take() {
            Some(Current {
                id: current_id,
                respond,
                ..
            }) if current_id == id => {
                let _ = respond.send(outcome);
                true
            }
            other => {
                *current = other;
                false
            }
        }
    }
}

/// Serves the runtime API on `listener` until the task is aborted; connections end with it.
pub(crate) async fn serve_runtime_api(listener: UnixListener, channel: Arc<RuntimeChannel>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "runtime socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let channel = channel.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(channel.clone(), request));
            let _ = http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    channel: Arc<RuntimeChannel>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| RuntimeApiError::UnknownInvocation)
    };
    let outcome = match (request.method(), segments.as_slice()) {
        (&Method::GET, ["v1", "invocation", "next"]) => next_invocation(&channel).await,
        (&Method::POST, ["v1", "invocation", text, "response"]) => match id(text) {
            Ok(id) => post_response(&channel, id, request).await,
            Err(error) => Err(error),
        },
        (&Method::POST, ["v1", "invocation", text, "error"]) => match id(text) {
            Ok(id) => post_error(&channel, id, request).await,
            Err(error) => Err(error),
        },
        (&Method::POST, ["v1", "invocation", text, verb @ ("checkpoint" | "sleep" | "wait")]) => {
            match id(text) {
                Ok(id) => durable_call(&channel, id, verb, request).await,
                Err(error) => Err(error),
            }
        }
        _ => Err(RuntimeApiError::NoSuchRoute),
    };
    Ok(outcome.unwrap_or_else(RuntimeApiError::into_response))
}

async fn next_invocation(channel: &RuntimeChannel) -> Result<Response<Full<Bytes>>, RuntimeApiError> {
    channel.asked_for_next.send_modify(|asked| *asked += 1);
    let assignment = channel.inbox.lock().await.recv().await;
    let Some(Assignment {
        invocation,
        deadline_ms,
        respond,
    }) = assignment
    else {
        return Err(RuntimeApiError::Retiring);
    };
    let id = channel.next_invocation_id.fetch_add(1, Ordering::Relaxed);
    let durable = invocation.durable.clone();
    *channel.attribution.lock() = Attribution {
        invocation: Some(format!("{}-{id}", channel.container)),
        instance: durable.as_ref().map(|session| session.instance_id().to_owned()),
    };
    *channel.current.lock() = Some(Current {
        id,
        respond,
        durable: durable.clone(),
    });
    let mut response = Response::new(Full::new(invocation.body));
    let headers = response.headers_mut();
    if let Some(session) = &durable {
        if let Ok(instance) = HeaderValue::from_str(session.instance_id()) {
            headers.insert("kiln-instance-id", instance);
        }
        headers.insert("kiln-instance-attempt", HeaderValue::from(session.attempt()));
    }
    for (name, value) in &invocation.headers {
        if is_forwardable(name) {
            headers.append(name, value.clone());
        }
    }
    headers.insert("kiln-invocation-id", HeaderValue::from(id));
    headers.insert(
        "kiln-method",
        HeaderValue::from_str(invocation.method.as_str()).expect("method is a valid header"),
    );
    headers.insert(
        "kiln-path",
        HeaderValue::from_str(&invocation.path).unwrap_or(HeaderValue::from_static("/")),
    );
    if let Some(query) = invocation
        .query
        .as_deref()
        .and_then(|query| HeaderValue::from_str(query).ok())
    {
        headers.insert("kiln-query", query);
    }
    headers.insert("kiln-deadline-ms", HeaderValue::from(deadline_ms));
    Ok(response)
}

/// A body sent with `Content-Length` is read whole, within the response limit; a chunked one
/// is streamed to the caller as it arrives, and this request ends when the stream does.
async fn post_response(
    channel: &RuntimeChannel,
    id: u64,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, RuntimeApiError> {
    if !is_current(channel, id) {
        return Err(RuntimeApiError::UnknownInvocation);
    }
    let status = response_status(request.headers().get("kiln-status")).ok_or(RuntimeApiError::BadStatus)?;
    let (parts, body) = request.into_parts();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if is_forwardable(name) && name != HOST {
            headers.append(name, value.clone());
        }
    }
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        return stream_response(channel, id, status, headers, body).await;
    }
    let body = match Limited::new(body, channel.response_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            channel.complete(
                id,
                Err(InvokeError::ResponseTooLarge {
                    limit: channel.response_limit,
                }),
            );
            return Err(RuntimeApiError::ResponseTooLarge {
                limit: channel.response_limit,
            });
        }
    };
    let response = FunctionResponse {
        status,
        headers,
        body: FunctionBody::Full(body),
    };
    let answer = Answer {
        response,
        stream_end: None,
    };
    if channel.complete(id, Ok(answer)) {
        Ok(accepted())
    } else {
        Err(RuntimeApiError::UnknownInvocation)
    }
}

/// Hands the caller a streamed body and feeds it from `body` until the stream ends.
async fn stream_response(
    channel: &RuntimeChannel,
    id: u64,
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, RuntimeApiError> {
    let (feed, stream) = response_stream();
    let (end_sender, stream_end) = oneshot::channel();
    let answer = Answer {
        response: FunctionResponse {
            status,
            headers,
            body: FunctionBody::Streamed(stream),
        },
        stream_end: Some(stream_end),
    };
    if !channel.complete(id, Ok(answer)) {
        return Err(RuntimeApiError::UnknownInvocation);
    }
    let end = feed.pump(body, channel.stream_limits).await;
    if end == StreamEnd::CallerGone {
        // The function learns of it from its next write, which may be a while coming: the
        // container is free once it asks for its next invocation, and replaced if it goes
        // on without writing or asking for longer than the idle timeout.
        let mut asked = channel.asked_for_next.subscribe();
        asked.mark_unchanged();
        let idle_timeout = channel.stream_limits.idle_timeout;
        tokio::spawn(async move {
            let end = match tokio::time::timeout(idle_timeout, asked.changed()).await {
                Ok(Ok(())) => StreamEnd::CallerGone,
                _ => StreamEnd::Cut(StreamCut::Idle(idle_timeout)),
            };
            let _ = end_sender.send(end);
        });
    } else {
        let _ = end_sender.send(end.clone());
    }
    match end {
        StreamEnd::Completed => Ok(accepted()),
        StreamEnd::Cut(StreamCut::FunctionFailed(error_type)) => {
            tracing::info!(%error_type, "function reported an error mid-stream");
            Ok(accepted())
        }
        StreamEnd::CallerGone => Err(RuntimeApiError::CallerGone),
        StreamEnd::Cut(cut) => Err(RuntimeApiError::StreamCut(cut)),
    }
}

async fn post_error(
    channel: &RuntimeChannel,
    id: u64,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, RuntimeApiError> {
    let body = Limited::new(request.into_body(), ERROR_REPORT_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let ErrorReport { error_type, message } = ErrorReport::parse(&body);
    tracing::info!(error_type = %error_type, error = message, "function reported an error");
    if channel.complete(id, Err(InvokeError::FunctionError { error_type, message })) {
        Ok(accepted())
    } else {
        Err(RuntimeApiError::UnknownInvocation)
    }
}

fn is_current(channel: &RuntimeChannel, id: u64) -> bool {
    matches!(&*channel.current.lock(), Some(current) if current.id == id)
}

/// A checkpoint, sleep or wait call of a durable dispatch; see the function contract.
async fn durable_call(
    channel: &RuntimeChannel,
    id: u64,
    verb: &str,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, RuntimeApiError> {
    let session = match &*channel.current.lock() {
        Some(current) if current.id == id => current.durable.clone(),
        _ => return Err(RuntimeApiError::UnknownInvocation),
    };
    let session = session.ok_or(RuntimeApiError::NotDurable)?;
    let limit = session.value_limit() + DURABLE_ENVELOPE_LIMIT;
    let call = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => match parse_durable_call(verb, &collected.to_bytes()) {
            Ok(call) => call,
            Err(message) => return Err(RuntimeApiError::BadRequest(message)),
        },
        Err(_) => DurableCall::Oversized,
    };
    let reply = session.call(call).await;
    if matches!(
        reply,
        Ok(DurableReply::Suspended { .. }) | Err(DurableError::Fenced | DurableError::TooLarge { .. })
    ) {
        // The dispatch is over: its container is free for other work.
        channel.complete(id, Err(InvokeError::Suspended));
    }
    match reply? {
        DurableReply::Value(value) => Ok(json_body(StatusCode::OK, &serde_json::json!({"value": value}))),
        DurableReply::Suspended { wake_at } => Ok(json_body(
            StatusCode::ACCEPTED,
            &serde_json::json!({"suspended": true, "wake_at_ms": unix_ms(wake_at)}),
        )),
    }
}

/// Headers passed between caller and function: not hop-by-hop, not framing, not Kiln's own,
/// and not `Service-Worker-Allowed`, with which a function could widen a service worker's
/// reach to the whole origin, Kiln's console and other tenants' functions included.
pub(crate) fn is_forwardable(name: &HeaderName) -> bool {
    const HOP_BY_HOP: [&str; 7] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
    ];
    let name = name.as_str();
    name != CONTENT_LENGTH.as_str()
        && name != "service-worker-allowed"
        && !HOP_BY_HOP.contains(&name)
        && !name.starts_with("kiln-")
}

fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

#[cfg(test)]
mod tests;
