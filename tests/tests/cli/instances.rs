//! `kiln instances`: durable instances started once per idempotency key, signalled, shown,
//! listed and their events; a status filter Kiln does not know is refused.

use e2e::Kiln;

use crate::{deploy_echo, logged_in, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_once_per_key_and_completes_when_signalled() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;
    deploy_echo(&cli).await;

    // Start one that waits for an event, signal it, see it complete.
    let start = [
        "instances",
        "start",
        "echo",
        "--input",
        r#"{"scenario": "wait", "event": "go"}"#,
        "--idempotency-key",
        "k-1",
    ];
    let started = cli
        .run(&[&["--json"][..], &start].concat(), &[])
        .await
        .expect(0, "instances start")
        .json();
    let id = started["id"].as_str().expect("instance id").to_owned();
    assert_eq!(started["function"], "echo");
    assert_eq!(started["idempotency_key"], "k-1");
    let again = cli
        .run(&start, &[])
        .await
        .expect(0, "instances start again with the same key");
    assert_eq!(
        again.stdout.split_whitespace().take(3).collect::<Vec<_>>(),
        ["already", "started", id.as_str()]
    );
    let waiting = wait_for(&cli, &id, |instance| instance["waiting_for"] == "go").await;
    assert_eq!(waiting["status"], "sleeping", "{waiting}");
    let signalled = cli
        .run(
            &["instances", "signal", &id, "go", "--payload", r#"{"ok": true}"#],
            &[],
        )
        .await
        .expect(0, "instances signal");
    assert!(
        signalled.stdout.starts_with(&format!("sent go to {id}")),
        "{}",
        signalled.stdout
    );
    let done = wait_for(&cli, &id, |instance| instance["status"] == "completed").await;
    assert_eq!(
        done["output"],
        serde_json::json!({"event": {"ok": true}, "timed_out": false})
    );
    let shown = cli
        .run(&["instances", "show", &id], &[])
        .await
        .expect(0, "instances show");
    assert!(
        shown.stdout.contains("status:          completed"),
        "{}",
        shown.stdout
    );
    let listed = cli
        .run(
            &[
                "--json",
                "instances",
                "list",
                "--function",
                "echo",
                "--status",
                "completed",
            ],
            &[],
        )
        .await
        .expect(0, "instances list")
        .json();
    assert_eq!(listed["instances"][0]["id"], id.as_str(), "{listed}");
    let events = cli
        .run(&["--json", "instances", "events", &id], &[])
        .await
        .expect(0, "instances events")
        .json();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"created"), "{events}");
    assert!(
        kinds.contains(&"signal") && kinds.last() == Some(&"completed"),
        "{events}"
    );
    cli.run(&["instances", "list", "--status", "asleep"], &[])
        .await
        .refused("invalid_status", "a status Kiln does not know");

    kiln.finish().await;
}
