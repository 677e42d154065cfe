//! The real nginx (Debian's) with `infra/nginx`'s directives, over TLS with a certificate
//! made here, in front of a real kilnd: uploads, invocations, a large and a slow response,
//! live events, request ids, `/metrics`, the client address kilnd believes, and the `kiln`
//! command line over TLS with the test's CA (`login --ca-cert`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Kiln, kiln_cli_path, testbed_path};
use futures_util::StreamExt;
use http::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// nginx in the foreground with the test configuration; stopped when dropped.
struct Nginx {
    process: std::process::Child,
    url: String,
    folder: PathBuf,
    /// The private CA that issued nginx's certificate, as clients trust it.
    ca: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        let pid = nix::unistd::Pid::from_raw(self.process.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Nginx {
    fn start(upstream: &str) -> Nginx {
        let folder = std::env::temp_dir().join(format!("kiln-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(folder.join("kiln")).unwrap();
        let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/nginx");
        for include in ["kiln-http.conf", "kiln-locations.conf"] {
            std::fs::copy(infra.join(include), folder.join("kiln").join(include)).unwrap();
        }
        let (ca, cert, key) = make_certificates(&folder);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = std::fs::read_to_string(infra.join("test.conf.template"))
            .unwrap()
            .replace("@PREFIX@", folder.to_str().unwrap())
            .replace("@LISTEN_HTTPS@", &format!("127.0.0.1:{port}"))
            .replace("@UPSTREAM@", upstream)
            .replace("@CERT@", cert.to_str().unwrap())
            .replace("@KEY@", key.to_str().unwrap());
        std::fs::write(folder.join("nginx.conf"), config).unwrap();
        let process = Command::new("nginx")
            .arg("-p")
            .arg(&folder)
            .arg("-c")
            .arg(folder.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx installed (scripts/test.sh installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            process,
            url: format!("https://127.0.0.1:{port}"),
            folder,
            ca,
        }
    }

    /// curl through nginx from `source` (a loopback address); returns status, headers, body.
    fn curl(&self, source: &str, args: &[&str], path: &str) -> (u16, String, Vec<u8>) {
        curl(Some(&self.ca), source, args, &format!("{}{path}", self.url))
    }
}

/// A private CA and a certificate for 127.0.0.1 and localhost issued by it, as an operator
/// with an internal CA has (rustls refuses a self-signed certificate used as its own CA):
/// returns the CA's certificate, the server certificate and its key.
fn make_certificates(folder: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl {args:?} failed");
    };
    let subject_alt_names = folder.join("san.ext");
    std::fs::write(&subject_alt_names, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Kiln test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ]);
    (
        folder.join("ca.pem"),
        folder.join("cert.pem"),
        folder.join("key.pem"),
    )
}

fn curl(cert: Option<&Path>, source: &str, args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let headers = tempfile_path("headers");
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "30", "--interface", source, "-D"])
        .arg(&headers);
    if let Some(cert) = cert {
        command.arg("--cacert").arg(cert);
    }
    let output = command.args(args).arg(url).output().expect("curl installed");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let headers = std::fs::read_to_string(&headers).unwrap_or_default();
    let status = headers
        .lines()
        .rfind(|line| line.starts_with("HTTP/"))
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, headers.to_ascii_lowercase(), output.stdout)
}

