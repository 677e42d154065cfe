//! What the operator decides about egress: the containers' subnets, the non-global ranges
//! opened to them, the resolver their DNS goes to, and how many namespaces wait ready.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

use crate::ranges::{ALWAYS_REFUSED, ALWAYS_REFUSED_V6};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct EgressConfigError(String);

/// Egress settings of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// This node's tag ([`crate::node_tag`]): names its bridge, namespaces and table.
    pub tag: String,
    /// IPv4 addresses of egress containers; the first one is the bridge's (gateway and
    /// DNS). Every node on a host needs its own.
    pub subnet: Ipv4Net,
    /// IPv6 addresses of egress containers (unique local, NAT66 out), or `None` for IPv4
    /// only. Address `N` of it goes with address `N` of `subnet`.
    pub subnet6: Option<Ipv6Net>,
    /// Non-global ranges functions may reach (`KILN_EGRESS_ALLOW`); the host's own
    /// addresses stay refused even inside them.
    pub allow: Vec<IpNet>,
    /// Where the DNS forwarder sends queries; `None` means the first `nameserver` of the
    /// host's `/etc/resolv.conf`.
    pub dns_upstream: Option<SocketAddr>,
    /// Namespaces kept ready, so a cold start only joins one.
    pub prepared: usize,
}

impl EgressConfig {
    pub const DEFAULT_SUBNET: &'static str = "10.250.0.0/16";
    /// A unique local /64 ("Kiln" in the global id).
    pub const DEFAULT_SUBNET6: &'static str = "fd4b:696c:6e00::/64";

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
        if let Some(refused) = overlapping_refused(&IpNet::V4(subnet)) {
            return Err(EgressConfigError(format!(
                "KILN_EGRESS_SUBNET `{text}` overlaps {refused}, which egress never reaches; pick a private range"
            )));
        }
        Ok(subnet.trunc())
    }

    /// Reads `KILN_EGRESS_SUBNET6`-style text: a unique local network (fc00::/7), /64 to /120.
    pub fn parse_subnet6(text: &str) -> Result<Ipv6Net, EgressConfigError> {
        let subnet: Ipv6Net = text.trim().parse().map_err(|_| {
            EgressConfigError(format!(
                "KILN_EGRESS_SUBNET6 `{text}` must be an IPv6 CIDR network such as {}",
                EgressConfig::DEFAULT_SUBNET6
            ))
        })?;
        let unique_local: Ipv6Net = "fc00::/7".parse().expect("built-in range");
        if !(64..=120).contains(&subnet.prefix_len()) || !unique_local.contains(&subnet) {
            return Err(EgressConfigError(format!(
                "KILN_EGRESS_SUBNET6 `{text}` must be a unique local network (inside fc00::/7) from a /64 to a /120"
            )));
        }
        Ok(subnet.trunc())
    }

    /// Reads `KILN_EGRESS_ALLOW`: comma-separated CIDR networks (or single addresses).
    pub fn parse_allow(
        text: &str,
        subnet: &Ipv4Net,
        subnet6: Option<&Ipv6Net>,
    ) -> Result<Vec<IpNet>, EgressConfigError> {
        let mut allowed = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let network = match item.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(address) => IpNet::from(address),
                    Err(_) => {
                        return Err(EgressConfigError(format!(
                            "KILN_EGRESS_ALLOW `{item}` is not an IP address or CIDR network (such as 198.18.0.0/15)"
                        )));
                    }
                },
            };
            if let Some(refused) = overlapping_refused(&network) {
                return Err(EgressConfigError(format!(
                    "KILN_EGRESS_ALLOW `{item}` overlaps {refused}, which egress never reaches"
                )));
            }
            let own = [
                Some(IpNet::V4(*subnet)),
                subnet6.map(|subnet6| IpNet::V6(*subnet6)),
            ];
            if let Some(own) = own.into_iter().flatten().find(|own| overlaps(own, &network)) {
                return Err(EgressConfigError(format!(
                    "KILN_EGRESS_ALLOW `{item}` overlaps the containers' own subnet {own}; containers never reach each other"
                )));
            }
            allowed.push(network);
        }
        Ok(allowed)
    }

    /// The bridge's IPv4 address: gateway and DNS resolver of every container.
    pub fn gateway(&self) -> Ipv4Addr {
        nth_address(&self.subnet, 1)
    }

    /// The bridge's IPv6 address, the containers' IPv6 gateway.
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.subnet6.map(|subnet6| nth_address6(&subnet6, 1))
    }

    /// The container address of slot `index` (from 2).
    pub(crate) fn address(&self, index: u32) -> Ipv4Addr {
        nth_address(&self.subnet, index)
    }

    /// The container's IPv6 address of slot `index`, when egress has IPv6.
    pub(crate) fn address6(&self, index: u32) -> Option<Ipv6Addr> {
        self.subnet6.map(|subnet6| nth_address6(&subnet6, index))
    }

    /// Slot indexes both subnets hold: every address but the network's, the gateway's and
    /// the last one (IPv4's broadcast).
    pub(crate) fn slot_indexes(&self) -> std::ops::Range<u32> {
        let size = 1u64 << (32 - self.subnet.prefix_len());
        let size6 = self.subnet6.map_or(u64::MAX, |subnet6| {
            1u64 << (128 - u32::from(subnet6.prefix_len())).min(63)
        });
        2..(size.min(size6) - 1) as u32
    }
}

