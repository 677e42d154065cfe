//! The containers of one function version: idle ones, busy ones, and callers queued for one.
//!
//! Counts change only under the pool's lock, and every container that reached the pool
//! leaves it exactly once (through [`Pool::remove`]), so the counts cannot drift.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::FunctionTarget;
use crate::container::Container;

/// What a queued caller is handed when capacity frees up.
pub(crate) enum Handoff {
    /// A warm container, already counted busy for the receiver.
    Container(Arc<Container>),
    /// Room to start a new container, already counted in the total for the receiver.
    StartSlot,
}

/// The answer to "may I have a container?".
pub(crate) enum Lease {
    Warm(Arc<Container>),
    StartSlot,
    Wait(oneshot::Receiver<Handoff>),
    Full,
    /// The pool takes no more work (function deleted, version superseded, pool dropped).
    Closed,
}

pub(crate) struct Pool {
    pub target: Arc<FunctionTarget>,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Warm containers waiting for work, oldest first, most recently used last.
    idle: Vec<Arc<Container>>,
    /// Live containers, counting busy, idle and starting ones; never above max concurrency.
    total: usize,
    busy: usize,
    starting: usize,
    /// Callers waiting for capacity, oldest first.
    waiters: VecDeque<oneshot::Sender<Handoff>>,
    closed: bool,
    /// Whether `min_warm` applies: only for the function's current version.
    keep_warm: bool,
}

/// Counts of one pool.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PoolCounts {
    pub idle: usize,
    pub busy: usize,
    pub starting: usize,
    pub queued: usize,
}

impl Pool {
    pub(crate) fn new(target: Arc<FunctionTarget>) -> Pool {
        Pool {
            target,
            state: Mutex::new(PoolState::default()),
        }
    }

    pub(crate) fn lease(&self, queue_limit: usize) -> Lease {
        let mut state = self.lock();
        if state.closed {
            return Lease::Closed;
        }
        while let Some(container) = state.idle.pop() {
            // A container that exited while parked is on its way out; skip it.
            if !container.retired.load(Ordering::SeqCst) {
                state.busy += 1;
                return Lease::Warm(container);
            }
        }
        if state.total < self.target.limits.max_concurrency {
            state.total += 1;
            state.starting += 1;
            return Lease::StartSlot;
        }
        // Callers that gave up must not hold places in the queue.
        state.waiters.retain(|waiter| !waiter.is_closed());
        if state.waiters.len() < queue_limit {
            let (sender, receiver) = oneshot::channel();
            state.waiters.push_back(sender);
            return Lease::Wait(receiver);
        }
        Lease::Full
    }

    /// A start slot was handed over by [`Handoff::StartSlot`]; count it as starting.
    pub(crate) fn slot_received(&self) {
        self.lock().starting += 1;
    }

    /// A start slot toward `min_warm`, if this is the current version and it is below it.
    pub(crate) fn warm_slot(&self) -> bool {
        let mut state = self.lock();
        let limits = &self.target.limits;
        let below =
            !state.closed && state.keep_warm && state.total < limits.min_warm.min(limits.max_concurrency);
        if below {
            state.total += 1;
            state.starting += 1;
        }
        below
    }

    /// A start finished: the new container is busy (`for_caller`) or parked (pre-warmed).
    /// Returns the container if the pool closed meanwhile: the caller must retire it.
    pub(crate) fn started(&self, container: Arc<Container>, for_caller: bool) -> Option<Arc<Container>> {
        let mut state = self.lock();
        state.starting -= 1;
        if for_caller {
            state.busy += 1;
            None
        } else {
            park(&mut state, container)
        }
    }

    /// A start failed: give its slot to the next waiter, or free it.
    pub(crate) fn start_failed(&self) {
        let mut state = self.lock();
        state.starting -= 1;
        state.total -= 1;
        offer_start_slot(&mut state);
    }

    /// A busy container finished its invocation.
    pub(crate) fn end_busy(&self) {
        self.lock().busy -= 1;
    }

    /// Hands a healthy container to the oldest waiter, or parks it as idle. Returns the
    /// container if the pool closed meanwhile: the caller must retire it.
    pub(crate) fn put_back(&self, container: Arc<Container>) -> Option<Arc<Container>> {
        container.touch();
        park(&mut self.lock(), container)
    }

