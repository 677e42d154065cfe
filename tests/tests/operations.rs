//! Running kilnd as an operator would: bad configuration, two nodes on one database, JSON logs.

use bytes::Bytes;
use e2e::{Kiln, kilnd_path};
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
async fn two_nodes_start_at_once_on_one_fresh_database_and_share_it() {
    let first = Kiln::start(&[]).await;
    // The first node migrated; now two more start at the same moment on the same database.
    let (second, third) = tokio::join!(first.start_peer(&[]), first.start_peer(&[]));
    let token = first.create_tenant("acme").await;
    assert_eq!(second.upload_testbed(&token, "shared", "").await.status, 201);
    let reply = third
        .request(
            Method::POST,
            "/fn/acme/shared/echo",
            Some(&token),
            "from the third node",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "from the third node");
    second.finish().await;
    third.finish().await;
    first.finish().await;
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
