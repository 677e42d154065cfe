//! The store on its own, against a real PostgreSQL: what each write promises (one
//! transaction, version numbering, idempotency, fencing of stale dispatches), checked
//! through the store's API without a kilnd in between.

use std::time::{Duration, SystemTime};

use e2e::{TestDatabase, create_test_tenant, durable_function, migrated_store, test_key, test_version};
use serde_json::json;
use store::{
    Fenced, InstanceOutcome, InstanceStatus, NewInstance, NewTenant, StoreError, Suspension, VersionSelector,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_created_whole_and_audited_or_not_at_all() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let auth = store.tenant_auth("acme").await.unwrap().expect("acme's keys");
    assert_eq!(
        (auth.audience.as_str(), auth.keys.clone()),
        ("kiln:acme", vec![test_key("k1")])
    );
    let entries = store.audit_entries(Some("acme"), None, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].action, "tenant.create");
    // A kid the tenant has is a conflict, a tenant that does not exist gets no key; another
    // kid is added and removed.
    assert!(matches!(
        store.add_tenant_key("acme", &test_key("k1")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!store.add_tenant_key("nobody", &test_key("k1")).await.unwrap());
    assert!(store.add_tenant_key("acme", &test_key("k2")).await.unwrap());
    assert!(store.delete_tenant_key("acme", "k2").await.unwrap());
    assert!(!store.delete_tenant_key("acme", "k2").await.unwrap());
    // A name taken is a conflict, and the failed create leaves no second audit entry.
    let again = NewTenant {
        name: "acme".into(),
        issuer: "other".into(),
        audience: "other".into(),
        keys: vec![test_key("k9")],
    };
    assert!(matches!(
        store.create_tenant(&again, "operator").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.audit_entries(Some("acme"), None, 10).await.unwrap().len(),
        1
    );
    assert_eq!(store.tenant_auth("acme").await.unwrap().unwrap().issuer, "kiln");
    assert!(store.tenant_auth("nobody").await.unwrap().is_none());
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_number_in_turn_and_resolve_by_current_number_or_digest() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let uploads = (0..8).map(|n| {
        let store = store.clone();
        async move {
            let digest = format!("{n:064x}");
            store
                .insert_version(&test_version("acme", "echo", &digest), Some(b"\x7fELF"))
                .await
        }
    });
    let mut numbers: Vec<i32> = futures_join(uploads)
        .await
        .into_iter()
        .map(|v| v.unwrap().version)
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=8).collect::<Vec<_>>(),
        "concurrent uploads numbered in turn"
    );
    let current = store
        .resolve_version("acme", "echo", &VersionSelector::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .function("acme", "echo")
            .await
            .unwrap()
            .unwrap()
            .current
            .version,
        current.version
    );
    let third = store
        .resolve_version("acme", "echo", &VersionSelector::Number(3))
        .await
        .unwrap()
        .unwrap();
    let by_digest = store
        .resolve_version("acme", "echo", &VersionSelector::Digest(third.digest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.version, 3);
    assert!(store.set_current_version("acme", "echo", 3).await.unwrap());
    let current = store
        .resolve_version("acme", "echo", &VersionSelector::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version, 3);
    assert!(
        store
            .resolve_version("acme", "echo", &VersionSelector::Number(9))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resolve_version("globex", "echo", &VersionSelector::Current)
            .await
            .unwrap()
            .is_none()
    );
    let digests = store
        .delete_function("acme", "echo")
        .await
        .unwrap()
        .expect("deleted");
    assert_eq!(digests.len(), 8);
    assert!(store.function("acme", "echo").await.unwrap().is_none());
    assert!(store.delete_function("acme", "echo").await.unwrap().is_none());
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_dispatch_is_fenced_and_a_checkpoint_is_stored_once() {
    let database = TestDatabase::create().await;
    let store = migrated_store(&database).await;
    create_test_tenant(&store, "acme").await;
    let new = NewInstance {
        input: json!({"order": 7}),
        idempotency_key: Some("order-7".into()),
        ..durable_function(&store, "acme", "flow").await
    };
    let started = store.start_instance(&new).await.unwrap();
    assert!(started.created);
    let again = store.start_instance(&new).await.unwrap();
    assert!(!again.created, "the idempotency key starts one instance");
    assert_eq!(again.instance.id, started.instance.id);
    let id = started.instance.id.clone();

    let lease = Duration::from_secs(30);
    let first = store
        .claim_instances(std::slice::from_ref(&id), "node-a", lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim_instances(std::slice::from_ref(&id), "node-b", lease)
            .await
            .unwrap()
            .is_empty(),
        "a running instance is not claimed twice"
    );
    let epoch = first[0].epoch;
    let stored = store
        .put_checkpoint(&id, epoch, "charge", &json!("paid"))
        .await
        .unwrap();
    assert_eq!(stored, Ok(json!("paid")));
    // A replay stores nothing new: the first value stands.
    let replayed = store
        .put_checkpoint(&id, epoch, "charge", &json!("paid twice"))
        .await
        .unwrap();
    assert_eq!(replayed, Ok(json!("paid")));

    // The dispatch sleeps; the next claim has a new epoch and the old one is fenced.
    let wake_at = SystemTime::now() + Duration::from_millis(50);
    let slept = store.sleep_instance(&id, epoch, "nap", wake_at).await.unwrap();
    assert!(matches!(slept, Ok(Suspension::Sleeping(_))), "{slept:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = store
        .claim_instances(std::slice::from_ref(&id), "node-b", lease)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0].woke && second[0].epoch > epoch);
    assert_eq!(second[0].checkpoints["charge"], json!("paid"));
    assert_eq!(
        store.put_checkpoint(&id, epoch, "late", &json!(1)).await.unwrap(),
        Err(Fenced)
    );
    let done = InstanceOutcome::Completed(json!({"shipped": true}));
    assert_eq!(
        store.finish_instance(&id, epoch, &done).await.unwrap(),
        Err(Fenced)
    );
    assert_eq!(
        store.finish_instance(&id, second[0].epoch, &done).await.unwrap(),
        Ok(())
    );
    let finished = store.instance("acme", &id).await.unwrap().unwrap();
    assert_eq!(finished.status, InstanceStatus::Completed);
    assert_eq!(finished.output, Some(json!({"shipped": true})));
    assert!(
        store.instance("globex", &id).await.unwrap().is_none(),
        "another tenant sees nothing"
    );
    database.drop().await;
}

/// Runs the futures at once and collects their results in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("a task"));
    }
    results
}
