//! The node's nftables table: NAT for egress containers, and what they may not reach.
//!
//! Both families are handled alike (IPv6 only when the node has an IPv6 subnet for
//! egress, else it is dropped). Packets from containers arrive on the bridge. Those
//! addressed to the host itself (any of its addresses, on any interface) meet the `input`
//! hook, where only DNS to the gateway (and IPv6 neighbour discovery) passes. Forwarded ones pass `from_functions`: always-refused ranges, then
//! non-global ranges the operator did not open, then the container's own narrowing (a
//! verdict map from its address to its chain), then out through masquerade. Nothing new
//! enters a container, from outside or from the host.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use kiln_types::EgressRule;

use crate::EgressConfig;
use crate::command::run_script;
use crate::names::Names;
use crate::ranges::{ALWAYS_REFUSED, ALWAYS_REFUSED_V6, NOT_GLOBAL, NOT_GLOBAL_V6};

/// One resolved destination of a container's narrowed egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub network: IpNet,
    pub port: Option<u16>,
}

/// The whole table, replacing any earlier one of the same name in one transaction.
pub(crate) fn ruleset(config: &EgressConfig, names: &Names) -> String {
    let table = names.table();
    let bridge = names.bridge();
    let gateway = config.gateway();
    let subnet = config.subnet;
    let opened = |ipv6: bool, placeholder: &str| {
        let mut opened: Vec<String> = config
            .allow
            .iter()
            .filter(|network| matches!(network, IpNet::V6(_)) == ipv6)
            .map(ToString::to_string)
            .collect();
        if opened.is_empty() {
            // An interval set cannot be declared with no elements in this syntax; this one
            // matches nothing a container could send to (it is refused before this test).
            opened.push(placeholder.into());
        }
        opened.join(", ")
    };
    let mut always6: Vec<String> = ALWAYS_REFUSED_V6
        .iter()
        .map(|range| (*range).to_owned())
        .collect();
    let ipv6_rules = match config.subnet6 {
        Some(subnet6) => {
            always6.push(subnet6.to_string());
            format!(
                "    ip6 saddr != {subnet6} drop
    ip6 daddr @always_refused6 goto refuse
    ip6 daddr @not_global6 ip6 daddr != @opened6 goto refuse
    ip6 saddr vmap @narrowed6
"
            )
        }
        None => "    meta nfproto ipv6 drop\n".to_owned(),
    };
    let neighbour_discovery = if config.subnet6.is_some() {
        format!("    iifname \"{bridge}\" icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n")
    } else {
        String::new()
    };
    let masquerade6 = config
        .subnet6
        .map(|subnet6| format!("    ip6 saddr {subnet6} oifname != \"{bridge}\" masquerade\n"))
        .unwrap_or_default();
    format!(
        "table inet {table} {{}}
delete table inet {table}
table inet {table} {{
  set refused {{
    type ipv4_addr
    size 65535
    flags dynamic
  }}
  set refused6 {{
    type ipv6_addr
    size 65535
    flags dynamic
  }}
  set always_refused {{
    type ipv4_addr
    flags interval
    elements = {{ {always}, {subnet} }}
  }}
  set always_refused6 {{
    type ipv6_addr
    flags interval
    elements = {{ {always6} }}
  }}
  set not_global {{
    type ipv4_addr
    flags interval
    elements = {{ {not_global} }}
  }}
  set not_global6 {{
    type ipv6_addr
    flags interval
    elements = {{ {not_global6} }}
  }}
  set opened {{
    type ipv4_addr
    flags interval
    auto-merge
    elements = {{ {opened} }}
  }}
  set opened6 {{
    type ipv6_addr
    flags interval
    auto-merge
    elements = {{ {opened6} }}
  }}
  map narrowed {{
    type ipv4_addr : verdict
  }}
  map narrowed6 {{
    type ipv6_addr : verdict
  }}
  chain refuse {{
    meta nfproto ipv4 update @refused {{ ip saddr counter }}
    meta nfproto ipv6 update @refused6 {{ ip6 saddr counter }}
    reject with icmpx type admin-prohibited
  }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname \"{bridge}\" ip daddr {gateway} meta l4proto {{ tcp, udp }} th dport 53 accept
{neighbour_discovery}    iifname \"{bridge}\" goto refuse
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname \"{bridge}\" jump from_functions
    oifname \"{bridge}\" ct state established,related accept
    oifname \"{bridge}\" drop
  }}
  chain from_functions {{
    oifname \"{bridge}\" goto refuse
    ip saddr != {subnet} drop
    ip daddr @always_refused goto refuse
    ip daddr @not_global ip daddr != @opened goto refuse
    ip saddr vmap @narrowed
{ipv6_rules}    accept
  }}
  chain output {{
    type filter hook output priority filter - 10; policy accept;
    oifname \"{bridge}\" ct state new meta l4proto {{ tcp, udp }} drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} oifname != \"{bridge}\" masquerade
{masquerade6}  }}
}}
",
        always = ALWAYS_REFUSED.join(", "),
        always6 = always6.join(", "),
        not_global = NOT_GLOBAL.join(", "),
        not_global6 = NOT_GLOBAL_V6.join(", "),
        opened = opened(false, "0.0.0.0/32"),
        opened6 = opened(true, "::/128"),
    )
}

