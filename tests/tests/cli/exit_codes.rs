//! The exit codes: refusals exit 1 with Kiln's error code, the environment beating the
//! config file; local problems exit 3; misuse exits 2.

use e2e::{Kiln, tenant_secret};

use crate::logged_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_1_with_kilns_error_code() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;

    // A token signed with the wrong secret, in KILN_TOKEN over the config file's, then as
    // --token for an invocation.
    let wrong = cli
        .run(
            &[
                "token",
                "mint",
                "--tenant",
                "acme",
                "--secret",
                &tenant_secret("mallory"),
            ],
            &[],
        )
        .await
        .expect(0, "mint with a wrong secret")
        .stdout
        .trim()
        .to_owned();
    let refused = cli
        .run(&["functions", "list"], &[("KILN_TOKEN", &wrong)])
        .await
        .refused("invalid_signature", "a token signed with the wrong secret");
    assert_eq!(refused.stdout, "");
    cli.run(&["--token", &wrong, "invoke", "echo", "--path", "/echo"], &[])
        .await
        .refused("invalid_signature", "an invocation with the wrong secret");

    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_problems_exit_3_and_misuse_exits_2() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable_url = format!("http://127.0.0.1:{closed_port}");
    let unreachable = cli
        .run(&["--url", &unreachable_url, "functions", "list"], &[])
        .await
        .expect(3, "an unreachable server");
    assert!(
        unreachable
            .stderr
            .starts_with(&format!("error: cannot reach {unreachable_url}")),
        "{}",
        unreachable.stderr
    );
    let broken_config = cli.home.join("broken.json");
    std::fs::write(&broken_config, "{not json").unwrap();
    let broken = cli
        .run(
            &["functions", "list"],
            &[("KILN_CONFIG", broken_config.to_str().unwrap())],
        )
        .await
        .expect(3, "a broken config file");
    assert!(
        broken.stderr.contains("is not a valid kiln config"),
        "{}",
        broken.stderr
    );
    let no_file = cli
        .run(&["deploy", "other", "/nonexistent/executable"], &[])
        .await
        .expect(3, "a missing executable");
    assert!(
        no_file
            .stderr
            .starts_with("error: cannot read /nonexistent/executable"),
        "{}",
        no_file.stderr
    );
    cli.run(&["deploy"], &[]).await.expect(2, "a usage error");

    kiln.finish().await;
}
