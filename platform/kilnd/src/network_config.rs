//! The network settings of kilnd's environment: the default mode, host network, and egress.

use std::net::SocketAddr;

use kiln::{EgressConfig, NetworkMode, NetworkSettings};

/// Reads `KILN_NETWORK_MODE`, `KILN_ALLOW_HOST_NETWORK` (or the older `KILN_ALLOW_NETWORK`),
/// `KILN_EGRESS_SUBNET`, `KILN_EGRESS_IPV6`, `KILN_EGRESS_SUBNET6`, `KILN_EGRESS_ALLOW`,
/// `KILN_EGRESS_DNS` and `KILN_EGRESS_PREPARED`.
pub fn network_settings(get: &impl Fn(&str) -> Option<String>) -> Result<NetworkSettings, String> {
    let defaults = NetworkSettings::default();
    let allow_host = match (get("KILN_ALLOW_HOST_NETWORK"), get("KILN_ALLOW_NETWORK")) {
        (Some(value), _) => flag("KILN_ALLOW_HOST_NETWORK", &value)?,
        (None, Some(value)) => flag("KILN_ALLOW_NETWORK", &value)?,
        (None, None) => false,
    };
    let default_mode = match get("KILN_NETWORK_MODE").as_deref() {
        None => defaults.default_mode,
        Some("none") => NetworkMode::None,
        Some("egress") => NetworkMode::Egress,
        Some("host") if allow_host => NetworkMode::Host,
        Some("host") => {
            return Err("KILN_NETWORK_MODE=host needs KILN_ALLOW_HOST_NETWORK=true".into());
        }
        Some(other) => {
            return Err(format!(
                "KILN_NETWORK_MODE must be `none`, `egress` or `host`, got `{other}`"
            ));
        }
    };
    let egress_subnet = match get("KILN_EGRESS_SUBNET") {
        Some(text) => EgressConfig::parse_subnet(&text).map_err(|error| error.to_string())?,
        None => defaults.egress_subnet,
    };
    let egress_subnet6 = match get("KILN_EGRESS_SUBNET6") {
        Some(text) => EgressConfig::parse_subnet6(&text).map_err(|error| error.to_string())?,
        None => defaults.egress_subnet6,
    };
    let egress_ipv6 = match get("KILN_EGRESS_IPV6").as_deref() {
        None | Some("auto") => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => {
            return Err(format!(
                "KILN_EGRESS_IPV6 must be `auto` (IPv6 where the host has an IPv6 default route), `on` or `off`, got `{other}`"
            ));
        }
    };
    let egress_allow = EgressConfig::parse_allow(
        &get("KILN_EGRESS_ALLOW").unwrap_or_default(),
        &egress_subnet,
        (egress_ipv6 != Some(false)).then_some(&egress_subnet6),
    )
    .map_err(|error| error.to_string())?;
    let egress_dns = match get("KILN_EGRESS_DNS") {
        None => None,
        Some(text) => Some(resolver(&text)?),
    };
    let egress_prepared = match get("KILN_EGRESS_PREPARED") {
        None => defaults.egress_prepared,
        Some(text) => match text.parse::<usize>() {
            Ok(count) if count <= 64 => count,
            _ => {
                return Err(format!(
                    "KILN_EGRESS_PREPARED must be a whole number from 0 to 64, got `{text}`"
                ));
            }
        },
    };
    Ok(NetworkSettings {
        default_mode,
        allow_host,
        egress_subnet,
        egress_subnet6,
        egress_ipv6,
        egress_allow,
        egress_dns,
        egress_prepared,
    })
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{key} must be `true` or `false`, got `{other}`")),
    }
}

/// `ADDRESS` (port 53) or `ADDRESS:PORT` / `[ADDRESS]:PORT`.
fn resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(address, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("KILN_EGRESS_DNS must be a resolver's IP address, optionally with a port (such as 192.0.2.53:53), got `{text}`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<NetworkSettings, String> {
        network_settings(&|key: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_keep_functions_off_the_network() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.default_mode, NetworkMode::None);
        assert!(!defaults.allow_host);
        assert_eq!(defaults.egress_subnet.to_string(), "10.250.0.0/16");
        assert!(defaults.egress_allow.is_empty());
        assert_eq!(defaults.egress_ipv6, None, "IPv6 where the host has it");
    }

    #[test]
    fn egress_settings_are_read() {
        let read = settings(&[
            ("KILN_NETWORK_MODE", "egress"),
            ("KILN_EGRESS_SUBNET", "10.77.0.0/24"),
            ("KILN_EGRESS_ALLOW", "198.18.0.0/15,fdfa::/64"),
            ("KILN_EGRESS_IPV6", "on"),
            ("KILN_EGRESS_SUBNET6", "fd77::/64"),
            ("KILN_EGRESS_DNS", "198.18.0.2"),
            ("KILN_EGRESS_PREPARED", "0"),
        ])
        .unwrap();
        assert_eq!(read.default_mode, NetworkMode::Egress);
        assert_eq!(read.egress_subnet.to_string(), "10.77.0.0/24");
        assert_eq!(read.egress_allow.len(), 2);
        assert_eq!(read.egress_ipv6, Some(true));
        assert_eq!(read.egress_subnet6.to_string(), "fd77::/64");
        assert_eq!(read.egress_dns, Some("198.18.0.2:53".parse().unwrap()));
        assert_eq!(read.egress_prepared, 0);
    }

    #[test]
    fn host_network_needs_the_operator_and_the_old_name_still_works() {
        assert!(settings(&[("KILN_ALLOW_NETWORK", "true")]).unwrap().allow_host);
        assert!(
            !settings(&[
                ("KILN_ALLOW_HOST_NETWORK", "false"),
                ("KILN_ALLOW_NETWORK", "true")
            ])
            .unwrap()
            .allow_host
        );
        assert!(
            settings(&[("KILN_NETWORK_MODE", "host")])
                .unwrap_err()
                .contains("KILN_ALLOW_HOST_NETWORK")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (key, value) in [
            ("KILN_NETWORK_MODE", "maybe"),
            ("KILN_ALLOW_HOST_NETWORK", "yes"),
            ("KILN_EGRESS_SUBNET", "10.0.0.0/33"),
            ("KILN_EGRESS_SUBNET6", "2001:db8::/64"),
            ("KILN_EGRESS_IPV6", "yes"),
            ("KILN_EGRESS_ALLOW", "10.1.2"),
            ("KILN_EGRESS_DNS", "resolver"),
            ("KILN_EGRESS_PREPARED", "100"),
        ] {
            let error = settings(&[(key, value)]).unwrap_err();
            assert!(error.contains(key), "{key}={value}: {error}");
        }
    }
}