/// Whether the host has an IPv6 default route (`/proc/net/ipv6_route`), which is what
/// egress needs to offer IPv6.
pub fn host_has_ipv6_route() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|routes| {
        routes.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() == 10
                && fields[0].bytes().all(|byte| byte == b'0')
                && fields[1] == "00"
                && fields[9] != "lo"
        })
    })
}

fn nth_address(subnet: &Ipv4Net, index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + index)
}

fn nth_address6(subnet: &Ipv6Net, index: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + u128::from(index))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

fn overlapping_refused(network: &IpNet) -> Option<&'static str> {
    ALWAYS_REFUSED
        .iter()
        .chain(ALWAYS_REFUSED_V6)
        .copied()
        .find(|refused| {
            let refused: IpNet = refused.parse().expect("built-in range");
            overlaps(&refused, network)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Ipv4Net {
        EgressConfig::parse_subnet(EgressConfig::DEFAULT_SUBNET).unwrap()
    }

    fn subnet6() -> Ipv6Net {
        EgressConfig::parse_subnet6(EgressConfig::DEFAULT_SUBNET6).unwrap()
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
        assert_eq!(subnet6().to_string(), "fd4b:696c:6e00::/64");
        assert!(
            EgressConfig::parse_subnet6("2001:db8::/64")
                .unwrap_err()
                .0
                .contains("unique local")
        );
        assert!(EgressConfig::parse_subnet6("fd00::/48").is_err());
    }

    #[test]
    fn allow_lists_refuse_what_egress_never_reaches() {
        let allowed = EgressConfig::parse_allow(
            "198.18.0.0/15, 192.168.1.7, fdfa:1::/64",
            &subnet(),
            Some(&subnet6()),
        )
        .unwrap();
        assert_eq!(
            allowed,
            [
                "198.18.0.0/15".parse::<IpNet>().unwrap(),
                "192.168.1.7/32".parse().unwrap(),
                "fdfa:1::/64".parse().unwrap()
            ]
        );
        assert!(EgressConfig::parse_allow("", &subnet(), None).unwrap().is_empty());
        for (bad, needle) in [
            ("169.254.169.254", "169.254.0.0/16"),
            ("0.0.0.0/0", "overlaps"),
            ("10.0.0.0/8", "own subnet"),
            ("fd4b:696c:6e00::7", "own subnet"),
            ("fe80::1", "fe80::/10"),
            ("::/0", "overlaps"),
            ("10.1.2", "not an IP"),
        ] {
            let error = EgressConfig::parse_allow(bad, &subnet(), Some(&subnet6()))
                .unwrap_err()
                .0;
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn addresses_come_from_the_subnets() {
        let config = EgressConfig {
            tag: "00000".into(),
            subnet: EgressConfig::parse_subnet("10.9.8.0/28").unwrap(),
            subnet6: Some(subnet6()),
            allow: Vec::new(),
            dns_upstream: None,
            prepared: 1,
        };
        assert_eq!(config.gateway(), Ipv4Addr::new(10, 9, 8, 1));
        assert_eq!(config.address(2), Ipv4Addr::new(10, 9, 8, 2));
        assert_eq!(config.gateway6(), Some("fd4b:696c:6e00::1".parse().unwrap()));
        assert_eq!(config.address6(2), Some("fd4b:696c:6e00::2".parse().unwrap()));
        assert_eq!(config.slot_indexes(), 2..15);
        let small6 = EgressConfig {
            subnet: subnet(),
            subnet6: Some(EgressConfig::parse_subnet6("fd4b::/120").unwrap()),
            ..config
        };
        assert_eq!(small6.slot_indexes(), 2..255);
    }
}
