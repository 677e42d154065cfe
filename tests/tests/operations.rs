//! Running kilnd as an operator would: bad configuration, two nodes on one database, JSON logs.

use bytes::Bytes;
use e2e::{Kiln, TestDatabase, kilnd_path};
use http::Method;

#[test]
fn bad_configuration_prints_one_line_and_exits_2() {
    let output = std::process::Command::new(kilnd_path())
        .env_clear()
        .env("DATABASE_URL", "postgres://kiln@127.0.0.1/kiln")
        .env("KILN_PORT", "seventy")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("KILN_PORT must be a port number"), "{stderr}");

    let missing = std::process::Command::new(kilnd_path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("DATABASE_URL is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_migrate_one_fresh_database_at_once_and_share_it() {
    let database = TestDatabase::create().await;
    let url = database.url.clone();
    let (first, second) = tokio::join!(
        Kiln::start_with_database(url.clone(), Some(database), &[]),
        Kiln::start_with_database(url, None, &[])
    );
    let token = first.create_tenant("acme").await;
    assert_eq!(first.upload_testbed(&token, "shared", "").await.status, 201);
    // The second node has never seen the executable: it fetches it from PostgreSQL.
    let reply = second
        .request(
            Method::POST,
            "/fn/acme/shared/echo",
            Some(&token),
            "from the second node",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "from the second node");
    second.finish().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_create_tenants_and_mint_tokens_from_the_command_line() {
    let database = TestDatabase::create().await;
    let url = database.url.clone();
    let created = std::process::Command::new(kilnd_path())
        .args(["tenant", "create", "cli-made"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let tenant: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(tenant["tenant"], "cli-made");
    let secret = tenant["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64, "a 256-bit random secret, hex-encoded");
    let minted = std::process::Command::new(kilnd_path())
        .args([
            "token", "mint", "--tenant", "cli-made", "--secret", secret, "--ttl", "60",
        ])
        .output()
        .unwrap();
    assert!(minted.status.success());
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let kiln = Kiln::start_with_database(url, Some(database), &[]).await;
    let listed = kiln
        .request(Method::GET, "/v1/functions", Some(&token), Bytes::new())
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    // The command line goes through the same tenant service as the admin API: audited.
    let audit = kiln
        .request(Method::GET, "/v1/audit", Some(&token), Bytes::new())
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text());
    let entries = audit.json()["entries"].clone();
    let created = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["action"] == "tenant.create")
        .unwrap_or_else(|| panic!("no tenant.create entry: {entries}"));
    assert_eq!(created["actor"], "admin (kilnd tenant create)");
    assert_eq!(created["details"]["kids"], serde_json::json!(["k1"]));
    let again = std::process::Command::new(kilnd_path())
        .args(["tenant", "create", "cli-made"])
        .env("DATABASE_URL", &kiln.database_url)
        .output()
        .unwrap();
    assert!(!again.status.success(), "creating a tenant twice must fail");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_one_span_per_request() {
    let kiln = Kiln::start(&[("KILN_LOG_FORMAT", "json")]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    assert_eq!(
        kiln.request(Method::POST, "/fn/acme/echo/echo", Some(&token), Bytes::new())
            .await
            .status,
        200
    );
    let log = kiln.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}")))
        .collect();
    let done = lines
        .iter()
        .find(|line| {
            line["fields"]["message"] == "request done" && line["span"]["path"] == "/fn/acme/echo/echo"
        })
        .unwrap_or_else(|| panic!("no request line for the invocation in:\n{log}"));
    assert_eq!(done["span"]["tenant"], "acme");
    assert_eq!(done["span"]["status"], 200);
    assert_eq!(done["span"]["version"], 1);
    assert_eq!(done["span"]["cold"], true);
    assert!(done["span"]["duration_ms"].as_f64().is_some());
    kiln.finish().await;
}
