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

use http::{HeaderValue, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::conns::ConnGuard;
use crate::forwarded::forwarded_node;
use crate::http::park::{H1, ParkWheel, drained, serve_h1_parking};
use crate::http::proxy::{ConnCtx, handle, reject};
use crate::io::Stream;
use crate::live::coarse_ns;
use crate::metrics::ListenerKind;
use crate::shared::Shared;
use crate::snapshot::ListenerRt;
use sy_core::{ProxyError, Stage};
use sy_proto::{FramingScanner, Verdict};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Milliseconds on the coarse clock (never 0): the connection timers need
/// no more than a timer tick's precision.
pub(super) fn now_ms() -> u64 {
    coarse_ns() / 1_000_000 + 1
}

/// An HTTP/1.1 connection idle this long gives its buffers back: hyper's
/// connection state is dropped and only the socket is kept until the
/// client sends again (see `serve_h1_parking`).
pub(super) const PARK_AFTER: Duration = Duration::from_millis(500);

/// Per-connection activity, shared by the IO wrapper, the request handler
/// and the connection's timer. A request counts as active from its head
/// until its response body has been written (the body holds the guard).
pub struct ConnState {
    active: AtomicU32,
    idle_since_ms: AtomicU64,
    /// When the current request head began (0: none). The connection's
    /// timer loop sees it change (see [`head_started`]).
    pub(super) first_byte_ms: AtomicU64,
    h2: bool,
    /// Requests started on this connection (HTTP/1.1: in order).
    requests: AtomicU64,
    /// 1-based index of the first request head with ambiguous framing
    /// (both Content-Length and Transfer-Encoding, or Content-Length
    /// repeated), as seen by the framing scanner; 0 = none.
    ambiguous_at: AtomicU64,
    /// The listener's byte counters (`downstream_bytes_received_total`,
    /// `_sent_total`), resolved once per connection.
    bytes_in: prometheus_client::metrics::counter::Counter,
    bytes_out: prometheus_client::metrics::counter::Counter,
}

/// What a connection's timer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Requests in flight: nothing to do.
    Busy,
    /// A request head started arriving and did not complete in time.
    HeaderTimeout,
    /// Idle past the keep-alive timeout.
    IdleTimeout,
    /// Idle long enough to give buffers back.
    Park,
}

impl ConnState {
    fn new(h2: bool, m: &crate::snapshot::ListenerMetrics) -> Self {
        Self::idle_since(h2, m, now_ms())
    }

    /// A connection idle since `since` (`now_ms` time) with no request yet.
    pub(super) fn idle_since(h2: bool, m: &crate::snapshot::ListenerMetrics, since: u64) -> Self {
        ConnState {
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(since),
            first_byte_ms: AtomicU64::new(0),
            h2,
            requests: AtomicU64::new(0),
            ambiguous_at: AtomicU64::new(0),
            bytes_in: m.bytes_received.clone(),
            bytes_out: m.bytes_sent.clone(),
        }
    }

    /// Marks a request in flight until the guard drops. The flag is true
    /// when the framing scanner found this request's head ambiguous.
    pub fn begin_request(self: &Arc<Self>) -> (RequestGuard, bool) {
        self.active.fetch_add(1, Ordering::Relaxed);
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let bad = self.ambiguous_at.load(Ordering::Relaxed);
        (RequestGuard(self.clone()), bad != 0 && n >= bad)
    }

