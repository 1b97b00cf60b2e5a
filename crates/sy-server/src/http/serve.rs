//! `http::serve`: one client connection, from accepted socket to close.
//!
//! TLS handshake (ALPN picks h2 or HTTP/1.1) or, in cleartext, a peek for
//! the HTTP/2 preface (h2c prior knowledge); then hyper serves the
//! connection with `proxy::handle` as the service. Switchyard's own timers
//! close slow (slowloris) and idle connections; shutdown drains gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::Shared;
use crate::http::headers::forwarded_node;
use crate::http::proxy::{ConnCtx, handle};
use crate::io::Stream;
use crate::live::now_ns;
use crate::metrics::ListenerKind;
use crate::snapshot::ListenerRt;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn now_ms() -> u64 {
    now_ns() / 1_000_000 + 1
}

/// Per-connection activity, shared by the IO wrapper, the request handler
/// and the connection's timer.
pub struct ConnState {
    active: AtomicU32,
    idle_since_ms: AtomicU64,
    first_byte_ms: AtomicU64,
    h2: bool,
}

impl ConnState {
    fn new(h2: bool) -> Self {
        ConnState {
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            first_byte_ms: AtomicU64::new(0),
            h2,
        }
    }

    /// Marks a request in flight until the guard drops.
    pub fn begin_request(&self) -> RequestGuard<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self)
    }

    fn on_read(&self) {
        if !self.h2
            && self.active.load(Ordering::Relaxed) == 0
            && self.first_byte_ms.load(Ordering::Relaxed) == 0
        {
            self.first_byte_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// When the connection must be closed, and why, unless something
    /// happens first.
    fn deadline(&self, header: Duration, idle: Duration) -> (u64, &'static str) {
        if self.active.load(Ordering::Relaxed) > 0 {
            return (now_ms() + idle.as_millis() as u64, "");
        }
        let first = self.first_byte_ms.load(Ordering::Relaxed);
        if first != 0 {
            return (first + header.as_millis() as u64, "header_timeout");
        }
        (
            self.idle_since_ms.load(Ordering::Relaxed) + idle.as_millis() as u64,
            "idle_timeout",
        )
    }
}

/// See `ConnState::begin_request`.
pub struct RequestGuard<'a>(&'a ConnState);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since_ms.store(now_ms(), Ordering::Relaxed);
            self.0.first_byte_ms.store(0, Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    /// Notes reads so the header timer knows a request has begun.
    struct Tracked<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.on_read();
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts an error on a listener (cold path).
pub fn count(shared: &Shared, listener: &str, kind: &str) {
    shared
        .metrics
        .downstream_errors
        .get_or_create(&ListenerKind {
            listener: listener.to_string(),
            kind: kind.to_string(),
        })
        .inc();
}

/// Serves one accepted connection until it closes or the drain ends.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    lst: Arc<ListenerRt>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let header_timeout = lst.cfg.request_header_timeout;
    let (stream, h2, tls) = match &lst.tls {
        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => {
                shared.metrics.tls_handshakes.get_or_create(&ListenerKind {
                    listener: lst.cfg.name.clone(),
                    kind: "ok".into(),
                }).inc();
                let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                (Stream::ServerTls(Box::new(s)), h2, true)
            }
            Ok(Err(_)) | Err(_) => {
                shared.metrics.tls_handshakes.get_or_create(&ListenerKind {
                    listener: lst.cfg.name.clone(),
                    kind: "error".into(),
                }).inc();
                return;
            }
        },
        None => {
            let h2 = if lst.cfg.http2 {
                match tokio::time::timeout(header_timeout, sniff_h2(&tcp)).await {
                    Ok(Some(h2)) => h2,
                    Ok(None) => return,
                    Err(_) => {
                        count(&shared, &lst.cfg.name, "header_timeout");
                        return;
                    }
                }
            } else {
                false
            };
            (Stream::Plain(tcp), h2, false)
        }
    };
    let state = Arc::new(ConnState::new(h2));
    let io = TokioIo::new(Tracked {
        inner: stream,
        state: state.clone(),
    });
    let ip = peer.ip();
    let cx = Arc::new(ConnCtx {
        shared: shared.clone(),
        listener: lst.clone(),
        peer,
        tls,
        peer_ip: HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
        forwarded_node: forwarded_node(ip),
        state: state.clone(),
    });
    let svc = service_fn(move |req| {
        let cx = cx.clone();
        async move { Ok::<_, Infallible>(handle(cx, req).await) }
    });
    let cfg = &lst.cfg;
    if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(cfg.max_request_header_bytes.min(u32::MAX as u64) as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let conn = b.serve_connection(io, svc);
        drive(conn, &state, &lst, &shared, shutdown).await;
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.header_read_timeout(None)
            .max_headers(cfg.max_request_headers)
            .max_header_size(cfg.max_request_header_bytes as usize);
        let conn = b.serve_connection(io, svc).with_upgrades();
        drive(conn, &state, &lst, &shared, shutdown).await;
    }
}

/// Peeks at the first bytes: true when they are the HTTP/2 preface.
/// None when the client closed without sending anything.
async fn sniff_h2(tcp: &TcpStream) -> Option<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = tcp.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A prefix of the preface so far: wait for the rest.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn drive<C>(
    conn: C,
    state: &ConnState,
    lst: &ListenerRt,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) where
    C: Graceful,
{
    let header = lst.cfg.request_header_timeout;
    let idle = lst.cfg.idle_timeout;
    let mut conn = std::pin::pin!(conn);
    let first = state.deadline(header, idle).0;
    let sleep = tokio::time::sleep(Duration::from_millis(first.saturating_sub(now_ms())));
    let mut sleep = std::pin::pin!(sleep);
    let mut closing = false;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    record_conn_error(shared, &lst.cfg.name, &e);
                }
                return;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = &mut sleep => {
                if closing {
                    // The drain grace period for this connection is over.
                    return;
                }
                let (at, why) = state.deadline(header, idle);
                let now = now_ms();
                if at <= now && !why.is_empty() {
                    if why == "header_timeout" {
                        count(shared, &lst.cfg.name, why);
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(1));
                } else {
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now).max(1)));
                }
            }
        }
    }
}

fn record_conn_error(shared: &Shared, listener: &str, h: &hyper::Error) {
    let kind = if h.is_parse_too_large() {
        "headers_too_large"
    } else if h.is_parse() {
        "bad_request"
    } else if h.is_timeout() {
        "header_timeout"
    } else {
        return;
    };
    count(shared, listener, kind);
}

/// A hyper server connection that can be asked to finish gracefully.
trait Graceful: std::future::Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self)
    }
}
