//! Tokens an attacker makes up cost PostgreSQL at most one query per name made up, however
//! often and however concurrently they are sent, and leave known tenants served (counted in
//! the statements the server itself logs).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use e2e::{Kiln, PrivatePostgres, tenant_secret};
use http::Method;
use tokio::task::JoinSet;

/// A token for `tenant` and `kid`, signed with a secret Kiln never saw.
fn forged(tenant: &str, kid: &str) -> String {
    auth::mint_hs256(
        tenant,
        kid,
        &tenant_secret("attacker"),
        "kiln",
        &format!("kiln:{tenant}"),
        600,
    )
    .unwrap()
}

/// Sends every token to `/fn/{tenant}/echo/instance` (the tenant the token names), 50 at a
/// time; returns the error codes in order.
async fn send_all(kiln: &Arc<Kiln>, tokens: Vec<(String, String)>) -> Vec<String> {
    let mut codes = Vec::with_capacity(tokens.len());
    for batch in tokens.chunks(50) {
        let mut calls = JoinSet::new();
        for (tenant, token) in batch {
            let (kiln, token) = (kiln.clone(), token.clone());
            let path = format!("/fn/{tenant}/echo/instance");
            calls.spawn(async move {
                kiln.request(Method::GET, &path, Some(&token), Bytes::new())
                    .await
                    .error_code()
            });
        }
        codes.extend(calls.join_all().await);
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_cost_one_query_per_made_up_name_and_known_tenants_stay_served() {
    let postgres = PrivatePostgres::start();
    let kiln = Arc::new(Kiln::start_with_database(postgres.url.clone(), None, &[]).await);
    let acme = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&acme, "echo", "").await.status, 201);
    let call = || kiln.request(Method::GET, "/fn/acme/echo/instance", Some(&acme), Bytes::new());
    assert_eq!(call().await.status, 200);

    // 200 at once for one tenant that does not exist: one query.
    let ghost = vec![("ghost".to_owned(), forged("ghost", "k1")); 200];
    let codes = send_all(&kiln, ghost).await;
    assert!(codes.iter().all(|code| code == "unknown_tenant"), "{codes:?}");
    assert_eq!(postgres.statements_with_parameter("ghost"), 1);

    // A known tenant with a made-up key id or a wrong signature: no query beyond the key
    // cache's own refresh (every 2 s; each refresh reads the tenant and its keys).
    let before = postgres.statements_with_parameter("acme");
    let started = Instant::now();
    let known: Vec<_> = (0..200)
        .map(|index| {
            (
                "acme".to_owned(),
                forged("acme", if index % 2 == 0 { "k9" } else { "k1" }),
            )
        })
        .collect();
    let codes = send_all(&kiln, known).await;
    assert!(
        codes
            .iter()
            .all(|code| code == "unknown_key" || code == "invalid_signature"),
        "{codes:?}"
    );
    let refreshes = started.elapsed().as_secs() as usize / 2 + 1;
    let queries = postgres.statements_with_parameter("acme") - before;
    assert!(queries <= 2 * refreshes, "{queries} queries for acme's keys");

    // 1,000 distinct made-up tenants, each sent twice: one query each.
    let names: Vec<String> = (0..1_000).map(|index| format!("made-up-{index}")).collect();
    let flood: Vec<_> = names
        .iter()
        .chain(names.iter())
        .map(|name| (name.clone(), forged(name, "k1")))
        .collect();
    let codes = send_all(&kiln, flood).await;
    assert!(codes.iter().all(|code| code == "unknown_tenant"));
    for name in ["made-up-0", "made-up-500", "made-up-999"] {
        assert_eq!(postgres.statements_with_parameter(name), 1, "{name}");
    }
    assert_eq!(call().await.status, 200, "the known tenant is still served");
    Arc::into_inner(kiln).expect("no call holds kilnd").finish().await;
}
