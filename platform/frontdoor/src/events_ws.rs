//! `GET /v1/events/ws`: the tenant's live events over a WebSocket, with the same scoping,
//! filters and ids as the SSE stream.
//!
//! - The token comes in `Authorization: Bearer`, or, from a browser (which cannot set
//!   headers), as a `kiln.token.<jwt>` entry of `Sec-WebSocket-Protocol` beside
//!   `kiln.events.v1`, the protocol Kiln answers with. Never in the query string, which
//!   ends up in access logs.
//! - Each event is a text message `{"id", "type", "data"}`; `after=<id>` (or
//!   `Last-Event-ID`) resumes after a reconnect, and `{"type": "gap"}` says events in
//!   between are no longer kept.
//! - Kiln pings every 15 s and closes a peer silent for 45 s. A consumer that stops reading
//!   is closed (1008) once it is 1024 of its tenant's events behind or a write has stalled for
//!   10 s. Its connection's kernel send buffer is fixed (64 KiB asked, which the kernel
//!   doubles) and the library buffers at most 256 KiB of writes, instead of the megabytes a
//!   socket may grow to for a peer that does not read.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pool::Runner;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::App;
use crate::body::{RequestBody, ResponseBody, bearer_token, full_body};
use crate::connection_limit::UpgradableConnection;
use crate::error::ApiError;
use crate::events_sse::requested_filter;
use events::{EventFilter, EventId, GAP_REASON, LiveEvent, Subscription};

/// The subprotocol Kiln speaks on this route.
pub const PROTOCOL: &str = "kiln.events.v1";
/// A `Sec-WebSocket-Protocol` entry carrying the token: this prefix, then the JWT.
pub const TOKEN_PROTOCOL_PREFIX: &str = "kiln.token.";
const PING_INTERVAL: Duration = Duration::from_secs(15);
const PEER_SILENCE: Duration = Duration::from_secs(45);
const WRITE_STALL: Duration = Duration::from_secs(10);
/// How long a close frame may take to go out; a consumer too slow for events is usually
/// too slow for it as well.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Clients only answer pings and close: their messages are small.
const LARGEST_CLIENT_MESSAGE: usize = 4096;
/// The kernel's send buffer of a session's connection: a few hundred events. A consumer
/// that stops reading stalls once it is full, instead of after megabytes per subscriber.
const SEND_BUFFER: usize = 64 * 1024;

pub async fn upgrade<R, B>(app: &App<R>, mut request: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let key = handshake_key(request.headers())?;
    let protocols = offered_protocols(request.headers());
    if !protocols.is_empty() && !protocols.iter().any(|protocol| protocol == PROTOCOL) {
        return Err(ApiError::bad_request(
            "websocket_protocol",
            format!(
                "offer the `{PROTOCOL}` subprotocol (with `{TOKEN_PROTOCOL_PREFIX}<token>` if the token is not in Authorization)"
            ),
        ));
    }
    let token = bearer_token(request.headers()).map(str::to_owned).or_else(|| {
        protocols
            .iter()
            .find_map(|protocol| protocol.strip_prefix(TOKEN_PROTOCOL_PREFIX).map(str::to_owned))
    });
    if token.is_none() {
        return Err(
            ApiError::from(auth::AuthError::MissingToken).with_message(format!(
                "send the tenant token in `Authorization: Bearer <token>`, or (from a browser) as a \
             `{TOKEN_PROTOCOL_PREFIX}<token>` subprotocol beside `{PROTOCOL}`"
            )),
        );
    }
    let claims = app.inner.auth.authenticate(token.as_deref(), None).await?;
    tracing::Span::current().record("tenant", claims.tenant.as_str());
    let filter = requested_filter(&request)?;
    let subscription = app.inner.events.subscribe(&claims.tenant, filter.after).await?;
    let connection = request.extensions_mut().remove::<UpgradableConnection>();
    if let Some(connection) = &connection {
        // SAFETY: called while this request, and so its connection, is being served.
        unsafe { connection.limit_send_buffer(SEND_BUFFER) };
    }
    let permit = connection.map(|connection| connection.permit);
    let upgrading = hyper::upgrade::on(&mut request);
    let closing = app.inner.closing.clone();
    let tenant = claims.tenant;
    tokio::spawn(async move {
        let upgraded = match upgrading.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "websocket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(LARGEST_CLIENT_MESSAGE)
            .max_message_size(Some(LARGEST_CLIENT_MESSAGE))
            .max_frame_size(Some(LARGEST_CLIENT_MESSAGE))
            .write_buffer_size(0)
            .max_write_buffer_size(256 * 1024);
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        Session {
            socket,
            tenant,
            filter,
            closing,
        }
        .run(subscription)
        .await;
        // The session held the connection's place under KILN_MAX_CONNECTIONS until now.
        drop(permit);
    });
    let mut response = Response::new(full_body(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        http::header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).expect("base64 is a valid header"),
    );
    if !protocols.is_empty() {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PROTOCOL),
        );
    }
    Ok(response)
}

