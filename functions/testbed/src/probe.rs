//! Network probes for the network tests: connect somewhere, say which address we have,
//! listen for others (who should not get in).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use kiln_sdk::{Invocation, Response};

/// Longest wait for a probe's connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `/connect?to=HOST:PORT`: `connected: <first line of the answer to GET />`, else
/// `refused: <error>` (name resolution included).
pub(crate) fn connect(invocation: &Invocation) -> Response {
    let Some(to) = invocation.query_param("to") else {
        return Response::text(400, "to=HOST:PORT is required");
    };
    match get_first_line(&to) {
        Ok(line) => Response::text(200, format!("connected: {line}")),
        Err(error) => Response::text(200, format!("refused: {error}")),
    }
}

fn get_first_line(to: &str) -> std::io::Result<String> {
    let address = to
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{to} resolved to no address")))?;
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {to}\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.contains(&b'\n') && answer.len() < 4096 {
        match stream.read(&mut buffer)? {
            0 => break,
            read => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `/address` (`?family=6` for IPv6): the container's own address on its way out (no
/// packet is sent).
pub(crate) fn address(invocation: &Invocation) -> Response {
    let (local, remote) = match invocation.query_param("family").as_deref() {
        Some("6") => ("[::]:0", "[2001:db8::1]:9"),
        _ => ("0.0.0.0:0", "198.51.100.1:9"),
    };
    let outward = UdpSocket::bind(local).and_then(|socket| {
        socket.connect(remote)?;
        socket.local_addr()
    });
    match outward {
        Ok(address) => Response::text(200, address.ip().to_string()),
        Err(error) => Response::text(200, format!("none: {error}")),
    }
}

/// `/listen?port=P`: listens on port P of every address (IPv6 and IPv4 where the container
/// has IPv6, else IPv4) for as long as the container lives, answering `HTTP/1.0 200 inside`
/// to anyone who gets in; `listening` once bound.
pub(crate) fn listen(invocation: &Invocation) -> Response {
    let port = invocation
        .query_param("port")
        .and_then(|port| port.parse::<u16>().ok());
    let Some(port) = port else {
        return Response::text(400, "port must be a port number");
    };
    let listener = TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))
        .or_else(|_| TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))));
    match listener {
        Ok(listener) => {
            std::thread::spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    let _ = stream.write_all(b"HTTP/1.0 200 inside\r\n\r\n");
                }
            });
            Response::text(200, "listening")
        }
        Err(error) => Response::text(500, format!("cannot listen: {error}")),
    }
}
