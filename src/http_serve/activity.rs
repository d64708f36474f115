//! What a connection is doing, for its deadline: how many requests are in flight (from their
//! headers until their answer is sent or dropped), since when it has been idle, and when the
//! first byte of its next request came. hyper's own `header_read_timeout` is not used: it also
//! starts on an idle keep-alive connection, so the idle timeout could never be longer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::HttpLimits;

#[derive(Debug, Clone, Copy)]
struct State {
    /// Requests whose answer is not yet sent.
    in_flight: usize,
    /// When the last answer was sent, or the connection accepted.
    idle_since: Instant,
    /// When the first byte of the next request arrived, if one did.
    reading_since: Option<Instant>,
    /// Whether a request was ever received: the first must come within the header timeout.
    served: bool,
}

impl State {
    /// When the connection is to be closed; `None` while a request is in flight.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.reading_since, self.served) {
            (_, false) => self.idle_since + limits.header_read_timeout,
            (Some(first_byte), true) => first_byte + limits.header_read_timeout,
            (None, true) => self.idle_since + limits.idle_timeout,
        })
    }
}

/// One connection's activity, shared by its reader, its requests and its deadline.
pub(super) struct Activity {
    state: watch::Sender<State>,
    limits: HttpLimits,
}

impl Activity {
    pub(super) fn new(limits: HttpLimits) -> Arc<Self> {
        let state = State {
            in_flight: 0,
            idle_since: Instant::now(),
            reading_since: None,
            served: false,
        };
        Arc::new(Self {
            state: watch::Sender::new(state),
            limits,
        })
    }

    /// Bytes arrived: when no request is in flight, they start the next one's header deadline.
    fn bytes_arrived(&self) {
        let idle = {
            let s = self.state.borrow();
            s.in_flight == 0 && s.reading_since.is_none()
        };
        if idle {
            self.state.send_if_modified(|s| {
                let first = s.in_flight == 0 && s.reading_since.is_none();
                if first {
                    s.reading_since = Some(Instant::now());
                }
                first
            });
        }
    }

    /// Completes when the connection has gone past its deadline; never while a request is in flight.
    pub(super) async fn expired(&self) {
        let mut changes = self.state.subscribe();
        loop {
            let deadline = changes.borrow_and_update().deadline(&self.limits);
            match deadline {
                None => {
                    if changes.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
                Some(at) => {
                    tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() {
                                return std::future::pending().await;
                            }
                        }
                        () = tokio::time::sleep_until(at) => return,
                    }
                }
            }
        }
    }
}

/// A request in flight: counted from its headers until its answer is sent or dropped.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn start(activity: &Arc<Activity>) -> Self {
        activity.state.send_modify(|s| {
            s.in_flight += 1;
            s.reading_since = None;
            s.served = true;
        });
        Self(Arc::clone(activity))
    }

    /// `body`, keeping the request in flight until hyper has sent it all (or dropped it).
    pub(super) fn until_sent(self, body: Body) -> Body {
        Body::new(Sending { body, _busy: self })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.state.send_modify(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
    }
}

/// An answer's body, holding its request's [`Busy`].
struct Sending {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, telling its [`Activity`] when bytes arrive.
pub(super) struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Tracked {
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: HttpLimits = HttpLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(90),
        max_connections: 1,
    };

    #[test]
    fn deadlines_follow_what_the_connection_does() {
        let t0 = Instant::now();
        let s = |in_flight, reading_since, served| State {
            in_flight,
            idle_since: t0,
            reading_since,
            served,
        };
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            s(0, None, false).deadline(&LIMITS),
            Some(t0 + LIMITS.header_read_timeout),
            "a new connection's first request must come quickly"
        );
        assert_eq!(s(1, None, true).deadline(&LIMITS), None, "in flight");
        assert_eq!(
            s(0, None, true).deadline(&LIMITS),
            Some(t0 + LIMITS.idle_timeout),
            "idle keep-alive"
        );
        assert_eq!(
            s(0, Some(later), true).deadline(&LIMITS),
            Some(later + LIMITS.header_read_timeout),
            "a request started on a kept-alive connection"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_flight_holds_off_the_deadline_until_it_is_sent() {
        let activity = Activity::new(LIMITS);
        let busy = Busy::start(&activity);
        let body = busy.until_sent(Body::from("streaming"));
        let expired = activity.expired();
        tokio::pin!(expired);
        let waited = tokio::time::timeout(Duration::from_secs(3600), &mut expired).await;
        assert!(waited.is_err(), "no deadline while the answer is open");
        drop(body);
        let start = Instant::now();
        expired.await;
        assert_eq!(start.elapsed(), LIMITS.idle_timeout);
    }
}