fn tempfile_path(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("kiln-nginx-{}-{what}-{number}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_behind_the_real_nginx() {
    let kiln = Kiln::start(&[("KILN_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let token = kiln.create_tenant("acme").await;
    let nginx = Nginx::start(kiln.url.trim_start_matches("http://"));
    let auth = format!("Authorization: Bearer {token}");
    let testbed = format!("@{}", testbed_path().display());

    // Upload through nginx (the body is several MB, under client_max_body_size).
    let (status, _, body) = nginx.curl(
        "127.0.0.1",
        &["-X", "PUT", "-H", &auth, "--data-binary", &testbed],
        "/v1/functions/hello?timeout_ms=5000",
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // An image archive over the 64 MiB limit of other routes (the node docker-archive is
    // ~130 MB) goes through the upload location.
    let image = format!("@{}", e2e::image_path("node-hello", "docker").display());
    let (status, _, body) = nginx.curl(
        "127.0.0.1",
        &["-X", "PUT", "-H", &auth, "--data-binary", &image],
        "/v1/functions/node",
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    // Invoke over TLS and HTTP/2; nginx gives every response a request id, keeping a sane one.
    let (status, headers, body) = nginx.curl(
        "127.0.0.1",
        &["-H", &auth, "-H", "X-Request-Id: trace-42", "--data", "hello"],
        "/fn/acme/hello/echo",
    );
    assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
    assert!(headers.contains("x-request-id: trace-42"), "{headers}");
    let (_, headers, _) = nginx.curl(
        "127.0.0.1",
        &["-H", &auth, "-H", "X-Request-Id: bad id\twith tab"],
        "/fn/acme/hello/echo",
    );
    assert!(
        headers.contains("x-request-id: ") && !headers.contains("bad id"),
        "{headers}"
    );

    // A large response arrives whole, and a slow one within nginx's timeouts.
    let (status, _, body) = nginx.curl("127.0.0.1", &["-H", &auth], "/fn/acme/hello/big?bytes=5000000");
    assert_eq!((status, body.len()), (200, 5_000_000));
    let (status, _, body) = nginx.curl("127.0.0.1", &["-H", &auth], "/fn/acme/hello/sleep?ms=1500");
    assert_eq!((status, body.as_slice()), (200, b"slept 1500".as_slice()));

    // Early answers (401, 404) to bodies kilnd never reads, one it drains (40 KiB) and one it
    // closes the connection for (200 KiB), between ordinary calls, over nginx's upstream
    // keep-alive: every answer arrives as kilnd gave it, none becomes a 502.
    let small = tempfile_path("body-small");
    std::fs::write(&small, vec![b'x'; 40 * 1024]).unwrap();
    let large = tempfile_path("body-large");
    std::fs::write(&large, vec![b'x'; 200 * 1024]).unwrap();
    let (small, large) = (format!("@{}", small.display()), format!("@{}", large.display()));
    let forged = "Authorization: Bearer not.a.token";
    let mut requests = Command::new("curl");
    let mut expected = String::new();
    for _ in 0..15 {
        for (authorization, path, body, status) in [
            (forged, "/fn/acme/hello/echo", &small, 401),
            (auth.as_str(), "/fn/acme/missing/echo", &large, 404),
            (auth.as_str(), "/fn/acme/hello/echo", &small, 200),
            (forged, "/fn/acme/hello/echo", &large, 401),
            (auth.as_str(), "/fn/acme/hello/echo", &large, 200),
        ] {
            requests
                .args([
                    "-sS",
                    "--max-time",
                    "30",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}\\n",
                    "--cacert",
                ])
                .arg(&nginx.ca)
                .args(["-H", authorization, "--data-binary", body.as_str()])
                .arg(format!("{}{path}", nginx.url))
                .arg("--next");
            expected.push_str(&format!("{status}\n"));
        }
    }
    let output = requests
        .args(["-sS", "-o", "/dev/null", "--cacert"])
        .arg(&nginx.ca)
        .arg(format!("{}/api/health", nginx.url))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Live events stream through nginx as they happen (nginx must not buffer them).
    let mut events = tokio::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "20", "--cacert"])
        .arg(&nginx.ca)
        .args(["-H", &auth])
        .arg(format!("{}/v1/events", nginx.url))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = events.stdout.take().unwrap();
    let mut received = String::new();
    read_until(&mut stream, &mut received, ": connected").await;
    let (status, _, _) = nginx.curl("127.0.0.1", &["-H", &auth, "--data", "x"], "/fn/acme/hello/echo");
    assert_eq!(status, 200);
    read_until(&mut stream, &mut received, "event: invocation").await;
    let _ = events.kill().await;

    // A function's streamed response comes through nginx chunk by chunk: the first event
    // arrives while the function still has a second to go.
    let started = std::time::Instant::now();
    let mut streamed = tokio::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "20", "--cacert"])
        .arg(&nginx.ca)
        .args(["-H", &auth])
        .arg(format!(
            "{}/fn/acme/hello/stream?chunks=3&interval_ms=500&sse=1",
            nginx.url
        ))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = streamed.stdout.take().unwrap();
    let mut received = String::new();
    read_until(&mut stream, &mut received, "data: ").await;
    let first = started.elapsed();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    received.push_str(&String::from_utf8_lossy(&rest));
    assert_eq!(received.matches("data: ").count(), 3, "{received}");
    assert!(
        started.elapsed() - first >= Duration::from_millis(800),
        "the first event came {first:?} in, the last {:?}: nginx buffered the stream",
        started.elapsed()
    );
    assert!(
        streamed.wait().await.unwrap().success(),
        "curl saw the stream cut"
    );

    // Live events over a WebSocket through nginx's /ws, the token as a subprotocol entry
    // (as a browser sends it).
    let mut socket = websocket_through(&nginx, "/ws?types=invocation", &token).await;
    let (status, _, _) = nginx.curl("127.0.0.1", &["-H", &auth, "--data", "x"], "/fn/acme/hello/echo");
    assert_eq!(status, 200);
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await.expect("the socket open").expect("a message") {
                Message::Text(text) => break serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                _ => continue,
            }
        }
    })
    .await
    .expect("an event through nginx within 10 s");
    assert_eq!(
        (event["type"].as_str(), event["data"]["function"].as_str()),
        (Some("invocation"), Some("hello"))
    );

    // /metrics is served to the host itself.
    let (status, _, body) = nginx.curl("127.0.0.1", &[], "/metrics");
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("kiln_invocations_total{tenant=\"acme\",function=\"hello\",status=\"200\"}")
    );

    // Kiln believes X-Forwarded-For from nginx (127.0.0.1) only: a forged entry before the
    // address nginx saw is skipped, and a direct client's header is ignored.
    let webhook = r#"{"scheme":"github","secret":"0123456789abcdef"}"#;
    let (status, _, _) = nginx.curl(
        "127.0.0.4",
        &[
            "-X",
            "PUT",
            "-H",
            &auth,
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "--data",
            webhook,
        ],
        "/v1/functions/hello/webhook",
    );
    assert_eq!(status, 200);
    let direct = format!("{}/v1/functions/hello/webhook", kiln.url);
    let (status, _, _) = curl(
        None,
        "127.0.0.3",
        &["-X", "DELETE", "-H", &auth, "-H", "X-Forwarded-For: 6.6.6.6"],
        &direct,
    );
    assert_eq!(status, 204);
    let audit = kiln
        .request(Method::GET, "/v1/audit?limit=2", Some(&token), "")
        .await
        .json();
    let clients: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["details"]["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["127.0.0.3", "127.0.0.4"]);

    // The CLI through nginx: refused without the test's CA (exit 3, a TLS problem), then
    // logged in with it, deploying (a streamed upload of several MB) and invoking.
    let cli = CliHome::new();
    let untrusted = cli.run(&["--url", &nginx.url, "--token", &token, "functions", "list"]);
    assert_eq!(untrusted.status.code(), Some(3), "{}", stderr(&untrusted));
    assert!(
        stderr(&untrusted).contains("certificate"),
        "{}",
        stderr(&untrusted)
    );
    let ca = nginx.ca.to_str().unwrap();
    let login = cli.run(&["login", "--url", &nginx.url, "--token", &token, "--ca-cert", ca]);
    assert_eq!(login.status.code(), Some(0), "{}", stderr(&login));
    let deploy = cli.run(&["deploy", "over-tls", testbed_path().to_str().unwrap()]);
    assert_eq!(deploy.status.code(), Some(0), "{}", stderr(&deploy));
    assert!(
        String::from_utf8_lossy(&deploy.stdout).starts_with("deployed over-tls version 1\n"),
        "{}",
        String::from_utf8_lossy(&deploy.stdout)
    );
    let invoke = cli.run(&["invoke", "over-tls", "--path", "/echo", "--data", "through nginx"]);
    assert_eq!(invoke.status.code(), Some(0), "{}", stderr(&invoke));
    assert_eq!(invoke.stdout, b"through nginx");
    // The client chose HTTP/2 (ALPN) for both (nginx logs a request after answering it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let cli_requests = loop {
        let access_log = std::fs::read_to_string(nginx.folder.join("access.log")).unwrap();
        let cli_requests: Vec<String> = access_log
            .lines()
            .filter(|line| line.contains("/over-tls"))
            .map(str::to_owned)
            .collect();
        if cli_requests.len() == 2 {
            break cli_requests;
        }
        assert!(std::time::Instant::now() < deadline, "{access_log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        cli_requests.iter().all(|line| line.contains(" HTTP/2.0\"")),
        "{cli_requests:?}"
    );

    drop(nginx);
    kiln.finish().await;
}

