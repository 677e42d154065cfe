//! `kiln logs`: what a function wrote, as lines or NDJSON, the last few, followed as it
//! comes, and one instance's across its attempts.

use std::time::Duration;

use e2e::Kiln;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::{Cli, deploy_echo, logged_in, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_come_as_lines_or_ndjson_followed_and_per_instance() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;
    deploy_echo(&cli).await;

    let logged = cli
        .run(&["invoke", "echo", "--path", "/log?lines=2&tag=cli"], &[])
        .await
        .expect(0, "invoke /log");
    assert_eq!(logged.stdout, "logged 2");
    let lines = poll_logs(&cli, &["--json", "logs", "echo"], |lines| {
        lines
            .iter()
            .filter(|line| line["line"].as_str().is_some_and(|text| text.starts_with("cli ")))
            .count()
            == 3
    })
    .await;
    let err = lines
        .iter()
        .find(|line| line["line"] == "cli err")
        .expect("the stderr line");
    assert_eq!(err["stream"], "stderr", "{lines:?}");
    assert!(err["invocation"].is_string(), "{lines:?}");
    let last = cli
        .run(&["logs", "echo", "--lines", "1"], &[])
        .await
        .expect(0, "logs --lines 1");
    assert_eq!(last.stdout.lines().count(), 1, "{}", last.stdout);
    assert!(last.stdout.contains(" cli "), "{}", last.stdout);

    // Followed: the stored line first, then what comes.
    let mut follow = cli
        .command(&["logs", "echo", "--follow", "--lines", "1"], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut followed = tokio::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), followed.next_line())
        .await
        .expect("the stored line comes first")
        .unwrap();
    assert!(first.is_some_and(|line| line.contains(" cli ")));
    cli.run(&["invoke", "echo", "--path", "/log?lines=1&tag=live"], &[])
        .await
        .expect(0, "invoke /log while following");
    let live = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = followed.next_line().await.unwrap() {
            if line.ends_with("live out 0") {
                return line;
            }
        }
        panic!("the followed stream ended");
    })
    .await
    .expect("a new line while following");
    assert!(live.contains(" stdout "), "{live}");
    follow.kill().await.unwrap();

    // One instance's lines, across the attempt that crashed and the one that completed.
    let crashing = cli
        .run(
            &[
                "--json",
                "instances",
                "start",
                "echo",
                "--input",
                r#"{"scenario": "crash", "crash": true}"#,
            ],
            &[],
        )
        .await
        .expect(0, "start an instance that crashes once")
        .json();
    let crashing = crashing["id"].as_str().unwrap().to_owned();
    let recovered = wait_for(&cli, &crashing, |instance| instance["status"] == "completed").await;
    assert_eq!(recovered["output"]["attempt"], 2, "{recovered}");
    let instance_lines = poll_logs(&cli, &["--json", "logs", &crashing], |lines| !lines.is_empty()).await;
    assert!(
        instance_lines
            .iter()
            .all(|line| line["instance"] == crashing.as_str()),
        "{instance_lines:?}"
    );
    assert!(
        instance_lines
            .iter()
            .any(|line| line["line"].as_str().unwrap().contains("crash scenario")),
        "{instance_lines:?}"
    );

    kiln.finish().await;
}

/// Runs a `kiln --json logs ...` command until its lines satisfy `done` (at most 10 s).
async fn poll_logs(cli: &Cli, args: &[&str], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = cli.run(args, &[]).await.expect(0, "logs");
        let lines: Vec<Value> = run
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        if done(&lines) {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the logs never got there: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
