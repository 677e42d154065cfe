//! The node's nftables table: NAT for egress containers, and what they may not reach.
//!
//! Packets from containers arrive on the bridge. Those addressed to the host itself (any
//! of its addresses, on any interface) meet the `input` hook, where only DNS to the
//! gateway passes. Forwarded ones pass `from_functions`: always-refused ranges, then
//! non-global ranges the operator did not open, then the container's own narrowing (a
//! verdict map from its address to its chain), then out through masquerade. Nothing new
//! enters a container, from outside or from the host.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use kiln_types::EgressRule;

use crate::EgressConfig;
use crate::command::run_script;
use crate::names::Names;
use crate::ranges::{ALWAYS_REFUSED, NOT_GLOBAL};

/// One resolved destination of a container's narrowed egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub port: Option<u16>,
}

/// The whole table, replacing any earlier one of the same name in one transaction.
pub(crate) fn ruleset(config: &EgressConfig, names: &Names) -> String {
    let table = names.table();
    let bridge = names.bridge();
    let gateway = config.gateway();
    let subnet = config.subnet;
    let mut opened: Vec<String> = config.allow.iter().map(ToString::to_string).collect();
    if opened.is_empty() {
        // An empty interval set cannot be declared with elements; this one matches nothing
        // a container could send to (it is refused before this test).
        opened.push("0.0.0.0/32".into());
    }
    format!(
        "table inet {table} {{}}
delete table inet {table}
table inet {table} {{
  set refused {{
    type ipv4_addr
    size 65535
    flags dynamic
  }}
  set always_refused {{
    type ipv4_addr
    flags interval
    elements = {{ {always}, {subnet} }}
  }}
  set not_global {{
    type ipv4_addr
    flags interval
    elements = {{ {not_global} }}
  }}
  set opened {{
    type ipv4_addr
    flags interval
    auto-merge
    elements = {{ {opened} }}
  }}
  map narrowed {{
    type ipv4_addr : verdict
  }}
  chain refuse {{
    update @refused {{ ip saddr counter }}
    reject with icmpx type admin-prohibited
  }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname \"{bridge}\" ip daddr {gateway} meta l4proto {{ tcp, udp }} th dport 53 accept
    iifname \"{bridge}\" meta nfproto ipv4 goto refuse
    iifname \"{bridge}\" drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname \"{bridge}\" jump from_functions
    oifname \"{bridge}\" ct state established,related accept
    oifname \"{bridge}\" drop
  }}
  chain from_functions {{
    meta nfproto != ipv4 drop
    oifname \"{bridge}\" goto refuse
    ip saddr != {subnet} drop
    ip daddr @always_refused goto refuse
    ip daddr @not_global ip daddr != @opened goto refuse
    ip saddr vmap @narrowed
    accept
  }}
  chain output {{
    type filter hook output priority filter - 10; policy accept;
    oifname \"{bridge}\" ct state new meta l4proto {{ tcp, udp }} drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} oifname != \"{bridge}\" masquerade
  }}
}}
",
        always = ALWAYS_REFUSED.join(", "),
        not_global = NOT_GLOBAL.join(", "),
        opened = opened.join(", "),
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
    address: Ipv4Addr,
    destinations: &[Destination],
) -> String {
    let table = names.table();
    let chain = narrowing_chain(index);
    let mut script = format!("add chain inet {table} {chain}\n");
    for destination in destinations {
        let network = format!("{}/{}", destination.address, destination.prefix);
        match destination.port {
            Some(port) => writeln!(
                script,
                "add rule inet {table} {chain} ip daddr {network} meta l4proto {{ tcp, udp }} th dport {port} accept"
            ),
            None => writeln!(script, "add rule inet {table} {chain} ip daddr {network} accept"),
        }
        .expect("writing to a String");
    }
    writeln!(script, "add rule inet {table} {chain} goto refuse").expect("writing to a String");
    writeln!(
        script,
        "add element inet {table} narrowed {{ {address} : jump {chain} }}"
    )
    .expect("writing to a String");
    script
}

