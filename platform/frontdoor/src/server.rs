//! Serves the [`App`] on a TCP listener: HTTP/1.1 and HTTP/2, header timeouts, and a
//! graceful shutdown: new requests are answered `503 shutting_down` (with `Connection:
//! close`) while the ones already running finish, then the connections drain, within a
//! grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pool::Runner;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::App;
use crate::client_addr::PeerAddr;
use crate::connection_limit::UpgradableConnection;
use crate::lingering_close::LingeringStream;
use crate::unread_body;
use http::Request;
use hyper::body::Incoming;

/// Concurrent streams one HTTP/2 connection may open.
const HTTP2_STREAMS: u32 = 128;
/// How often an HTTP/2 connection is pinged to find a peer that went away.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A client must finish sending request headers within this time.
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests after shutdown begins.
    pub shutdown_grace: Duration,
}

/// Serves until `shutdown` completes, then drains; returns when every connection closed or
/// the grace period ran out.
pub async fn serve<R: Runner>(
    listener: TcpListener,
    app: App<R>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer the header-read timeout is silently off.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(64 * 1024);
    // HTTP/1 has no idle timer of its own: the header timer starts as soon as a connection
    // waits for its next request, so an idle keep-alive connection closes after it too.
    // HTTP/2: streams per connection bounded, and a peer that stops answering pings is cut.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(HTTP2_STREAMS)
        .keep_alive_interval(Some(HTTP2_PING_INTERVAL))
        .keep_alive_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let requests = TaskTracker::new();
    let connections = Connections {
        builder: &builder,
        graceful: &graceful,
        requests: &requests,
        app: &app,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => connections.accepted(accepted).await,
            _ = &mut shutdown => break,
        }
    }
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    app.begin_shutdown();
    requests.close();
    tracing::info!(
        requests = requests.len(),
        "shutting down; finishing the requests in flight"
    );
    // Accepting goes on meanwhile: a request arriving now gets a clean 503 (a load balancer
    // moves it to another node) instead of a refused or reset connection.
    let finished = requests.wait();
    tokio::pin!(finished);
    loop {
        tokio::select! {
            accepted = listener.accept() => connections.accepted(accepted).await,
            _ = &mut finished => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "draining connections");
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "grace period over; closing remaining connections");
    }
}

/// What serving one more connection needs.
struct Connections<'a, R: Runner> {
    builder: &'a auto::Builder<TokioExecutor>,
    graceful: &'a GracefulShutdown,
    requests: &'a TaskTracker,
    app: &'a App<R>,
}

impl<R: Runner> Connections<'_, R> {
    async fn accepted(&self, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning or exiting.
                tracing::warn!(error = %error, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
        };
        let state = &self.app.inner;
        let Some(open) = state.connections.admit() else {
            state.metrics.connection_refused("limit");
            state.connections.refuse(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        let app = self.app.clone();
        let requests = self.requests.clone();
        let upgradable = UpgradableConnection::new(
            std::sync::Arc::new(open),
            std::os::fd::AsRawFd::as_raw_fd(&stream),
        );
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer.ip()));
            if request.headers().contains_key(http::header::UPGRADE) {
                request.extensions_mut().insert(upgradable.clone());
            }
            let app = app.clone();
            let in_flight = requests.token();
            async move {
                let response = unread_body::answer(&app, request).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(LingeringStream::new(stream));
        let connection = self
            .builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = self.graceful.watch(connection);
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                let timed_out = error
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
                if timed_out {
                    metrics.connection_refused("header_timeout");
                }
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
}
