//! The IPv4 ranges egress refuses: always (the host's own kinds of address) and by default
//! (everything that is not the global internet).

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

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::Ipv4Net;

    #[test]
    fn ranges_parse_and_do_not_overlap() {
        let all: Vec<Ipv4Net> = ALWAYS_REFUSED
            .iter()
            .chain(NOT_GLOBAL)
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
