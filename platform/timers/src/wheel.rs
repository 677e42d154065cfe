//! The in-memory timer wheel: keys due within a window, each held once.
//!
//! Built on `tokio_util::time::DelayQueue` (a hierarchical wheel: O(1) insert, reset and
//! remove). Due times are wall-clock times; they are turned into delays against the
//! wheel's [`Clock`] when inserted.

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio_util::time::{DelayQueue, delay_queue};

use crate::Clock;

pub struct Wheel<K> {
    queue: DelayQueue<K>,
    entries: HashMap<K, (delay_queue::Key, SystemTime)>,
    window: Duration,
    clock: Arc<dyn Clock>,
}

impl<K: Clone + Eq + Hash> Wheel<K> {
    /// A wheel that takes keys due up to `window` ahead of its clock's now.
    pub fn new(window: Duration, clock: Arc<dyn Clock>) -> Wheel<K> {
        Wheel {
            queue: DelayQueue::new(),
            entries: HashMap::new(),
            window,
            clock,
        }
    }

    /// The latest due time the wheel takes now.
    pub fn horizon(&self) -> SystemTime {
        self.clock.now() + self.window
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Holds `key` until `at` (a time in the past is due at once); a key already held is
    /// moved to the new time. Returns false, holding nothing, when `at` is beyond the window:
    /// a later refill brings it in.
    pub fn schedule(&mut self, key: K, at: SystemTime) -> bool {
        let now = self.clock.now();
        if at > now + self.window {
            return false;
        }
        let delay = at.duration_since(now).unwrap_or(Duration::ZERO);
        match self.entries.get_mut(&key) {
            Some((queue_key, held_at)) => {
                if *held_at != at {
                    self.queue.reset(queue_key, delay);
                    *held_at = at;
                }
            }
            None => {
                let queue_key = self.queue.insert(key.clone(), delay);
                self.entries.insert(key, (queue_key, at));
            }
        }
        true
    }

    /// Holds `key` until `at` unless it is held already (a refill's hint never moves a time
    /// set directly). Returns false when `at` is beyond the window.
    pub fn offer(&mut self, key: K, at: SystemTime) -> bool {
        if self.entries.contains_key(&key) {
            return true;
        }
        self.schedule(key, at)
    }

    pub fn holds(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Forgets `key`, if held.
    pub fn cancel(&mut self, key: &K) {
        if let Some((queue_key, _)) = self.entries.remove(key) {
            self.queue.try_remove(&queue_key);
        }
    }

    /// Waits until at least one key is due, then returns every due key, up to `max`,
    /// earliest first. Never completes while the wheel is empty.
    pub async fn due(&mut self, max: usize) -> Vec<K> {
        poll_fn(|context| {
            let mut batch = Vec::new();
            while batch.len() < max.max(1) {
                match self.queue.poll_expired(context) {
                    Poll::Ready(Some(expired)) => {
                        let key = expired.into_inner();
                        self.entries.remove(&key);
                        batch.push(key);
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if batch.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(batch)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, advance, timeout};

    /// Wall-clock time that moves with tokio's paused test clock.
    struct TestClock {
        start: SystemTime,
        started: Instant,
    }

    impl Clock for TestClock {
        fn now(&self) -> SystemTime {
            self.start + self.started.elapsed()
        }
    }

    fn wheel(window: Duration) -> (Wheel<&'static str>, SystemTime) {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = TestClock {
            start,
            started: Instant::now(),
        };
        (Wheel::new(window, Arc::new(clock)), start)
    }

    async fn due_now(wheel: &mut Wheel<&'static str>) -> Vec<&'static str> {
        timeout(Duration::ZERO, wheel.due(100)).await.unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_due_exactly_at_its_time() {
        let (mut wheel, start) = wheel(Duration::from_secs(60));
        assert!(wheel.schedule("a", start + Duration::from_millis(500)));
        advance(Duration::from_millis(499)).await;
        assert!(due_now(&mut wheel).await.is_empty());
        advance(Duration::from_millis(1)).await;
        assert_eq!(due_now(&mut wheel).await, ["a"]);
        assert!(wheel.is_empty());
        advance(Duration::from_secs(10)).await;
        assert!(due_now(&mut wheel).await.is_empty(), "a key fires once");
    }

    #[tokio::test(start_paused = true)]
    async fn past_times_are_due_at_once_earliest_first_in_batches() {
        let (mut wheel, start) = wheel(Duration::from_secs(60));
        advance(Duration::from_secs(5)).await;
        wheel.schedule("late", start + Duration::from_secs(2));
        wheel.schedule("later", start + Duration::from_secs(4));
        wheel.schedule("latest", start + Duration::from_secs(1));
        let first = timeout(Duration::ZERO, wheel.due(2)).await.expect("due");
        assert_eq!(first.len(), 2);
        let second = due_now(&mut wheel).await;
        assert_eq!(second.len(), 1);
        let mut all: Vec<_> = first.into_iter().chain(second).collect();
        all.sort_unstable();
        assert_eq!(all, ["late", "later", "latest"]);
    }

    #[tokio::test(start_paused = true)]
    async fn times_beyond_the_window_are_left_for_a_refill() {
        let (mut wheel, start) = wheel(Duration::from_secs(10));
        assert!(!wheel.schedule("far", start + Duration::from_secs(11)));
        assert!(wheel.is_empty());
        advance(Duration::from_secs(2)).await;
        assert!(wheel.schedule("far", start + Duration::from_secs(11)));
        advance(Duration::from_secs(9)).await;
        assert_eq!(due_now(&mut wheel).await, ["far"]);
    }

    #[tokio::test(start_paused = true)]
    async fn rescheduling_moves_a_key_without_doubling_it() {
        let (mut wheel, start) = wheel(Duration::from_secs(60));
        wheel.schedule("a", start + Duration::from_secs(1));
        wheel.schedule("a", start + Duration::from_secs(3));
        assert_eq!(wheel.len(), 1);
        advance(Duration::from_secs(2)).await;
        assert!(due_now(&mut wheel).await.is_empty());
        advance(Duration::from_secs(1)).await;
        assert_eq!(due_now(&mut wheel).await, ["a"]);
        wheel.schedule("b", start + Duration::from_secs(10));
        wheel.schedule("b", start + Duration::from_secs(4));
        advance(Duration::from_secs(1)).await;
        assert_eq!(due_now(&mut wheel).await, ["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_offer_never_moves_a_held_key() {
        let (mut wheel, start) = wheel(Duration::from_secs(60));
        wheel.schedule("a", start + Duration::from_secs(1));
        assert!(wheel.offer("a", start + Duration::from_secs(5)));
        assert!(wheel.holds(&"a"));
        advance(Duration::from_secs(1)).await;
        assert_eq!(due_now(&mut wheel).await, ["a"]);
        assert!(wheel.offer("b", start + Duration::from_secs(2)));
        advance(Duration::from_secs(1)).await;
        assert_eq!(due_now(&mut wheel).await, ["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_key_never_fires() {
        let (mut wheel, start) = wheel(Duration::from_secs(60));
        wheel.schedule("a", start + Duration::from_secs(1));
        wheel.cancel(&"a");
        wheel.cancel(&"a");
        advance(Duration::from_secs(2)).await;
        assert!(due_now(&mut wheel).await.is_empty());
        assert!(wheel.is_empty());
    }
}
