//! The access log: one line per request, written off the request path.
//!
//! A request the log records (the access log is on and the request was
//! sampled) carries a [`Record`], in the one heap block that later becomes
//! its response body ([`Observed`], then a `ProxyBody::Boxed` body), from
//! the start of `proxy::handle` to the end of its response body. When the
//! body ends, fails or is dropped (a client abort), the worker formats the
//! line (JSON or combined, see [`format`]) straight into its own buffer:
//! one buffer per worker thread, behind a mutex only the writer thread ever
//! contends for. One writer thread wakes every 10 ms, swaps each worker's
//! buffer for an empty one (the buffers are reused, so neither side
//! allocates in the steady state) and writes the bytes with one write per
//! worker. A worker whose buffer holds its byte cap drops the line and
//! counts it in `switchyard_access_log_dropped_total`: requests never wait
//! for the log.
//!
//! Requests the log does not record cost one `Option` test in `handle`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version, header};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use sy_config::model::{self, AccessLogFormat};

use crate::body::{BoxError, ProxyBody};
use crate::observe::Exchange;

pub mod format;

pub use format::{clf_escape, json_escape, rfc3339, write_combined, write_json};

/// How often the writer takes the workers' lines: the longest time a
/// finished request's line waits before it is written.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Bytes of buffer per `queue` line: `queue` counts lines, the buffers
/// count bytes, and a JSON line with every field is 300 to 500 bytes.
const LINE_BYTES: usize = 512;

/// The smallest per-worker cap: one line as long as the default request
/// head limit (64 KiB) still fits.
const MIN_CAP: usize = 64 * 1024 + 1024;

/// What a worker's buffer starts with (and keeps: buffers are reused).
const INITIAL: usize = 64 * 1024;

/// Status logged for a request whose client went away before it was
/// answered (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// One access-log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `time`: RFC 3339 UTC with milliseconds, when the request head arrived.
    Time,
    /// `client`: the client's ip:port.
    Client,
    /// `method`.
    Method,
    /// `host`: the URI authority or the Host header.
    Host,
    /// `path`: path and query as the client sent them.
    Path,
    /// `protocol`: "HTTP/1.0", "HTTP/1.1" or "HTTP/2".
    Protocol,
    /// `status`.
    Status,
    /// `bytes_in`: request body bytes received.
    BytesIn,
    /// `bytes_out`: response body bytes sent.
    BytesOut,
    /// `duration_ms`: request head received to response body end (or abort).
    DurationMs,
    /// `upstream_connect_ms`: connect time of a new upstream connection.
    UpstreamConnectMs,
    /// `ttfb_ms`: request sent upstream to response head.
    TtfbMs,
    /// `route`.
    Route,
    /// `upstream`.
    Upstream,
    /// `server`: the upstream server's address as configured.
    Server,
    /// `attempts`: upstream attempts (retries and hedges included).
    Attempts,
    /// `trace_id`: W3C trace id.
    TraceId,
    /// `user_agent`.
    UserAgent,
    /// `request_id`: the id a `request_id` filter gave the request.
    RequestId,
}

impl Field {
    /// Every field, in the default order.
    pub const ALL: [Field; 19] = [
        Field::Time,
        Field::Client,
        Field::Method,
        Field::Host,
        Field::Path,
        Field::Protocol,
        Field::Status,
        Field::BytesIn,
        Field::BytesOut,
        Field::DurationMs,
        Field::UpstreamConnectMs,
        Field::TtfbMs,
        Field::Route,
        Field::Upstream,
        Field::Server,
        Field::Attempts,
        Field::TraceId,
        Field::UserAgent,
        Field::RequestId,
    ];

