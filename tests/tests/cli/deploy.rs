//! `kiln login`, `kiln deploy`, `kiln invoke` and `kiln functions`: the config file login
//! writes; executables and image archives deployed, shown and listed; invocations; versions,
//! rollback and delete.

use std::os::unix::fs::PermissionsExt;

use e2e::{Kiln, testbed_path};
use serde_json::Value;

use crate::{Cli, create_acme, deploy_echo, logged_in, mint_acme_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_a_private_config_file() {
    let kiln = Kiln::start(&[]).await;
    let cli = Cli::new();
    let url = kiln.url.as_str();
    create_acme(&cli, url).await;

    let token = mint_acme_token(&cli).await;
    let login = cli
        .run(&["login", "--url", url, "--token", &token], &[])
        .await
        .expect(0, "login");
    assert!(login.stdout.contains("as tenant acme"), "{}", login.stdout);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(cli.config_file()).unwrap()).unwrap();
    assert_eq!(saved["url"], url);
    assert_eq!(saved["token"], token.as_str());
    let mode = std::fs::metadata(cli.config_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_functions_are_shown_listed_rolled_back_and_deleted() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;

    // Deploy the testbed with settings; the digest printed is the one stored.
    let testbed = testbed_path();
    let testbed = testbed.to_str().unwrap();
    let deployed = cli
        .run(
            &[
                "deploy",
                "echo",
                testbed,
                "--set",
                "memory_mb=64",
                "--set",
                "env=GREETING=hi there",
            ],
            &[],
        )
        .await
        .expect(0, "deploy");
    assert!(
        deployed.stdout.starts_with("deployed echo version 1\n"),
        "{}",
        deployed.stdout
    );
    let digest = deployed
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("digest "))
        .expect("a digest line")
        .to_owned();
    assert_eq!(digest.len(), 64, "{digest}");
    let shown = cli
        .run(&["--json", "functions", "show", "echo"], &[])
        .await
        .expect(0, "functions show")
        .json();
    assert_eq!(shown["digest"], digest.as_str());
    assert_eq!(shown["settings"]["memory_mb"], 64);
    assert_eq!(shown["settings"]["env"]["GREETING"], "hi there");
    let listed = cli
        .run(&["functions", "list", "--json"], &[])
        .await
        .expect(0, "functions list")
        .json();
    assert_eq!(listed["functions"][0]["name"], "echo", "{listed}");
    assert_eq!(listed["functions"][0]["current_version"], 1, "{listed}");
    let table = cli
        .run(&["functions", "list"], &[])
        .await
        .expect(0, "functions list table");
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);
    assert!(table.stdout.contains(&digest[..12]), "{}", table.stdout);

    // A second version, then a rollback to the first.
    cli.run(&["deploy", "echo", testbed], &[])
        .await
        .expect(0, "deploy version 2");
    let rolled = cli
        .run(&["functions", "rollback", "echo", "1"], &[])
        .await
        .expect(0, "rollback");
    assert_eq!(rolled.stdout, "echo now runs version 1\n");
    cli.run(&["functions", "rollback", "echo", "9"], &[])
        .await
        .refused("not_found", "rollback to a version that does not exist");

    // An image archive deploys the same way; off a terminal, no progress bar.
    let image = e2e::image_path("python-hello", "oci");
    let deployed_image = cli
        .run(
            &[
                "--json",
                "deploy",
                "py",
                image.to_str().unwrap(),
                "--set",
                "image=python-hello",
            ],
            &[],
        )
        .await
        .expect(0, "deploy an image");
    let uploaded = deployed_image.json();
    assert_eq!(uploaded["kind"], "image", "{uploaded}");
    assert_eq!(
        uploaded["image"]["reference"], "python-hello:latest",
        "the archive's own name"
    );
    assert!(
        !deployed_image.stderr.contains("uploading"),
        "{}",
        deployed_image.stderr
    );
    cli.run(&["functions", "delete", "py"], &[])
        .await
        .expect(0, "delete the image function");

    // Delete: gone from the list, and invoking it is a 404.
    let deleted = cli
        .run(&["functions", "delete", "echo"], &[])
        .await
        .expect(0, "delete");
    assert_eq!(deleted.stdout, "deleted echo\n");
    let after = cli
        .run(&["--json", "functions", "list"], &[])
        .await
        .expect(0, "list after delete")
        .json();
    assert_eq!(after["functions"], serde_json::json!([]));
    cli.run(&["invoke", "echo"], &[])
        .await
        .refused("not_found", "invoke a deleted function");

    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_prints_the_body_and_with_v_the_status() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;
    deploy_echo(&cli).await;

    // The body comes back on stdout, the status on stderr with -v.
    let echoed = cli
        .run(
            &[
                "-v",
                "invoke",
                "echo",
                "--path",
                "/echo/deep?x=1",
                "--data",
                "hello body",
                "-H",
                "x-trace: t-1",
            ],
            &[],
        )
        .await
        .expect(0, "invoke echo");
    assert_eq!(echoed.stdout, "hello body");
    assert!(echoed.stderr.starts_with("HTTP 200\n"), "{}", echoed.stderr);
    assert!(echoed.stderr.contains("x-method: POST"), "{}", echoed.stderr);
    assert!(echoed.stderr.contains("x-query: x=1"), "{}", echoed.stderr);
    assert!(echoed.stderr.contains("x-trace: t-1"), "{}", echoed.stderr);
    let answer = cli
        .run(&["--json", "invoke", "echo", "--path", "/echo", "-X", "put"], &[])
        .await
        .expect(0, "invoke --json")
        .json();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["headers"]["x-method"], "PUT");
    assert_eq!(answer["body"], "");
    let teapot = cli
        .run(&["invoke", "echo", "--path", "/status?code=418"], &[])
        .await
        .expect(1, "a non-2xx answer");
    assert_eq!(teapot.stdout, "status 418");
    assert!(
        teapot.stderr.contains("error: the function answered 418"),
        "{}",
        teapot.stderr
    );

    kiln.finish().await;
}
