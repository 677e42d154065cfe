//! The hub: each tenant with subscribers (or with one that left less than a minute ago) has
//! a stream of its own: its events numbered in its own sequence, the newest kept for
//! subscribers that resume, and a channel that wakes only that tenant's subscribers.
//!
//! **Invariant:** an event gets its number, enters its tenant's buffer and goes to its
//! tenant's subscribers under one lock, so a subscriber that resumes gets the buffered
//! events after its id and then the live ones, none twice and none skipped. A tenant's
//! stream that lapsed starts again under a new epoch, so an id from before is a gap.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};
use store::{Store, StoreError};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::filter::EventId;
use crate::instance_poller::{NO_START, poll_instance_events};

/// Events of a tenant kept for its subscribers that resume.
const BACKLOG: usize = 1024;
/// Events of its tenant a slow subscriber may fall behind by before it skips ahead (SSE) or
/// is closed (WebSocket): the slots of the tenant's channel (about 40 KB).
const CHANNEL_CAPACITY: usize = 1024;
/// After a tenant's last subscriber leaves, its events are still kept this long for one
/// that reconnects and resumes.
const RESUME_WINDOW: Duration = Duration::from_secs(60);

/// One event on its way to the tenant's subscribers.
#[derive(Debug)]
pub struct LiveEvent {
    /// Its place in its tenant's sequence (see [`EventId`]).
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
    tenants: Mutex<HashMap<String, TenantStream>>,
    /// Subscribers one tenant may have at once on this node.
    per_tenant: usize,
    /// How many tenants have a stream: none, and events are not even built.
    streams: AtomicUsize,
}

/// One tenant's events while it has subscribers, or had one within the resume window.
struct TenantStream {
    /// When this stream began (ms since the Unix epoch), in its ids.
    epoch: u64,
    next_seq: u64,
    /// The newest events, oldest first.
    recent: VecDeque<Arc<LiveEvent>>,
    channel: broadcast::Sender<Arc<LiveEvent>>,
    subscribers: usize,
    /// When the last subscriber left.
    idle_since: Option<Instant>,
}

impl TenantStream {
    fn new() -> TenantStream {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        TenantStream {
            epoch,
            next_seq: 1,
            recent: VecDeque::new(),
            channel: broadcast::channel(CHANNEL_CAPACITY).0,
            subscribers: 0,
            idle_since: None,
        }
    }

    fn lapsed(&self) -> bool {
        self.idle_since
            .is_some_and(|since| since.elapsed() > RESUME_WINDOW)
    }
}

/// Why a subscription was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("the tenant already has {limit} live-event streams open on this node")]
    TooMany { limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new subscriber starts with.
pub struct Subscription {
    pub events: broadcast::Receiver<Arc<LiveEvent>>,
    /// Buffered events after the id it resumes from.
    pub backlog: Vec<Arc<LiveEvent>>,
    /// Events after that id are no longer kept (or the id is of an earlier stream): some
    /// may be missing.
    pub gap: bool,
    /// The epoch of the tenant's stream, for the ids of its events.
    pub epoch: u64,
    /// Counts the subscriber in its tenant's stream until it is dropped.
    _subscribed: Subscribed,
}

struct Subscribed {
    hub: Arc<Hub>,
    tenant: String,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        let mut tenants = self.hub.tenants.lock();
        if let Some(stream) = tenants.get_mut(&self.tenant) {
            stream.subscribers -= 1;
            if stream.subscribers == 0 {
                stream.idle_since = Some(Instant::now());
            }
        }
    }
}

impl Hub {
    /// Whether any tenant has a stream (the poller reads instance events only then).
    pub(crate) fn is_keeping(&self) -> bool {
        self.streams.load(Ordering::Relaxed) > 0
    }

    /// Ends the streams whose resume window has passed.
    pub(crate) fn sweep(&self) {
        let mut tenants = self.tenants.lock();
        tenants.retain(|_, stream| !stream.lapsed());
        self.streams.store(tenants.len(), Ordering::Relaxed);
    }

    /// Adds an event to its tenant's stream, if the tenant has one; only then is `data`
    /// built (and anything allocated), so other tenants' traffic costs one lookup.
    pub(crate) fn publish(
        &self,
        tenant: &str,
        name: &'static str,
        function: &str,
        instance: Option<&str>,
        data: impl FnOnce() -> Value,
    ) {
        let mut tenants = self.tenants.lock();
        let Some(stream) = tenants.get_mut(tenant) else {
            return;
        };
        if stream.lapsed() {
            tenants.remove(tenant);
            self.streams.store(tenants.len(), Ordering::Relaxed);
            return;
        }
        let event = Arc::new(LiveEvent {
            seq: stream.next_seq,
            tenant: tenant.to_owned(),
            name,
            function: function.to_owned(),
            instance: instance.map(str::to_owned),
            data: data(),
        });
        stream.next_seq += 1;
        if stream.recent.len() == BACKLOG {
            stream.recent.pop_front();
        }
        stream.recent.push_back(event.clone());
        // No receiver now (all left, the window still open): kept for resuming only.
        let _ = stream.channel.send(event);
    }
}

