//! kilnd's configuration: read from environment variables once, before anything starts.
//!
//! **Invariant:** this is the only place in Kiln that reads the environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use kiln::is_node_id;
use kiln::{NetworkSettings, PullSettings, TrustedProxies};

use crate::network_config::network_settings;

/// Everything kilnd needs to start, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub database_url: String,
    pub db_pool_size: usize,
    pub db_timeout: Duration,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    /// Network modes and egress (`KILN_NETWORK_MODE`, `KILN_ALLOW_HOST_NETWORK`, `KILN_EGRESS_*`).
    pub network: NetworkSettings,
    pub log_format: LogFormat,
    pub body_limit: usize,
    pub upload_limit: usize,
    pub image_archive_limit: usize,
    pub image_rootfs_limit: usize,
    pub response_limit: usize,
    pub stream_idle_timeout: Duration,
    pub stream_max_duration: Duration,
    pub queue_limit: usize,
    pub queue_timeout: Duration,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Client connections open at once.
    pub max_connections: usize,
    /// How old what was read from PostgreSQL may get while serving through an outage.
    pub stale_serve_max: Duration,
    /// Failed authentications per client address per minute (0: no limit).
    pub auth_failures_per_minute: u32,
    /// Live-event streams one tenant may hold open on this node.
    pub live_streams_per_tenant: usize,
    /// This node's name for the instances it runs; `None`: kept in the data folder.
    pub node_id: Option<String>,
    pub instance_value_limit: usize,
    pub instance_timeout: Duration,
    pub instance_retention: Duration,
    pub instance_lease: Duration,
    pub instance_concurrency: usize,
    /// A function's log file is rotated past this size (two files are kept).
    pub log_file_limit: u64,
    /// Proxies whose `X-Forwarded-For` names the client (`KILN_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// `KILN_REGISTRIES`, `KILN_INSECURE_REGISTRIES`, `KILN_REGISTRY_AUTH_FILE`.
    pub image_pulls: PullSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Longest data folder path: container sockets live below it and Unix socket paths are
/// limited to 107 bytes.
const MAX_DATA_DIR_LEN: usize = 60;

