//! Live events: `GET /v1/events` streams a tenant's invocations (as this node serves them)
//! and instance lifecycle events (from PostgreSQL, so from every node) as Server-Sent
//! Events. A tenant sees only its own events.

use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use pool::Runner;
use serde_json::{Value, json};
use store::Store;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::App;
use crate::body::{RequestBody, ResponseBody, rfc3339, streamed_body};
use crate::error::ApiError;

/// Events a slow subscriber may fall behind by before it skips ahead.
const BACKLOG: usize = 4096;
/// How often instance events are read from PostgreSQL while anyone listens.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Event ids come from a sequence and may commit out of order: each poll looks this far
/// back (about 2 s of the busiest instance traffic measured), and ids already sent are
/// skipped.
const LOOK_BACK: i64 = 4096;
/// Rows per poll (more than the look-back window); a full batch is followed by another
/// poll at once.
const POLL_LIMIT: i64 = 5000;

/// One event on its way to the tenant's subscribers.
#[derive(Debug)]
pub struct LiveEvent {
    pub tenant: String,
    /// The SSE event name: `invocation` or `instance`.
    pub name: &'static str,
    pub data: Value,
}

/// No subscriber has asked the poller to start from an event id.
const NO_START: i64 = i64::MAX;

/// The hub every subscriber listens on; cheap to clone.
#[derive(Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    store: Store,
    /// The oldest newest-event-id a new subscriber saw, for an idle poller to start after.
    /// Subscribing and saying so happen under this lock, as does the poller's check for
    /// listeners, so a new subscriber's start is never cleared as stale.
    start_after: Arc<Mutex<i64>>,
    /// The instance-event poller, until someone waits for it to end.
    poller: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl LiveEvents {
    /// Starts the hub and its instance-event poller (which reads only while someone listens
    /// and ends when `closing` is cancelled, so a Kiln embedded and stopped in a longer-lived
    /// program leaves no task or database pool behind).
    pub fn start(store: Store, closing: CancellationToken) -> LiveEvents {
        let (sender, _) = broadcast::channel(BACKLOG);
        let start_after = Arc::new(Mutex::new(NO_START));
        let poller = tokio::spawn(poll_instance_events(
            store.clone(),
            sender.clone(),
            start_after.clone(),
            closing,
        ));
        LiveEvents {
            sender,
            store,
            start_after,
            poller: Arc::new(Mutex::new(Some(poller))),
        }
    }

    /// Waits until the poller has ended (after `closing` was cancelled).
    pub async fn stopped(&self) {
        let poller = self.poller.lock().take();
        if let Some(poller) = poller {
            let _ = poller.await;
        }
    }

    /// Reads the newest instance event id, then subscribes, so that instance events after
    /// this call reach the subscriber even if the poller was idle until now. (An event whose
    /// id is older but whose transaction commits after this read still arrives, unless it
    /// commits before an idle poller's first read, at most one poll interval later.)
    async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<LiveEvent>>, ApiError> {
        let newest = self.store.last_instance_event_id().await?;
        let mut start_after = self.start_after.lock();
        *start_after = (*start_after).min(newest);
        Ok(self.sender.subscribe())
    }

    /// Publishes an invocation this node served, if anyone listens.
    pub fn invocation(
        &self,
        tenant: &str,
        function: &str,
        version: Option<i32>,
        status: u16,
        duration: Duration,
        cold: bool,
    ) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let data = json!({
            "time": rfc3339(SystemTime::now()),
            "function": function,
            "version": version,
            "status": status,
            "duration_ms": duration.as_secs_f64() * 1000.0,
            "cold": cold,
        });
        let _ = self.sender.send(Arc::new(LiveEvent {
            tenant: tenant.to_owned(),
            name: "invocation",
            data,
        }));
    }
}

/// `GET /v1/events` for the tenant of the bearer token.
pub async fn stream<R, B>(app: &App<R>, request: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    R: Runner,
    B: RequestBody,
{
    let tenant = app.tenant_claims(&request).await?.tenant;
    let mut events = app.inner.events.subscribe().await?;
    let closing = app.inner.closing.clone();
    let (chunks, body) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        // Tells the client the stream is open before the first event.
        if chunks.send(Bytes::from_static(b": connected\n\n")).await.is_err() {
            return;
        }
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let chunk = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) if event.tenant == tenant => {
                        Bytes::from(format!("event: {}\ndata: {}\n\n", event.name, event.data))
                    }
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
            if chunks.send(chunk).await.is_err() {
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

/// Reads new instance events while anyone listens and publishes them.
async fn poll_instance_events(
    store: Store,
    sender: broadcast::Sender<Arc<LiveEvent>>,
    start_after: Arc<Mutex<i64>>,
    closing: CancellationToken,
) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The newest id seen; the ids sent (or passed over as history) within the look-back
    // window; and, until the first read after listening began, the newest id then, as the
    // first subscriber read it: events up to it already visible are history, not news.
    let mut last: Option<i64> = None;
    let mut sent: (HashSet<i64>, VecDeque<i64>) = (HashSet::new(), VecDeque::new());
    let mut history_up_to = i64::MIN;
    let mut full_batch = false;
    loop {
        if closing.is_cancelled() {
            return;
        }
        if !full_batch {
            tokio::select! {
                _ = closing.cancelled() => return,
                _ = ticker.tick() => {}
            }
        }
        full_batch = false;
        let asked = {
            let mut start_after = start_after.lock();
            if sender.receiver_count() == 0 {
                // Nobody listens: start where the next subscriber says when someone does.
                *start_after = NO_START;
                None
            } else {
                // While the poller runs, later subscribers are covered already.
                Some(std::mem::replace(&mut *start_after, NO_START))
            }
        };
        let Some(asked) = asked else {
            last = None;
            continue;
        };
        let after = match last {
            Some(after) => after,
            None if asked == NO_START => continue,
            None => {
                last = Some(asked);
                history_up_to = asked;
                sent = (HashSet::new(), VecDeque::new());
                asked
            }
        };
        let events = match store.instance_events_after(after - LOOK_BACK, POLL_LIMIT).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "live events: reading instance events failed");
                continue;
            }
        };
        full_batch = events.len() as i64 == POLL_LIMIT;
        // The look-back window holds fewer ids than a batch, so this first read saw all of it.
        let history = std::mem::replace(&mut history_up_to, i64::MIN);
        for event in events {
            last = Some(last.unwrap_or(0).max(event.id));
            if !sent.0.insert(event.id) {
                continue;
            }
            sent.1.push_back(event.id);
            if event.id <= history {
                continue;
            }
            let data = json!({
                "time": rfc3339(event.at),
                "instance": event.instance,
                "function": event.function,
                "kind": event.kind,
            });
            let _ = sender.send(Arc::new(LiveEvent {
                tenant: event.tenant,
                name: "instance",
                data,
            }));
        }
        let forgotten = last.unwrap_or(0) - LOOK_BACK;
        while sent.1.front().is_some_and(|&id| id <= forgotten) {
            if let Some(id) = sent.1.pop_front() {
                sent.0.remove(&id);
            }
        }
    }
}
