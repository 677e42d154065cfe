//! The client's address: the TCP peer, or, when the peer is a trusted proxy (nginx), the
//! address that proxy put in `X-Forwarded-For`. A forwarded header from anyone else is
//! ignored, so a client cannot claim another address.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The TCP peer of a request, put in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub IpAddr);

/// Addresses (or networks) whose `X-Forwarded-For` Kiln believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let network = match item.parse::<IpAddr>() {
                Ok(address) => IpNet::from(address),
                Err(_) => item.parse::<IpNet>().map_err(|_| {
                    format!("`{item}` is not an IP address or a CIDR network (such as 10.0.0.0/8)")
                })?,
            };
            networks.push(network);
        }
        Ok(TrustedProxies { networks })
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|network| network.contains(&address))
    }

    /// The client of a request from `peer` with `headers`: walking `X-Forwarded-For` from
    /// the right, the first address that is not a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) => {
                    client = address.to_canonical();
                    if !self.trusts(address) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        HeaderMap::from_iter([(
            http::header::HeaderName::from_static("x-forwarded-for"),
            value.parse().unwrap(),
        )])
    }

    #[test]
    fn only_trusted_peers_may_forward() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // nginx appended the real client after a forged entry.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded("6.6.6.6, 203.0.113.9")),
            ip("203.0.113.9")
        );
        // Two proxies in a row: skip the trusted inner one.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded("203.0.113.9, 10.1.2.3")),
            ip("203.0.113.9")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.7"), &forwarded("6.6.6.6")),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded("nonsense")),
            ip("127.0.0.1")
        );
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse("").unwrap().networks.is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        let mapped = ip("::ffff:127.0.0.1");
        assert_eq!(
            proxies.client(mapped, &forwarded("203.0.113.9")),
            ip("203.0.113.9")
        );
        let v6 = TrustedProxies::parse("::1, fd00::/8").unwrap();
        assert_eq!(
            v6.client(ip("fd12::1"), &forwarded("2001:db8::5")),
            ip("2001:db8::5")
        );
    }
}
