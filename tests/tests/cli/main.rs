//! The `kiln` command line against a real kilnd, one module per command group: tenants and
//! tokens, login, deploy, invoke and functions, instances and signals, logs, audit, and its
//! exit codes (0, 1 refused, 2 usage, 3 local).
//!
//! The binary is `KILN_CLI_BIN` (default: this workspace's `target/debug/kiln`).

mod audit;
mod deploy;
mod exit_codes;
mod instances;
mod logs;
mod tenants;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{ADMIN_TOKEN, Kiln, kiln_cli_path, tenant_secret, testbed_path};
use serde_json::Value;

/// The environment of an operator's command: the admin token.
const AS_OPERATOR: [(&str, &str); 1] = [("KILN_ADMIN_TOKEN", ADMIN_TOKEN)];

/// Numbers the config folders of this process, one per `Cli`.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

/// What one run of `kiln` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts Kiln refused the command: exit code 1 and `error: <code>: ...` on stderr.
    fn refused(self, code: &str, what: &str) -> Run {
        let run = self.expect(1, what);
        let prefix = format!("error: {code}: ");
        assert!(run.stderr.starts_with(&prefix), "{what}: {}", run.stderr);
        run
    }

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
    /// A fresh config folder, unique in this process: the tests run side by side.
    fn new() -> Cli {
        let number = NEXT_HOME.fetch_add(1, Ordering::Relaxed);
        let home = std::env::temp_dir().join(format!("kiln-cli-e2e-{}-{number}", std::process::id()));
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

/// Creates tenant acme, with the secret `tenant_secret("acme")`, through the CLI.
async fn create_acme(cli: &Cli, url: &str) -> Run {
    let secret = tenant_secret("acme");
    cli.run(
        &["--url", url, "tenant", "create", "acme", "--secret", &secret],
        &AS_OPERATOR,
    )
    .await
    .expect(0, "tenant create")
}

/// A token for acme, minted locally, valid for 10 minutes.
async fn mint_acme_token(cli: &Cli) -> String {
    let secret = tenant_secret("acme");
    cli.run(
        &[
            "token", "mint", "--tenant", "acme", "--secret", &secret, "--ttl", "600",
        ],
        &[],
    )
    .await
    .expect(0, "token mint")
    .stdout
    .trim()
    .to_owned()
}

/// A CLI logged in as tenant acme, created through the CLI on `kiln`: its config file has
/// the URL and the token, so later commands need neither.
async fn logged_in(kiln: &Kiln) -> Cli {
    let cli = Cli::new();
    let url = kiln.url.as_str();
    create_acme(&cli, url).await;
    let token = mint_acme_token(&cli).await;
    cli.run(&["login", "--url", url, "--token", &token], &[])
        .await
        .expect(0, "login");
    cli
}

/// Deploys the testbed as acme's function `echo`, version 1.
async fn deploy_echo(cli: &Cli) {
    let testbed = testbed_path();
    cli.run(&["deploy", "echo", testbed.to_str().unwrap()], &[])
        .await
        .expect(0, "deploy echo");
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
