//! An invocation as the dispatcher sees it, its outcome, and the [`Runner`] seam that the
//! front door calls (the real [`crate::Dispatcher`], or a fake in front-door tests).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use thiserror::Error;

use http_body_util::BodyExt;

use crate::{DurableSession, FunctionTarget, PoolFigures, ResponseStream, StreamCut};

/// The caller's request, already authorised and with Kiln's own headers removed.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub method: Method,
    /// The part after `/fn/{tenant}/{function}`, starting with `/`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Set when this is a dispatch of a durable instance.
    pub durable: Option<Arc<dyn DurableSession>>,
}

/// The function's answer.
#[derive(Debug)]
pub struct FunctionResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: FunctionBody,
}

/// A response body as the function sent it.
#[derive(Debug)]
pub enum FunctionBody {
    /// Sent with `Content-Length`, read whole (within the response limit).
    Full(Bytes),
    /// Sent chunked: forwarded as it arrives, within the stream limits.
    Streamed(ResponseStream),
}

impl FunctionBody {
    /// The whole body, for callers that need it at once (a durable instance's output): a
    /// streamed body is read up to `limit` bytes; a longer one is `ResponseTooLarge`, one
    /// the function ended with an error `FunctionError`, one cut otherwise `Crashed`.
    pub async fn collect(self, limit: usize) -> Result<Bytes, InvokeError> {
        let stream = match self {
            FunctionBody::Full(bytes) => return Ok(bytes),
            FunctionBody::Streamed(stream) => stream,
        };
        let error = match http_body_util::Limited::new(stream, limit).collect().await {
            Ok(collected) => return Ok(collected.to_bytes()),
            Err(error) => error,
        };
        if error.is::<http_body_util::LengthLimitError>() {
            return Err(InvokeError::ResponseTooLarge { limit });
        }
        match error.downcast_ref::<StreamCut>() {
            Some(StreamCut::FunctionFailed(error_type)) => Err(InvokeError::FunctionError {
                error_type: error_type.clone(),
                message: "the function ended its streamed output with an error".into(),
            }),
            _ => Err(InvokeError::Crashed(error.to_string())),
        }
    }
}

/// A successful invocation and how it was served.
#[derive(Debug)]
pub struct InvokeOutcome {
    pub response: FunctionResponse,
    /// True when a container had to be started for this invocation.
    pub cold: bool,
    pub container: String,
    /// From handing the invocation to the container until its answer came back.
    pub in_function: Duration,
    /// Waiting for a container (a warm one to come free, or a start slot).
    pub queued: Duration,
    /// The phases of the container's start, when this invocation started it.
    pub cold_start: Option<StartPhases>,
}

/// How long each phase of a container's start took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartPhases {
    /// Binding the runtime socket.
    pub socket: Duration,
    /// The sandbox creating and starting the container.
    pub container: Duration,
    /// From asking for a container until the sandbox had started it.
    pub total: Duration,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InvokeError {
    #[error("function is at its concurrency limit")]
    Busy { retry_after: Duration },
    #[error("function did not answer within {0:?}")]
    Timeout(Duration),
    #[error("function exited during the invocation ({0})")]
    Crashed(String),
    #[error("function reported an error: {error_type}")]
    FunctionError { error_type: String, message: String },
    #[error("function response is larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
    #[error("container could not be started: {0}")]
    StartFailed(String),
    /// The version's network mode is one this node does not allow (any more).
    #[error("{0}")]
    NetworkNotAllowed(String),
    #[error("kiln is shutting down")]
    ShuttingDown,
    /// A durable dispatch ended without a response: the instance sleeps, or the dispatch
    /// was fenced off. Not a failure of the container.
    #[error("the durable instance suspended")]
    Suspended,
}

/// Runs invocations of function targets and owns their containers.
pub trait Runner: Clone + Send + Sync + 'static {
    fn invoke(
        &self,
        target: Arc<FunctionTarget>,
        invocation: Invocation,
    ) -> impl Future<Output = Result<InvokeOutcome, InvokeError>> + Send;

    /// Starts the target's `min_warm` containers ahead of the first invocation.
    fn prewarm(&self, target: Arc<FunctionTarget>);

    /// Retires every container of a function (it was deleted or replaced).
    fn retire_function(&self, tenant: &str, function: &str) -> impl Future<Output = ()> + Send;

    fn figures(&self) -> PoolFigures;
}