impl Config {
    /// Reads the configuration through `lookup` (the process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |key: &str| lookup(key).filter(|value| !value.trim().is_empty());
        let database_url = get("DATABASE_URL").ok_or(
            "DATABASE_URL is not set: give it a PostgreSQL URL such as postgres://kiln:secret@127.0.0.1:5432/kiln",
        )?;
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err("DATABASE_URL must start with postgres:// or postgresql://".into());
        }
        let data_dir = PathBuf::from(get("KILN_DATA_DIR").unwrap_or_else(|| "/var/lib/kiln".into()));
        if !data_dir.is_absolute() || data_dir.as_os_str().len() > MAX_DATA_DIR_LEN {
            return Err(format!(
                "KILN_DATA_DIR must be an absolute path of at most {MAX_DATA_DIR_LEN} bytes (container sockets live below it), got `{}`",
                data_dir.display()
            ));
        }
        Ok(Config {
            host: parse(
                &get,
                "KILN_HOST",
                "127.0.0.1",
                "an IP address such as 127.0.0.1 or 0.0.0.0",
            )?,
            port: parse(&get, "KILN_PORT", "3001", "a port number from 0 to 65535")?,
            database_url,
            db_pool_size: ranged(&get, "KILN_DB_POOL_SIZE", 16, 1, 1000)?,
            db_timeout: millis(&get, "KILN_DB_TIMEOUT_MS", 5_000)?,
            data_dir,
            admin_token: get("KILN_ADMIN_TOKEN"),
            network: network_settings(&get)?,
            log_format: match get("KILN_LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(format!("KILN_LOG_FORMAT must be `text` or `json`, got `{other}`"));
                }
            },
            body_limit: ranged(&get, "KILN_MAX_BODY_BYTES", 6 << 20, 1024, 1 << 30)?,
            upload_limit: ranged(&get, "KILN_MAX_UPLOAD_BYTES", 64 << 20, 1024, 1 << 31)?,
            image_archive_limit: ranged(&get, "KILN_MAX_IMAGE_BYTES", 1 << 30, 1 << 20, 1 << 40)?,
            image_rootfs_limit: ranged(&get, "KILN_MAX_ROOTFS_BYTES", 4 << 30, 1 << 20, 1 << 42)?,
            response_limit: ranged(&get, "KILN_MAX_RESPONSE_BYTES", 6 << 20, 1024, 1 << 30)?,
            stream_idle_timeout: millis(&get, "KILN_STREAM_IDLE_TIMEOUT_MS", 30_000)?,
            stream_max_duration: millis(&get, "KILN_STREAM_MAX_DURATION_MS", 15 * 60_000)?,
            queue_limit: ranged(&get, "KILN_QUEUE_LIMIT", 100, 0, 100_000)?,
            queue_timeout: millis(&get, "KILN_QUEUE_TIMEOUT_MS", 10_000)?,
            header_read_timeout: millis(&get, "KILN_HEADER_TIMEOUT_MS", 10_000)?,
            request_timeout: millis(&get, "KILN_REQUEST_TIMEOUT_MS", 120_000)?,
            shutdown_grace: millis(&get, "KILN_SHUTDOWN_GRACE_MS", 30_000)?,
            max_connections: ranged(&get, "KILN_MAX_CONNECTIONS", 10_000, 1, 1_000_000)?,
            stale_serve_max: match get("KILN_STALE_SERVE_MAX").as_deref().map(str::trim) {
                Some("0" | "0s") => Duration::ZERO,
                _ => duration(&get, "KILN_STALE_SERVE_MAX", "1h")?,
            },
            auth_failures_per_minute: ranged(&get, "KILN_AUTH_FAILURES_PER_MINUTE", 60, 0, 1_000_000)? as u32,
            live_streams_per_tenant: ranged(&get, "KILN_LIVE_STREAMS_PER_TENANT", 100, 1, 100_000)?,
            node_id: match get("KILN_NODE_ID") {
                Some(node) if !is_node_id(&node) => {
                    return Err(format!(
                        "KILN_NODE_ID must be 1-64 letters, digits, `-`, `_` or `.`, got `{node}`"
                    ));
                }
                node => node,
            },
            instance_value_limit: ranged(&get, "KILN_INSTANCE_VALUE_LIMIT_BYTES", 256 << 10, 1024, 64 << 20)?,
            instance_timeout: duration(&get, "KILN_INSTANCE_TIMEOUT", "30d")?,
            instance_retention: duration(&get, "KILN_INSTANCE_RETENTION", "7d")?,
            instance_lease: duration(&get, "KILN_INSTANCE_LEASE", "15s")?,
            instance_concurrency: ranged(&get, "KILN_INSTANCE_CONCURRENCY", 64, 1, 10_000)?,
            log_file_limit: ranged(&get, "KILN_LOG_FILE_BYTES", 1 << 20, 4096, 1 << 30)? as u64,
            trusted_proxies: TrustedProxies::parse(&get("KILN_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|error| format!("KILN_TRUSTED_PROXIES: {error}"))?,
            image_pulls: image_pulls(&get)?,
        })
    }
}

/// Allowed registries (`host[:port]`, comma-separated), the insecure ones among them, and
/// the credentials file, read now so a bad one stops kilnd at start.
fn image_pulls(get: &impl Fn(&str) -> Option<String>) -> Result<PullSettings, String> {
    let list = |key: &str| -> Vec<String> {
        get(key)
            .unwrap_or_default()
            .split(',')
            .map(|entry| entry.trim().to_owned())
            .filter(|entry| !entry.is_empty())
            .collect()
    };
    let allowed = list("KILN_REGISTRIES");
    let insecure = list("KILN_INSECURE_REGISTRIES");
    if let Some(stray) = insecure.iter().find(|registry| !allowed.contains(registry)) {
        return Err(format!(
            "KILN_INSECURE_REGISTRIES names `{stray}`, which KILN_REGISTRIES does not allow: list it there too"
        ));
    }
    let credentials = match get("KILN_REGISTRY_AUTH_FILE") {
        Some(path) => PullSettings::read_credentials(std::path::Path::new(&path))
            .map_err(|error| format!("KILN_REGISTRY_AUTH_FILE: {error}"))?,
        None => Default::default(),
    };
    Ok(PullSettings {
        allowed,
        insecure,
        credentials,
        max_bytes: 0,
    })
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: &str,
    expected: &str,
) -> Result<T, String> {
    let value = get(key).unwrap_or_else(|| default.to_owned());
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key} must be {expected}, got `{value}`"))
}

