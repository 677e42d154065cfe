//! Network namespaces for egress containers: the bridge they hang off, preparing one
//! (namespace, veth pair, address, route) and removing it, and sweeping leftovers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use std::path::PathBuf;

use crate::EgressConfig;
use crate::command::run_script;
use crate::names::Names;

/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// One prepared namespace: joined by a container, removed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub index: u32,
    pub address: Ipv4Addr,
    pub address6: Option<Ipv6Addr>,
    pub namespace: PathBuf,
    /// The host end of its veth pair, whose counters are the container's traffic.
    pub veth: String,
}

/// Creates the bridge with the gateway addresses and turns on forwarding.
pub(crate) async fn create_bridge(config: &EgressConfig, names: &Names) -> Result<(), String> {
    let bridge = names.bridge();
    let subnets = [Some(IpNet::V4(config.subnet)), config.subnet6.map(IpNet::V6)];
    for subnet in subnets.into_iter().flatten() {
        let family = if subnet.addr().is_ipv4() { "-4" } else { "-6" };
        let routes = run_script("ip", &[family, "-o", "route", "show", "table", "all"], "").await?;
        if let Some(route) = overlapping_route(&routes, &subnet) {
            let variable = if subnet.addr().is_ipv4() {
                "KILN_EGRESS_SUBNET"
            } else {
                "KILN_EGRESS_SUBNET6"
            };
            return Err(format!(
                "{variable} {subnet} overlaps a network the host already routes ({route}); give every kilnd on a host \
                 its own subnet, outside the host's networks"
            ));
        }
    }
    let gateway = format!("{}/{}", config.gateway(), config.subnet.prefix_len());
    run_script(
        "ip",
        &["-batch", "-"],
        &format!("link add {bridge} type bridge\naddr add {gateway} dev {bridge}\n"),
    )
    .await?;
    match (config.subnet6, config.gateway6()) {
        (Some(subnet6), Some(gateway6)) => {
            let address = format!("{gateway6}/{}", subnet6.prefix_len());
            run_script("ip", &["addr", "add", &address, "dev", &bridge, "nodad"], "").await?;
        }
        // IPv4 only: no IPv6 address on the host side for containers to find.
        _ => write_sysctl(&format!("net/ipv6/conf/{bridge}/disable_ipv6"), "1"),
    }
    run_script("ip", &["link", "set", &bridge, "up"], "").await?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|error| format!("turning on IPv4 forwarding: {error}"))?;
    if config.subnet6.is_some() {
        keep_accepting_router_advertisements();
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .map_err(|error| format!("turning on IPv6 forwarding: {error}"))?;
    }
    Ok(())
}

/// A host that forwards IPv6 ignores router advertisements on interfaces with
/// `accept_ra=1`, and would lose its autoconfigured addresses and default route: those
/// interfaces get `accept_ra=2` (accept even when forwarding) first.
fn keep_accepting_router_advertisements() {
    let Ok(interfaces) = std::fs::read_dir("/proc/sys/net/ipv6/conf") else {
        return;
    };
    for interface in interfaces.flatten() {
        let key = interface.path().join("accept_ra");
        if std::fs::read_to_string(&key).is_ok_and(|value| value.trim() == "1") {
            let _ = std::fs::write(&key, "2");
        }
    }
}

/// Prepares slot `index`: its namespace, an isolated bridge port, its address and route.
pub(crate) async fn prepare(config: &EgressConfig, names: &Names, index: u32) -> Result<Slot, String> {
    let slot = Slot {
        index,
        address: config.address(index),
        address6: config.address6(index),
        namespace: PathBuf::from(NETNS_DIR).join(names.namespace(index)),
        veth: names.veth(index),
    };
    let (namespace, veth, bridge) = (names.namespace(index), &slot.veth, names.bridge());
    let host_side = format!(
        "netns add {namespace}\n\
         link add {veth} type veth peer name eth0 netns {namespace}\n\
         link set {veth} master {bridge}\n\
         link set dev {veth} type bridge_slave isolated on\n\
         link set {veth} up\n"
    );
    let mut inside = format!(
        "addr add {}/{} dev eth0\nlink set eth0 up\nlink set lo up\nroute add default via {}\n",
        slot.address,
        config.subnet.prefix_len(),
        config.gateway()
    );
    if let (Some(address6), Some(subnet6), Some(gateway6)) =
        (slot.address6, config.subnet6, config.gateway6())
    {
        inside.push_str(&format!(
            "addr add {address6}/{} dev eth0 nodad\nroute add ::/0 via {gateway6}\n",
            subnet6.prefix_len()
        ));
    }
    let prepared = async {
        run_script("ip", &["-batch", "-"], &host_side).await?;
        write_sysctl(&format!("net/ipv6/conf/{veth}/disable_ipv6"), "1");
        run_script("ip", &["-n", &namespace, "-batch", "-"], &inside).await
    };
    match prepared.await {
        Ok(_) => Ok(slot),
        Err(error) => {
            remove(names, index).await;
            Err(error)
        }
    }
}

