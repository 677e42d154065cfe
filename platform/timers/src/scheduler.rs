//! The scheduler task: keeps the wheel filled from PostgreSQL, claims due instances in
//! batches as dispatch capacity allows, and hands each claimed instance on.
//!
//! The wheel only ever holds hints: a due key is claimed by a conditional update that
//! checks the row is still due, so a stale hint (the instance was paused, rescheduled or
//! taken by another node) claims nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use store::{ClaimedInstance, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Clock, Wheel};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This node's name, recorded on the instances it claims.
    pub node: String,
    /// How long a claim holds without renewal before another node may take the instance.
    pub lease: Duration,
    /// How far ahead the wheel holds due times.
    pub window: Duration,
    /// How often the wheel is refilled from PostgreSQL.
    pub refill_interval: Duration,
    /// Most due times loaded by one refill.
    pub refill_limit: i64,
    /// Most instances claimed by one statement.
    pub claim_batch: usize,
}

/// An instance this node claimed, with the capacity it holds until its dispatch ends.
pub struct Claimed {
    pub instance: ClaimedInstance,
    pub permit: OwnedSemaphorePermit,
}

/// The way to tell the scheduler about a new due time; cheap to clone.
#[derive(Debug, Clone)]
pub struct Timers {
    requests: mpsc::UnboundedSender<(String, SystemTime)>,
}

/// The scheduler's end of [`Timers`].
pub struct TimerRequests(mpsc::UnboundedReceiver<(String, SystemTime)>);

impl Timers {
    /// A new pair: give the requests to [`Scheduler::start`].
    pub fn channel() -> (Timers, TimerRequests) {
        let (requests, incoming) = mpsc::unbounded_channel();
        (Timers { requests }, TimerRequests(incoming))
    }

    /// Makes instance `id` due at `at` on this node (it is also due for every node through
    /// PostgreSQL; this only saves waiting for a refill).
    pub fn schedule(&self, id: String, at: SystemTime) {
        let _ = self.requests.send((id, at));
    }
}

/// Due times this late are looked for again (the hint was held by a node that died, or a
/// claim skipped a row another transaction had locked), every `OVERDUE_SWEEP_EVERY`, at
/// most `OVERDUE_SWEEP_LIMIT` at a time.
const OVERDUE_GRACE: Duration = Duration::from_secs(5);
const OVERDUE_SWEEP_EVERY: Duration = Duration::from_secs(5);
const OVERDUE_SWEEP_LIMIT: i64 = 2048;
/// When a claim fails (database trouble), its instances are tried again after this.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

pub struct Scheduler {
    store: Store,
    config: SchedulerConfig,
    clock: Arc<dyn Clock>,
    capacity: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        capacity: Arc<Semaphore>,
    ) -> Self {
        Scheduler {
            store,
            config,
            clock,
            capacity,
        }
    }

    /// Starts the scheduler and its refill task; both end when `stop` is cancelled.
    /// `dispatch` is called, on the scheduler task, with every claimed instance.
    pub fn start<D>(self, requests: TimerRequests, dispatch: D, stop: CancellationToken) -> JoinHandle<()>
    where
        D: Fn(Claimed) + Send + 'static,
    {
        let (loaded, refills) = mpsc::channel(4);
        tokio::spawn(refill(
            self.store.clone(),
            self.config.clone(),
            self.clock.clone(),
            loaded,
            stop.clone(),
        ));
        tokio::spawn(self.run(requests.0, refills, dispatch, stop))
    }

    async fn run<D>(
        self,
        mut incoming: mpsc::UnboundedReceiver<(String, SystemTime)>,
        mut refills: mpsc::Receiver<Vec<(String, SystemTime)>>,
        dispatch: D,
        stop: CancellationToken,
    ) where
        D: Fn(Claimed),
    {
        let mut wheel = Wheel::new(self.config.window, self.clock.clone());
        // Ids popped from the wheel, waiting for dispatch capacity; the set keeps a refill
        // from adding them again.
        let mut ready: VecDeque<String> = VecDeque::new();
        let mut ready_ids: HashSet<String> = HashSet::new();
        let batch = self.config.claim_batch.max(1);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some((id, at)) = incoming.recv() => {
                    wheel.schedule(id, at);
                }
                Some(loaded) = refills.recv() => {
                    for (id, at) in loaded {
                        if !ready_ids.contains(&id) {
                            wheel.offer(id, at);
                        }
                    }
                }
                due = wheel.due(batch), if ready.len() < batch => {
                    ready_ids.extend(due.iter().cloned());
                    ready.extend(due);
                }
                Ok(permit) = self.capacity.clone().acquire_owned(), if !ready.is_empty() => {
                    let mut permits = vec![permit];
                    while permits.len() < ready.len().min(batch) {
                        match self.capacity.clone().try_acquire_owned() {
                            Ok(permit) => permits.push(permit),
                            Err(_) => break,
                        }
                    }
                    let ids: Vec<String> = ready.drain(..permits.len()).collect();
                    for id in &ids {
                        ready_ids.remove(id);
                    }
                    match self.store.claim_instances(&ids, &self.config.node, self.config.lease).await {
                        Ok(claimed) => {
                            tracing::debug!(due = ids.len(), claimed = claimed.len(), held = wheel.len(), "claimed");
                            for (instance, permit) in claimed.into_iter().zip(permits) {
                                dispatch(Claimed { instance, permit });
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, count = ids.len(), "claiming due instances failed; retrying");
                            let retry_at = self.clock.now() + CLAIM_RETRY;
                            for id in ids {
                                wheel.schedule(id, retry_at);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Loads due times into the wheel: first everything due within the window, then each
/// second what entered the window since; every few seconds also what is overdue.
async fn refill(
    store: Store,
    config: SchedulerConfig,
    clock: Arc<dyn Clock>,
    loaded: mpsc::Sender<Vec<(String, SystemTime)>>,
    stop: CancellationToken,
) {
    let mut loaded_until: Option<SystemTime> = None;
    let mut swept = Instant::now();
    let mut ticks = tokio::time::interval(config.refill_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = clock.now();
        let horizon = now + config.window;
        let mut rows = match store
            .due_instances(loaded_until, horizon, config.refill_limit)
            .await
        {
            Ok(rows) => {
                loaded_until = if rows.len() as i64 >= config.refill_limit {
                    // More than one refill's worth: go on from the last time loaded.
                    rows.last().map(|(_, at)| *at).or(loaded_until)
                } else {
                    Some(horizon)
                };
                rows
            }
            Err(error) => {
                tracing::warn!(%error, "refilling the timer wheel failed");
                continue;
            }
        };
        if swept.elapsed() >= OVERDUE_SWEEP_EVERY {
            swept = Instant::now();
            let overdue_before = now.checked_sub(OVERDUE_GRACE).unwrap_or(now);
            match store
                .due_instances(None, overdue_before, OVERDUE_SWEEP_LIMIT)
                .await
            {
                Ok(overdue) => rows.extend(overdue),
                Err(error) => tracing::warn!(%error, "looking for overdue instances failed"),
            }
        }
        tracing::debug!(rows = rows.len(), "timer wheel refill");
        if !rows.is_empty() && loaded.send(rows).await.is_err() {
            return;
        }
    }
}
