//! The cache: fresh entries, absent entries, and the last known values behind them.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache as AsyncCache;
use moka::sync::Cache;
use parking_lot::Mutex;

use crate::counts::{Counts, LookupCounts};
use crate::policy::Policy;

/// While the source is unreachable, a key's next load is tried this long after its last.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Values by key, read through from a source the caller names on each lookup; cheap to clone
/// (clones share the entries).
pub struct LookupCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for LookupCache<K, V> {
    fn clone(&self) -> Self {
        LookupCache {
            inner: self.inner.clone(),
        }
    }
}

/// Whether the source is known to be unreachable right now (another lookup just failed).
pub type SourceDown = Arc<dyn Fn() -> bool + Send + Sync>;

struct Inner<K, V> {
    /// Names the cache in logs and metrics.
    name: &'static str,
    policy: Policy,
    /// Lets a known value be served at once while the source is down, rather than after
    /// this key's own load failed (which can take the source's whole timeout).
    source_down: SourceDown,
    /// Values read within `fresh_for`; its `try_get_with` turns concurrent misses into one load.
    fresh: AsyncCache<K, V>,
    /// Keys the source said do not exist, within `absent_for`, bounded on their own.
    absent: Cache<K, ()>,
    /// The last value read for each key, within `stale_for`: what is served while the
    /// source cannot be read.
    known: Cache<K, Arc<Known<V>>>,
    counts: Counts,
}

/// A value as last read, and whether the source answered since.
struct Known<V> {
    value: V,
    /// `None` while the source answers; once a load failed, when the next one is due.
    next_attempt: Mutex<Option<Instant>>,
}

/// What a failed load leaves for the callers that waited on it.
enum Miss<E> {
    Absent,
    Failed(Arc<E>),
}

impl<K, V> LookupCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(name: &'static str, policy: Policy, source_down: SourceDown) -> LookupCache<K, V> {
        LookupCache {
            inner: Arc::new(Inner {
                name,
                policy,
                source_down,
                fresh: AsyncCache::builder()
                    .max_capacity(policy.known_capacity)
                    .time_to_live(policy.fresh_for)
                    .support_invalidation_closures()
                    .build(),
                absent: Cache::builder()
                    .max_capacity(policy.absent_capacity)
                    .time_to_live(policy.absent_for)
                    .support_invalidation_closures()
                    .build(),
                known: Cache::builder()
                    .max_capacity(policy.known_capacity)
                    .time_to_live(policy.stale_for.max(Duration::from_millis(1)))
                    .support_invalidation_closures()
                    .build(),
                counts: Counts::default(),
            }),
        }
    }

    /// The value of `key`: `None` when the source says there is none. `load` reads the
    /// source; it is called only on a miss, and its future may run on after this caller went
    /// away (other callers may be waiting for it, or it may run in the background).
    ///
    /// When the load fails, the last value read is returned if it is recent enough
    /// ([`Policy::stale_for`]); otherwise the load's error.
    pub async fn get<L, F, E>(&self, key: &K, load: L) -> Result<Option<V>, Arc<E>>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Display + Send + Sync + 'static,
    {
        let inner = &self.inner;
        if let Some(value) = inner.fresh.get(key).await {
            inner.counts.hit();
            return Ok(Some(value));
        }
        if inner.absent.contains_key(key) {
            inner.counts.hit();
            return Ok(None);
        }
        let known = inner.known.get(key);
        if let Some(known) = &known
            && let Some(attempt_now) = known.unreachable((inner.source_down)())
        {
            // The source is down: answer now, and let one attempt in the background find
            // out whether it is back.
            if attempt_now {
                let (cache, key, load) = (self.clone(), key.clone(), load());
                tokio::spawn(async move { cache.load(key, load).await });
            }
            inner.counts.stale();
            return Ok(Some(known.value.clone()));
        }
        match self.load(key.clone(), load()).await {
            Ok(found) => Ok(found),
            Err(error) => match known {
                Some(known) => {
                    inner.counts.stale();
                    Ok(Some(known.value.clone()))
                }
                None => {
                    inner.counts.failure();
                    Err(error)
                }
            },
        }
    }

    /// Forgets `key`, so the next lookup reads the source (after a change made here).
    pub async fn invalidate(&self, key: &K) {
        self.inner.fresh.invalidate(key).await;
        self.inner.absent.invalidate(key);
        self.inner.known.invalidate(key);
    }

    /// Forgets every key `matches` accepts.
    pub fn invalidate_if(&self, matches: impl Fn(&K) -> bool + Send + Sync + 'static) {
        let matches = Arc::new(matches);
        let inner = &self.inner;
        // Closures are enabled on all three tables, so registering one cannot fail.
        let in_fresh = matches.clone();
        let _ = inner.fresh.invalidate_entries_if(move |key, _| in_fresh(key));
        let in_absent = matches.clone();
        let _ = inner.absent.invalidate_entries_if(move |key, _| in_absent(key));
        let _ = inner.known.invalidate_entries_if(move |key, _| matches(key));
    }

    pub fn counts(&self) -> LookupCounts {
        self.inner.counts.snapshot(self.inner.name)
    }

    /// Runs `load` for `key`, or waits for the one already running; records what it found
    /// (once, however many callers waited).
    async fn load<F, E>(&self, key: K, load: F) -> Result<Option<V>, Arc<E>>
    where
        F: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Display + Send + Sync + 'static,
    {
        let inner = self.inner.clone();
        let loaded_key = key.clone();
        let outcome = self
            .inner
            .fresh
            .try_get_with(key, async move {
                let result = load.await;
                inner.record(loaded_key, result)
            })
            .await;
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(miss) => match &*miss {
                Miss::Absent => Ok(None),
                Miss::Failed(error) => Err(error.clone()),
            },
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Files a load's result: a value becomes fresh and the last known; "none" becomes
    /// absent and drops the last known; a failure marks the last known as unreachable.
    fn record<E: Display>(&self, key: K, result: Result<Option<V>, E>) -> Result<V, Miss<E>> {
        match result {
            Ok(Some(value)) => {
                self.counts.load();
                if !self.policy.stale_for.is_zero() {
                    self.known.insert(key, Arc::new(Known::new(value.clone())));
                }
                Ok(value)
            }
            Ok(None) => {
                self.counts.load();
                self.known.invalidate(&key);
                self.absent.insert(key, ());
                Err(Miss::Absent)
            }
            Err(error) => {
                if let Some(known) = self.known.get(&key)
                    && known.mark_unreachable()
                {
                    tracing::warn!(cache = self.name, %error, "source unreachable: serving the last value read");
                }
                Err(Miss::Failed(Arc::new(error)))
            }
        }
    }
}

impl<V> Known<V> {
    fn new(value: V) -> Known<V> {
        Known {
            value,
            next_attempt: Mutex::new(None),
        }
    }

    /// `None` while the source answers; once this key's load failed, or `source_down`
    /// says another did, whether this caller should try again now (the attempt is then
    /// claimed: others keep serving until it is due again).
    fn unreachable(&self, source_down: bool) -> Option<bool> {
        let mut next_attempt = self.next_attempt.lock();
        let now = Instant::now();
        match *next_attempt {
            None if !source_down => return None,
            Some(due) if now < due => return Some(false),
            _ => {}
        }
        *next_attempt = Some(now + RETRY_EVERY);
        Some(true)
    }

    /// Notes a failed load; true when the source was answering until now.
    fn mark_unreachable(&self) -> bool {
        self.next_attempt
            .lock()
            .replace(Instant::now() + RETRY_EVERY)
            .is_none()
    }
}
