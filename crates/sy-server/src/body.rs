//! The one body type that flows through the proxy in both directions.
//!
//! An enum rather than a boxed trait object: the proxy path never allocates
//! for a body, and the common variants (a streaming hyper body, a small fixed
//! body) are matched directly. Wrappers that only some requests need (the
//! access log's byte counting, a filter's compression) are `Boxed`: the
//! enum stays open to them without the plain path paying for their size.
//!
//! This module depends on no other module of the crate but `client`, whose
//! [`ResponseBody`] reads an upstream response off its connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::client::ResponseBody;

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
    /// An HTTP/1.1 upstream response body, read by the request's own task;
    /// its connection goes back to the pool when it has been read to its end.
    Upstream(ResponseBody),
    /// A wrapped body: the access log's counting, a filter's encoding.
    Boxed(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
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
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Boxed(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(i) => i.is_end_stream(),
            ProxyBody::Limited { inner, .. } => inner.is_end_stream(),
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(i) | ProxyBody::Limited { inner: i, .. } => i.size_hint(),
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Boxed(b) => b.size_hint(),
        }
    }
}
