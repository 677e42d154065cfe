//! The hub: events numbered, kept for resuming subscribers, and sent to their tenant's
//! subscribers (the front door's SSE and WebSocket streams).
//!
//! **Invariant:** events get their sequence numbers, enter the resume buffer and go to their
//! tenant's subscribers under one lock, so a subscriber that resumes gets the buffered events after
//! its id and then the live ones, none twice and none skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};
use store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use store::StoreError;

use crate::filter::EventId;
use crate::instance_poller::{NO_START, poll_instance_events};

/// Events kept for subscribers that resume.
const BACKLOG: usize = 4096;
/// Events of its tenant a slow subscriber may fall behind by before it skips ahead (SSE) or
/// is closed (WebSocket). Each tenant with subscribers has a channel of this many slots
/// (about 40 KB).
const CHANNEL_CAPACITY: usize = 1024;
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
    /// The newest events and the channels to their tenants' subscribers.
    state: Mutex<HubState>,
    /// Subscribers now, of every tenant.
    subscribers: AtomicUsize,
    /// This hub's life, in the ids it gives out: a resumed id of another life is a gap.
    epoch: u64,
    started: Instant,
    /// Events are kept until this many milliseconds after `started`, even with nobody
    /// listening, so a subscriber that reconnects can resume.
    keep_until_ms: AtomicU64,
}

struct HubState {
    /// The newest events, oldest first.
    recent: VecDeque<Arc<LiveEvent>>,
    next_seq: u64,
    /// One channel per tenant with subscribers, so an event wakes only its own tenant's
    /// subscribers, however many others listen.
    channels: HashMap<String, broadcast::Sender<Arc<LiveEvent>>>,
}

/// What a new subscriber starts with.
pub struct Subscription {
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

/// Counts a subscriber, and extends the resume window when it leaves.
struct Keeping(Arc<Hub>);

impl Drop for Keeping {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.0.keep_for(RESUME_WINDOW);
    }
}

impl Hub {
    /// Whether anyone listens now or may resume soon.
    pub(crate) fn is_keeping(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
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
        let mut state = self.state.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        let event = Arc::new(LiveEvent {
            seq,
            tenant,
            name,
            function,
            instance,
            data,
        });
        if state.recent.len() == BACKLOG {
            state.recent.pop_front();
        }
        state.recent.push_back(event.clone());
        let gone = match state.channels.get(&event.tenant) {
            Some(channel) => channel.send(event.clone()).is_err(),
            None => false,
        };
        if gone {
            // Its last subscriber left: the next one opens a new channel.
            state.channels.remove(&event.tenant);
        }
    }
}

impl LiveEvents {
    /// Starts the hub and its instance-event poller (which reads only while someone listens
    /// or may resume, and ends when `closing` is cancelled, so a Kiln embedded and stopped in
    /// a longer-lived program leaves no task or database pool behind).
    pub fn start(store: Store, closing: CancellationToken) -> LiveEvents {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let hub = Arc::new(Hub {
            state: Mutex::new(HubState {
                recent: VecDeque::with_capacity(BACKLOG),
                next_seq: 1,
                channels: HashMap::new(),
            }),
            subscribers: AtomicUsize::new(0),
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
    pub async fn subscribe(&self, tenant: &str, resume: Option<EventId>) -> Result<Subscription, StoreError> {
        let newest = self.store.last_instance_event_id().await?;
        {
            let mut start_after = self.start_after.lock();
            *start_after = (*start_after).min(newest);
        }
        let hub = &self.inner;
        let mut state = hub.state.lock();
        let events = state
            .channels
            .entry(tenant.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        let (backlog, gap) = match resume {
            None => (Vec::new(), false),
            Some(id) if id.epoch != hub.epoch => (Vec::new(), true),
            Some(id) => {
                let oldest = state.recent.front().map_or(state.next_seq, |event| event.seq);
                let backlog = state
                    .recent
                    .iter()
                    .filter(|event| event.seq > id.seq && event.tenant == tenant)
                    .cloned()
                    .collect();
                // Nothing is missing if the event right after `id` is still buffered (or not
                // sent yet).
                (backlog, id.seq + 1 < oldest)
            }
        };
        drop(state);
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
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
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