    /// The field's name in the configuration and in JSON lines.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::Client => "client",
            Field::Method => "method",
            Field::Host => "host",
            Field::Path => "path",
            Field::Protocol => "protocol",
            Field::Status => "status",
            Field::BytesIn => "bytes_in",
            Field::BytesOut => "bytes_out",
            Field::DurationMs => "duration_ms",
            Field::UpstreamConnectMs => "upstream_connect_ms",
            Field::TtfbMs => "ttfb_ms",
            Field::Route => "route",
            Field::Upstream => "upstream",
            Field::Server => "server",
            Field::Attempts => "attempts",
            Field::TraceId => "trace_id",
            Field::UserAgent => "user_agent",
            Field::RequestId => "request_id",
        }
    }

    /// The field called `name`.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Part of the fixed combined-format prefix (not repeated as `key=value`).
    fn in_combined_prefix(self) -> bool {
        matches!(
            self,
            Field::Time
                | Field::Client
                | Field::Method
                | Field::Path
                | Field::Protocol
                | Field::Status
                | Field::BytesOut
                | Field::UserAgent
        )
    }
}

/// Text slots of a [`Record`].
#[derive(Clone, Copy)]
enum Slot {
    Host = 0,
    Path,
    UserAgent,
    Referer,
    Route,
    Upstream,
    Server,
    RequestId,
}
const SLOTS: usize = 8;

/// What one request looked like, gathered on the request path and
/// formatted when its response ends.
pub struct Record {
    start: Instant,
    unix_ms: u64,
    client: SocketAddr,
    method: Method,
    protocol: Version,
    /// Host, path, user agent, ... one after the other (see `spans`).
    text: Vec<u8>,
    /// (offset, length) in `text` per [`Slot`]; None = absent (null).
    spans: [Option<(u32, u32)>; SLOTS],
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ns: u64,
    connect_ns: Option<u64>,
    ttfb_ns: Option<u64>,
    attempts: u32,
    trace_id: Option<[u8; 16]>,
    /// Request body bytes, counted by the request body as it streams.
    counter: Option<Arc<AtomicU64>>,
}

impl Record {
    fn push(&mut self, slot: Slot, v: Option<&[u8]>) {
        self.spans[slot as usize] = v.map(|v| {
            let at = self.text.len() as u32;
            self.text.extend_from_slice(v);
            (at, v.len() as u32)
        });
    }

    fn get(&self, slot: Slot) -> Option<&[u8]> {
        let (at, len) = self.spans[slot as usize]?;
        self.text.get(at as usize..at as usize + len as usize)
    }

    /// A record with every fact set, for tests.
    #[cfg(test)]
    fn example() -> Record {
        let mut r = Record {
            start: Instant::now(),
            unix_ms: 1_700_000_000_123,
            client: SocketAddr::from(([127, 0, 0, 1], 40000)),
            method: Method::GET,
            protocol: Version::HTTP_11,
            text: Vec::new(),
            spans: [None; SLOTS],
            status: 200,
            bytes_in: 0,
            bytes_out: 5,
            duration_ns: 1_234_567,
            connect_ns: None,
            ttfb_ns: Some(800_000),
            attempts: 1,
            trace_id: None,
            counter: None,
        };
        r.push(Slot::Host, Some(b"example.com"));
        r.push(Slot::Path, Some(b"/a?b=c"));
        r.push(Slot::UserAgent, Some(b"curl/8.5.0"));
        r.push(Slot::Route, Some(b"all"));
        r.push(Slot::Upstream, Some(b"u"));
        r.push(Slot::Server, Some(b"127.0.0.1:8081"));
        r.push(Slot::RequestId, Some(b"3f2a-rid"));
        r
    }
}

/// One worker's formatted lines, waiting for the writer.
struct Lines {
    buf: Vec<u8>,
    /// The writer took its last lines (close): later lines are dropped.
    closed: bool,
}

/// A worker's buffer, alone on its cache lines: workers appending to
/// neighbouring buffers do not bounce one line between cores.
#[repr(align(128))]
struct WorkerBuf(Mutex<Lines>);

