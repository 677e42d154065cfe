//! Per-function settings: parsed from an upload's query string, stored with the version.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_types::{EgressRule, FunctionLimits, NetworkMode};
use serde::{Deserialize, Serialize};

use crate::RegistryError;

/// The upload parameter naming the image of an archive to deploy (`?image=app:1`).
const IMAGE_PARAMETER: &str = "image";

/// The image an upload's query names with `image=`, if any.
pub fn image_reference(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == IMAGE_PARAMETER)
        .map(|(_, value)| value.into_owned())
}

/// Settings of one function version; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionSettings {
    pub memory_mb: u32,
    /// Relative CPU weight (cgroup `cpu.shares`), 2-262144; 1024 is one normal share.
    pub cpu_shares: u32,
    /// Hard CPU cap in thousandths of a core; absent means no cap.
    pub cpu_millicores: Option<u32>,
    pub pids_limit: u32,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub min_warm: u32,
    pub idle_timeout_s: u64,
    /// Chosen at upload: the `network=` setting, else the operator's default mode.
    pub network: NetworkMode,
    /// Narrows an egress function's destinations: one rule per `egress_allow=`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress_allow: Vec<EgressRule>,
    pub env: BTreeMap<String, String>,
    /// Replaces an image's Cmd (its Entrypoint stays): one argument per `cmd=`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        FunctionSettings {
            memory_mb: 128,
            cpu_shares: 1024,
            cpu_millicores: None,
            pids_limit: 64,
            timeout_ms: 30_000,
            max_concurrency: 10,
            min_warm: 0,
            idle_timeout_s: 300,
            network: NetworkMode::None,
            egress_allow: Vec::new(),
            env: BTreeMap::new(),
            cmd: Vec::new(),
        }
    }
}

