//! A response body that signals once the server is done with it (written out, or dropped): for
//! work that must wait until an answer has left, such as a Discord follow-up or marking a
//! revealed secret delivered.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// One chunk of bytes, and a signal sent when the server is done with it: `true` once the bytes
/// were handed to the connection, `false` if the body was dropped before (the client left).
pub(crate) struct SentBody {
    data: Option<Bytes>,
    sent: Option<oneshot::Sender<bool>>,
}

impl SentBody {
    pub(crate) fn new(data: Bytes, sent: oneshot::Sender<bool>) -> Self {
        Self {
            data: Some(data),
            sent: Some(sent),
        }
    }
}

impl http_body::Body for SentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.data.take() {
            Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
            None => {
                if let Some(s) = self.sent.take() {
                    let _ = s.send(true);
                }
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

impl Drop for SentBody {
    fn drop(&mut self) {
        if let Some(s) = self.sent.take() {
            let _ = s.send(self.data.is_none());
        }
    }
}
