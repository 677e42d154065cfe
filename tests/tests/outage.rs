//! Static stability: with its PostgreSQL stopped, or frozen mid-connection, kilnd keeps
//! serving known tenants' functions from what it last read, answers what needs the database
//! with `503` and `Retry-After`, never makes a call wait past the database timeout, and
//! serves the first calls after the database is back.

use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::{ADMIN_TOKEN, Kiln, PrivatePostgres, sample};
use http::Method;

const WEBHOOK_SECRET: &str = "an-outage-webhook-secret";
/// kilnd's database timeout in these tests; a call may take it once per lookup it retries.
const DB_TIMEOUT_MS: u64 = 1_000;

/// Known tenant `acme` with a warm function `echo` and a webhook function `hook`; `beta`
/// exists but was never used on this node.
struct Setup {
    kiln: Kiln,
    acme: String,
    beta: String,
}

async fn setup(postgres: &PrivatePostgres) -> Setup {
    let timeout = DB_TIMEOUT_MS.to_string();
    let kiln = Kiln::start_with_database(
        postgres.url.clone(),
        None,
        &[
            ("KILN_DB_TIMEOUT_MS", &timeout),
            ("KILN_REQUEST_TIMEOUT_MS", "4000"),
        ],
    )
    .await;
    let acme = kiln.create_tenant("acme").await;
    let beta = kiln.create_tenant("beta").await;
    assert_eq!(kiln.upload_testbed(&acme, "echo", "").await.status, 201);
    assert_eq!(kiln.upload_testbed(&acme, "hook", "").await.status, 201);
    let settings = format!(r#"{{"scheme":"github","secret":"{WEBHOOK_SECRET}"}}"#);
    let set = kiln
        .request(Method::PUT, "/v1/functions/hook/webhook", Some(&acme), settings)
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let setup = Setup { kiln, acme, beta };
    assert_eq!(call(&setup).await, 200);
    assert_eq!(deliver(&setup).await, 200);
    setup
}

/// One warm call with a token.
async fn call(setup: &Setup) -> u16 {
    setup
        .kiln
        .request(
            Method::GET,
            "/fn/acme/echo/instance",
            Some(&setup.acme),
            Bytes::new(),
        )
        .await
        .status
}

/// One signed webhook delivery.
async fn deliver(setup: &Setup) -> u16 {
    let body = r#"{"action":"opened"}"#;
    let signature = format!(
        "sha256={}",
        auth::sign_hex(WEBHOOK_SECRET.as_bytes(), &[body.as_bytes()])
    );
    setup
        .kiln
        .request_with(
            Method::POST,
            "/fn/acme/hook/echo",
            &[("x-hub-signature-256", &signature)],
            body,
        )
        .await
        .status
}

/// Calls and deliveries made during `span`, in turn, by one client.
#[derive(Default)]
struct Tally {
    sent: usize,
    succeeded: usize,
    slowest: Duration,
    failures: Vec<u16>,
}

async fn keep_calling(setup: &Setup, span: Duration) -> Tally {
    let mut tally = Tally::default();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let started = Instant::now();
        let status = match tally.sent % 4 {
            3 => deliver(setup).await,
            _ => call(setup).await,
        };
        tally.slowest = tally.slowest.max(started.elapsed());
        tally.sent += 1;
        match status {
            200 => tally.succeeded += 1,
            other => tally.failures.push(other),
        }
    }
    tally
}

/// Four clients at once for `span`; asserts at least 99 % succeeded and none waited longer
/// than `slowest_allowed`.
async fn calls_succeed_throughout(setup: &Setup, span: Duration, slowest_allowed: Duration) {
    let (a, b, c, d) = tokio::join!(
        keep_calling(setup, span),
        keep_calling(setup, span),
        keep_calling(setup, span),
        keep_calling(setup, span)
    );
    let tallies = [a, b, c, d];
    let sent: usize = tallies.iter().map(|tally| tally.sent).sum();
    let succeeded: usize = tallies.iter().map(|tally| tally.succeeded).sum();
    let slowest = tallies.iter().map(|tally| tally.slowest).max().unwrap();
    let mut failures = std::collections::BTreeMap::<u16, usize>::new();
    for status in tallies.iter().flat_map(|tally| &tally.failures) {
        *failures.entry(*status).or_default() += 1;
    }
    eprintln!("{succeeded} of {sent} calls succeeded, the slowest took {slowest:?}");
    assert!(sent >= 100, "only {sent} calls were made");
    assert!(
        succeeded * 100 >= sent * 99,
        "{succeeded} of {sent} calls succeeded; failures by status: {failures:?}"
    );
    assert!(slowest <= slowest_allowed, "a call took {slowest:?}");
}

