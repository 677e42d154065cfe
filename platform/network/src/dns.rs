//! The containers' resolver: relays DNS over UDP and TCP from the gateway address to the
//! host's resolver (which may listen on the host's loopback, out of the containers' reach).
//!
//! Queries are relayed, not parsed: the firewall decides what a container may connect to,
//! whatever a name resolves to.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest wait for the upstream resolver's answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries relayed at once, over both transports; more wait (UDP ones may be dropped by
/// the kernel's buffer meanwhile, which a resolver retries).
const CONCURRENT_QUERIES: usize = 256;
/// Largest DNS message over UDP with EDNS.
const UDP_MESSAGE_MAX: usize = 4096;

/// Starts relaying on `gateway:53` until `stop` is cancelled.
pub(crate) async fn start_forwarder(
    gateway: Ipv4Addr,
    upstream: SocketAddr,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listen = SocketAddr::from((gateway, 53));
    let udp = Arc::new(UdpSocket::bind(listen).await?);
    let tcp = TcpListener::bind(listen).await?;
    let permits = Arc::new(Semaphore::new(CONCURRENT_QUERIES));
    tokio::spawn(relay_udp(udp, upstream, permits.clone(), stop.clone()));
    tokio::spawn(relay_tcp(tcp, upstream, permits, stop));
    Ok(())
}

async fn relay_udp(
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; UDP_MESSAGE_MAX];
    loop {
        let (length, client) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "receiving a DNS query failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (socket, query) = (socket.clone(), buffer[..length].to_vec());
        tokio::spawn(async move {
            let _permit = permit;
            match ask_over_udp(&query, upstream).await {
                Ok(answer) => {
                    let _ = socket.send_to(&answer, client).await;
                }
                Err(error) => tracing::debug!(%error, "relaying a DNS query failed"),
            }
        });
    }
}

async fn ask_over_udp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut answer = vec![0u8; UDP_MESSAGE_MAX];
    let length = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut answer))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream resolver did not answer")
        })??;
    answer.truncate(length);
    Ok(answer)
}

async fn relay_tcp(
    listener: TcpListener,
    upstream: SocketAddr,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    loop {
        let mut client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(error) => {
                    tracing::debug!(%error, "accepting a DNS connection failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let relayed = async {
                let mut server = tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(upstream))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream resolver unreachable")
                    })??;
                tokio::io::copy_bidirectional(&mut client, &mut server).await
            };
            tokio::select! {
                outcome = tokio::time::timeout(UPSTREAM_TIMEOUT * 6, relayed) => {
                    if let Ok(Err(error)) = outcome {
                        tracing::debug!(%error, "relaying DNS over TCP failed");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// The first `nameserver` of a resolv.conf text.
pub(crate) fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|address| address.parse::<std::net::IpAddr>().ok())
            .map(|address| SocketAddr::new(address, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_is_the_upstream() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver 9.9.9.9\n";
        assert_eq!(first_nameserver(text), Some("127.0.0.53:53".parse().unwrap()));
        assert_eq!(
            first_nameserver("nameserver ::1\n"),
            Some("[::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("search x\n"), None);
    }

    #[tokio::test]
    async fn queries_are_relayed_to_the_upstream_and_back() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream_address = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            let (length, client) = upstream.recv_from(&mut buffer).await.unwrap();
            let mut answer = buffer[..length].to_vec();
            answer.extend_from_slice(b"-answered");
            upstream.send_to(&answer, client).await.unwrap();
        });
        let answer = ask_over_udp(b"query", upstream_address).await.unwrap();
        assert_eq!(answer, b"query-answered");
    }
}