/// Undoes [`narrowing`].
pub(crate) fn narrowing_removal(names: &Names, index: u32, address: Ipv4Addr) -> String {
    let table = names.table();
    let chain = narrowing_chain(index);
    format!(
        "delete element inet {table} narrowed {{ {address} }}\nflush chain inet {table} {chain}\ndelete chain inet {table} {chain}\n"
    )
}

fn narrowing_chain(index: u32) -> String {
    format!("narrow_{index}")
}

/// Turns a function's rules into IPv4 destinations, resolving host names now. IPv6 rules
/// match nothing (egress is IPv4 only), so they add no destination.
pub(crate) async fn destinations(rules: &[EgressRule]) -> Result<Vec<Destination>, String> {
    let mut destinations = Vec::new();
    for rule in rules {
        match rule {
            EgressRule::Network {
                network: IpNet::V4(network),
                port,
            } => destinations.push(Destination {
                address: network.network(),
                prefix: network.prefix_len(),
                port: *port,
            }),
            EgressRule::Network {
                network: IpNet::V6(_),
                ..
            } => {}
            EgressRule::Host { name, port } => {
                let resolved = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|error| format!("egress_allow {rule}: cannot resolve {name}: {error}"))?;
                for address in resolved {
                    if let IpAddr::V4(address) = address.ip() {
                        destinations.push(Destination {
                            address,
                            prefix: 32,
                            port: Some(*port),
                        });
                    }
                }
            }
        }
    }
    Ok(destinations)
}

/// Refused packets by container address, from the `refused` set's counters.
pub(crate) async fn refused_counts(names: &Names) -> Result<Vec<(Ipv4Addr, u64)>, String> {
    let table = names.table();
    let listing = run_script("nft", &["-j", "list", "set", "inet", &table, "refused"], "").await?;
    Ok(parse_refused(&listing))
}

fn parse_refused(listing: &str) -> Vec<(Ipv4Addr, u64)> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(listing) else {
        return Vec::new();
    };
    let sets = json["nftables"].as_array().cloned().unwrap_or_default();
    sets.iter()
        .filter_map(|item| item["set"]["elem"].as_array())
        .flatten()
        .filter_map(|element| {
            let element = &element["elem"];
            let address = element["val"].as_str()?.parse().ok()?;
            Some((address, element["counter"]["packets"].as_u64()?))
        })
        .collect()
}

/// Forgets a container's refused count, so the next user of its address starts at zero.
pub(crate) fn refused_removal(names: &Names, address: Ipv4Addr) -> String {
    format!("delete element inet {} refused {{ {address} }}\n", names.table())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EgressConfig {
        let subnet = EgressConfig::parse_subnet("10.250.0.0/16").unwrap();
        EgressConfig {
            tag: "abcde".into(),
            allow: EgressConfig::parse_allow("198.18.0.0/15", &subnet).unwrap(),
            subnet,
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
    }

    #[test]
    fn narrowing_allows_only_the_destinations() {
        let names = Names::new("abcde");
        let address = Ipv4Addr::new(10, 250, 0, 9);
        let script = narrowing(
            &names,
            9,
            address,
            &[Destination {
                address: Ipv4Addr::new(198, 18, 0, 2),
                prefix: 32,
                port: Some(8080),
            }],
        );
        assert!(script.contains("ip daddr 198.18.0.2/32 meta l4proto { tcp, udp } th dport 8080 accept"));
        assert!(script.ends_with("add element inet kiln_abcde narrowed { 10.250.0.9 : jump narrow_9 }\n"));
        assert!(narrowing_removal(&names, 9, address).contains("delete chain inet kiln_abcde narrow_9"));
    }

    #[test]
    fn refused_counts_are_read_from_nft_json() {
        let listing = r#"{"nftables": [{"metainfo": {}}, {"set": {"name": "refused",
            "elem": [{"elem": {"val": "10.250.0.2", "counter": {"packets": 6, "bytes": 360}}}]}}]}"#;
        assert_eq!(parse_refused(listing), [(Ipv4Addr::new(10, 250, 0, 2), 6)]);
        assert!(parse_refused("not json").is_empty());
    }
}