fn ranged(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    let expected = format!("a whole number from {min} to {max}");
    let value: usize = parse(get, key, &default.to_string(), &expected)?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{key} must be {expected}, got `{value}`"))
    }
}

/// A duration such as `30s`, `15m`, `7d` (at least one second).
fn duration(get: &impl Fn(&str) -> Option<String>, key: &str, default: &str) -> Result<Duration, String> {
    let value = get(key).unwrap_or_else(|| default.to_owned());
    match humantime::parse_duration(value.trim()) {
        Ok(duration) if duration >= Duration::from_secs(1) => Ok(duration),
        _ => Err(format!(
            "{key} must be a duration of at least 1s such as 30s, 15m or 7d, got `{value}`"
        )),
    }
}

fn millis(get: &impl Fn(&str) -> Option<String>, key: &str, default: u64) -> Result<Duration, String> {
    let value: u64 = parse(get, key, &default.to_string(), "a number of milliseconds")?;
    if value == 0 {
        return Err(format!("{key} must be more than 0 milliseconds"));
    }
    Ok(Duration::from_millis(value))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Config::from_lookup(|key| env.get(key).cloned())
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://kiln:pw@127.0.0.1/kiln");

    #[test]
    fn defaults() {
        let config = config(&[URL]).unwrap();
        assert_eq!(config.port, 3001);
        assert_eq!(config.host.to_string(), "127.0.0.1");
        assert_eq!(config.db_pool_size, 16);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/kiln"));
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.admin_token.is_none());
        assert_eq!(config.instance_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(config.instance_lease, Duration::from_secs(15));
        assert_eq!(config.instance_value_limit, 256 << 10);
    }

    #[test]
    fn overrides() {
        let config = config(&[
            URL,
            ("KILN_PORT", "0"),
            ("KILN_LOG_FORMAT", "json"),
            ("KILN_ADMIN_TOKEN", "t"),
        ])
        .unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.admin_token.as_deref(), Some("t"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, needle) in [
            (vec![], "DATABASE_URL is not set"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL must start"),
            (
                vec![URL, ("KILN_PORT", "70000")],
                "KILN_PORT must be a port number",
            ),
            (vec![URL, ("KILN_HOST", "localhost:1")], "KILN_HOST"),
            (
                vec![URL, ("KILN_DB_POOL_SIZE", "0")],
                "KILN_DB_POOL_SIZE must be a whole number from 1",
            ),
            (vec![URL, ("KILN_LOG_FORMAT", "xml")], "KILN_LOG_FORMAT"),
            (vec![URL, ("KILN_ALLOW_NETWORK", "yes")], "KILN_ALLOW_NETWORK"),
            (vec![URL, ("KILN_NETWORK_MODE", "open")], "KILN_NETWORK_MODE"),
            (
                vec![URL, ("KILN_DATA_DIR", "relative/dir")],
                "KILN_DATA_DIR must be an absolute path",
            ),
            (
                vec![URL, ("KILN_SHUTDOWN_GRACE_MS", "0")],
                "KILN_SHUTDOWN_GRACE_MS",
            ),
            (
                vec![URL, ("KILN_INSTANCE_RETENTION", "soon")],
                "KILN_INSTANCE_RETENTION must be a duration",
            ),
            (
                vec![URL, ("KILN_INSTANCE_LEASE", "10ms")],
                "KILN_INSTANCE_LEASE must be a duration",
            ),
            (vec![URL, ("KILN_NODE_ID", "a b")], "KILN_NODE_ID"),
            (
                vec![
                    URL,
                    ("KILN_REGISTRIES", "a:5000"),
                    ("KILN_INSECURE_REGISTRIES", "b:5000"),
                ],
                "KILN_INSECURE_REGISTRIES names `b:5000`",
            ),
            (
                vec![URL, ("KILN_REGISTRY_AUTH_FILE", "/nonexistent/auth.json")],
                "KILN_REGISTRY_AUTH_FILE: cannot read",
            ),
        ] {
            let error = config(&pairs).unwrap_err();
            assert!(error.contains(needle), "{pairs:?}: {error}");
        }
    }
}