/// What the workers and the writer thread share.
struct Buffers {
    /// One per worker thread (`live::worker_id()`).
    workers: Box<[WorkerBuf]>,
    /// Bytes a worker's buffer may hold; a line beyond is dropped.
    cap: usize,
    /// Reopen the file (SIGUSR1).
    reopen: AtomicBool,
    /// Take the last lines, flush and stop.
    close: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A running access log: the workers' buffers and the writer thread.
pub struct AccessLog {
    cfg: model::AccessLog,
    sample: f64,
    /// Capture the user agent / referer at request start.
    want_ua: bool,
    want_referer: bool,
    format: AccessLogFormat,
    fields: Box<[Field]>,
    buffers: Arc<Buffers>,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Where lines go.
enum Sink {
    Stdout(std::io::Stdout),
    Stderr(std::io::Stderr),
    File(File),
}

impl Sink {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.write_all(buf),
            Sink::Stderr(s) => s.write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::Stderr(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The file an access log writes to: None for "stdout" and "stderr". The
/// path is used as configured: `sy_config` already resolved a relative one
/// against the config file's directory.
fn file_path(path: &str) -> Option<PathBuf> {
    match path {
        "stdout" | "stderr" => None,
        p => Some(PathBuf::from(p)),
    }
}

/// Bytes each of `workers` buffers may hold for a `queue` of lines.
fn worker_cap(queue: usize, workers: usize) -> usize {
    (queue.saturating_mul(LINE_BYTES) / workers.max(1)).max(MIN_CAP)
}

impl AccessLog {
    /// Opens the destination and starts the writer thread, with one buffer
    /// per worker thread (`workers`). `dropped`: the drop counter.
    pub fn start(
        cfg: &model::AccessLog,
        workers: usize,
        dropped: Counter,
    ) -> Result<AccessLog, String> {
        let fields = if cfg.fields.is_empty() {
            Field::ALL.to_vec()
        } else {
            cfg.fields
                .iter()
                .map(|n| Field::parse(n).ok_or_else(|| format!("unknown access log field {n:?}")))
                .collect::<Result<Vec<_>, _>>()?
        };
        let file = file_path(&cfg.path);
        let sink = match (&file, cfg.path.as_str()) {
            (Some(p), _) => Sink::File(
                open_file(p).map_err(|e| format!("cannot open access log {}: {e}", p.display()))?,
            ),
            (None, "stderr") => Sink::Stderr(std::io::stderr()),
            (None, _) => Sink::Stdout(std::io::stdout()),
        };
        let cap = worker_cap(cfg.queue, workers);
        let initial = INITIAL.min(cap);
        let buffers = Arc::new(Buffers {
            workers: (0..workers.max(1))
                .map(|_| {
                    WorkerBuf(Mutex::new(Lines {
                        buf: Vec::with_capacity(initial),
                        closed: false,
                    }))
                })
                .collect(),
            cap,
            reopen: AtomicBool::new(false),
            close: AtomicBool::new(false),
        });
        let writer = Writer {
            buffers: buffers.clone(),
            out: sink,
            file,
            spare: Vec::with_capacity(initial),
            failing: false,
        };
        let handle = std::thread::Builder::new()
            .name("sy-access-log".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the access log writer: {e}"))?;
        Ok(AccessLog {
            cfg: cfg.clone(),
            sample: cfg.sample,
            want_ua: cfg.format == AccessLogFormat::Combined || fields.contains(&Field::UserAgent),
            want_referer: cfg.format == AccessLogFormat::Combined,
            format: cfg.format,
            fields: fields.into(),
            buffers,
            dropped,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// The configuration it runs (a reload with an equal one keeps it).
    pub fn config(&self) -> &model::AccessLog {
        &self.cfg
    }

    /// Asks the writer to reopen its file (log rotation; SIGUSR1).
    pub fn reopen(&self) {
        self.buffers.reopen.store(true, Ordering::Relaxed);
    }

    /// Writes out every buffered line, flushes and stops the writer
    /// thread; later lines are dropped. For shutdown.
    pub fn close(&self) {
        self.buffers.close.store(true, Ordering::Relaxed);
        let h = lock(&self.writer).take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    /// Formats a finished record's line into the calling worker's buffer;
    /// never blocks on the writer (it holds a worker's lock only to swap
    /// the buffer).
    fn submit(&self, rec: &Record) {
        let slots = &self.buffers.workers;
        let Some(WorkerBuf(slot)) = slots.get(crate::live::worker_id() % slots.len().max(1)) else {
            self.dropped.inc();
            return;
        };
        let mut lines = lock(slot);
        if lines.closed {
            drop(lines);
            self.dropped.inc();
            return;
        }
        let at = lines.buf.len();
        match self.format {
            AccessLogFormat::Json => write_json(&mut lines.buf, rec, &self.fields),
            AccessLogFormat::Combined => write_combined(&mut lines.buf, rec, &self.fields),
        }
        lines.buf.push(b'\n');
        if lines.buf.len() > self.buffers.cap {
            lines.buf.truncate(at);
            drop(lines);
            self.dropped.inc();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // No request holds it any more: the writer takes the last lines,
        // flushes and exits at its next wake-up; it need not be joined.
        self.buffers.close.store(true, Ordering::Relaxed);
    }
}

/// A request the access log records, from the request head until it is
/// answered ([`Observed::answered`] turns it into the response body).
/// Dropped before it is answered (the client went away), it logs status
/// 499.
pub struct Observed(Box<Logged>);

/// The record and, once answered, the response body it wraps; the same
/// heap block from the request head to the end of the body.
struct Logged {
    log: Arc<AccessLog>,
    rec: Record,
    /// The response body while it streams; `Empty` once the line is out.
    body: ProxyBody,
    /// The line was formatted (or dropped).
    done: bool,
}

/// Header counts up to which one pass over a request's headers costs less
/// than a hashed look-up per header the log reads.
const SCAN_HEADERS: usize = 12;

/// The first Host, User-Agent (when `want_ua`) and Referer (when
/// `want_referer`) of `h`.
fn logged_headers(h: &HeaderMap, want_ua: bool, want_referer: bool) -> [Option<&[u8]>; 3] {
    let mut found = [None; 3];
    if h.keys_len() > SCAN_HEADERS {
        found[0] = h.get(header::HOST).map(HeaderValue::as_bytes);
        if want_ua {
            found[1] = h.get(header::USER_AGENT).map(HeaderValue::as_bytes);
        }
        if want_referer {
            found[2] = h.get(header::REFERER).map(HeaderValue::as_bytes);
        }
        return found;
    }
    // In order, so the first value of each name wins (as `get` finds it).
    for (name, v) in h {
        let i = if *name == header::HOST {
            0
        } else if *name == header::USER_AGENT && want_ua {
            1
        } else if *name == header::REFERER && want_referer {
            2
        } else {
            continue;
        };
        if let Some(slot) = found.get_mut(i)
            && slot.is_none()
        {
            *slot = Some(v.as_bytes());
        }
    }
    found
}

impl Observed {
    /// Starts a record when `log` is on and samples this request.
    pub fn begin<B: Body>(
        log: Option<&Arc<AccessLog>>,
        req: &Request<B>,
        client: SocketAddr,
        start: Instant,
    ) -> Option<Observed> {
        let log = log?;
        if log.sample < 1.0 && rand::random::<f64>() >= log.sample {
            return None;
        }
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let [host_header, ua, referer] =
            logged_headers(req.headers(), log.want_ua, log.want_referer);
        let host: Option<&[u8]> = match req.uri().authority() {
            Some(a) => Some(a.as_str().as_bytes()),
            None => host_header,
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |pq| pq.as_str());
        let len = host.map_or(0, <[u8]>::len)
            + path.len()
            + ua.map_or(0, <[u8]>::len)
            + referer.map_or(0, <[u8]>::len)
            + 64;
        let counter = (!req.body().is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let mut rec = Record {
            start,
            unix_ms,
            client,
            method: req.method().clone(),
            protocol: req.version(),
            text: Vec::with_capacity(len),
            spans: [None; SLOTS],
            status: CLIENT_CLOSED,
            bytes_in: 0,
            bytes_out: 0,
            duration_ns: 0,
            connect_ns: None,
            ttfb_ns: None,
            attempts: 0,
            trace_id: None,
            counter,
        };
        rec.push(Slot::Host, host);
        rec.push(Slot::Path, Some(path.as_bytes()));
        rec.push(Slot::UserAgent, ua);
        rec.push(Slot::Referer, referer);
        Some(Observed(Box::new(Logged {
            log: log.clone(),
            rec,
            body: ProxyBody::Empty,
            done: false,
        })))
    }

    /// The counter the request body adds its bytes to (None when the
    /// request has no body).
    pub fn request_counter(&self) -> Option<Arc<AtomicU64>> {
        self.0.rec.counter.clone()
    }

    /// Completes the record with the response head and what the upstream
    /// attempts did (`route`, `upstream`, the answering `server`'s address:
    /// None when the request got none), and
    /// moves it into the response body, which logs it when it ends.
    pub fn answered(
        self,
        resp: Response<ProxyBody>,
        ex: &Exchange,
        route: Option<&str>,
        upstream: Option<&str>,
        server: Option<&str>,
    ) -> Response<ProxyBody> {
        let mut logged = self.0;
        let rec = &mut logged.rec;
        rec.status = resp.status().as_u16();
        rec.push(Slot::Route, route.map(str::as_bytes));
        rec.push(Slot::Upstream, upstream.map(str::as_bytes));
        rec.push(Slot::Server, server.map(str::as_bytes));
        rec.attempts = ex.attempts();
        rec.connect_ns = ex.connect().map(|d| d.as_nanos() as u64);
        rec.ttfb_ns = ex.ttfb().map(|d| d.as_nanos() as u64);
        rec.trace_id = ex.trace_id();
        rec.push(
            Slot::RequestId,
            ex.request_id.as_ref().map(|v| v.as_bytes()),
        );
        resp.map(|body| {
            logged.body = body;
            ProxyBody::Boxed(Box::into_pin(logged))
        })
    }
}

impl Logged {
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        // The response body is done with (its pooled connection went back
        // on end of stream; an abandoned one is closed here).
        self.body = ProxyBody::Empty;
        let rec = &mut self.rec;
        rec.duration_ns = rec.start.elapsed().as_nanos() as u64;
        if let Some(c) = rec.counter.take() {
            rec.bytes_in = c.load(Ordering::Relaxed);
        }
        self.log.submit(&self.rec);
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    /// Counts the response bytes and logs the line at the end.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let res = Pin::new(&mut this.body).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.rec.bytes_out += d.len() as u64;
                }
                if this.body.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(_) => this.finish(),
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.body.size_hint()
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request body that adds the bytes it passes to a counter.
pub struct Counted {
    /// The body.
    pub inner: ProxyBody,
    /// Bytes passed so far.
    pub count: Arc<AtomicU64>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &res
            && let Some(d) = f.data_ref()
        {
            this.count.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The writer thread's state.
struct Writer {
    buffers: Arc<Buffers>,
    out: Sink,
    file: Option<PathBuf>,
    /// The empty buffer swapped in for a worker's full one.
    spare: Vec<u8>,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        // The writer polls instead of being woken: a request never makes a
        // system call or a context switch for the log, and each wake-up
        // writes every worker's lines in one write each.
        loop {
            let closing = self.buffers.close.load(Ordering::Relaxed);
            let buffers = self.buffers.clone();
            let mut wrote = false;
            for WorkerBuf(slot) in buffers.workers.iter() {
                {
                    let mut lines = lock(slot);
                    std::mem::swap(&mut lines.buf, &mut self.spare);
                    // Taken under the lock: a worker that finds `closed`
                    // counts its line as dropped, none is lost silently.
                    lines.closed |= closing;
                }
                if !self.spare.is_empty() {
                    let res = self.out.write_all(&self.spare);
                    self.check(res);
                    self.spare.clear();
                    wrote = true;
                }
            }
            if wrote {
                self.flush();
            }
            if self.buffers.reopen.swap(false, Ordering::Relaxed) {
                self.reopen();
            }
            if closing {
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
        self.flush();
    }

    fn flush(&mut self) {
        let res = self.out.flush();
        self.check(res);
    }

    fn check(&mut self, res: std::io::Result<()>) {
        match res {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    let path = self
                        .file
                        .as_deref()
                        .map_or_else(|| "stdout/stderr".into(), Path::to_string_lossy);
                    tracing::error!(%path, error = %e, "cannot write the access log");
                }
                self.failing = true;
            }
        }
    }

    fn reopen(&mut self) {
        let Some(path) = &self.file else {
            return;
        };
        match open_file(path) {
            Ok(f) => {
                self.out = Sink::File(f);
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e,
                    "cannot reopen the access log; still writing to the old file");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
