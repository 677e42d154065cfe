//! `kiln tenant` and `kiln token`: operators create and list tenants and add and remove their
//! keys (a secret, or an identity provider's public key from a file); tokens minted locally.

use e2e::{Kiln, tenant_secret};

use crate::{AS_OPERATOR, Cli, create_acme, logged_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_create_and_list_tenants_whose_minted_tokens_work_at_once() {
    let kiln = Kiln::start(&[]).await;
    let cli = Cli::new();
    let url = kiln.url.as_str();

    // A tenant with a given secret, and one with a generated secret.
    let secret = tenant_secret("acme");
    let created = create_acme(&cli, url).await;
    assert!(
        created.stdout.contains("created tenant acme"),
        "{}",
        created.stdout
    );
    assert!(
        created.stdout.contains(&format!("secret {secret}")),
        "{}",
        created.stdout
    );
    let generated = cli
        .run(
            &["--url", url, "--json", "tenant", "create", "beta"],
            &AS_OPERATOR,
        )
        .await
        .expect(0, "tenant create with a generated secret")
        .json();
    let beta_secret = generated["secret"].as_str().expect("secret").to_owned();
    assert_eq!(beta_secret.len(), 64, "{generated}");
    assert_eq!(generated["audience"], "kiln:beta");
    let tenants = cli
        .run(&["--url", url, "--json", "tenant", "list"], &AS_OPERATOR)
        .await
        .expect(0, "tenant list")
        .json();
    let names: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| tenant["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{tenants}");
    assert!(names.contains(&"acme") && names.contains(&"beta"), "{tenants}");
    cli.run(
        &["--url", url, "tenant", "list"],
        &[("KILN_ADMIN_TOKEN", "wrong")],
    )
    .await
    .refused("invalid_admin_token", "tenant list with a wrong admin token");

    // A token minted locally for the generated secret works at once.
    let beta_token = cli
        .run(
            &["token", "mint", "--tenant", "beta", "--secret", &beta_secret],
            &[],
        )
        .await
        .expect(0, "token mint for beta")
        .stdout
        .trim()
        .to_owned();
    let empty = cli
        .run(
            &[
                "--url",
                url,
                "--token",
                &beta_token,
                "--json",
                "functions",
                "list",
            ],
            &[],
        )
        .await
        .expect(0, "beta lists its functions")
        .json();
    assert_eq!(empty["functions"], serde_json::json!([]));

    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_key_works_until_it_is_removed() {
    let kiln = Kiln::start(&[]).await;
    let cli = logged_in(&kiln).await;
    let url = kiln.url.as_str();

    let second_secret = tenant_secret("acme-second");
    cli.run(
        &[
            "--url",
            url,
            "tenant",
            "keys",
            "add",
            "acme",
            "--kid",
            "k2",
            "--secret",
            &second_secret,
        ],
        &AS_OPERATOR,
    )
    .await
    .expect(0, "keys add");
    let second_token = cli
        .run(
            &[
                "token",
                "mint",
                "--tenant",
                "acme",
                "--secret",
                &second_secret,
                "--kid",
                "k2",
            ],
            &[],
        )
        .await
        .expect(0, "mint with k2")
        .stdout
        .trim()
        .to_owned();
    cli.run(&["--token", &second_token, "functions", "list"], &[])
        .await
        .expect(0, "k2 works");
    cli.run(
        &["--url", url, "tenant", "keys", "remove", "acme", "k2"],
        &AS_OPERATOR,
    )
    .await
    .expect(0, "keys remove");
    cli.run(&["--token", &second_token, "functions", "list"], &[])
        .await
        .refused("unknown_key", "k2 removed");

    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_from_a_file_is_added_with_its_algorithm() {
    let kiln = Kiln::start(&[]).await;
    let cli = Cli::new();
    let url = kiln.url.as_str();
    create_acme(&cli, url).await;

    // An identity provider's ES256 key.
    let public_key = cli.home.join("idp.pub");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkey -pubout -out \"$1\"")
        .arg("sh")
        .arg(&public_key)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl could not make an EC key");
    let public_key = public_key.to_str().unwrap();
    let add_public_key = |kid: &'static str, algorithm: &'static str| {
        let args = [
            "--url",
            url,
            "tenant",
            "keys",
            "add",
            "acme",
            "--kid",
            kid,
            "--public-key-file",
            public_key,
            "--algorithm",
            algorithm,
        ];
        let cli = &cli;
        async move { cli.run(&args, &AS_OPERATOR).await }
    };
    let added = add_public_key("idp", "ES256")
        .await
        .expect(0, "keys add --public-key-file");
    assert_eq!(added.stdout, "added key idp (ES256) to acme\n");
    let listed = cli
        .run(&["--url", url, "--json", "tenant", "list"], &AS_OPERATOR)
        .await
        .expect(0, "tenant list");
    assert!(listed.stdout.contains(r#""idp""#), "{}", listed.stdout);
    add_public_key("idp2", "RS256")
        .await
        .refused("invalid_key", "an EC key as RS256");

    kiln.finish().await;
}
