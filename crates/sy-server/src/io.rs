//! Byte streams: plain TCP or TLS on either side, behind one type, plus a
//! rewind wrapper that replays bytes read while sniffing the protocol and
//! a metering wrapper that counts an upstream connection's bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's byte stream.
pub enum Stream {
    /// Cleartext TCP.
    Plain(TcpStream),
    /// TLS we terminated.
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS we originated towards an upstream.
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::ServerTls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            Stream::ClientTls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::ServerTls(s) => s.is_write_vectored(),
            Stream::ClientTls(s) => s.is_write_vectored(),
        }
    }
}

/// `poll_flush`, `poll_shutdown` and `is_write_vectored` of an
/// `AsyncWrite` wrapper, passed straight on to its `inner` stream.
macro_rules! forward_to_inner {
    () => {
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
    };
}

/// A stream with some already-read bytes put back in front of it.
pub struct Rewind<T> {
    pre: Option<Bytes>,
    inner: T,
}

impl<T> Rewind<T> {
    /// Replays `pre` before reading from `inner`.
    pub fn new(pre: Bytes, inner: T) -> Self {
        Rewind {
            pre: if pre.is_empty() { None } else { Some(pre) },
            inner,
        }
    }
}

impl<T> Rewind<T> {
    /// The bytes not replayed yet, and the stream.
    pub fn into_inner(self) -> (Option<Bytes>, T) {
        (self.pre, self.inner)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut pre) = self.pre.take() {
            let n = pre.len().min(buf.remaining());
            buf.put_slice(&pre.split_to(n));
            if !pre.is_empty() {
                self.pre = Some(pre);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    forward_to_inner!();
}

/// The byte counters of one upstream server (`upstream_bytes_*_total`).
#[derive(Clone)]
pub struct ByteCounters {
    /// Bytes read from the server.
    pub read: prometheus_client::metrics::counter::Counter,
    /// Bytes written to the server.
    pub written: prometheus_client::metrics::counter::Counter,
}

/// A stream whose reads and writes are counted (one relaxed atomic add
/// per IO call); without counters it only passes through.
pub struct Metered<T> {
    inner: T,
    counters: Option<ByteCounters>,
}

impl<T> Metered<T> {
    /// Counts `inner`'s traffic in `counters`, if given.
    pub fn new(inner: T, counters: Option<ByteCounters>) -> Self {
        Metered { inner, counters }
    }

    /// Adds the bytes of a finished write to the written counter.
    fn count_written(&self, r: &Poll<io::Result<usize>>) {
        if let (Some(c), Poll::Ready(Ok(n))) = (&self.counters, r) {
            c.written.inc_by(*n as u64);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Some(c), Poll::Ready(Ok(()))) = (&self.counters, &r) {
            c.read.inc_by((buf.filled().len() - before) as u64);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count_written(&r);
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count_written(&r);
        r
    }
    forward_to_inner!();
}
