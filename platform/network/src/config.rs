//! What the operator decides about egress: the containers' subnet, the non-global ranges
//! opened to them, the resolver their DNS goes to, and how many namespaces wait ready.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::ranges::ALWAYS_REFUSED;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct EgressConfigError(String);

/// Egress settings of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// This node's tag ([`crate::node_tag`]): names its bridge, namespaces and table.
    pub tag: String,
    /// Addresses of egress containers; the first one is the bridge's (gateway and DNS).
    /// Every node on a host needs its own.
    pub subnet: Ipv4Net,
    /// Non-global ranges functions may reach (`KILN_EGRESS_ALLOW`); the host's own
    /// addresses stay refused even inside them.
    pub allow: Vec<Ipv4Net>,
    /// Where the DNS forwarder sends queries; `None` means the first `nameserver` of the
    /// host's `/etc/resolv.conf`.
    pub dns_upstream: Option<SocketAddr>,
    /// Namespaces kept ready, so a cold start only joins one.
    pub prepared: usize,
}

impl EgressConfig {
    pub const DEFAULT_SUBNET: &'static str = "10.250.0.0/16";

    /// Reads `KILN_EGRESS_SUBNET`-style text.
    pub fn parse_subnet(text: &str) -> Result<Ipv4Net, EgressConfigError> {
        let subnet: Ipv4Net = text.trim().parse().map_err(|_| {
            EgressConfigError(format!(
                "KILN_EGRESS_SUBNET `{text}` must be an IPv4 CIDR network such as {}",
                EgressConfig::DEFAULT_SUBNET
            ))
        })?;
        if !(16..=28).contains(&subnet.prefix_len()) {
            return Err(EgressConfigError(format!(
                "KILN_EGRESS_SUBNET `{text}` must be from a /16 to a /28 (it holds one address per container)"
            )));
        }
        if let Some(refused) = overlapping_refused(&subnet) {
            return Err(EgressConfigError(format!(
                "KILN_EGRESS_SUBNET `{text}` overlaps {refused}, which egress never reaches; pick a private range"
            )));
        }
        Ok(subnet.trunc())
    }

    /// Reads `KILN_EGRESS_ALLOW`: comma-separated IPv4 CIDR networks (or single addresses).
    pub fn parse_allow(text: &str, subnet: &Ipv4Net) -> Result<Vec<Ipv4Net>, EgressConfigError> {
        let mut allowed = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let network = match item.parse::<Ipv4Net>() {
                Ok(network) => network.trunc(),
                Err(_) => match item.parse::<Ipv4Addr>() {
                    Ok(address) => Ipv4Net::from(address),
                    Err(_) if item.contains(':') => {
                        return Err(EgressConfigError(format!(
                            "KILN_EGRESS_ALLOW `{item}`: egress is IPv4 only for now, so IPv6 ranges cannot be opened"
                        )));
                    }
                    Err(_) => {
                        return Err(EgressConfigError(format!(
                            "KILN_EGRESS_ALLOW `{item}` is not an IPv4 address or CIDR network (such as 198.18.0.0/15)"
                        )));
                    }
                },
            };
            if let Some(refused) = overlapping_refused(&network) {
                return Err(EgressConfigError(format!(
                    "KILN_EGRESS_ALLOW `{item}` overlaps {refused}, which egress never reaches"
                )));
            }
            if network.contains(subnet) || subnet.contains(&network) {
                return Err(EgressConfigError(format!(
                    "KILN_EGRESS_ALLOW `{item}` overlaps the containers' own subnet {subnet}; containers never reach each other"
                )));
            }
            allowed.push(network);
        }
        Ok(allowed)
    }

    /// The bridge's address: gateway and DNS resolver of every container.
    pub fn gateway(&self) -> Ipv4Addr {
        nth_address(&self.subnet, 1)
    }

    /// The container address of slot `index` (from 2).
    pub(crate) fn address(&self, index: u32) -> Ipv4Addr {
        nth_address(&self.subnet, index)
    }

    /// Slot indexes this subnet holds: every address but the network's, the gateway's and
    /// the broadcast one.
    pub(crate) fn slot_indexes(&self) -> std::ops::Range<u32> {
        let size = 1u32 << (32 - self.subnet.prefix_len());
        2..size - 1
    }
}

fn nth_address(subnet: &Ipv4Net, index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + index)
}

fn overlapping_refused(network: &Ipv4Net) -> Option<&'static str> {
    ALWAYS_REFUSED.iter().copied().find(|refused| {
        let refused: Ipv4Net = refused.parse().expect("built-in range");
        refused.contains(network) || network.contains(&refused)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Ipv4Net {
        EgressConfig::parse_subnet(EgressConfig::DEFAULT_SUBNET).unwrap()
    }

    #[test]
    fn subnets_must_be_private_and_sized_for_containers() {
        assert_eq!(subnet().to_string(), "10.250.0.0/16");
        assert!(EgressConfig::parse_subnet("10.250.0.0/8").is_err());
        assert!(EgressConfig::parse_subnet("10.250.0.0/30").is_err());
        assert!(
            EgressConfig::parse_subnet("127.1.0.0/16")
                .unwrap_err()
                .0
                .contains("127.0.0.0/8")
        );
        assert!(EgressConfig::parse_subnet("ten").is_err());
    }

    #[test]
    fn allow_lists_refuse_what_egress_never_reaches() {
        let allowed = EgressConfig::parse_allow("198.18.0.0/15, 192.168.1.7", &subnet()).unwrap();
        assert_eq!(
            allowed,
            [
                "198.18.0.0/15".parse().unwrap(),
                "192.168.1.7/32".parse().unwrap()
            ]
        );
        assert!(EgressConfig::parse_allow("", &subnet()).unwrap().is_empty());
        for (bad, needle) in [
            ("169.254.169.254", "169.254.0.0/16"),
            ("0.0.0.0/0", "overlaps"),
            ("10.0.0.0/8", "own subnet"),
            ("fd00::/8", "IPv4 only"),
            ("10.1.2", "not an IPv4"),
        ] {
            let error = EgressConfig::parse_allow(bad, &subnet()).unwrap_err().0;
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn addresses_come_from_the_subnet() {
        let config = EgressConfig {
            tag: "00000".into(),
            subnet: EgressConfig::parse_subnet("10.9.8.0/28").unwrap(),
            allow: Vec::new(),
            dns_upstream: None,
            prepared: 1,
        };
        assert_eq!(config.gateway(), Ipv4Addr::new(10, 9, 8, 1));
        assert_eq!(config.address(2), Ipv4Addr::new(10, 9, 8, 2));
        assert_eq!(config.slot_indexes(), 2..15);
    }
}
