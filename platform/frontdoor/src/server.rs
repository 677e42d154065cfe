//! Serves the [`App`] on a TCP listener: HTTP/1.1 and HTTP/2, header timeouts, and a
//! graceful shutdown that stops accepting, drains in-flight requests, and gives up after a
//! grace period.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pool::Runner;
use tokio::net::TcpListener;

use crate::App;
use crate::client_addr::PeerAddr;
use http::Request;
use hyper::body::Incoming;

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
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                        request.extensions_mut().insert(PeerAddr(peer.ip()));
                        hyper::service::Service::call(&app, request)
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(error = %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning or exiting.
                    tracing::warn!(error = %error, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    app.close_streams();
    tracing::info!(connections = graceful.count(), "draining connections");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "grace period over; closing remaining connections");
    }
}