    /// A container left the pool (retired); its capacity goes to a waiter if any.
    pub(crate) fn remove(&self, container: &Arc<Container>) {
        let mut state = self.lock();
        state.idle.retain(|idle| !Arc::ptr_eq(idle, container));
        state.total -= 1;
        offer_start_slot(&mut state);
    }

    /// Idle containers past the idle timeout, beyond the `min_warm` the pool keeps.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<Arc<Container>> {
        let mut state = self.lock();
        let keep = if state.keep_warm {
            self.target.limits.min_warm
        } else {
            0
        };
        let idle_timeout = self.target.limits.idle_timeout;
        let mut expired = Vec::new();
        while state.total - expired.len() > keep
            && state
                .idle
                .first()
                .is_some_and(|oldest| now.duration_since(oldest.idle_since()) >= idle_timeout)
        {
            expired.push(state.idle.remove(0));
        }
        expired
    }

    /// Makes `min_warm` apply: this pool serves the function's current version.
    pub(crate) fn keep_warm(&self) {
        self.lock().keep_warm = true;
    }

    /// Closes the pool: queued callers are released (they look again) and the idle
    /// containers are returned for retirement; busy ones retire when they finish.
    pub(crate) fn close(&self) -> Vec<Arc<Container>> {
        let mut state = self.lock();
        state.closed = true;
        state.waiters.clear();
        std::mem::take(&mut state.idle)
    }

    /// Closes the pool if it holds nothing, nobody waits and it need not stay warm.
    pub(crate) fn close_if_unused(&self) -> bool {
        let mut state = self.lock();
        state.waiters.retain(|waiter| !waiter.is_closed());
        let unused = state.total == 0
            && state.waiters.is_empty()
            && !(state.keep_warm && self.target.limits.min_warm > 0);
        if unused {
            state.closed = true;
        }
        unused
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        let state = self.lock();
        PoolCounts {
            idle: state.idle.len(),
            busy: state.busy,
            starting: state.starting,
            queued: state.waiters.len(),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, PoolState> {
        self.state.lock()
    }
}

/// Parks a container that finished work or started, unless it already left or the pool closed.
fn park(state: &mut PoolState, container: Arc<Container>) -> Option<Arc<Container>> {
    if container.retired.load(Ordering::SeqCst) {
        return None;
    }
    if state.closed {
        return Some(container);
    }
    hand_over(state, container);
    None
}

/// Gives `container` to the oldest waiter still listening, else parks it as idle.
fn hand_over(state: &mut PoolState, mut container: Arc<Container>) {
    while let Some(waiter) = state.waiters.pop_front() {
        state.busy += 1;
        match waiter.send(Handoff::Container(container)) {
            Ok(()) => return,
            Err(Handoff::Container(returned)) => {
                state.busy -= 1;
                container = returned;
            }
            Err(Handoff::StartSlot) => unreachable!("sent a container"),
        }
    }
    state.idle.push(container);
}

/// Freed capacity goes to the oldest waiter still listening, as a slot to start a container.
fn offer_start_slot(state: &mut PoolState) {
    if state.closed {
        return;
    }
    while let Some(waiter) = state.waiters.pop_front() {
        state.total += 1;
        if waiter.send(Handoff::StartSlot).is_ok() {
            return;
        }
        state.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::FunctionLimits;

    fn pool(max_concurrency: usize, min_warm: usize) -> Pool {
        let limits = FunctionLimits {
            memory_bytes: 64 << 20,
            cpu_shares: 1024,
            cpu_quota_us: None,
            pids_limit: 16,
            timeout: Duration::from_secs(1),
            max_concurrency,
            min_warm,
            idle_timeout: Duration::ZERO,
            env: Vec::new(),
            network: kiln_types::NetworkMode::None,
            egress_allow: Vec::new(),
        };
        Pool::new(Arc::new(FunctionTarget {
            tenant: "acme".into(),
            function: "f".into(),
            version: 1,
            digest: "d".into(),
            rootfs: "/nowhere".into(),
            process: crate::ProcessSpec::executable(),
            limits,
        }))
    }

    fn container(id: &str) -> Arc<Container> {
        let (assign, _) = mpsc::channel(1);
        Arc::new(Container {
            id: id.into(),
            target: pool(1, 0).target.clone(),
            runtime_dir: "/nowhere".into(),
            assign,
            server: tokio::spawn(async {}).abort_handle(),
            died: CancellationToken::new(),
            exit_status: Mutex::new(None),
            retired: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            start_phases: Mutex::new(crate::StartPhases::default()),
            capture: Mutex::new(None),
            egress: Mutex::new(None),
            counts_traffic: AtomicBool::new(true),
        })
    }

    /// Leases a start slot and completes the start for the caller.
    fn busy_container(pool: &Pool, id: &str) -> Arc<Container> {
        assert!(matches!(pool.lease(0), Lease::StartSlot));
        let container = container(id);
        assert!(pool.started(container.clone(), true).is_none());
        container
    }

    #[tokio::test]
    async fn grows_to_max_then_queues_then_refuses() {
        let pool = pool(2, 0);
        assert!(matches!(pool.lease(1), Lease::StartSlot));
        assert!(matches!(pool.lease(1), Lease::StartSlot));
        let _waiting = match pool.lease(1) {
            Lease::Wait(receiver) => receiver,
            _ => panic!("third caller should queue"),
        };
        assert!(matches!(pool.lease(1), Lease::Full));
        assert_eq!(pool.counts().starting, 2);
        assert_eq!(pool.counts().queued, 1);
    }

    #[tokio::test]
    async fn a_finished_container_goes_to_the_oldest_waiter() {
        let pool = pool(1, 0);
        let first = busy_container(&pool, "c1");
        let Lease::Wait(mut waiting) = pool.lease(1) else {
            panic!("should queue")
        };
        pool.end_busy();
        assert!(pool.put_back(first.clone()).is_none());
        match waiting.try_recv() {
            Ok(Handoff::Container(handed)) => assert!(Arc::ptr_eq(&handed, &first)),
            _ => panic!("the waiter should get the container"),
        }
        let counts = pool.counts();
        assert_eq!((counts.busy, counts.idle, counts.queued), (1, 0, 0));
    }

    #[tokio::test]
    async fn a_retired_container_frees_a_start_slot_for_a_waiter() {
        let pool = pool(1, 0);
        let first = busy_container(&pool, "c1");
        let Lease::Wait(mut waiting) = pool.lease(1) else {
            panic!("should queue")
        };
        first.begin_retirement();
        pool.remove(&first);
        pool.end_busy();
        assert!(matches!(waiting.try_recv(), Ok(Handoff::StartSlot)));
        pool.slot_received();
        // The slot stays counted: nobody else may start a container beyond the maximum.
        assert!(matches!(pool.lease(0), Lease::Full));
    }

    #[tokio::test]
    async fn callers_that_gave_up_do_not_hold_queue_places() {
        let pool = pool(1, 0);
        let _busy = busy_container(&pool, "c1");
        let Lease::Wait(gave_up) = pool.lease(1) else {
            panic!("should queue")
        };
        drop(gave_up);
        assert!(matches!(pool.lease(1), Lease::Wait(_)));
    }

    #[tokio::test]
    async fn a_closed_pool_hands_containers_back_for_retirement() {
        let pool = pool(2, 0);
        let busy = busy_container(&pool, "c1");
        assert!(matches!(pool.lease(0), Lease::StartSlot));
        let idle = container("c2");
        assert!(pool.started(idle.clone(), false).is_none());
        let closed_idle = pool.close();
        assert_eq!(closed_idle.len(), 1);
        assert!(Arc::ptr_eq(&closed_idle[0], &idle));
        assert!(matches!(pool.lease(1), Lease::Closed));
        pool.end_busy();
        let returned = pool.put_back(busy.clone()).expect("closed pool must not park");
        assert!(Arc::ptr_eq(&returned, &busy));
    }

    #[tokio::test]
    async fn min_warm_is_kept_only_for_the_current_version() {
        let pool = pool(3, 1);
        assert!(matches!(pool.lease(0), Lease::StartSlot));
        assert!(matches!(pool.lease(0), Lease::StartSlot));
        for id in ["c1", "c2"] {
            assert!(pool.started(container(id), false).is_none());
        }
        assert!(!pool.warm_slot(), "not current: no pre-warming");
        pool.keep_warm();
        let expired = pool.take_expired(Instant::now() + Duration::from_secs(1));
        assert_eq!(expired.len(), 1, "one of two idle containers stays warm");
        for container in &expired {
            container.begin_retirement();
            pool.remove(container);
        }
        assert!(!pool.close_if_unused(), "a pool kept warm is never dropped");
    }
}
