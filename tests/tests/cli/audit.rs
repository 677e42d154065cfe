//! `kiln audit`: the tenant's own entries, a page at a time, and with `--admin` the
//! operator's view of everyone's.

use e2e::Kiln;

use crate::{AS_OPERATOR, deploy_echo, logged_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_the_tenants_own_entries_and_operators_see_everyones() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;
    let url = kiln.url.as_str();

    // Entries to see: acme's tenant.create, function.upload and function.set_current, and
    // beta's tenant.create.
    deploy_echo(&cli).await;
    cli.run(&["functions", "rollback", "echo", "1"], &[])
        .await
        .expect(0, "rollback");
    cli.run(&["--url", url, "tenant", "create", "beta"], &AS_OPERATOR)
        .await
        .expect(0, "tenant create beta");

    let audit = cli.run(&["--json", "audit"], &[]).await.expect(0, "audit").json();
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap(),
                entry["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(actions.contains(&("function.upload", "echo")), "{audit}");
    assert!(actions.contains(&("function.set_current", "echo")), "{audit}");
    assert_eq!(audit["entries"][0]["tenant"], "acme", "{audit}");
    let table = cli
        .run(&["audit", "--limit", "1"], &[])
        .await
        .expect(0, "audit table");
    assert_eq!(table.stdout.lines().count(), 2, "{}", table.stdout);
    assert!(
        table.stderr.starts_with("next page: add --cursor "),
        "{}",
        table.stderr
    );
    let everyone = cli
        .run(&["--json", "audit", "--admin", "--tenant", "beta"], &AS_OPERATOR)
        .await
        .expect(0, "audit --admin")
        .json();
    assert_eq!(everyone["entries"][0]["action"], "tenant.create", "{everyone}");
    assert_eq!(everyone["entries"][0]["target"], "beta", "{everyone}");
    cli.run(&["audit", "--tenant", "beta"], &[])
        .await
        .expect(2, "--tenant without --admin");

    kiln.finish().await;
}