/// Removes the table (and so every rule and counter) if it exists.
pub(crate) fn removal(names: &Names) -> String {
    let table = names.table();
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

/// A container's own chain: only `destinations` pass; everything else is refused.
pub(crate) fn narrowing(
    names: &Names,
    index: u32,
    addresses: (Ipv4Addr, Option<Ipv6Addr>),
    destinations: &[Destination],
) -> String {
    let table = names.table();
    let chain = narrowing_chain(index);
    let mut script = format!("add chain inet {table} {chain}\n");
    for destination in destinations {
        let (family, network) = match destination.network {
            IpNet::V4(network) => ("ip", network.to_string()),
            IpNet::V6(network) => ("ip6", network.to_string()),
        };
        match destination.port {
            Some(port) => writeln!(
                script,
                "add rule inet {table} {chain} {family} daddr {network} meta l4proto {{ tcp, udp }} th dport {port} accept"
            ),
            None => writeln!(script, "add rule inet {table} {chain} {family} daddr {network} accept"),
        }
        .expect("writing to a String");
    }
    writeln!(script, "add rule inet {table} {chain} goto refuse").expect("writing to a String");
    let (address, address6) = addresses;
    writeln!(
        script,
        "add element inet {table} narrowed {{ {address} : jump {chain} }}"
    )
    .expect("writing to a String");
    if let Some(address6) = address6 {
        writeln!(
            script,
            "add element inet {table} narrowed6 {{ {address6} : jump {chain} }}"
        )
        .expect("writing to a String");
    }
    script
}

/// Undoes [`narrowing`].
pub(crate) fn narrowing_removal(
    names: &Names,
    index: u32,
    addresses: (Ipv4Addr, Option<Ipv6Addr>),
) -> String {
    let table = names.table();
    let chain = narrowing_chain(index);
    let (address, address6) = addresses;
    let mut script = format!("delete element inet {table} narrowed {{ {address} }}\n");
    if let Some(address6) = address6 {
        writeln!(script, "delete element inet {table} narrowed6 {{ {address6} }}")
            .expect("writing to a String");
    }
    writeln!(
        script,
        "flush chain inet {table} {chain}\ndelete chain inet {table} {chain}"
    )
    .expect("writing to a String");
    script
}

fn narrowing_chain(index: u32) -> String {
    format!("narrow_{index}")
}

/// Turns a function's rules into destinations, resolving host names now. With `ipv6`
/// off, IPv6 rules and addresses add nothing (the container has no IPv6).
pub(crate) async fn destinations(rules: &[EgressRule], ipv6: bool) -> Result<Vec<Destination>, String> {
    let mut destinations = Vec::new();
    for rule in rules {
        match rule {
            EgressRule::Network { network, port } => {
                if ipv6 || matches!(network, IpNet::V4(_)) {
                    destinations.push(Destination {
                        network: *network,
                        port: *port,
                    });
                }
            }
            EgressRule::Host { name, port } => {
                let resolved = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|error| format!("egress_allow {rule}: cannot resolve {name}: {error}"))?;
                for address in resolved {
                    if ipv6 || address.is_ipv4() {
                        destinations.push(Destination {
                            network: IpNet::from(address.ip()),
                            port: Some(*port),
                        });
                    }
                }
            }
        }
    }
    Ok(destinations)
}

/// Refused packets by container address (IPv4 and IPv6), from the refusal sets' counters.
pub(crate) async fn refused_counts(names: &Names) -> Result<Vec<(IpAddr, u64)>, String> {
    let table = names.table();
    let mut counts = Vec::new();
    for set in ["refused", "refused6"] {
        let listing = run_script("nft", &["-j", "list", "set", "inet", &table, set], "").await?;
        counts.extend(parse_refused(&listing)?);
    }
    Ok(counts)
}

fn parse_refused(listing: &str) -> Result<Vec<(IpAddr, u64)>, String> {
    let json = serde_json::from_str::<serde_json::Value>(listing)
        .map_err(|error| format!("nft printed a set listing that is not JSON: {error}"))?;
    let sets = json["nftables"].as_array().cloned().unwrap_or_default();
    Ok(sets
        .iter()
        .filter_map(|item| item["set"]["elem"].as_array())
        .flatten()
        .filter_map(|element| {
            let element = &element["elem"];
            let address = element["val"].as_str()?.parse().ok()?;
            Some((address, element["counter"]["packets"].as_u64()?))
        })
        .collect())
}