impl LiveEvents {
    /// Starts the hub and its instance-event poller (which reads only while some tenant has a
    /// stream, and ends when `closing` is cancelled, so a Kiln embedded and stopped in a
    /// longer-lived program leaves no task or database pool behind).
    pub fn start(store: Store, per_tenant: usize, closing: CancellationToken) -> LiveEvents {
        let hub = Arc::new(Hub {
            tenants: Mutex::new(HashMap::new()),
            per_tenant,
            streams: AtomicUsize::new(0),
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

    /// Subscribes to `tenant`'s events, resuming after `resume` if given; refused when the
    /// tenant has as many subscribers on this node as it may. Reads the newest
    /// instance event id first, so that instance events after this call reach the
    /// subscriber even if the poller was idle until now. (An event whose id is older but
    /// whose transaction commits after this read still arrives, unless it commits before an
    /// idle poller's first read, at most one poll interval later.)
    pub async fn subscribe(
        &self,
        tenant: &str,
        resume: Option<EventId>,
    ) -> Result<Subscription, SubscribeError> {
        let newest = self.store.last_instance_event_id().await?;
        let hub = &self.inner;
        let mut tenants = hub.tenants.lock();
        if tenants.get(tenant).is_some_and(TenantStream::lapsed) {
            tenants.remove(tenant);
        }
        let stream = tenants.entry(tenant.to_owned()).or_insert_with(TenantStream::new);
        if stream.subscribers >= hub.per_tenant {
            return Err(SubscribeError::TooMany {
                limit: hub.per_tenant,
            });
        }
        stream.subscribers += 1;
        stream.idle_since = None;
        let events = stream.channel.subscribe();
        let (backlog, gap) = match resume {
            None => (Vec::new(), false),
            Some(id) if id.epoch != stream.epoch => (Vec::new(), true),
            Some(id) => {
                let oldest = stream.recent.front().map_or(stream.next_seq, |event| event.seq);
                let backlog = stream
                    .recent
                    .iter()
                    .filter(|event| event.seq > id.seq)
                    .cloned()
                    .collect();
                // Nothing is missing if the event right after `id` is still buffered (or not
                // sent yet).
                (backlog, id.seq + 1 < oldest)
            }
        };
        let epoch = stream.epoch;
        hub.streams.store(tenants.len(), Ordering::Relaxed);
        // After the stream counts: a poller that finds no stream and clears its start does
        // so before this, and the next poll starts here.
        {
            let mut start_after = self.start_after.lock();
            *start_after = (*start_after).min(newest);
        }
        drop(tenants);
        Ok(Subscription {
            events,
            backlog,
            gap,
            epoch,
            _subscribed: Subscribed {
                hub: hub.clone(),
                tenant: tenant.to_owned(),
            },
        })
    }

    /// Publishes an invocation this node served, if its tenant has a stream.
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
        self.inner.publish(tenant, "invocation", function, None, || {
            json!({
                "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                "function": function,
                "version": version,
                "status": status,
                "duration_ms": duration.as_secs_f64() * 1000.0,
                "cold": cold,
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub {
            tenants: Mutex::new(HashMap::new()),
            per_tenant: 10,
            streams: AtomicUsize::new(0),
        }
    }

    fn publish(hub: &Hub, tenant: &str) {
        hub.publish(tenant, "invocation", "f", None, || json!({}));
    }

    #[test]
    fn each_tenant_numbers_its_own_events_and_only_while_it_has_a_stream() {
        let hub = hub();
        publish(&hub, "acme");
        assert!(hub.tenants.lock().is_empty(), "no stream, nothing kept");
        hub.tenants.lock().insert("acme".into(), TenantStream::new());
        hub.tenants.lock().insert("other".into(), TenantStream::new());
        for _ in 0..3 {
            publish(&hub, "other");
        }
        publish(&hub, "acme");
        let tenants = hub.tenants.lock();
        let seqs = |tenant: &str| {
            tenants[tenant]
                .recent
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs("acme"), [1], "another tenant's traffic shows in the ids");
        assert_eq!(seqs("other"), [1, 2, 3]);
    }

    #[test]
    fn a_lapsed_stream_is_swept_and_its_buffer_bounded() {
        let hub = hub();
        let mut stream = TenantStream::new();
        stream.idle_since = Some(Instant::now() - RESUME_WINDOW - Duration::from_secs(1));
        hub.tenants.lock().insert("gone".into(), stream);
        hub.tenants.lock().insert("busy".into(), TenantStream::new());
        hub.sweep();
        assert!(!hub.tenants.lock().contains_key("gone"));
        assert!(hub.is_keeping());
        for _ in 0..BACKLOG + 10 {
            publish(&hub, "busy");
        }
        let tenants = hub.tenants.lock();
        assert_eq!(tenants["busy"].recent.len(), BACKLOG);
        assert_eq!(tenants["busy"].recent.front().unwrap().seq, 11);
    }
}
