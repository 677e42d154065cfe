//! A function's response body sent in chunks: each chunk goes on to the caller as it
//! arrives, through a small bounded channel, so a slow caller slows the function down
//! instead of growing Kiln's memory.
//!
//! **Invariant:** the caller sees a clean end of the body only when the function ended it;
//! a stream cut for any other reason ends with an error, so the caller's connection is
//! aborted rather than the body looking complete.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::runtime_messages::ERROR_TYPE_LIMIT;

/// Chunks in flight between the function's socket and the caller's connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// How long a streamed response may take.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// The longest wait for the function's next chunk.
    pub idle_timeout: Duration,
    /// The longest a whole streamed response may take, from its first byte.
    pub max_duration: Duration,
}

/// Why a streamed response ended before the function ended it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StreamCut {
    #[error("the function sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the streamed response ran longer than {0:?}")]
    TooLong(Duration),
    #[error("the function's connection failed mid-stream: {0}")]
    FunctionGone(String),
    /// The function ended its body with a `Kiln-Stream-Error` trailer naming this error type.
    #[error("the function reported error `{0}` mid-stream")]
    FunctionFailed(String),
}

/// How a streamed response ended, as the dispatcher needs to know to keep or replace the
/// container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The function sent its last chunk.
    Completed,
    /// The caller went away; the function's next write fails.
    CallerGone,
    Cut(StreamCut),
}

impl StreamEnd {
    /// The label of `kiln_streamed_responses_total`.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            StreamEnd::Completed => "completed",
            StreamEnd::CallerGone => "caller_gone",
            StreamEnd::Cut(StreamCut::Idle(_)) => "idle_timeout",
            StreamEnd::Cut(StreamCut::TooLong(_)) => "too_long",
            StreamEnd::Cut(StreamCut::FunctionGone(_)) => "function_gone",
            StreamEnd::Cut(StreamCut::FunctionFailed(_)) => "function_error",
        }
    }

    /// Whether the container may serve again: it ended the stream (even with an error), or
    /// will notice that its caller left when its next write fails.
    pub(crate) fn container_reusable(&self) -> bool {
        matches!(
            self,
            StreamEnd::Completed | StreamEnd::CallerGone | StreamEnd::Cut(StreamCut::FunctionFailed(_))
        )
    }
}

/// The caller's side: an HTTP body that yields the function's chunks as they arrive.
#[derive(Debug)]
pub struct ResponseStream {
    chunks: mpsc::Receiver<Bytes>,
    /// Sent before the last chunk sender is dropped: `Ok` when the function ended the body.
    /// `None` once read.
    ending: Option<oneshot::Receiver<Result<(), StreamCut>>>,
}

/// The function's side, fed from its runtime API request.
pub(crate) struct StreamFeed {
    chunks: mpsc::Sender<Bytes>,
    ending: oneshot::Sender<Result<(), StreamCut>>,
}

/// A connected feed and stream.
pub(crate) fn response_stream() -> (StreamFeed, ResponseStream) {
    let (chunk_sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (ending_sender, ending) = oneshot::channel();
    (
        StreamFeed {
            chunks: chunk_sender,
            ending: ending_sender,
        },
        ResponseStream {
            chunks,
            ending: Some(ending),
        },
    )
}

impl StreamFeed {
    /// Forwards `body` chunk by chunk until it ends, the caller leaves or a limit cuts it.
    pub(crate) async fn pump(self, mut body: Incoming, limits: StreamLimits) -> StreamEnd {
        let give_up_at = Instant::now() + limits.max_duration;
        let too_long = StreamCut::TooLong(limits.max_duration);
        let mut reported_error = None;
        let end = loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout(limits.idle_timeout, body.frame()) => frame,
                _ = self.chunks.closed() => break StreamEnd::CallerGone,
                _ = tokio::time::sleep_until(give_up_at) => break StreamEnd::Cut(too_long),
            };
            let data = match frame {
                Err(_) => break StreamEnd::Cut(StreamCut::Idle(limits.idle_timeout)),
                Ok(None) => match reported_error.take() {
                    Some(error_type) => break StreamEnd::Cut(StreamCut::FunctionFailed(error_type)),
                    None => break StreamEnd::Completed,
                },
                Ok(Some(Err(error))) => break StreamEnd::Cut(StreamCut::FunctionGone(error.to_string())),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    Ok(_) => continue,
                    // Trailers do not reach the caller (its head is sent already), except
                    // as the function's word that the body is not whole.
                    Err(frame) => {
                        reported_error = frame
                            .trailers_ref()
                            .and_then(|trailers| trailers.get("kiln-stream-error"))
                            .map(|value| error_type(value.as_bytes()));
                        continue;
                    }
                },
            };
            tokio::select! {
                sent = self.chunks.send(data) => if sent.is_err() {
                    break StreamEnd::CallerGone;
                },
                _ = tokio::time::sleep_until(give_up_at) => break StreamEnd::Cut(too_long),
            }
        };
        let ending = match &end {
            StreamEnd::Cut(cut) => Err(cut.clone()),
            StreamEnd::Completed | StreamEnd::CallerGone => Ok(()),
        };
        let _ = self.ending.send(ending);
        end
    }
}

/// The error type a function reported, cut to the length error reports may have.
fn error_type(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let end = text
        .char_indices()
        .nth(ERROR_TYPE_LIMIT)
        .map_or(text.len(), |(index, _)| index);
    text[..end].to_owned()
}

impl Body for ResponseStream {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        if let Some(chunk) = ready!(self.chunks.poll_recv(context)) {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        // Every chunk is through; the ending was sent before the chunk sender went away.
        let Some(ending) = self.ending.as_mut() else {
            return Poll::Ready(None);
        };
        let ending = ready!(Pin::new(ending).poll(context));
        self.ending = None;
        Poll::Ready(match ending {
            Ok(Ok(())) => None,
            Ok(Err(cut)) => Some(Err(cut)),
            Err(_) => Some(Err(StreamCut::FunctionGone("the stream was dropped".into()))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ending.is_none()
    }
}
