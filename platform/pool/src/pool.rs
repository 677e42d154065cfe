//! The containers of one function version: idle ones, busy ones, and callers queued for one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
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
}

pub(crate) struct Pool {
    pub target: Arc<FunctionTarget>,
    state: Mutex<PoolState>,
    /// Set when the function was deleted: containers finishing work retire instead of parking.
    closed: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct PoolState {
    /// Warm containers waiting for work, most recently used last.
    idle: Vec<Arc<Container>>,
    /// Live containers, counting busy, idle and starting ones; never above max concurrency.
    total: usize,
    busy: usize,
    starting: usize,
    /// Callers waiting for capacity, oldest first.
    waiters: VecDeque<oneshot::Sender<Handoff>>,
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
            closed: Default::default(),
        }
    }

    pub(crate) fn lease(&self, queue_limit: usize) -> Lease {
        let mut state = self.lock();
        while let Some(container) = state.idle.pop() {
            // A container retired while parked (it exited) is on its way out; skip it.
            if !container.retired.load(std::sync::atomic::Ordering::SeqCst) {
                state.busy += 1;
                return Lease::Warm(container);
            }
        }
        if state.total < self.target.limits.max_concurrency {
            state.total += 1;
            state.starting += 1;
            return Lease::StartSlot;
        }
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

    /// Room only to grow toward `min_warm`: a start slot if the pool is below it.
    pub(crate) fn warm_slot(&self) -> bool {
        let mut state = self.lock();
        let below = state.total
            < self
                .target
                .limits
                .min_warm
                .min(self.target.limits.max_concurrency);
        if below {
            state.total += 1;
            state.starting += 1;
        }
        below
    }

    /// A start finished: the new container is busy (`for_caller`) or idle (pre-warmed).
    pub(crate) fn started(&self, container: Arc<Container>, for_caller: bool) {
        let mut state = self.lock();
        state.starting -= 1;
        if for_caller {
            state.busy += 1;
        } else {
            drop(state);
            self.put_back(container);
        }
    }

    /// A start failed: give its slot to the next waiter, or free it.
    pub(crate) fn start_failed(&self) {
        let mut state = self.lock();
        state.starting -= 1;
        state.total -= 1;
        Self::offer_start_slot(&mut state);
    }

    /// A busy container finished its invocation.
    pub(crate) fn end_busy(&self) {
        self.lock().busy -= 1;
    }

    /// Hands a healthy container to the oldest waiter, or parks it as idle.
    pub(crate) fn put_back(&self, container: Arc<Container>) {
        container.touch();
        let mut state = self.lock();
        hand_over(&mut state, container);
    }

    /// A container left the pool (retired); its capacity goes to a waiter if any.
    pub(crate) fn remove(&self, container: &Arc<Container>) {
        let mut state = self.lock();
        state.idle.retain(|idle| !Arc::ptr_eq(idle, container));
        state.total -= 1;
        Self::offer_start_slot(&mut state);
    }

    /// Idle containers past the idle timeout, beyond the `min_warm` the pool keeps.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<Arc<Container>> {
        let mut state = self.lock();
        let keep = self.target.limits.min_warm;
        let idle_timeout = self.target.limits.idle_timeout;
        let mut expired = Vec::new();
        // Oldest first: they sit at the front of `idle`.
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

    /// Closes the pool and takes its idle containers out, for retirement.
    pub(crate) fn close(&self) -> Vec<Arc<Container>> {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut self.lock().idle)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
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

    /// True when the pool holds nothing and nobody waits: it can be forgotten.
    pub(crate) fn is_empty(&self) -> bool {
        let state = self.lock();
        state.total == 0 && state.waiters.is_empty() && self.target.limits.min_warm == 0
    }

    fn offer_start_slot(state: &mut PoolState) {
        while let Some(waiter) = state.waiters.pop_front() {
            state.total += 1;
            if waiter.send(Handoff::StartSlot).is_ok() {
                return;
            }
            state.total -= 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().expect("pool lock")
    }
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
