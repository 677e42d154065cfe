//! The timer scheduler on its own, against a real PostgreSQL: due instances are claimed
//! when due and not before, never past the dispatch capacity, and exactly once when two
//! nodes' schedulers share the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use e2e::{TestDatabase, create_test_tenant, durable_function, migrated_store};
use store::Store;
use timers::{Claimed, Scheduler, SchedulerConfig, SystemClock, Timers};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

fn config(node: &str) -> SchedulerConfig {
    SchedulerConfig {
        node: node.into(),
        lease: Duration::from_secs(30),
        window: Duration::from_secs(60),
        refill_interval: Duration::from_millis(200),
        refill_limit: 1000,
        claim_batch: 64,
    }
}

/// A started scheduler of `node` with room for `capacity` dispatches; claims arrive on
/// the receiver, holding their permits.
fn start(
    store: &Store,
    node: &str,
    capacity: usize,
    stop: &CancellationToken,
) -> (Timers, mpsc::UnboundedReceiver<Claimed>) {
    let (timers, requests) = Timers::channel();
    let (claims, claimed) = mpsc::unbounded_channel();
    Scheduler::new(
        store.clone(),
        config(node),
        Arc::new(SystemClock),
        Arc::new(Semaphore::new(capacity)),
    )
    .start(
        requests,
        move |claim| {
            let _ = claims.send(claim);
        },
        stop.clone(),
    );
    (timers, claimed)
}

async fn next(claimed: &mut mpsc::UnboundedReceiver<Claimed>, within: Duration) -> Option<Claimed> {
    tokio::time::timeout(within, claimed.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_claimed_when_due_and_not_before() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let new = durable_function(&store, "acme", "flow").await;
    let stop = CancellationToken::new();
    let (timers, mut claimed) = start(&store, "node-a", 8, &stop);

    // Pending and due now: found by a refill, without a hint.
    let now = store.start_instance(&new).await.unwrap().instance.id;
    let claim = next(&mut claimed, Duration::from_secs(5))
        .await
        .expect("the due instance is claimed");
    assert_eq!(claim.instance.id, now);
    // Sleeping until 600 ms from now, with a hint: claimed at that time.
    let later = store.start_instance(&new).await.unwrap().instance.id;
    let claims = store
        .claim_instances(std::slice::from_ref(&later), "test", Duration::from_secs(30))
        .await;
    let epoch = claims.unwrap()[0].epoch;
    let wake_at = SystemTime::now() + Duration::from_millis(600);
    store
        .sleep_instance(&later, epoch, "nap", wake_at)
        .await
        .unwrap()
        .unwrap();
    timers.schedule(later.clone(), wake_at);
    let asked = Instant::now();
    let claim = next(&mut claimed, Duration::from_secs(5))
        .await
        .expect("the sleeper is claimed");
    assert_eq!(claim.instance.id, later);
    assert!(SystemTime::now() >= wake_at, "claimed before it was due");
    assert!(claim.instance.woke);
    assert!(
        asked.elapsed() < Duration::from_millis(600 + 400),
        "claimed {:?} after asking",
        asked.elapsed()
    );
    stop.cancel();
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_wait_for_dispatch_capacity() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let new = durable_function(&store, "acme", "flow").await;
    for _ in 0..3 {
        store.start_instance(&new).await.unwrap();
    }
    let stop = CancellationToken::new();
    let (_timers, mut claimed) = start(&store, "node-a", 1, &stop);
    let first = next(&mut claimed, Duration::from_secs(5))
        .await
        .expect("one claim");
    assert!(
        next(&mut claimed, Duration::from_millis(700)).await.is_none(),
        "a second claim while the only permit is held"
    );
    drop(first);
    let second = next(&mut claimed, Duration::from_secs(5))
        .await
        .expect("a claim once the permit is back");
    drop(second);
    assert!(
        next(&mut claimed, Duration::from_secs(5)).await.is_some(),
        "the third instance"
    );
    stop.cancel();
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_each_instance_once() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let new = durable_function(&store, "acme", "flow").await;
    let stop = CancellationToken::new();
    let (_a, mut claimed_a) = start(&store, "node-a", 1000, &stop);
    let (_b, mut claimed_b) = start(&store, "node-b", 1000, &stop);
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(store.start_instance(&new).await.unwrap().instance.id);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < ids.len() && Instant::now() < deadline {
        let claim = tokio::select! {
            Some(claim) = claimed_a.recv() => claim,
            Some(claim) = claimed_b.recv() => claim,
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        *seen.entry(claim.instance.id.clone()).or_default() += 1;
        // Held, as a dispatch would, until the test ends.
        held.push(claim);
    }
    assert_eq!(seen.len(), ids.len(), "every instance claimed");
    assert!(
        seen.values().all(|count| *count == 1),
        "an instance claimed twice"
    );
    // Nothing more arrives: each was claimed once.
    assert!(next(&mut claimed_a, Duration::from_millis(500)).await.is_none());
    assert!(next(&mut claimed_b, Duration::from_millis(500)).await.is_none());
    stop.cancel();
    database.drop().await;
}
