//! The ranges egress refuses: always (the host's own kinds of address) and by default
//! (everything that is not the global internet), for IPv4 and IPv6.

/// Never reachable, whatever the operator opens: "this network", loopback, link-local
/// (cloud metadata at 169.254.169.254 included), multicast and the reserved block with the
/// limited broadcast address.
pub(crate) const ALWAYS_REFUSED: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Refused unless `KILN_EGRESS_ALLOW` opens them: private networks, shared address space,
/// benchmarking, documentation and the rest of IANA's IPv4 special-purpose registry.
pub(crate) const NOT_GLOBAL: &[&str] = &[
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
];

/// IPv6 never reachable: unspecified, loopback, IPv4-mapped (no route on the wire, and a
/// way around the IPv4 rules in some stacks), link-local, the old site-local, multicast.
pub(crate) const ALWAYS_REFUSED_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// IPv6 refused unless `KILN_EGRESS_ALLOW` opens them: unique local addresses, the
/// documentation, discard and IETF protocol blocks, SRv6 SIDs, and the translation
/// prefixes (NAT64, 6to4), which lead to IPv4 addresses the IPv4 rules would refuse.
pub(crate) const NOT_GLOBAL_V6: &[&str] = &[
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
];

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    #[test]
    fn ranges_parse_and_do_not_overlap() {
        let all: Vec<IpNet> = ALWAYS_REFUSED
            .iter()
            .chain(NOT_GLOBAL)
            .chain(ALWAYS_REFUSED_V6)
            .chain(NOT_GLOBAL_V6)
            .map(|range| range.parse().unwrap())
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert_eq!(*a, a.trunc(), "{a} has host bits set");
            for b in &all[i + 1..] {
                assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
            }
        }
    }
}
