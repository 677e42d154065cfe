//! The live-events hub: a tenant's invocations (as this node serves them) and instance
//! lifecycle events (read from PostgreSQL, so from every node), each with an id, fanned out
//! to the SSE stream (`events_sse.rs`) and the WebSocket stream (`events_ws.rs`).
//!
//! **Invariant:** events get their sequence numbers, enter the resume buffer and go to the
//! subscribers under one lock, so a subscriber that resumes gets the buffered events after
//! its id and then the live ones, none twice and none skipped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};
use store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::body::rfc3339;
use crate::error::ApiError;
use crate::event_filter::EventId;
use crate::instance_event_poller::{NO_START, poll_instance_events};

/// Events a slow subscriber may fall behind by before it skips ahead (SSE) or is closed
/// (WebSocket); also the events kept for subscribers that resume.
pub(crate) const BACKLOG: usize = 4096;
/// After the last subscriber leaves, events are still kept this long for one that
/// reconnects and resumes.
const RESUME_WINDOW: Duration = Duration::from_secs(60);

/// One event on its way to the tenant's subscribers.
#[derive(Debug)]
pub struct LiveEvent {
    /// Its place in this hub's sequence (see [`EventId`]).
    pub seq: u64,
    pub tenant: String,
    /// The event type: `invocation` or `instance`.
    pub name: &'static str,
    pub function: String,
    /// The instance an `instance` event is about.
    pub instance: Option<String>,
    pub data: Value,
}

/// The hub every subscriber listens on; cheap to clone.
#[derive(Clone)]
pub struct LiveEvents {
    inner: Arc<Hub>,
    store: Store,
    /// The oldest newest-event-id a new subscriber saw, for an idle poller to start after.
    /// Subscribing and saying so happen under this lock, as does the poller's check for
    /// listeners, so a new subscriber's start is never cleared as stale.
    start_after: Arc<Mutex<i64>>,
    /// The instance-event poller, until someone waits for it to end.
    poller: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

pub(crate) struct Hub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    /// The newest events, oldest first, with the next sequence number.
    recent: Mutex<(VecDeque<Arc<LiveEvent>>, u64)>,
    /// This hub's life, in the ids it gives out: a resumed id of another life is a gap.
    epoch: u64,
    started: Instant,
    /// Events are kept until this many milliseconds after `started`, even with nobody
    /// listening, so a subscriber that reconnects can resume.
    keep_until_ms: AtomicU64,
}

/// What a new subscriber starts with.
pub(crate) struct Subscription {
    pub events: broadcast::Receiver<Arc<LiveEvent>>,
    /// Buffered events after the id it resumes from.
    pub backlog: Vec<Arc<LiveEvent>>,
    /// Events after that id are no longer buffered (or the id is of another kilnd's life):
    /// some may be missing.
    pub gap: bool,
    /// Keeps the hub's buffer filling for a while after the subscriber leaves.
    _keeping: Keeping,
    pub epoch: u64,
}

/// Extends the resume window when a subscriber leaves.
struct Keeping(Arc<Hub>);

impl Drop for Keeping {
    fn drop(&mut self) {
        self.0.keep_for(RESUME_WINDOW);
    }
}

impl Hub {
    /// Whether anyone listens now or may resume soon.
    pub(crate) fn is_keeping(&self) -> bool {
        self.sender.receiver_count() > 0
            || (self.started.elapsed().as_millis() as u64) < self.keep_until_ms.load(Ordering::Relaxed)
    }

    fn keep_for(&self, window: Duration) {
        let until = (self.started.elapsed() + window).as_millis() as u64;
        self.keep_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    pub(crate) fn publish(
        &self,
        tenant: String,
        name: &'static str,
        function: String,
        instance: Option<String>,
        data: Value,
    ) {
        let mut recent = self.recent.lock();
        let seq = recent.1;
        recent.1 += 1;
        let event = Arc::new(LiveEvent {
            seq,
            tenant,
            name,
            function,
            instance,
            data,
        });
        if recent.0.len() == BACKLOG {
            recent.0.pop_front();
        }
        recent.0.push_back(event.clone());
        let _ = self.sender.send(event);
    }
}

impl LiveEvents {
    /// Starts the hub and its instance-event poller (which reads only while someone listens
    /// or may resume, and ends when `closing` is cancelled, so a Kiln embedded and stopped in
    /// a longer-lived program leaves no task or database pool behind).
    pub fn start(store: Store, closing: CancellationToken) -> LiveEvents {
        let (sender, _) = broadcast::channel(BACKLOG);
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let hub = Arc::new(Hub {
            sender,
            recent: Mutex::new((VecDeque::with_capacity(BACKLOG), 1)),
            epoch,
            started: Instant::now(),
            keep_until_ms: AtomicU64::new(0),
        });
        let start_after = Arc::new(Mutex::new(NO_START));
        let poller = tokio::spawn(poll_instance_events(
            store.clone(),
            hub.clone(),
            start_after.clone(),
            closing,
        ));
        LiveEvents {
            inner: hub,
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

    /// Subscribes, resuming after `resume` if given. Reads the newest instance event id
    /// first, so that instance events after this call reach the subscriber even if the
    /// poller was idle until now. (An event whose id is older but whose transaction commits
    /// after this read still arrives, unless it commits before an idle poller's first read,
    /// at most one poll interval later.)
    pub(crate) async fn subscribe(&self, resume: Option<EventId>) -> Result<Subscription, ApiError> {
        let newest = self.store.last_instance_event_id().await?;
        {
            let mut start_after = self.start_after.lock();
            *start_after = (*start_after).min(newest);
        }
        let hub = &self.inner;
        let recent = hub.recent.lock();
        let events = hub.sender.subscribe();
        let (backlog, gap) = match resume {
            None => (Vec::new(), false),
            Some(id) if id.epoch != hub.epoch => (Vec::new(), true),
            Some(id) => {
                let oldest = recent.0.front().map_or(recent.1, |event| event.seq);
                let backlog = recent
                    .0
                    .iter()
                    .filter(|event| event.seq > id.seq)
                    .cloned()
                    .collect();
                // Nothing is missing if the event right after `id` is still buffered (or not
                // sent yet).
                (backlog, id.seq + 1 < oldest)
            }
        };
        drop(recent);
        Ok(Subscription {
            events,
            backlog,
            gap,
            _keeping: Keeping(hub.clone()),
            epoch: hub.epoch,
        })
    }

    /// Publishes an invocation this node served, if anyone listens or may resume.
    pub fn invocation(
        &self,
        tenant: &str,
        function: &str,
        version: Option<i32>,
        status: u16,
        duration: Duration,
        cold: bool,
    ) {
        if !self.inner.is_keeping() {
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
        self.inner
            .publish(tenant.to_owned(), "invocation", function.to_owned(), None, data);
    }
}
