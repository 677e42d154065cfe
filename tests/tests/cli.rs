//! The `kiln` command line against a real kilnd: tenants, tokens, login, deploy, invoke,
//! functions, instances and signals, with its exit codes (0, 1 refused, 2 usage, 3 local).
//!
//! The binary is `KILN_CLI_BIN` (default: this workspace's `target/debug/kiln`).

use std::path::PathBuf;
use std::time::Duration;

use e2e::{ADMIN_TOKEN, Kiln, kiln_cli_path, tenant_secret, testbed_path};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// What one run of `kiln` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|_| panic!("not JSON: {}\nstderr: {}", self.stdout, self.stderr))
    }

    fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `kiln` with its own config folder and no KILN_* variables but those given.
struct Cli {
    home: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let home = std::env::temp_dir().join(format!("kiln-cli-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        Cli { home }
    }

    fn config_file(&self) -> PathBuf {
        self.home.join("config/kiln/config.json")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(kiln_cli_path());
        command
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for variable in ["KILN_URL", "KILN_TOKEN", "KILN_ADMIN_TOKEN", "KILN_CONFIG"] {
            command.env_remove(variable);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args, env);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("kiln {args:?} did not finish within 120 s"))
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", kiln_cli_path().display()));
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_and_calls_functions_end_to_end() {
    let kiln = Kiln::start(&[]).await;
    let cli = Cli::new();
    let url = kiln.url.as_str();
    let admin = [("KILN_ADMIN_TOKEN", ADMIN_TOKEN)];

    // Operators: a tenant with a given secret, and one with a generated secret.
    let secret = tenant_secret("acme");
    let created = cli
        .run(
            &["--url", url, "tenant", "create", "acme", "--secret", &secret],
            &admin,
        )
        .await
        .expect(0, "tenant create");
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
        .run(&["--url", url, "--json", "tenant", "create", "beta"], &admin)
        .await
        .expect(0, "tenant create with a generated secret")
        .json();
    let beta_secret = generated["secret"].as_str().expect("secret").to_owned();
    assert_eq!(beta_secret.len(), 64, "{generated}");
    assert_eq!(generated["audience"], "kiln:beta");
    let tenants = cli
        .run(&["--url", url, "--json", "tenant", "list"], &admin)
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
    let refused = cli
        .run(
            &["--url", url, "tenant", "list"],
            &[("KILN_ADMIN_TOKEN", "wrong")],
        )
        .await
        .expect(1, "tenant list with a wrong admin token");
    assert!(
        refused.stderr.starts_with("error: invalid_admin_token: "),
        "{}",
        refused.stderr
    );

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

    // Log in as acme: the config file is written, private, and used from then on.
    let token = cli
        .run(
            &[
                "token", "mint", "--tenant", "acme", "--secret", &secret, "--ttl", "600",
            ],
            &[],
        )
        .await
        .expect(0, "token mint")
        .stdout
        .trim()
        .to_owned();
    let login = cli
        .run(&["login", "--url", url, "--token", &token], &[])
        .await
        .expect(0, "login");
    assert!(login.stdout.contains("as tenant acme"), "{}", login.stdout);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(cli.config_file()).unwrap()).unwrap();
    assert_eq!(saved["url"], url);
    assert_eq!(saved["token"], token.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cli.config_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

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

    // Invoke: the body comes back on stdout, the status on stderr with -v.
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

    // A second version, then a rollback to the first.
    cli.run(&["deploy", "echo", testbed], &[])
        .await
        .expect(0, "deploy version 2");

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
    let rolled = cli
        .run(&["functions", "rollback", "echo", "1"], &[])
        .await
        .expect(0, "rollback");
    assert_eq!(rolled.stdout, "echo now runs version 1\n");
    let missing_version = cli
        .run(&["functions", "rollback", "echo", "9"], &[])
        .await
        .expect(1, "rollback to a version that does not exist");
    assert!(
        missing_version.stderr.starts_with("error: not_found: "),
        "{}",
        missing_version.stderr
    );

    // Durable instances: start one that waits for an event, signal it, see it complete.
    let started = cli
        .run(
            &[
                "--json",
                "instances",
                "start",
                "echo",
                "--input",
                r#"{"scenario": "wait", "event": "go"}"#,
                "--idempotency-key",
                "k-1",
            ],
            &[],
        )
        .await
        .expect(0, "instances start")
        .json();
    let id = started["id"].as_str().expect("instance id").to_owned();
    assert_eq!(started["function"], "echo");
    assert_eq!(started["idempotency_key"], "k-1");
    let again = cli
        .run(
            &[
                "instances",
                "start",
                "echo",
                "--input",
                r#"{"scenario": "wait", "event": "go"}"#,
                "--idempotency-key",
                "k-1",
            ],
            &[],
        )
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
    let bad_status = cli
        .run(&["instances", "list", "--status", "asleep"], &[])
        .await
        .expect(1, "a status Kiln does not know");
    assert!(
        bad_status.stderr.starts_with("error: invalid_status: "),
        "{}",
        bad_status.stderr
    );

    // Keys: a second key works until it is removed.
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
        &admin,
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
    cli.run(&["--url", url, "tenant", "keys", "remove", "acme", "k2"], &admin)
        .await
        .expect(0, "keys remove");
    let removed = cli
        .run(&["--token", &second_token, "functions", "list"], &[])
        .await
        .expect(1, "k2 removed");
    assert!(
        removed.stderr.starts_with("error: unknown_key: "),
        "{}",
        removed.stderr
    );
    // A public key from a file (an identity provider's ES256 key).
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
        let (cli, admin) = (&cli, &admin);
        async move { cli.run(&args, admin).await }
    };
    let added = add_public_key("idp", "ES256")
        .await
        .expect(0, "keys add --public-key-file");
    assert_eq!(added.stdout, "added key idp (ES256) to acme\n");
    let listed = cli
        .run(&["--url", url, "--json", "tenant", "list"], &admin)
        .await
        .expect(0, "tenant list");
    assert!(listed.stdout.contains(r#""idp""#), "{}", listed.stdout);
    let wrong_algorithm = add_public_key("idp2", "RS256")
        .await
        .expect(1, "an EC key as RS256");
    assert!(
        wrong_algorithm.stderr.starts_with("error: invalid_key: "),
        "{}",
        wrong_algorithm.stderr
    );

    // Refusals exit 1 with Kiln's code; the environment beats the config file.
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
        .expect(1, "a token signed with the wrong secret");
    assert!(
        refused.stderr.starts_with("error: invalid_signature: "),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "");
    let refused_invoke = cli
        .run(&["--token", &wrong, "invoke", "echo", "--path", "/echo"], &[])
        .await
        .expect(1, "an invocation with the wrong secret");
    assert!(
        refused_invoke.stderr.starts_with("error: invalid_signature: "),
        "{}",
        refused_invoke.stderr
    );

    // Logs: what the function wrote, as lines or NDJSON, followed, and per instance.
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

    // Audit: the tenant's own entries, and the operator's view of everyone's.
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
        .run(&["--json", "audit", "--admin", "--tenant", "beta"], &admin)
        .await
        .expect(0, "audit --admin")
        .json();
    assert_eq!(everyone["entries"][0]["action"], "tenant.create", "{everyone}");
    assert_eq!(everyone["entries"][0]["target"], "beta", "{everyone}");
    cli.run(&["audit", "--tenant", "beta"], &[])
        .await
        .expect(2, "--tenant without --admin");

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
    let gone = cli
        .run(&["invoke", "echo"], &[])
        .await
        .expect(1, "invoke a deleted function");
    assert!(gone.stderr.starts_with("error: not_found: "), "{}", gone.stderr);

    // Local problems exit 3, misuse exits 2.
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

/// Polls `kiln instances show ID --json` until `done` holds (at most 30 s).
async fn wait_for(cli: &Cli, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let instance = cli
            .run(&["--json", "instances", "show", id], &[])
            .await
            .expect(0, "instances show")
            .json();
        if done(&instance) {
            return instance;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance never got there: {instance}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
