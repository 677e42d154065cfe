//! Reads instance lifecycle events from PostgreSQL (so from every node) while the hub has
//! listeners, and publishes them into it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How often instance events are read from PostgreSQL while anyone listens.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Event ids come from a sequence and may commit out of order: each poll looks this far
/// back (about 2 s of the busiest instance traffic measured), and ids already sent are
/// skipped.
const LOOK_BACK: i64 = 4096;
/// Rows per poll (more than the look-back window); a full batch is followed by another
/// poll at once.
const POLL_LIMIT: i64 = 5000;

/// No subscriber has asked the poller to start from an event id.
pub(crate) const NO_START: i64 = i64::MAX;

/// Reads new instance events while some tenant has a stream and publishes them; ends the
/// streams whose resume window has passed.
pub(crate) async fn poll_instance_events(
    store: Store,
    hub: Arc<Hub>,
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
        hub.sweep();
        let asked = {
            let mut start_after = start_after.lock();
            if !hub.is_keeping() {
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
            hub.publish(
                &event.tenant,
                "instance",
                &event.function,
                Some(&event.instance),
                || {
                    json!({
                        "time": humantime::format_rfc3339_millis(event.at).to_string(),
                        "instance": event.instance,
                        "function": event.function,
                        "kind": event.kind,
                    })
                },
            );
        }
        let forgotten = last.unwrap_or(0) - LOOK_BACK;
        while sent.1.front().is_some_and(|&id| id <= forgotten) {
            if let Some(id) = sent.1.pop_front() {
                sent.0.remove(&id);
            }
        }
    }
}