impl FunctionSettings {
    /// Parses `memory_mb=64&timeout_ms=500&env=KEY=VALUE&network=egress...`; unknown keys are
    /// errors. Without `network=`, the function gets `default_network`.
    pub fn from_query(
        query: Option<&str>,
        default_network: NetworkMode,
    ) -> Result<FunctionSettings, RegistryError> {
        let mut settings = FunctionSettings {
            network: default_network,
            ..FunctionSettings::default()
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "memory_mb" => settings.memory_mb = number(&key, &value, 16, 16_384)?,
                "cpu_shares" => settings.cpu_shares = number(&key, &value, 2, 262_144)?,
                "cpu_millicores" => settings.cpu_millicores = Some(number(&key, &value, 10, 64_000)?),
                "pids_limit" => settings.pids_limit = number(&key, &value, 4, 32_768)?,
                "timeout_ms" => settings.timeout_ms = number(&key, &value, 10, 900_000)?,
                "max_concurrency" => settings.max_concurrency = number(&key, &value, 1, 1_000)?,
                "min_warm" => settings.min_warm = number(&key, &value, 0, 100)?,
                "idle_timeout_s" => settings.idle_timeout_s = number(&key, &value, 1, 86_400)?,
                "network" => settings.network = value.parse().map_err(RegistryError::InvalidSetting)?,
                "egress_allow" => settings
                    .egress_allow
                    .push(value.parse().map_err(RegistryError::InvalidSetting)?),
                "env" => {
                    let (name, env_value) = value.split_once('=').ok_or_else(|| {
                        RegistryError::InvalidSetting(format!("env `{value}` must look like NAME=VALUE"))
                    })?;
                    check_env_name(name)?;
                    settings.env.insert(name.to_owned(), env_value.to_owned());
                }
                "cmd" => settings.cmd.push(value.into_owned()),
                // Which image of an archive to deploy: an upload parameter, not a setting.
                IMAGE_PARAMETER => {}
                other => {
                    return Err(RegistryError::InvalidSetting(format!(
                        "unknown setting `{other}`; known: memory_mb, cpu_shares, cpu_millicores, pids_limit, \
                         timeout_ms, max_concurrency, min_warm, idle_timeout_s, network, egress_allow, env, cmd (and image= \
                         to choose the image of an archive)"
                    )));
                }
            }
        }
        if !settings.egress_allow.is_empty() && settings.network != NetworkMode::Egress {
            return Err(RegistryError::InvalidSetting(format!(
                "egress_allow narrows network=egress, but this function's network is {}; add network=egress",
                settings.network
            )));
        }
        if settings.min_warm > settings.max_concurrency {
            return Err(RegistryError::InvalidSetting(format!(
                "min_warm ({}) cannot exceed max_concurrency ({})",
                settings.min_warm, settings.max_concurrency
            )));
        }
        Ok(settings)
    }

    /// Settings as stored in a version row; rows from older releases fill gaps with defaults.
    pub fn from_stored(stored: &serde_json::Value) -> FunctionSettings {
        serde_json::from_value(stored.clone()).unwrap_or_default()
    }

    pub fn limits(&self) -> FunctionLimits {
        FunctionLimits {
            memory_bytes: i64::from(self.memory_mb) << 20,
            cpu_shares: u64::from(self.cpu_shares),
            cpu_quota_us: self.cpu_millicores.map(|millicores| i64::from(millicores) * 100),
            pids_limit: i64::from(self.pids_limit),
            timeout: Duration::from_millis(self.timeout_ms),
            max_concurrency: self.max_concurrency as usize,
            min_warm: self.min_warm as usize,
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            env: self
                .env
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            network: self.network,
            egress_allow: self.egress_allow.clone(),
        }
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, RegistryError> {
    match value.parse::<T>() {
        Ok(number) if number >= min && number <= max => Ok(number),
        _ => Err(RegistryError::InvalidSetting(format!(
            "{key} must be a whole number from {min} to {max}, got `{value}`"
        ))),
    }
}

fn check_env_name(name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("KILN_");
    if valid {
        Ok(())
    } else {
        Err(RegistryError::InvalidSetting(format!(
            "env name `{name}` must be letters, digits and `_`, not start with a digit or KILN_"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let settings = FunctionSettings::from_query(
            Some("memory_mb=64&timeout_ms=500&env=GREETING=hi%20there&network=true"),
            NetworkMode::None,
        )
        .unwrap();
        assert_eq!(settings.memory_mb, 64);
        assert_eq!(settings.timeout_ms, 500);
        assert_eq!(settings.env["GREETING"], "hi there");
        assert_eq!(settings.network, NetworkMode::Host);
        assert_eq!(
            settings.max_concurrency,
            FunctionSettings::default().max_concurrency
        );
        assert_eq!(settings.limits().memory_bytes, 64 << 20);
    }

    #[test]
    fn refuses_bad_values_with_a_useful_message() {
        for (query, needle) in [
            ("memory_mb=1", "memory_mb must be a whole number from 16"),
            ("timeout_ms=abc", "timeout_ms"),
            ("colour=blue", "unknown setting `colour`"),
            ("env=NOVALUE", "NAME=VALUE"),
            ("env=KILN_X=1", "KILN_"),
            ("network=maybe", "none, egress or host"),
            (
                "egress_allow=10.0.0.0/33&network=egress",
                "egress_allow `10.0.0.0/33`",
            ),
            ("egress_allow=example.com:443", "add network=egress"),
            ("min_warm=5&max_concurrency=2", "cannot exceed"),
        ] {
            let error = FunctionSettings::from_query(Some(query), NetworkMode::None)
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{query}: {error}");
        }
    }

    #[test]
    fn stored_settings_round_trip() {
        let settings = FunctionSettings::from_query(
            Some("min_warm=1&env=A=b&network=egress&egress_allow=api.example.com:443&egress_allow=203.0.113.0/24"),
            NetworkMode::None,
        )
        .unwrap();
        let stored = serde_json::to_value(&settings).unwrap();
        assert_eq!(stored["network"], "egress");
        assert_eq!(FunctionSettings::from_stored(&stored), settings);
    }

    #[test]
    fn the_operator_default_applies_when_network_is_not_set() {
        let settings = FunctionSettings::from_query(Some("memory_mb=64"), NetworkMode::Egress).unwrap();
        assert_eq!(settings.network, NetworkMode::Egress);
        let chosen = FunctionSettings::from_query(Some("network=none"), NetworkMode::Egress).unwrap();
        assert_eq!(chosen.network, NetworkMode::None);
    }

    #[test]
    fn rows_of_older_releases_keep_their_network() {
        let old = serde_json::json!({"memory_mb": 64, "network": true});
        assert_eq!(FunctionSettings::from_stored(&old).network, NetworkMode::Host);
        let old = serde_json::json!({"memory_mb": 64, "network": false});
        assert_eq!(FunctionSettings::from_stored(&old).network, NetworkMode::None);
    }
}
