//! How a function's containers reach the network: the mode, and the rules that narrow egress.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A function's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NetworkMode {
    /// An empty network namespace: only its own loopback.
    #[default]
    None,
    /// Its own namespace with outbound connections to the public internet through NAT; never
    /// the host, its loopback, link-local addresses, other containers or (unless the operator
    /// opens them) non-global ranges.
    Egress,
    /// The host's network namespace, shared: everything the host reaches, including its loopback.
    Host,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Egress => "egress",
            NetworkMode::Host => "host",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    /// `none`, `egress` or `host`; the booleans of earlier releases (`true`, `1`, `on` and
    /// `false`, `0`, `off`) are the deprecated spellings of `host` and `none`.
    fn from_str(text: &str) -> Result<NetworkMode, String> {
        match text {
            "none" | "false" | "0" | "off" => Ok(NetworkMode::None),
            "egress" => Ok(NetworkMode::Egress),
            "host" | "true" | "1" | "on" => Ok(NetworkMode::Host),
            other => Err(format!("network must be none, egress or host, got `{other}`")),
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    /// Accepts the stored booleans of releases before the modes (`true` = host).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NetworkMode, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Flag(bool),
            Name(String),
        }
        match Stored::deserialize(deserializer)? {
            Stored::Flag(true) => Ok(NetworkMode::Host),
            Stored::Flag(false) => Ok(NetworkMode::None),
            Stored::Name(name) => name.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One destination an egress function may reach, when its `egress_allow` list narrows egress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EgressRule {
    /// A host name and port, resolved when a container starts.
    Host { name: String, port: u16 },
    /// A network (a single address is a /32 or /128), on one port or on all.
    Network { network: IpNet, port: Option<u16> },
}

impl fmt::Display for EgressRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressRule::Host { name, port } => write!(formatter, "{name}:{port}"),
            EgressRule::Network { network, port: None } => write!(formatter, "{network}"),
            EgressRule::Network {
                network: IpNet::V6(network),
                port: Some(port),
            } => write!(formatter, "[{network}]:{port}"),
            EgressRule::Network {
                network,
                port: Some(port),
            } => write!(formatter, "{network}:{port}"),
        }
    }
}

impl FromStr for EgressRule {
    type Err = String;

    /// `HOST:PORT`, `ADDRESS[/BITS]` or `ADDRESS[/BITS]:PORT` (IPv6 in brackets when a port follows).
    fn from_str(text: &str) -> Result<EgressRule, String> {
        let invalid = || {
            format!(
                "egress_allow `{text}` must be HOST:PORT, a CIDR network such as 203.0.113.0/24, \
                 or CIDR:PORT"
            )
        };
        if let Some(network) = parse_network(text) {
            return Ok(EgressRule::Network { network, port: None });
        }
        let (address, port) = match text.strip_prefix('[') {
            Some(bracketed) => {
                let (inside, after) = bracketed.split_once(']').ok_or_else(invalid)?;
                (inside, after.strip_prefix(':').ok_or_else(invalid)?)
            }
            None => text.rsplit_once(':').ok_or_else(invalid)?,
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(invalid()),
        };
        if let Some(network) = parse_network(address) {
            return Ok(EgressRule::Network {
                network,
                port: Some(port),
            });
        }
        if is_host_name(address) {
            return Ok(EgressRule::Host {
                name: address.to_ascii_lowercase(),
                port,
            });
        }
        Err(invalid())
    }
}

impl Serialize for EgressRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EgressRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EgressRule, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A CIDR network or a bare address (as its one-address network).
fn parse_network(text: &str) -> Option<IpNet> {
    if let Ok(network) = text.parse::<IpNet>() {
        return Some(network.trunc());
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens.
fn is_host_name(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_keep_the_old_booleans() {
        assert_eq!("egress".parse(), Ok(NetworkMode::Egress));
        assert_eq!("true".parse(), Ok(NetworkMode::Host));
        assert_eq!("false".parse(), Ok(NetworkMode::None));
        assert!(
            "maybe"
                .parse::<NetworkMode>()
                .unwrap_err()
                .contains("none, egress or host")
        );
        let stored: NetworkMode = serde_json::from_str("true").unwrap();
        assert_eq!(stored, NetworkMode::Host);
        let stored: NetworkMode = serde_json::from_str("\"egress\"").unwrap();
        assert_eq!(stored, NetworkMode::Egress);
        assert_eq!(serde_json::to_string(&NetworkMode::None).unwrap(), "\"none\"");
    }

    #[test]
    fn egress_rules_parse_hosts_networks_and_ports() {
        let parsed = |text: &str| text.parse::<EgressRule>();
        assert_eq!(
            parsed("API.example.com:443"),
            Ok(EgressRule::Host {
                name: "api.example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            parsed("203.0.113.7/24"),
            Ok(EgressRule::Network {
                network: "203.0.113.0/24".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(
            parsed("203.0.113.7:8080"),
            Ok(EgressRule::Network {
                network: "203.0.113.7/32".parse().unwrap(),
                port: Some(8080)
            })
        );
        assert_eq!(
            parsed("[2001:db8::/32]:443").unwrap().to_string(),
            "[2001:db8::/32]:443"
        );
        assert_eq!(parsed("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        for bad in [
            "",
            "example.com",
            "example.com:0",
            "example.com:99999",
            "10.0.0.0/33",
            "a..b:80",
            "-a.b:80",
            "1.2.3:80",
        ] {
            assert!(parsed(bad).is_err(), "{bad} should be refused");
        }
    }
}
