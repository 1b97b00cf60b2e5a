//! The one body type that flows through the proxy in both directions.
//!
//! An enum rather than a boxed trait object: the proxy path never allocates
//! for a body, and the common variants (a streaming hyper body, a small fixed
//! body) are matched directly.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::access_log::{Counted, Observed};
use crate::filter::compress::Encoded;
use crate::upstream::pool::PoolReturn;

/// Boxed error for bodies: only allocated on the error path.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body exceeded the route's `max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the route's limit of {limit} bytes")]
pub struct BodyTooLarge {
    /// The configured limit.
    pub limit: u64,
}

/// A body flowing through Switchyard.
pub enum ProxyBody {
    /// No body.
    Empty,
    /// A small body Switchyard produced itself (errors, `respond`).
    Full(Option<Bytes>),
    /// A streaming body from a peer, forwarded as it arrives.
    Stream(Incoming),
    /// A streaming request body with a size limit.
    Limited {
        /// The peer's body.
        inner: Incoming,
        /// Bytes still allowed.
        remaining: u64,
        /// The configured limit, for the error.
        limit: u64,
    },
    /// An upstream response body whose connection goes back to the pool
    /// when the body has been read to its end.
    Pooled {
        /// The upstream's body.
        inner: Incoming,
        /// Returns the connection on end of stream; dropped (closing the
        /// connection) if the body is abandoned half-way.
        ret: Option<PoolReturn>,
    },
    /// A response body the access log records: counts the bytes and sends
    /// the record when it ends, fails or is dropped.
    Observed(Observed),
    /// A request body whose bytes are counted for the access log.
    Counted(Box<Counted>),
    /// A response body compressed as it streams (the `compress` filter);
    /// boxed so that bodies which are not compressed stay small.
    Encoded(Box<Encoded>),
}

impl ProxyBody {
    /// A fixed body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(b.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            ProxyBody::Limited {
                inner,
                remaining,
                limit,
            } => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        let n = data.len() as u64;
                        if n > *remaining {
                            return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                                limit: *limit,
                            }))));
                        }
                        *remaining -= n;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                other => other.map_err(Into::into),
            },
            ProxyBody::Pooled { inner, ret } => {
                let res = Pin::new(&mut *inner).poll_frame(cx);
                match &res {
                    Poll::Ready(None) => {
                        if let Some(r) = ret.take() {
                            r.give_back();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                        if let Some(r) = ret.take() {
                            r.give_back();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        ret.take();
                    }
                    _ => {}
                }
                res.map_err(Into::into)
            }
            ProxyBody::Observed(o) => o.poll_frame(cx),
            ProxyBody::Counted(c) => {
                let res = Pin::new(&mut c.inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(f))) = &res
                    && let Some(d) = f.data_ref()
                {
                    c.count.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                res
            }
            ProxyBody::Encoded(e) => e.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(i) => i.is_end_stream(),
            ProxyBody::Limited { inner, .. } => inner.is_end_stream(),
            ProxyBody::Pooled { inner, .. } => inner.is_end_stream(),
            ProxyBody::Observed(o) => o.is_end_stream(),
            ProxyBody::Counted(c) => c.inner.is_end_stream(),
            ProxyBody::Encoded(e) => e.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(i) | ProxyBody::Limited { inner: i, .. } => i.size_hint(),
            ProxyBody::Pooled { inner, .. } => inner.size_hint(),
            ProxyBody::Observed(o) => o.size_hint(),
            ProxyBody::Counted(c) => c.inner.size_hint(),
            // The encoded length is known only at the end.
            ProxyBody::Encoded(_) => SizeHint::default(),
        }
    }
}