    fn on_read(&self) {
        if !self.h2
            && self.active.load(Ordering::Relaxed) == 0
            && self.first_byte_ms.load(Ordering::Relaxed) == 0
        {
            self.first_byte_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Idle, with nothing of a next request seen and no ambiguous head
    /// behind: a new `ConnState` (see [`ConnState::idle_since`]) would
    /// judge the rest of the connection the same. Some(idle since).
    pub(super) fn clean_idle(&self) -> Option<u64> {
        (self.active.load(Ordering::Relaxed) == 0
            && self.first_byte_ms.load(Ordering::Relaxed) == 0
            && self.ambiguous_at.load(Ordering::Relaxed) == 0)
            .then(|| self.idle_since_ms.load(Ordering::Relaxed))
    }

    /// When the timer should look again, and what will be due then.
    pub(super) fn deadline(
        &self,
        header: Duration,
        idle: Duration,
        park: Option<Duration>,
    ) -> (u64, Due) {
        if self.active.load(Ordering::Relaxed) > 0 {
            // Look again soon: when the request ends, the park or idle
            // deadline starts from then.
            let again = park.unwrap_or(Duration::from_secs(1)).min(idle);
            return (now_ms() + again.as_millis() as u64, Due::Busy);
        }
        let first = self.first_byte_ms.load(Ordering::Relaxed);
        if first != 0 {
            return (first + header.as_millis() as u64, Due::HeaderTimeout);
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        match park {
            Some(p) if p < idle => (since + p.as_millis() as u64, Due::Park),
            _ => (since + idle.as_millis() as u64, Due::IdleTimeout),
        }
    }
}

/// See `ConnState::begin_request`.
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since_ms.store(now_ms(), Ordering::Relaxed);
            self.0.first_byte_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request counted as active until hyper
/// has written it and drops it.
pub struct ConnBody {
    inner: ProxyBody,
    _guard: RequestGuard,
}

impl http_body::Body for ConnBody {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Notes reads so the header timer knows a request has begun, runs
    /// the HTTP/1.1 framing scanner over every byte the client sends, and
    /// counts the bytes read and written (one relaxed add per IO call).
    pub(super) struct Tracked<T> {
        #[pin]
        pub(super) inner: T,
        pub(super) state: Arc<ConnState>,
        // None for HTTP/2.
        pub(super) scan: Option<Scan>,
    }
}

/// The framing scanner of an HTTP/1.1 connection and the number of request
/// heads it has judged. Kept across parking: the byte stream goes on.
pub(super) struct Scan {
    scanner: FramingScanner,
    heads: u64,
}

impl Scan {
    pub(super) fn new() -> Self {
        Scan {
            scanner: FramingScanner::new(),
            heads: 0,
        }
    }

    /// Between requests with nothing of a next one seen: a new `Scan`
    /// (with a new `ConnState`) would go on the same.
    pub(super) fn is_idle(&self) -> bool {
        self.scanner.is_idle()
    }

    fn feed(&mut self, bytes: &[u8], state: &ConnState) {
        if self.scanner.is_done() {
            return;
        }
        let heads = &mut self.heads;
        self.scanner.feed(bytes, |v| {
            *heads += 1;
            if v == Verdict::Ambiguous {
                let _ = state.ambiguous_at.compare_exchange(
                    0,
                    *heads,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        });
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state
                .bytes_in
                .inc_by((buf.filled().len() - before) as u64);
            this.state.on_read();
            if let Some(scan) = this.scan {
                scan.feed(&buf.filled()[before..], this.state);
            }
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.state.bytes_out.inc_by(n as u64);
        }
        r
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
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.state.bytes_out.inc_by(n as u64);
        }
        r
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

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Serves one accepted connection until it closes or the drain ends.
/// `peer` is the client: the TCP peer, or the client a PROXY header named
/// (whose bytes `tcp` has already consumed). `wheel` closes the parked
/// connections of the accept loop (see `ParkWheel`).
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    lst: Arc<ListenerRt>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    wheel: Arc<ParkWheel>,
    guard: ConnGuard,
) {
    // Boxed: everything but a parking HTTP/1.1 connection (the handshake,
    // HTTP/2) is driven inside it; inline, its size
    // would stay in every connection task for the connection's lifetime.
    match Box::pin(start(tcp, peer, lst, shared, shutdown, &wheel)).await {
        Some(Parking::Plain(c)) => serve_h1_parking(c, wheel, guard).await,
        Some(Parking::Tls(c)) => serve_h1_parking(c, wheel, guard).await,
        None => {}
    }
}

/// An HTTP/1.1 connection ready to be served by `serve_h1_parking`.
enum Parking {
    Plain(H1<TcpStream>),
    Tls(H1<Box<tokio_rustls::server::TlsStream<TcpStream>>>),
}

/// The service every request of a connection goes through.
#[derive(Clone)]
pub(super) struct Svc(pub(super) Arc<ConnCtx>);

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Svc {
    type Response = Response<ConnBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ConnBody>, Infallible>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let cx = self.0.clone();
        let (guard, ambiguous) = cx.state.begin_request();
        crate::boxed::pin_box(|| async move {
            let resp = if ambiguous {
                count(&cx.shared, &cx.listener.cfg.name, "ambiguous_framing");
                reject(
                    &cx,
                    &req,
                    &ProxyError::new(
                        Stage::BadRequest,
                        "ambiguous request framing (Content-Length with Transfer-Encoding, or Content-Length repeated)",
                    ),
                )
            } else {
                handle(cx, req).await
            };
            let mut resp = resp;
            if !resp.headers().contains_key(http::header::DATE) {
                resp.headers_mut()
                    .insert(http::header::DATE, crate::respond::http_date());
            }
            Ok(resp.map(|inner| ConnBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// The context every request of a connection shares.
pub(super) fn conn_ctx(
    shared: Arc<Shared>,
    listener: Arc<ListenerRt>,
    peer: SocketAddr,
    tls: bool,
    tls_facts: Option<crate::filter::TlsFacts>,
    state: Arc<ConnState>,
) -> Arc<ConnCtx> {
    let ip = peer.ip();
    // HTTP/1.1, cleartext or TLS, parks when idle (see `serve_h1_parking`)
    // and completes its upgrades there.
    let h2 = state.h2;
    Arc::new(ConnCtx {
        shared,
        listener,
        peer,
        tls,
        tls_facts,
        peer_ip: HeaderValue::from_str(&ip.to_string())
            .unwrap_or(HeaderValue::from_static("unknown")),
        forwarded_node: forwarded_node(ip),
        state,
        manual_upgrade: (!h2).then(|| std::sync::Mutex::new(None)),
    })
}

/// hyper's HTTP/1.1 server settings for a listener.
pub(super) fn h1_builder(cfg: &sy_config::model::Listener) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    // Switchyard adds the date itself (see `Svc`).
    b.header_read_timeout(None)
        .auto_date_header(false)
        .max_headers(cfg.max_request_headers)
        .max_header_size(cfg.max_request_header_bytes as usize);
    b
}

/// Negotiates and serves the connection, except a parking HTTP/1.1 one,
/// which it returns.
async fn start(
    tcp: TcpStream,
    peer: SocketAddr,
    lst: Arc<ListenerRt>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    wheel: &Arc<ParkWheel>,
) -> Option<Parking> {
    let _ = tcp.set_nodelay(true);
    let (stream, h2, tls) = negotiate(tcp, peer, &lst, &shared).await?;
    let tls_facts = match &stream {
        Stream::ServerTls(s) => {
            let conn = s.get_ref().1;
            Some(crate::filter::TlsFacts {
                sni: conn.server_name().map(|n| n.to_ascii_lowercase().into()),
                alpn: conn.alpn_protocol().map(Into::into),
            })
        }
        _ => None,
    };
    let state = Arc::new(ConnState::new(h2, &lst.metrics));
    let cx = conn_ctx(
        shared.clone(),
        lst.clone(),
        peer,
        tls,
        tls_facts,
        state.clone(),
    );
    let cfg = &lst.cfg;
    if h2 {
        let io = TokioIo::new(Tracked {
            inner: stream,
            state: state.clone(),
            scan: None,
        });
        let conn = {
            let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .auto_date_header(false)
                .max_header_list_size(cfg.max_request_header_bytes.min(u32::MAX as u64) as u32)
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20));
            Box::pin(b.serve_connection(io, Svc(cx)))
        };
        drive(conn, &state, &lst, &shared, &shutdown, wheel).await;
        return None;
    }
    match stream {
        Stream::Plain(tcp) => Some(Parking::Plain(H1::new(tcp, cx, shutdown))),
        Stream::ServerTls(tls) => Some(Parking::Tls(H1::new(tls, cx, shutdown))),
        // A listener's connection is never a client-side TLS stream.
        Stream::ClientTls(_) => None,
    }
}

/// TLS handshake (ALPN decides h2) or, in cleartext, the h2c preface
/// sniff. None: the connection failed or timed out before HTTP began.
async fn negotiate(
    tcp: TcpStream,
    peer: SocketAddr,
    lst: &ListenerRt,
    shared: &Shared,
) -> Option<(Stream, bool, bool)> {
    let header_timeout = lst.cfg.request_header_timeout;
    match &lst.tls {
        Some(acceptor) => {
            let started = tokio::time::Instant::now();
            // A client speaking plain HTTP to a TLS port gets a 400 it can
            // read, as nginx and Caddy answer, instead of a closed socket.
            match tokio::time::timeout(header_timeout, first_byte(&tcp)).await {
                Ok(Some(b)) if b.is_ascii_uppercase() => {
                    count(shared, &lst.cfg.name, "plain_http_on_tls");
                    let rest = header_timeout.saturating_sub(started.elapsed());
                    answer_plain_http(tcp, rest).await;
                    return None;
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) => {
                    count_handshake(shared, lst, "timeout");
                    return None;
                }
            }
            let rest = header_timeout.saturating_sub(started.elapsed());
            let res = tokio::time::timeout(rest, acceptor.accept(tcp)).await;
            // `timeout`: no complete handshake within request_header_timeout
            // (slow or idle client); `error`: the handshake failed.
            let kind = match &res {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "error",
                Err(_) => "timeout",
            };
            count_handshake(shared, lst, kind);
            if let Ok(Err(e)) = &res
                && let Some(suppressed) = HANDSHAKE_LOG.allow()
            {
                tracing::warn!(
                    listener = %lst.cfg.name,
                    peer = %peer,
                    error = %e,
                    suppressed,
                    "tls handshake failed"
                );
            }
            let Ok(Ok(s)) = res else { return None };
            let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
            Some((Stream::ServerTls(Box::new(s)), h2, true))
        }
        None => {
            let h2 = if lst.cfg.http2 {
                match tokio::time::timeout(header_timeout, sniff_h2(&tcp)).await {
                    Ok(Some(h2)) => h2,
                    Ok(None) => return None,
                    Err(_) => {
                        count(shared, &lst.cfg.name, "header_timeout");
                        return None;
                    }
                }
            } else {
                false
            };
            Some((Stream::Plain(tcp), h2, false))
        }
    }
}

fn count_handshake(shared: &Shared, lst: &ListenerRt, kind: &str) {
    shared
        .metrics
        .tls_handshakes
        .get_or_create(&ListenerKind {
            listener: lst.cfg.name.clone(),
            kind: kind.into(),
        })
        .inc();
}

/// At most one "tls handshake failed" record per second, process-wide: a
/// scanner or a broken client fleet must not flood the log. Each record
/// says how many were left out since the previous one.
static HANDSHAKE_LOG: RateLimitedLog = RateLimitedLog::new();

/// Lets one log record through per second and counts the rest.
pub(crate) struct RateLimitedLog {
    /// Second (of `now_ms`) of the last record let through.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    pub(crate) const fn new() -> Self {
        RateLimitedLog {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Some(records left out since the last one) when a record may be
    /// written now; None (and counted) otherwise.
    pub(crate) fn allow(&self) -> Option<u64> {
        let second = now_ms() / 1000 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != second
            && self
                .last
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The first byte the client sent, without consuming it; None when it
/// closed first.
async fn first_byte(tcp: &TcpStream) -> Option<u8> {
    let mut b = [0u8; 1];
    match tcp.peek(&mut b).await {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

const PLAIN_HTTP_BODY: &str = "This port expects HTTPS (TLS), but the request was plain HTTP.\nUse an https:// URL for this address.\n";

/// Reads the plain-HTTP request head (so closing does not reset the
/// connection before the client reads the answer), then answers 400.
async fn answer_plain_http(mut tcp: TcpStream, limit: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let read_head = async {
        let mut buf = [0u8; 1024];
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(tokio::time::timeout(limit, read_head).await, Ok(true)) {
        return;
    }
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n{}: plain-http-on-tls\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len(),
        sy_core::ERROR_HEADER,
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
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
    mut conn: Pin<Box<C>>,
    state: &ConnState,
    lst: &ListenerRt,
    shared: &Shared,
    shutdown: &watch::Receiver<bool>,
    wheel: &Arc<ParkWheel>,
) where
    C: Graceful,
{
    let header = lst.cfg.request_header_timeout;
    let idle = lst.cfg.idle_timeout;
    let (first, _) = state.deadline(header, idle, None);
    let sleep = tokio::time::sleep(Duration::from_millis(first.saturating_sub(now_ms())));
    let sleep = std::pin::pin!(sleep);
    let mut timer = ConnTimer::new(sleep, first);
    // Our timer asked the connection to close: after a grace it is dropped.
    let mut closing = false;
    // Shutdown asked it to finish: the worker's drain deadline bounds that.
    let mut draining = false;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        draining = true;
    }
    let mut stop = std::pin::pin!(drained(wheel));
    let mut seen_head = state.first_byte_ms.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    record_conn_error(shared, &lst.cfg.name, &e);
                }
                return;
            }
            _ = &mut stop, if !closing && !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = head_started(state, &mut seen_head), if !closing => {
                let (at, _) = state.deadline(header, idle, None);
                timer.earlier(at);
            }
            _ = timer.sleep.as_mut() => {
                if closing {
                    // The grace period for this connection is over.
                    return;
                }
                let (at, due) = state.deadline(header, idle, None);
                let now = now_ms();
                if at <= now && due != Due::Busy {
                    if due == Due::HeaderTimeout {
                        count(shared, &lst.cfg.name, "header_timeout");
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    timer.set(now + 1000);
                } else {
                    timer.set(at);
                }
            }
        }
    }
}

/// Ready when a request head began since the last look: the timer may be
/// armed for a later (idle) deadline than the header one. Registers no
/// waker: `first_byte_ms` only changes while the connection reads, inside
/// the same `select!` that polls this just after the connection (biased),
/// so a change is seen in that same poll. (A `Notify` here woke the task
/// once more per request.)
pub(super) fn head_started<'a>(
    state: &'a ConnState,
    seen: &'a mut u64,
) -> impl std::future::Future<Output = ()> + 'a {
    std::future::poll_fn(move |_| {
        let now = state.first_byte_ms.load(Ordering::Relaxed);
        if now == *seen {
            return Poll::Pending;
        }
        *seen = now;
        // 0: the request ended; the next deadline is later, not sooner.
        if now == 0 {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
}

/// A connection's timer, with its deadline kept in `now_ms` time so that
/// moving it earlier, once per request, reads no clock unless it moves.
pub(super) struct ConnTimer<'a> {
    pub(super) sleep: Pin<&'a mut tokio::time::Sleep>,
    at_ms: u64,
}

impl<'a> ConnTimer<'a> {
    pub(super) fn new(sleep: Pin<&'a mut tokio::time::Sleep>, at_ms: u64) -> Self {
        ConnTimer { sleep, at_ms }
    }

    /// Fires at `at_ms` (at least 1 ms from now).
    pub(super) fn set(&mut self, at_ms: u64) {
        self.at_ms = at_ms;
        let wait = at_ms.saturating_sub(now_ms()).max(1);
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + Duration::from_millis(wait));
    }

    /// Moves the timer to `at_ms` when that is sooner; a timer that fires
    /// early recomputes the deadline and re-arms itself.
    pub(super) fn earlier(&mut self, at_ms: u64) {
        if at_ms < self.at_ms {
            self.set(at_ms);
        }
    }
}

pub(super) fn record_conn_error(shared: &Shared, listener: &str, h: &hyper::Error) {
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
    // hyper answered 431 or 400 itself; a header timeout only closes.
    if h.is_parse() {
        let status = if h.is_parse_too_large() { 431 } else { 400 };
        shared.metrics.count_listener_answer(listener, status);
    }
}

/// A hyper server connection that can be asked to finish gracefully
/// (HTTP/2; HTTP/1.1 connections are driven by `park::drive_parkable`).
trait Graceful: std::future::Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
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
