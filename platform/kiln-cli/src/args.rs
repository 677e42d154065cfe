//! The command line, declared with clap's derive API; clap exits with status 2 on misuse.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Deploy, call and manage functions on a Kiln server"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; flags beat environment variables, which beat the config file.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Server URL [env: KILN_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Tenant token (a JWT) [env: KILN_TOKEN]
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Operator token for `kiln tenant ...` and `kiln audit --admin` [env: KILN_ADMIN_TOKEN]
    #[arg(long, global = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Print the server's JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more on stderr (the status and headers of an invocation)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Give up on a call after this many seconds
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a server URL and token, then save them in the config file
    Login(LoginArgs),
    /// Upload an executable as the new current version of a function
    Deploy(DeployArgs),
    /// List, show, delete or roll back functions
    #[command(subcommand)]
    Functions(FunctionsCommand),
    /// Call a function and print its answer
    Invoke(InvokeArgs),
    /// Print a function's logs (or a durable instance's)
    Logs(LogsArgs),
    /// Start, list, inspect and signal durable instances
    #[command(subcommand)]
    Instances(InstancesCommand),
    /// Operators: tenants and their keys (needs the admin token)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Make tokens locally, without a server
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the audit log, newest first
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// A PEM file of CA certificates to trust besides the usual ones (self-signed proxies)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Function name (lowercase letters, digits and inner `-`)
    pub name: String,
    /// The static Linux x86-64 executable to upload
    pub path: PathBuf,
    /// A setting of this version, such as memory_mb=64 or env=NAME=VALUE (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// List the tenant's functions
    List,
    /// Show a function and all its versions
    Show { name: String },
    /// Delete a function, its versions and its containers
    Delete { name: String },
    /// Make an earlier (or later) version the current one
    Rollback { name: String, version: i32 },
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Function name, optionally with @VERSION or @DIGEST
    pub name: String,
    /// `-` reads the request body from stdin
    #[arg(value_name = "-", value_parser = ["-"], group = "body")]
    pub stdin: Option<String>,
    /// The request body
    #[arg(short, long, value_name = "STRING", group = "body")]
    pub data: Option<String>,
    /// Read the request body from a file
    #[arg(long, value_name = "FILE", group = "body")]
    pub data_file: Option<PathBuf>,
    /// HTTP method [default: POST with a body, else GET]
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub method: Option<String>,
    /// The path (and query) the function sees
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub path: String,
    /// A request header, such as 'content-type: text/plain' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A function name, or an instance id for that instance's lines
    pub target: String,
    /// Keep printing new lines as they are written
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines [server default: 100]
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub lines: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// List instances, newest first
    List {
        #[arg(long)]
        function: Option<String>,
        /// pending, running, sleeping, paused, completed, failed or cancelled
        #[arg(long)]
        status: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        /// The next_cursor of a previous page
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one instance
    Show { id: String },
    /// Show an instance's stored checkpoints
    Checkpoints { id: String },
    /// Show an instance's lifecycle history
    Events { id: String },
    /// Start a durable instance of a function
    Start {
        function: String,
        /// The instance's input, as JSON
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        input: Option<Value>,
        /// Retrying with the same key returns the same instance
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Send cancel, pause, resume, or an event the instance waits for
    Signal {
        id: String,
        name: String,
        /// The event's payload, as JSON
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        payload: Option<Value>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with one HS256 key; prints its secret once
    Create {
        name: String,
        /// Token issuer [server default: kiln]
        #[arg(long)]
        issuer: Option<String>,
        /// Token audience [server default: kiln:NAME]
        #[arg(long)]
        audience: Option<String>,
        /// The HS256 secret [default: 32 random bytes, hex]
        #[arg(long)]
        secret: Option<String>,
        #[arg(long, default_value = "k1")]
        kid: String,
    },
    /// List tenants
    List,
    /// Add or remove a tenant's keys
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a key: an HS256 secret, or a public key for RS256, ES256 or EdDSA
    Add {
        tenant: String,
        #[arg(long)]
        kid: String,
        #[arg(long, required_unless_present = "public_key_file", conflicts_with_all = ["public_key_file", "algorithm"])]
        secret: Option<String>,
        /// A PEM public key
        #[arg(long, value_name = "FILE", requires = "algorithm")]
        public_key_file: Option<PathBuf>,
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"], requires = "public_key_file")]
        algorithm: Option<String>,
    },
    /// Remove a key
    Remove { tenant: String, kid: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an HS256 tenant token
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub secret: String,
    #[arg(long, default_value = "k1")]
    pub kid: String,
    /// Seconds until it expires
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    #[arg(long, default_value = "kiln")]
    pub issuer: String,
    /// [default: kiln:TENANT]
    #[arg(long)]
    pub audience: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// The next_cursor of a previous page
    #[arg(long)]
    pub cursor: Option<String>,
    /// Every tenant's entries, read with the admin token
    #[arg(long)]
    pub admin: bool,
    /// With --admin: only this tenant's entries
    #[arg(long, requires = "admin")]
    pub tenant: Option<String>,
}

/// `key=value`, split at the first `=` (so `env=NAME=VALUE` keeps `NAME=VALUE`).
fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` should look like key=value")),
    }
}

/// `Name: value`, split at the first `:`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` should look like 'Name: value'")),
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn settings_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_setting("memory_mb=64"),
            Ok(("memory_mb".into(), "64".into()))
        );
        assert_eq!(parse_setting("env=A=B"), Ok(("env".into(), "A=B".into())));
        assert_eq!(parse_setting("network="), Ok(("network".into(), "".into())));
        assert!(parse_setting("memory_mb").is_err());
        assert!(parse_setting("=1").is_err());
    }

    #[test]
    fn deploy_collects_repeated_settings_in_order() {
        let cli = Cli::try_parse_from([
            "kiln",
            "deploy",
            "hello",
            "./hello",
            "--set",
            "memory_mb=64",
            "--set",
            "env=A=B",
        ])
        .unwrap();
        let Command::Deploy(deploy) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(
            deploy.settings,
            [
                ("memory_mb".to_owned(), "64".to_owned()),
                ("env".to_owned(), "A=B".to_owned())
            ]
        );
    }

    #[test]
    fn headers_and_bodies() {
        assert_eq!(parse_header("X-Trace: a:b"), Ok(("X-Trace".into(), "a:b".into())));
        assert!(parse_header("no colon").is_err());
        let cli = Cli::try_parse_from(["kiln", "invoke", "echo", "-", "-H", "x-a: 1"]).unwrap();
        let Command::Invoke(invoke) = cli.command else {
            panic!("not invoke")
        };
        assert_eq!(invoke.stdin.as_deref(), Some("-"));
        assert_eq!(invoke.path, "/");
        let both = Cli::try_parse_from(["kiln", "invoke", "echo", "--data", "x", "--data-file", "f"]);
        assert_eq!(both.unwrap_err().kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn keys_need_a_secret_or_a_public_key_with_its_algorithm() {
        let parse = |extra: &[&str]| {
            let mut words = vec!["kiln", "tenant", "keys", "add", "acme", "--kid", "k2"];
            words.extend_from_slice(extra);
            Cli::try_parse_from(words)
        };
        assert!(parse(&["--secret", "s"]).is_ok());
        assert!(parse(&["--public-key-file", "k.pem", "--algorithm", "ES256"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--public-key-file", "k.pem"]).is_err());
        assert!(parse(&["--secret", "s", "--algorithm", "RS256"]).is_err());
        assert!(parse(&["--public-key-file", "k.pem", "--algorithm", "HS512"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["kiln", "functions", "list", "--json", "--url", "http://h"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.url.as_deref(), Some("http://h"));
        assert!(Cli::try_parse_from(["kiln", "logs", "fn", "--lines", "0"]).is_err());
    }
}
