//! The one body type that flows through the proxy in both directions.
//!
//! An enum rather than a boxed trait object: the proxy path never allocates
//! for a body, and the common variants (a streaming hyper body, a small fixed
//! body) are matched directly. Wrappers that only some requests need (the
//! access log's byte counting, a filter's compression) are `Boxed`: the
//! enum stays open to them without the plain path paying for their size.
//!
//! This module depends on no other module of the crate: the pool a
//! response's connection goes back to is reached through [`ReturnConn`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use hyper::client::conn::http1;

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
    /// A wrapped body: the access log's counting, a filter's encoding.
    Boxed(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

/// Where a pooled HTTP/1.1 connection goes back once the response body
/// that used it has been read to its end (the upstream pool).
pub trait ReturnConn: Send + Sync {
    /// Takes back `sender` into the idle list of worker slot `slot`.
    fn give_back(&self, slot: usize, sender: http1::SendRequest<ProxyBody>);
}

/// A connection waiting for its response body to end.
pub struct PoolReturn {
    /// The pool.
    pub pool: std::sync::Arc<dyn ReturnConn>,
    /// The worker slot it belongs to.
    pub slot: usize,
    /// The connection.
    pub sender: http1::SendRequest<ProxyBody>,
}

impl PoolReturn {
    /// Gives the connection back (unless it closed meanwhile).
    pub fn give_back(self) {
        if self.sender.is_closed() {
            return;
        }
        self.pool.give_back(self.slot, self.sender);
    }
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
            ProxyBody::Boxed(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(i) => i.is_end_stream(),
            ProxyBody::Limited { inner, .. } => inner.is_end_stream(),
            ProxyBody::Pooled { inner, .. } => inner.is_end_stream(),
            ProxyBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(i) | ProxyBody::Limited { inner: i, .. } => i.size_hint(),
            ProxyBody::Pooled { inner, .. } => inner.size_hint(),
            ProxyBody::Boxed(b) => b.size_hint(),
        }
    }
}