/// Removes slot `index`'s veth pair and namespace; missing pieces are fine.
pub(crate) async fn remove(names: &Names, index: u32) {
    let veth = names.veth(index);
    if link_exists(&veth)
        && let Err(error) = run_script("ip", &["link", "del", &veth], "").await
    {
        tracing::warn!(%error, "removing an egress veth failed");
    }
    let namespace = names.namespace(index);
    if PathBuf::from(NETNS_DIR).join(&namespace).exists()
        && let Err(error) = run_script("ip", &["netns", "del", &namespace], "").await
    {
        tracing::warn!(%error, "removing an egress namespace failed");
    }
}

/// Removes the bridge and every namespace and veth carrying this node's tag.
pub(crate) async fn remove_everything(names: &Names) {
    for index in leftover_indexes(names) {
        remove(names, index).await;
    }
    let bridge = names.bridge();
    if link_exists(&bridge)
        && let Err(error) = run_script("ip", &["link", "del", &bridge], "").await
    {
        tracing::warn!(%error, "removing the egress bridge failed");
    }
}

/// Slot indexes that have a namespace or a veth of this node's on the host.
fn leftover_indexes(names: &Names) -> Vec<u32> {
    let mut indexes: Vec<u32> = Vec::new();
    let names_in = |folder: &str| -> Vec<String> {
        std::fs::read_dir(folder)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespace_prefix = names.namespace_prefix();
    for name in names_in(NETNS_DIR) {
        if let Some(index) = name
            .strip_prefix(&namespace_prefix)
            .and_then(|rest| rest.parse().ok())
        {
            indexes.push(index);
        }
    }
    let veth_prefix = names.veth_prefix();
    for name in names_in("/sys/class/net") {
        if let Some(index) = name
            .strip_prefix(&veth_prefix)
            .and_then(|rest| u32::from_str_radix(rest, 16).ok())
        {
            indexes.push(index);
        }
    }
    indexes.sort_unstable();
    indexes.dedup();
    indexes
}

/// Bytes the container behind `veth` sent and received so far (its host end's counters,
/// seen from the host: what it receives, the container sent).
pub(crate) fn traffic(veth: &str) -> (u64, u64) {
    let read = |counter: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{veth}/statistics/{counter}"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("rx_bytes"), read("tx_bytes"))
}

/// The first route of `ip -o route` output whose destination overlaps `subnet` (the
/// default route aside).
fn overlapping_route(routes: &str, subnet: &IpNet) -> Option<String> {
    routes
        .lines()
        .find(|line| {
            let destination = line
                .split_whitespace()
                .find(|word| word.parse::<IpAddr>().is_ok() || word.contains('/'));
            let network = destination.and_then(|word| {
                word.parse::<IpNet>()
                    .ok()
                    .or_else(|| word.parse::<IpAddr>().ok().map(IpNet::from))
            });
            !line.starts_with("default")
                && network.is_some_and(|network| network.contains(subnet) || subnet.contains(&network))
        })
        .map(|line| line.trim().to_owned())
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn write_sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/{key}");
    if let Err(error) = std::fs::write(&path, value) {
        tracing::debug!(%path, %error, "cannot set sysctl");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_the_host_already_routes_is_found() {
        let routes = "default via 192.0.2.1 dev eth0\n\
                      192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                      local 10.251.8.1 dev kilnabcde table local proto kernel scope host src 10.251.8.1\n";
        let subnet = |text: &str| text.parse::<IpNet>().unwrap();
        assert_eq!(overlapping_route(routes, &subnet("10.9.0.0/16")), None);
        assert!(
            overlapping_route(routes, &subnet("192.0.2.128/25"))
                .unwrap()
                .contains("dev eth0")
        );
        assert!(
            overlapping_route(routes, &subnet("10.251.8.0/24"))
                .unwrap()
                .contains("kilnabcde")
        );
        let routes6 = "default via fe80::1 dev eth0 proto ra metric 1024\n\
                       fe80::/64 dev eth0 proto kernel metric 256\n\
                       local fd4b:696c:6e00::1 dev kilnabcde table local proto kernel metric 0\n\
                       multicast ff00::/8 dev eth0 table local proto kernel metric 256\n";
        assert_eq!(overlapping_route(routes6, &subnet("fd4b:696c:7::/64")), None);
        assert!(
            overlapping_route(routes6, &subnet("fd4b:696c:6e00::/64"))
                .unwrap()
                .contains("kilnabcde")
        );
    }
}
