//! `GET /v1/events`: the tenant's live events as Server-Sent Events, each with its `id:`, so
//! a client (a browser's `EventSource` does it on its own) resumes with `Last-Event-ID`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use pool::Runner;
use tokio::sync::{broadcast, mpsc};

use crate::App;
use crate::body::{RequestBody, ResponseBody, streamed_body};
use crate::error::ApiError;
use events::{EventFilter, EventId, GAP_REASON, LiveEvent};
use serde_json::json;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A client that takes nothing for this long is gone or stuck: the stream ends.
const WRITE_STALL: Duration = Duration::from_secs(10);

/// The filter and resume point a live-events request asks for (query and `Last-Event-ID`),
/// for this stream and the WebSocket alike.
pub(crate) fn requested_filter<B>(request: &Request<B>) -> Result<EventFilter, ApiError> {
    let last_event_id = request.headers().get("last-event-id").map(HeaderValue::as_bytes);
    Ok(EventFilter::from_query(request.uri().query())?.resuming_from(last_event_id)?)
}

pub async fn stream<R, B>(app: &App<R>, request: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let tenant = app.tenant_claims(&request).await?.tenant;
    let filter = requested_filter(&request)?;
    let subscription = app.inner.events.subscribe(&tenant, filter.after).await?;
    let closing = app.inner.closing.clone();
    let (chunks, body) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        // The whole subscription lives in this task: an async block would otherwise take only
        // the fields it uses, and the subscriber's count would end with the handler.
        let mut subscription = subscription;
        let epoch = subscription.epoch;
        let frame = |event: &LiveEvent| {
            Bytes::from(format!(
                "id: {}\nevent: {}\ndata: {}\n\n",
                EventId::of(epoch, event),
                event.name,
                event.data
            ))
        };
        // Tells the client the stream is open before the first event.
        let mut opening = vec![Bytes::from_static(b": connected\n\n")];
        if subscription.gap {
            let gap = json!({"reason": GAP_REASON});
            opening.push(Bytes::from(format!("event: gap\ndata: {gap}\n\n")));
        }
        let backlog = std::mem::take(&mut subscription.backlog);
        opening.extend(
            backlog
                .iter()
                .filter(|event| filter.admits(&tenant, event))
                .map(|event| frame(event)),
        );
        for chunk in opening {
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let chunk = tokio::select! {
                event = subscription.events.recv() => match event {
                    Ok(event) if filter.admits(&tenant, &event) => frame(&event),
                    Ok(_) => continue,
                    // The count would tell of other tenants' events: say only that some were skipped.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Bytes::from_static(b": events skipped (the client read too slowly)\n\n")
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
                _ = chunks.closed() => return,
                // Shutdown ends the stream, so the drain does not wait for the client.
                _ = closing.cancelled() => return,
            };
            if !matches!(
                tokio::time::timeout(WRITE_STALL, chunks.send(chunk)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    });
    let mut response = Response::new(streamed_body(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: do not buffer this response.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