/// A config folder of its own for the `kiln` command line; removed when dropped.
struct CliHome(PathBuf);

impl CliHome {
    fn new() -> CliHome {
        let home = tempfile_path("cli-home");
        std::fs::create_dir_all(&home).unwrap();
        CliHome(home)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(kiln_cli_path());
        command
            .args(args)
            .env("XDG_CONFIG_HOME", &self.0)
            .stdin(Stdio::null());
        for variable in ["KILN_URL", "KILN_TOKEN", "KILN_ADMIN_TOKEN", "KILN_CONFIG"] {
            command.env_remove(variable);
        }
        command
            .output()
            .expect("the kiln command line (scripts/test.sh builds it)")
    }
}

impl Drop for CliHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A WebSocket session through nginx over TLS (HTTP/1.1), trusting the test CA.
async fn websocket_through(
    nginx: &Nginx,
    path: &str,
    token: &str,
) -> WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(&nginx.ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = nginx.url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server, tcp)
        .await
        .unwrap();
    let mut request = format!("wss://{address}{path}").into_client_request().unwrap();
    let protocols = format!("kiln.events.v1, kiln.token.{token}");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().unwrap());
    let (socket, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("a WebSocket through nginx");
    assert_eq!(response.headers()["sec-websocket-protocol"], "kiln.events.v1");
    socket
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn read_until(stream: &mut tokio::process::ChildStdout, received: &mut String, wanted: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 4096];
    while !received.contains(wanted) {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("`{wanted}` did not come through nginx; got: {received}"))
            .unwrap();
        assert!(read > 0, "the stream ended before `{wanted}`: {received}");
        received.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}
