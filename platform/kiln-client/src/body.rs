//! Request bodies: the one boxed body type the HTTP client sends, and an upload body that
//! hands its bytes out in chunks and reports how many have gone.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};

/// The body type of every request.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, Infallible>;

/// A callback told `(bytes sent, total bytes)` as an upload goes out.
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

/// Size of the chunks an upload is handed to the connection in.
const CHUNK: usize = 64 * 1024;

pub(crate) fn full(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn empty() -> RequestBody {
    full(Bytes::new())
}

/// `data` in chunks of 64 KiB, calling `progress` as each chunk is taken by the connection.
pub(crate) fn counted(data: Bytes, progress: Progress) -> RequestBody {
    CountingBody {
        data,
        sent: 0,
        progress,
    }
    .boxed_unsync()
}

struct CountingBody {
    data: Bytes,
    sent: usize,
    progress: Progress,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.sent + CHUNK).min(this.data.len());
        let chunk = this.data.slice(this.sent..end);
        this.sent = end;
        (this.progress)(end as u64, this.data.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn counts_every_chunk_and_keeps_the_bytes() {
        let data = Bytes::from((0..150_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let body = counted(
            data.clone(),
            Box::new(move |sent, total| record.lock().push((sent, total))),
        );
        assert_eq!(body.size_hint().exact(), Some(150_000));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, data);
        assert_eq!(
            *seen.lock(),
            [(65_536, 150_000), (131_072, 150_000), (150_000, 150_000)]
        );
    }
}