/// The client's `Sec-WebSocket-Key`, once the request is a WebSocket handshake Kiln speaks;
/// else `426 websocket_required` saying what is missing.
fn handshake_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let has_token = |name: http::header::HeaderName, wanted: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case(wanted))
            })
        })
    };
    let required = |message: &str| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            message.to_owned(),
        )
    };
    if !has_token(http::header::CONNECTION, "upgrade") || !has_token(http::header::UPGRADE, "websocket") {
        return Err(required(
            "this route is a WebSocket: send `Connection: Upgrade` and `Upgrade: websocket` over HTTP/1.1",
        ));
    }
    if headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .and_then(|value| value.to_str().ok())
        != Some("13")
    {
        return Err(required(
            "Kiln speaks WebSocket version 13: send `Sec-WebSocket-Version: 13`",
        ));
    }
    headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.trim().is_empty())
        .map(|key| key.trim().to_owned())
        .ok_or_else(|| {
            ApiError::bad_request("websocket_handshake", "the handshake has no `Sec-WebSocket-Key`")
        })
}

/// Every subprotocol the client offered, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|protocol| protocol.trim().to_owned())
        .filter(|protocol| !protocol.is_empty())
        .collect()
}

/// One open WebSocket and what it listens for.
struct Session {
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    tenant: String,
    filter: EventFilter,
    closing: CancellationToken,
}

impl Session {
    async fn run(mut self, mut subscription: Subscription) {
        let epoch = subscription.epoch;
        if subscription.gap {
            let gap = json!({"type": "gap", "data": {"reason": GAP_REASON}});
            if !self.send(Message::text(gap.to_string())).await {
                return;
            }
        }
        for event in std::mem::take(&mut subscription.backlog) {
            if self.filter.admits(&self.tenant, &event) && !self.send(message(epoch, &event)).await {
                return;
            }
        }
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut heard = Instant::now();
        let end = loop {
            tokio::select! {
                event = subscription.events.recv() => match event {
                    Ok(event) if self.filter.admits(&self.tenant, &event) => {
                        if !self.send(message(epoch, &event)).await {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        break Some((CloseCode::Policy, "too slow: the client fell a whole buffer of events behind"));
                    }
                    Err(broadcast::error::RecvError::Closed) => break Some((CloseCode::Away, "kiln is stopping")),
                },
                incoming = self.socket.next() => match incoming {
                    // The library queued the answering close frame: send it.
                    Some(Ok(Message::Close(_))) => {
                        let _ = tokio::time::timeout(CLOSE_WAIT, self.socket.flush()).await;
                        return;
                    }
                    None => return,
                    // Pings are answered by the library; everything else only shows the peer is there.
                    Some(Ok(_)) => heard = Instant::now(),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket read failed");
                        return;
                    }
                },
                _ = ping.tick() => {
                    if heard.elapsed() > PEER_SILENCE {
                        break Some((CloseCode::Policy, "no answer to pings"));
                    }
                    if !self.send(Message::Ping(Default::default())).await {
                        return;
                    }
                }
                _ = self.closing.cancelled() => break Some((CloseCode::Away, "kiln is stopping")),
            }
        };
        if let Some((code, reason)) = end {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, self.socket.close(Some(frame))).await;
        }
    }

    /// Sends one message; false when the peer is gone or has not taken it for too long.
    async fn send(&mut self, message: Message) -> bool {
        match tokio::time::timeout(WRITE_STALL, self.socket.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "websocket write failed");
                false
            }
            Err(_) => {
                // Not reading: the close frame would wait on the same full socket.
                tracing::debug!("websocket consumer stalled; closing");
                false
            }
        }
    }
}

fn message(epoch: u64, event: &LiveEvent) -> Message {
    let body = json!({"id": EventId::of(epoch, event), "type": event.name, "data": event.data});
    Message::text(body.to_string())
}
