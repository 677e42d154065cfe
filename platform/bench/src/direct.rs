//! The baseline for warm invocations: a function (the testbed, or an image's handler) as a
//! plain process, called over
//! its runtime socket by the smallest possible host (no HTTP front door, auth, registry or
//! pool). Kiln's warm overhead is measured against this.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

struct Job {
    body: Bytes,
    respond: oneshot::Sender<Bytes>,
}

struct HostState {
    jobs: Mutex<mpsc::Receiver<Job>>,
    current: Mutex<Option<oneshot::Sender<Bytes>>>,
}

/// One function process and the minimal host that feeds it.
pub struct DirectFunction {
    jobs: mpsc::Sender<Job>,
    _process: Child,
    dir: PathBuf,
}

impl DirectFunction {
    /// Starts `command` (the function's program, arguments and environment) with its
    /// runtime socket in `dir`.
    pub async fn start(mut command: Command, dir: PathBuf) -> anyhow::Result<DirectFunction> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("runtime.sock");
        let listener = UnixListener::bind(&socket)?;
        let (jobs, receiver) = mpsc::channel(1);
        let state = Arc::new(HostState {
            jobs: Mutex::new(receiver),
            current: Mutex::new(None),
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let process = command
            .env("KILN_RUNTIME_SOCKET", &socket)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {:?}", command.as_std().get_program()))?;
        Ok(DirectFunction {
            jobs,
            _process: process,
            dir,
        })
    }

    /// One invocation of `/echo` with `body`; returns the echoed body and the round-trip time.
    pub async fn call(&self, body: Bytes) -> anyhow::Result<(Bytes, Duration)> {
        let started = Instant::now();
        let (respond, response) = oneshot::channel();
        self.jobs
            .send(Job { body, respond })
            .await
            .ok()
            .context("direct host stopped")?;
        let body = response.await.context("function did not answer")?;
        Ok((body, started.elapsed()))
    }
}

impl Drop for DirectFunction {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn handle(
    state: Arc<HostState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::GET {
        let Some(job) = state.jobs.lock().await.recv().await else {
            return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
        };
        *state.current.lock().await = Some(job.respond);
        let mut response = Response::new(Full::new(job.body));
        let headers = response.headers_mut();
        headers.insert("kiln-invocation-id", "1".parse().expect("header"));
        headers.insert("kiln-method", "POST".parse().expect("header"));
        headers.insert("kiln-path", "/echo".parse().expect("header"));
        headers.insert("kiln-deadline-ms", "99999999999999".parse().expect("header"));
        return Ok(response);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    if let Some(respond) = state.current.lock().await.take() {
        let _ = respond.send(body);
    }
    Ok(status(StatusCode::ACCEPTED))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
