//! A fake internet for network tests: a network namespace of the test's own, joined to the
//! host by a veth pair with addresses from 198.18.0.0/15 (the benchmarking range) and from
//! fdfa::/16 (unique local), serving HTTP on two ports over both and answering every DNS
//! name with its own IPv4 address.
//!
//! Nothing here talks to any address outside loopback and namespaces the test made.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Ports the fake internet answers HTTP on: `HTTP/1.0 200 fake-internet-<port>`.
pub const FAKE_HTTP_PORTS: [u16; 2] = [80, 8080];

static NEXT_FAKE: AtomicU32 = AtomicU32::new(0);

/// The namespace and its veth; removed on drop.
pub struct FakeInternet {
    namespace: String,
    veth: String,
    /// The address inside: the fake internet's web and DNS server.
    pub server: Ipv4Addr,
    /// The host's end of the veth pair: an address of the host itself.
    pub host_end: Ipv4Addr,
    /// The range to open with `KILN_EGRESS_ALLOW`.
    pub range: String,
    /// The same three for IPv6.
    pub server6: Ipv6Addr,
    pub host_end6: Ipv6Addr,
    pub range6: String,
}

impl FakeInternet {
    /// Builds it on a /30 of 198.18.0.0/15 that no other fake internet of this run uses.
    pub fn create() -> FakeInternet {
        let number = (std::process::id() % 64) * 4 + NEXT_FAKE.fetch_add(1, Ordering::Relaxed) % 4;
        let namespace = format!("kfake-{}-{number}", std::process::id());
        let veth = format!("kfk{}x{number}", std::process::id() % 100_000);
        let host_end = Ipv4Addr::new(198, 18, number as u8, 1);
        let server = Ipv4Addr::new(198, 18, number as u8, 2);
        let host_end6 = Ipv6Addr::new(0xfdfa, number as u16, 0, 0, 0, 0, 0, 1);
        let server6 = Ipv6Addr::new(0xfdfa, number as u16, 0, 0, 0, 0, 0, 2);
        let _ = Command::new("ip").args(["netns", "del", &namespace]).status();
        let _ = Command::new("ip").args(["link", "del", &veth]).status();
        for args in [
            format!("netns add {namespace}"),
            format!("link add {veth} type veth peer name eth0 netns {namespace}"),
            format!("addr add {host_end}/30 dev {veth}"),
            format!("addr add {host_end6}/64 dev {veth} nodad"),
            format!("link set {veth} up"),
            format!("-n {namespace} addr add {server}/30 dev eth0"),
            format!("-n {namespace} addr add {server6}/64 dev eth0 nodad"),
            format!("-n {namespace} link set eth0 up"),
            format!("-n {namespace} link set lo up"),
            format!("-n {namespace} route add default via {host_end}"),
            format!("-n {namespace} route add ::/0 via {host_end6}"),
        ] {
            let status = Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .expect("ip runs");
            assert!(status.success(), "ip {args} failed");
        }
        let fake = FakeInternet {
            namespace,
            veth,
            server,
            host_end,
            range: format!("{}/30", Ipv4Addr::new(198, 18, number as u8, 0)),
            server6,
            host_end6,
            range6: format!("fdfa:{number:x}::/64"),
        };
        for address in [IpAddr::V4(server), IpAddr::V6(server6)] {
            for port in FAKE_HTTP_PORTS {
                let listener = fake.inside(move || TcpListener::bind((address, port)).expect("bind inside"));
                std::thread::spawn(move || {
                    for mut stream in listener.incoming().flatten() {
                        let _ =
                            stream.write_all(format!("HTTP/1.0 200 fake-internet-{port}\r\n\r\n").as_bytes());
                    }
                });
            }
        }
        let dns = fake.inside(move || UdpSocket::bind((server, 53)).expect("bind DNS inside"));
        std::thread::spawn(move || answer_dns(dns, server));
        fake
    }

    /// The DNS server, for `KILN_EGRESS_DNS`.
    pub fn resolver(&self) -> String {
        format!("{}:53", self.server)
    }

    /// Tries a TCP connection from inside the fake internet (someone outside connecting in).
    pub fn connect_from_outside(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        self.inside(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))
    }

    /// Routes `network` from the fake internet through the host, as an upstream router
    /// would: then only the host's firewall stands between them.
    pub fn route_back(&self, network: &str) {
        let status = Command::new("ip")
            .args([
                "-n",
                &self.namespace,
                "route",
                "add",
                network,
                "via",
                &if network.contains(':') {
                    self.host_end6.to_string()
                } else {
                    self.host_end.to_string()
                },
            ])
            .status()
            .expect("ip runs");
        assert!(status.success(), "route to {network} in the fake internet");
    }

    /// Runs `work` on a thread that entered the fake internet's network namespace.
    fn inside<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.namespace);
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(namespace.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the namespace");
            work()
        })
        .join()
        .expect("namespace thread")
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

/// Answers every A query with `address` and every other type with no records.
fn answer_dns(socket: UdpSocket, address: Ipv4Addr) {
    let mut buffer = [0u8; 512];
    while let Ok((length, client)) = socket.recv_from(&mut buffer) {
        if let Some(answer) = dns_answer(&buffer[..length], address) {
            let _ = socket.send_to(&answer, client);
        }
    }
}

fn dns_answer(query: &[u8], address: Ipv4Addr) -> Option<Vec<u8>> {
    // Header (12 bytes), then one question: a name of labels, a type and a class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question_end = end + 5;
    let question_type = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    let is_a = question_type == 1;
    let mut answer = Vec::with_capacity(question_end + 16);
    answer.extend_from_slice(&query[..2]);
    answer.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    answer.extend_from_slice(query.get(12..question_end)?);
    if is_a {
        answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&address.octets());
    }
    Some(answer)
}
