//! Keep-alive after an early answer. A handler may answer (401, 404, 413, 503, ...) without
//! reading the request body; on HTTP/1 those bytes sit in front of the connection's next
//! request. The body the handler dropped comes back here: a small rest (at most
//! [`DRAIN_BYTES`], within [`DRAIN_TIME`]) is read and thrown away so the connection stays
//! usable; a larger or slower one gets `Connection: close`, and the connection then closes
//! cleanly (see `lingering_close`), never with a reset.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use pool::Runner;
use tokio::sync::oneshot;

use crate::App;
use crate::body::{ResponseBody, close_connection};

/// Most unread body bytes drained to keep a connection.
pub(crate) const DRAIN_BYTES: u64 = 64 * 1024;
/// Longest wait for them.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Answers one request and settles what the handler left of its body.
pub(crate) async fn answer<R: Runner>(app: &App<R>, request: Request<Incoming>) -> Response<ResponseBody> {
    // HTTP/2 ends an unread stream by itself; a body already complete leaves nothing behind.
    if request.version() >= Version::HTTP_2 || request.body().is_end_stream() {
        return app.handle(request).await;
    }
    let asked_to_continue = request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (give_back, mut given_back) = oneshot::channel();
    let request = request.map(|body| ReturningBody {
        body: Some(body),
        give_back: Some(give_back),
        polled: false,
    });
    let mut response = app.handle(request).await;
    if let Ok(Unread { body, polled }) = given_back.try_recv() {
        // A client waiting for `100 Continue` has not sent its body: asking for it only to
        // throw it away would waste its upload.
        let kept = (polled || !asked_to_continue) && discard(body).await;
        if !kept {
            close_connection(&mut response);
        }
    }
    response
}

/// Reads a small rest of a body to its end; false when it is too large, too slow or broken.
async fn discard(mut body: Incoming) -> bool {
    if body.size_hint().lower() > DRAIN_BYTES {
        return false;
    }
    let drain = async {
        let mut left = DRAIN_BYTES;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            let length = frame.data_ref().map_or(0, |data| data.len() as u64);
            let Some(rest) = left.checked_sub(length) else {
                return false;
            };
            left = rest;
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, drain).await.unwrap_or(false)
}

/// What a handler left of a body.
struct Unread {
    body: Incoming,
    polled: bool,
}

/// A request body that hands itself back, unfinished, when dropped.
struct ReturningBody {
    body: Option<Incoming>,
    give_back: Option<oneshot::Sender<Unread>>,
    polled: bool,
}

impl Body for ReturningBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.polled = true;
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(context);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            // Ended (or broken, which hyper settles itself): nothing to give back.
            self.body = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for ReturningBody {
    fn drop(&mut self) {
        let (Some(body), Some(give_back)) = (self.body.take(), self.give_back.take()) else {
            return;
        };
        if !body.is_end_stream() {
            let _ = give_back.send(Unread {
                body,
                polled: self.polled,
            });
        }
    }
}