/// Forgets a container's refused counts, so the next user of its addresses starts at zero.
pub(crate) fn refused_removal(names: &Names, address: IpAddr) -> String {
    let set = if address.is_ipv6() { "refused6" } else { "refused" };
    format!("delete element inet {} {set} {{ {address} }}\n", names.table())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EgressConfig {
        let subnet = EgressConfig::parse_subnet("10.250.0.0/16").unwrap();
        let subnet6 = EgressConfig::parse_subnet6(EgressConfig::DEFAULT_SUBNET6).unwrap();
        EgressConfig {
            tag: "abcde".into(),
            allow: EgressConfig::parse_allow("198.18.0.0/15", &subnet, Some(&subnet6)).unwrap(),
            subnet,
            subnet6: None,
            dns_upstream: None,
            prepared: 2,
        }
    }

    #[test]
    fn the_ruleset_names_the_bridge_gateway_and_opened_ranges() {
        let names = Names::new("abcde");
        let rules = ruleset(&config(), &names);
        assert!(rules.starts_with("table inet kiln_abcde {}\ndelete table inet kiln_abcde\n"));
        assert!(rules.contains(
            "iifname \"kilnabcde\" ip daddr 10.250.0.1 meta l4proto { tcp, udp } th dport 53 accept"
        ));
        assert!(rules.contains("elements = { 198.18.0.0/15 }"));
        assert!(rules.contains("169.254.0.0/16"));
        assert!(rules.contains("ip saddr 10.250.0.0/16 oifname != \"kilnabcde\" masquerade"));
        assert!(
            rules.contains("meta nfproto ipv6 drop"),
            "IPv4 only: IPv6 is dropped"
        );
        assert!(!rules.contains("ip6 saddr fd"));
    }

    #[test]
    fn with_ipv6_the_ruleset_refuses_and_masquerades_it_too() {
        let config = EgressConfig {
            subnet6: Some(EgressConfig::parse_subnet6("fd4b:696c:6e00::/64").unwrap()),
            allow: vec!["fdfa:1::/64".parse().unwrap()],
            ..config()
        };
        let rules = ruleset(&config, &Names::new("abcde"));
        assert!(rules.contains("elements = { ::/128, ::1/128, ::ffff:0:0/96, fe80::/10, fec0::/10, ff00::/8, fd4b:696c:6e00::/64 }"));
        assert!(rules.contains("elements = { fdfa:1::/64 }"));
        assert!(
            rules.contains("elements = { 0.0.0.0/32 }"),
            "no IPv4 range opened"
        );
        assert!(rules.contains("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"));
        assert!(rules.contains("ip6 saddr fd4b:696c:6e00::/64 oifname != \"kilnabcde\" masquerade"));
        assert!(!rules.contains("meta nfproto ipv6 drop"));
    }

    #[test]
    fn narrowing_allows_only_the_destinations() {
        let names = Names::new("abcde");
        let addresses = (Ipv4Addr::new(10, 250, 0, 9), Some("fd4b::9".parse().unwrap()));
        let script = narrowing(
            &names,
            9,
            addresses,
            &[
                Destination {
                    network: "198.18.0.2/32".parse().unwrap(),
                    port: Some(8080),
                },
                Destination {
                    network: "2001:db8::/32".parse().unwrap(),
                    port: None,
                },
            ],
        );
        assert!(script.contains("ip daddr 198.18.0.2/32 meta l4proto { tcp, udp } th dport 8080 accept"));
        assert!(script.contains("ip6 daddr 2001:db8::/32 accept"));
        assert!(script.contains("add element inet kiln_abcde narrowed { 10.250.0.9 : jump narrow_9 }\n"));
        assert!(script.ends_with("add element inet kiln_abcde narrowed6 { fd4b::9 : jump narrow_9 }\n"));
        let removal = narrowing_removal(&names, 9, addresses);
        assert!(removal.contains("delete element inet kiln_abcde narrowed6 { fd4b::9 }"));
        assert!(removal.contains("delete chain inet kiln_abcde narrow_9"));
    }

    #[test]
    fn refused_counts_are_read_from_nft_json() {
        let listing = r#"{"nftables": [{"metainfo": {}}, {"set": {"name": "refused",
            "elem": [{"elem": {"val": "10.250.0.2", "counter": {"packets": 6, "bytes": 360}}}]}}]}"#;
        assert_eq!(
            parse_refused(listing).unwrap(),
            [(IpAddr::from(Ipv4Addr::new(10, 250, 0, 2)), 6)]
        );
        assert_eq!(
            refused_removal(&Names::new("abcde"), "fd4b::2".parse().unwrap()),
            "delete element inet kiln_abcde refused6 { fd4b::2 }\n"
        );
        assert!(parse_refused("not json").is_err());
    }
}