async fn metrics(kiln: &Kiln) -> String {
    kiln.request(Method::GET, "/metrics", None, Bytes::new())
        .await
        .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_functions_keep_serving_while_postgresql_is_stopped() {
    let postgres = PrivatePostgres::start();
    let setup = setup(&postgres).await;
    let kiln = &setup.kiln;
    postgres.stop();

    calls_succeed_throughout(&setup, Duration::from_secs(4), Duration::from_secs(2)).await;
    let unknown = kiln
        .request(
            Method::GET,
            "/fn/beta/echo/instance",
            Some(&setup.beta),
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (
            unknown.status,
            unknown.error_code().as_str(),
            unknown.header("retry-after")
        ),
        (503, "auth_unavailable", Some("1")),
        "a tenant this node never read cannot be checked"
    );
    let upload = kiln.upload_testbed(&setup.acme, "another", "").await;
    assert_eq!(
        (
            upload.status,
            upload.error_code().as_str(),
            upload.header("retry-after")
        ),
        (503, "database_unavailable", Some("1")),
        "{}",
        upload.text()
    );
    let tenants = kiln
        .request(Method::GET, "/v1/admin/tenants", Some(ADMIN_TOKEN), Bytes::new())
        .await;
    assert_eq!(
        (tenants.status, tenants.error_code().as_str()),
        (503, "database_unavailable")
    );
    let text = metrics(kiln).await;
    for cache in ["tenant_keys", "functions", "webhooks"] {
        let stale = sample(
            &text,
            &format!("kiln_cache_lookups_total{{cache=\"{cache}\",outcome=\"stale\"}}"),
        );
        assert!(stale > 0.0, "no stale {cache} lookup counted:\n{text}");
    }
    assert!(
        sample(
            &text,
            "kiln_invocations_total{tenant=\"acme\",function=\"echo\",status=\"200\"}"
        ) > 100.0,
        "invocations are still counted during the outage"
    );

    postgres.start_again();
    assert_eq!(call(&setup).await, 200, "the first call after PostgreSQL returns");
    let upload = kiln.upload_testbed(&setup.acme, "another", "").await;
    assert_eq!(
        upload.status,
        201,
        "the first upload after PostgreSQL returns: {}",
        upload.text()
    );
    let beta = kiln
        .request(Method::GET, "/v1/functions", Some(&setup.beta), Bytes::new())
        .await;
    assert_eq!(beta.status, 200, "{}", beta.text());
    setup.kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgresql_makes_no_call_wait_past_the_database_timeout() {
    let postgres = PrivatePostgres::start();
    let setup = setup(&postgres).await;
    let kiln = &setup.kiln;
    // Connections in the pool stay open to a server that no longer answers.
    postgres.freeze();

    // The first lookup to find it frozen waits out the timeout; the rest answer from what is known.
    let bound = Duration::from_millis(DB_TIMEOUT_MS + 1_000);
    calls_succeed_throughout(&setup, Duration::from_secs(4), bound).await;
    let started = Instant::now();
    let listing = kiln
        .request(Method::GET, "/v1/functions", Some(&setup.acme), Bytes::new())
        .await;
    assert!(
        matches!(listing.status, 503 | 408) && started.elapsed() < Duration::from_secs(5),
        "a management call answered {} after {:?}",
        listing.status,
        started.elapsed()
    );

    postgres.thaw();
    calls_succeed_throughout(&setup, Duration::from_secs(2), Duration::from_secs(1)).await;
    let upload = kiln.upload_testbed(&setup.acme, "another", "").await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    setup.kiln.finish().await;
}
