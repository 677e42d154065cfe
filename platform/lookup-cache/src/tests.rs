//! The cache against a counting source that can be made to fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{LookupCache, Policy, SourceDown};

/// A source of values that counts its reads and can be switched off.
#[derive(Clone, Default)]
struct Source {
    reads: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    /// Added to the value read, so a test can tell a fresh read from an old one.
    generation: Arc<AtomicUsize>,
    /// How long a read takes.
    delay: Duration,
}

impl Source {
    /// Names starting with `known` exist (their value is the generation); others do not.
    fn read(&self, name: &str) -> impl Future<Output = Result<Option<usize>, String>> + Send + 'static {
        let source = self.clone();
        let name = name.to_owned();
        async move {
            source.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(source.delay).await;
            if source.down.load(Ordering::SeqCst) {
                return Err("source down".to_owned());
            }
            Ok(name
                .starts_with("known")
                .then(|| source.generation.load(Ordering::SeqCst)))
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// A source-down signal that never fires: each key finds out from its own load.
fn never_down() -> SourceDown {
    Arc::new(|| false)
}

fn policy(fresh_ms: u64, stale_ms: u64) -> Policy {
    Policy {
        known_capacity: 10,
        absent_capacity: 1_000,
        ..Policy::new(Duration::from_millis(fresh_ms), Duration::from_millis(stale_ms))
    }
}

async fn get(
    cache: &LookupCache<String, usize>,
    source: &Source,
    name: &str,
) -> Result<Option<usize>, String> {
    cache
        .get(&name.to_owned(), || source.read(name))
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_load() {
    let source = Source {
        delay: Duration::from_millis(50),
        ..Source::default()
    };
    let cache = LookupCache::new("test", policy(60_000, 60_000), never_down());
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { get(&cache, &source, "known-a").await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(Some(0)));
    }
    assert_eq!(source.reads(), 1);
    let absent: Vec<_> = (0..100)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { get(&cache, &source, "nobody").await })
        })
        .collect();
    for caller in absent {
        assert_eq!(caller.await.unwrap(), Ok(None));
    }
    assert_eq!(source.reads(), 2, "100 lookups of an unknown name make one load");
    assert_eq!(
        cache.counts().loads,
        2,
        "callers that waited for a load are not counted as loads"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_names_leaves_known_entries_alone() {
    let (cache, source) = (
        LookupCache::new("test", policy(60_000, 60_000), never_down()),
        Source::default(),
    );
    for index in 0..10 {
        get(&cache, &source, &format!("known-{index}")).await.unwrap();
    }
    for index in 0..5_000 {
        assert_eq!(get(&cache, &source, &format!("forged-{index}")).await, Ok(None));
    }
    let reads = source.reads();
    assert_eq!(reads, 5_010, "each distinct name is read once");
    for index in 0..10 {
        assert_eq!(get(&cache, &source, &format!("known-{index}")).await, Ok(Some(0)));
    }
    assert_eq!(get(&cache, &source, "forged-4999").await, Ok(None));
    assert_eq!(
        source.reads(),
        reads,
        "known entries and recent absent ones are still cached"
    );
}

#[tokio::test]
async fn while_the_source_is_down_the_last_value_is_served_and_one_attempt_a_second_finds_it_back() {
    let (cache, source) = (
        LookupCache::new("test", policy(30, 60_000), never_down()),
        Source::default(),
    );
    assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(0)));
    source.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reads = source.reads();
    assert_eq!(
        get(&cache, &source, "known-a").await,
        Ok(Some(0)),
        "stale after a failed load"
    );
    assert_eq!(source.reads(), reads + 1);
    for _ in 0..50 {
        assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(0)));
    }
    assert_eq!(
        source.reads(),
        reads + 1,
        "no new attempt within a second of the failed one"
    );
    assert_eq!(
        get(&cache, &source, "known-b").await,
        Err("source down".to_owned()),
        "nothing known: the error"
    );
    assert_eq!(cache.counts().stale, 51);
    assert_eq!(cache.counts().failures, 1);

    source.down.store(false, Ordering::SeqCst);
    source.generation.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(
        get(&cache, &source, "known-a").await,
        Ok(Some(0)),
        "answered at once from the last value while a background attempt runs"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(1)), "fresh again");
}

#[tokio::test]
async fn while_the_source_is_known_to_be_down_no_caller_waits_for_a_load() {
    let source = Source {
        delay: Duration::from_millis(500),
        ..Source::default()
    };
    let signal = source.down.clone();
    let cache = LookupCache::new(
        "test",
        policy(30, 60_000),
        Arc::new(move || signal.load(Ordering::SeqCst)),
    );
    assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(0)));
    source.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(0)));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "waited {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(source.reads(), 2, "one attempt went on in the background");
}

#[tokio::test]
async fn stale_values_are_served_no_longer_than_stale_for() {
    let (cache, source) = (
        LookupCache::new("test", policy(20, 100), never_down()),
        Source::default(),
    );
    assert_eq!(get(&cache, &source, "known-a").await, Ok(Some(0)));
    source.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        get(&cache, &source, "known-a").await,
        Err("source down".to_owned())
    );

    let no_stale = LookupCache::new("test", policy(20, 0), never_down());
    source.down.store(false, Ordering::SeqCst);
    assert_eq!(get(&no_stale, &source, "known-a").await, Ok(Some(0)));
    source.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        get(&no_stale, &source, "known-a").await,
        Err("source down".to_owned())
    );
}

#[tokio::test]
async fn invalidation_forgets_found_absent_and_last_known_values() {
    let (cache, source) = (
        LookupCache::new("test", policy(60_000, 60_000), never_down()),
        Source::default(),
    );
    get(&cache, &source, "known-a").await.unwrap();
    get(&cache, &source, "nobody").await.unwrap();
    cache.invalidate(&"known-a".to_owned()).await;
    cache.invalidate_if(|name| name == "nobody");
    source.down.store(true, Ordering::SeqCst);
    assert_eq!(
        get(&cache, &source, "known-a").await,
        Err("source down".to_owned())
    );
    assert_eq!(
        get(&cache, &source, "nobody").await,
        Err("source down".to_owned())
    );
}
