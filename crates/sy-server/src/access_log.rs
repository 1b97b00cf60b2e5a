//! The access log: one line per request, written off the request path.
//!
//! A request the log records (the access log is on and the request was
//! sampled) carries a boxed [`Record`] from the start of `proxy::handle`
//! to the end of its response body ([`Observed`], the `ProxyBody::Observed`
//! variant). When the body ends, fails or is dropped (a client abort) the
//! record is pushed, with one `try_send`, into a bounded queue; one writer
//! thread wakes every 10 ms, formats the queued lines (JSON or combined)
//! and writes them through a `BufWriter` with one flush per batch.
//! A full queue drops the line and counts it in
//! `switchyard_access_log_dropped_total`: requests never wait for the log.
//!
//! Requests the log does not record cost one `Option` test in `handle`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, Version, header};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use sy_config::model::{self, AccessLogFormat};

use crate::body::{BoxError, ProxyBody};
use crate::observe::Exchange;

/// Longest time a written line stays in the writer's buffer.
/// How often the writer drains the queue (a default queue of 8192 lines
/// holds 10 ms of 800k requests/s).
const POLL_EVERY: Duration = Duration::from_millis(10);

/// The writer's buffer.
const BUFFER: usize = 64 * 1024;

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
    pub fn name(self) -> &'static str {
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
/// formatted on the writer thread.
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
    /// The response body while it streams; `Empty` once the record is sent.
    body: ProxyBody,
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
    fn example() -> Box<Record> {
        let mut r = Box::new(Record {
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
            body: ProxyBody::Empty,
        });
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

/// Flags the writer thread polls.
#[derive(Default)]
struct Control {
    reopen: AtomicBool,
    close: AtomicBool,
}

/// A running access log: the queue's sending side and the writer thread.
pub struct AccessLog {
    cfg: model::AccessLog,
    sample: f64,
    /// Capture the user agent / referer at request start.
    want_ua: bool,
    want_referer: bool,
    tx: SyncSender<Box<Record>>,
    control: Arc<Control>,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Where lines go.
enum Sink {
    Stdout(std::io::Stdout),
    Stderr(std::io::Stderr),
    File(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::Stderr(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
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

impl AccessLog {
    /// Opens the destination and starts the writer thread. `dropped`: the
    /// drop counter.
    pub fn start(cfg: &model::AccessLog, dropped: Counter) -> Result<AccessLog, String> {
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
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue.max(1));
        let control = Arc::new(Control::default());
        let writer = Writer {
            rx,
            out: BufWriter::with_capacity(BUFFER, sink),
            file,
            format: cfg.format,
            fields: fields.clone(),
            control: control.clone(),
            line: Vec::with_capacity(1024),
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
            tx,
            control,
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
        self.control.reopen.store(true, Ordering::Relaxed);
    }

    /// Writes out every queued line, flushes and stops the writer thread;
    /// later lines are dropped. For shutdown.
    pub fn close(&self) {
        self.control.close.store(true, Ordering::Relaxed);
        let h = match self.writer.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    /// Queues a finished record; never blocks.
    fn submit(&self, mut rec: Box<Record>) {
        // The response body is done with (its pooled connection went back
        // on end of stream; an abandoned one is closed here).
        rec.body = ProxyBody::Empty;
        rec.duration_ns = rec.start.elapsed().as_nanos() as u64;
        if let Some(c) = rec.counter.take() {
            rec.bytes_in = c.load(Ordering::Relaxed);
        }
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // The writer drains what is queued, flushes and exits when the
        // queue disconnects; it need not be joined here.
        self.control.close.store(true, Ordering::Relaxed);
    }
}

/// A request the access log records, from the request head to the end of
/// its response body. Dropped before it is answered (the client went
/// away), it logs status 499.
pub struct Observed {
    log: Arc<AccessLog>,
    rec: Option<Box<Record>>,
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
        let h = req.headers();
        let host: Option<&[u8]> = match req.uri().authority() {
            Some(a) => Some(a.as_str().as_bytes()),
            None => h.get(header::HOST).map(|v| v.as_bytes()),
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |pq| pq.as_str());
        let ua = if log.want_ua {
            h.get(header::USER_AGENT).map(|v| v.as_bytes())
        } else {
            None
        };
        let referer = if log.want_referer {
            h.get(header::REFERER).map(|v| v.as_bytes())
        } else {
            None
        };
        let len = host.map_or(0, <[u8]>::len)
            + path.len()
            + ua.map_or(0, <[u8]>::len)
            + referer.map_or(0, <[u8]>::len)
            + 64;
        let counter = (!req.body().is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let mut rec = Box::new(Record {
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
            body: ProxyBody::Empty,
        });
        rec.push(Slot::Host, host);
        rec.push(Slot::Path, Some(path.as_bytes()));
        rec.push(Slot::UserAgent, ua);
        rec.push(Slot::Referer, referer);
        Some(Observed {
            log: log.clone(),
            rec: Some(rec),
        })
    }

    /// The counter the request body adds its bytes to (None when the
    /// request has no body).
    pub fn request_counter(&self) -> Option<Arc<AtomicU64>> {
        self.rec.as_ref()?.counter.clone()
    }

    /// Completes the record with the response head and what the upstream
    /// attempts did (`route`, `upstream`, the answering `server`'s address:
    /// None when the request got none), and
    /// moves it into the response body, which sends it when it ends.
    pub fn answered(
        mut self,
        resp: Response<ProxyBody>,
        ex: &Exchange,
        route: Option<&str>,
        upstream: Option<&str>,
        server: Option<&str>,
    ) -> Response<ProxyBody> {
        let Some(mut rec) = self.rec.take() else {
            return resp;
        };
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
        let log = self.log.clone();
        resp.map(|body| {
            rec.body = body;
            ProxyBody::Boxed(Box::pin(Observed {
                log,
                rec: Some(rec),
            }))
        })
    }

    fn finish(&mut self) {
        if let Some(rec) = self.rec.take() {
            self.log.submit(rec);
        }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = BoxError;

    /// Counts the response bytes and sends the record at the end.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(rec) = this.rec.as_mut() else {
            return Poll::Ready(None);
        };
        let res = Pin::new(&mut rec.body).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    rec.bytes_out += d.len() as u64;
                }
                if rec.body.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(_) => this.finish(),
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.rec.as_ref().is_none_or(|r| r.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.rec
            .as_ref()
            .map_or(SizeHint::with_exact(0), |r| r.body.size_hint())
    }
}

impl Drop for Observed {
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
    rx: Receiver<Box<Record>>,
    out: BufWriter<Sink>,
    file: Option<PathBuf>,
    format: AccessLogFormat,
    fields: Vec<Field>,
    control: Arc<Control>,
    line: Vec<u8>,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        // The writer polls instead of blocking in `recv`: a receiver that
        // is never parked on the channel means `try_send` on the request
        // path never has to wake it (no futex call, no context switch per
        // request), and each wake-up writes a whole batch with one flush.
        loop {
            let closing = self.control.close.load(Ordering::Relaxed);
            let mut wrote = false;
            let disconnected = loop {
                match self.rx.try_recv() {
                    Ok(rec) => {
                        self.write(&rec);
                        wrote = true;
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if wrote {
                self.flush();
            }
            if self.control.reopen.swap(false, Ordering::Relaxed) {
                self.reopen();
            }
            if closing || disconnected {
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
        self.flush();
    }

    fn write(&mut self, rec: &Record) {
        self.line.clear();
        match self.format {
            AccessLogFormat::Json => write_json(&mut self.line, rec, &self.fields),
            AccessLogFormat::Combined => write_combined(&mut self.line, rec, &self.fields),
        }
        self.line.push(b'\n');
        let res = self.out.write_all(&self.line);
        self.check(res);
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
        if self.file.is_none() {
            return;
        }
        self.flush();
        let Some(path) = &self.file else {
            return;
        };
        match open_file(path) {
            Ok(f) => {
                *self.out.get_mut() = Sink::File(f);
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e,
                    "cannot reopen the access log; still writing to the old file");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

/// A `Vec<u8>` as a `fmt::Write` target.
struct Out<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Civil date and time (UTC) of a Unix time in ms: (year, month, day,
/// hour, minute, second, millisecond).
fn civil(unix_ms: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = unix_ms / 1000;
    let ms = (unix_ms % 1000) as u32;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    );
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hh, mm, ss, ms)
}

/// RFC 3339, UTC, milliseconds: `2025-01-31T23:59:59.123Z`.
pub fn rfc3339(out: &mut Vec<u8>, unix_ms: u64) {
    let (y, mo, d, h, mi, s, ms) = civil(unix_ms);
    let _ = write!(
        Out(out),
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"
    );
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Common log format time: `31/Jan/2025:23:59:59 +0000`.
fn clf_time(out: &mut Vec<u8>, unix_ms: u64) {
    let (y, mo, d, h, mi, s, _) = civil(unix_ms);
    let mon = MONTHS.get(mo as usize - 1).copied().unwrap_or("Jan");
    let _ = write!(Out(out), "{d:02}/{mon}/{y:04}:{h:02}:{mi:02}:{s:02} +0000");
}

/// `bytes` as the inside of a JSON string: valid UTF-8 for any input
/// (invalid sequences become U+FFFD), quotes, backslashes and control
/// characters escaped.
pub fn json_escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        let s = chunk.valid().as_bytes();
        let mut from = 0;
        for (i, &b) in s.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f | 0x7f => b"",
                _ => continue,
            };
            out.extend_from_slice(&s[from..i]);
            if esc.is_empty() {
                let _ = write!(Out(out), "\\u{:04x}", b);
            } else {
                out.extend_from_slice(esc);
            }
            from = i + 1;
        }
        out.extend_from_slice(&s[from..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// `bytes` for a quoted combined-format field: printable ASCII except `"`
/// and `\` as is, every other byte as `\xHH` (nginx's escaping).
pub fn clf_escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            let _ = write!(Out(out), "\\x{b:02X}");
        }
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// Milliseconds with microsecond precision: `12.345`.
fn millis(out: &mut Vec<u8>, ns: u64) {
    let _ = write!(Out(out), "{}.{:03}", ns / 1_000_000, ns / 1000 % 1000);
}

/// A field's value: JSON (strings quoted and escaped, null when absent)
/// or combined `key=value` style (strings quoted and `\x` escaped, `-`
/// when absent).
fn value(out: &mut Vec<u8>, r: &Record, f: Field, json: bool) {
    let text = |out: &mut Vec<u8>, v: Option<&[u8]>| match v {
        Some(v) => {
            out.push(b'"');
            if json {
                json_escape(out, v);
            } else {
                clf_escape(out, v);
            }
            out.push(b'"');
        }
        None => out.extend_from_slice(if json { b"null" } else { b"-" }),
    };
    match f {
        Field::Time => {
            out.push(b'"');
            rfc3339(out, r.unix_ms);
            out.push(b'"');
        }
        Field::Client => {
            let _ = write!(Out(out), "\"{}\"", r.client);
        }
        Field::Method => text(out, Some(r.method.as_str().as_bytes())),
        Field::Host => text(out, r.get(Slot::Host)),
        Field::Path => text(out, r.get(Slot::Path)),
        Field::Protocol => text(out, Some(protocol(r.protocol).as_bytes())),
        Field::Status => {
            let _ = write!(Out(out), "{}", r.status);
        }
        Field::BytesIn => {
            let _ = write!(Out(out), "{}", r.bytes_in);
        }
        Field::BytesOut => {
            let _ = write!(Out(out), "{}", r.bytes_out);
        }
        Field::DurationMs => millis(out, r.duration_ns),
        Field::UpstreamConnectMs | Field::TtfbMs => {
            let v = if f == Field::TtfbMs {
                r.ttfb_ns
            } else {
                r.connect_ns
            };
            match v {
                Some(ns) => millis(out, ns),
                None => out.extend_from_slice(if json { b"null" } else { b"-" }),
            }
        }
        Field::Route => text(out, r.get(Slot::Route)),
        Field::Upstream => text(out, r.get(Slot::Upstream)),
        Field::Server => text(out, r.get(Slot::Server)),
        Field::Attempts => {
            let _ = write!(Out(out), "{}", r.attempts);
        }
        Field::TraceId => match r.trace_id {
            Some(id) => {
                out.push(b'"');
                for b in id {
                    let _ = write!(Out(out), "{b:02x}");
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(if json { b"null" } else { b"-" }),
        },
        Field::UserAgent => text(out, r.get(Slot::UserAgent)),
        Field::RequestId => text(out, r.get(Slot::RequestId)),
    }
}

/// One JSON object (no newline) with `fields` in order.
pub fn write_json(out: &mut Vec<u8>, r: &Record, fields: &[Field]) {
    out.push(b'{');
    for (i, &f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(f.name().as_bytes());
        out.extend_from_slice(b"\":");
        value(out, r, f, true);
    }
    out.push(b'}');
}

/// One combined-format line (no newline):
/// `IP - - [TIME] "METHOD PATH PROTOCOL" STATUS BYTES_OUT "REFERER" "USER_AGENT"`,
/// then ` key=value` for each other field of `fields`, in order. Prefix
/// fields left out of `fields` are written as `-`.
pub fn write_combined(out: &mut Vec<u8>, r: &Record, fields: &[Field]) {
    let has = |f: Field| fields.contains(&f);
    let dash = |out: &mut Vec<u8>| out.push(b'-');
    if has(Field::Client) {
        let _ = write!(Out(out), "{}", r.client.ip());
    } else {
        dash(out);
    }
    out.extend_from_slice(b" - - [");
    if has(Field::Time) {
        clf_time(out, r.unix_ms);
    } else {
        dash(out);
    }
    out.extend_from_slice(b"] \"");
    if has(Field::Method) {
        clf_escape(out, r.method.as_str().as_bytes());
    } else {
        dash(out);
    }
    out.push(b' ');
    match r.get(Slot::Path).filter(|_| has(Field::Path)) {
        Some(p) => clf_escape(out, p),
        None => dash(out),
    }
    out.push(b' ');
    if has(Field::Protocol) {
        out.extend_from_slice(protocol(r.protocol).as_bytes());
    } else {
        dash(out);
    }
    out.extend_from_slice(b"\" ");
    if has(Field::Status) {
        let _ = write!(Out(out), "{}", r.status);
    } else {
        dash(out);
    }
    out.push(b' ');
    if has(Field::BytesOut) {
        let _ = write!(Out(out), "{}", r.bytes_out);
    } else {
        dash(out);
    }
    for (slot, on) in [
        (Slot::Referer, true),
        (Slot::UserAgent, has(Field::UserAgent)),
    ] {
        out.extend_from_slice(b" \"");
        match r.get(slot).filter(|_| on) {
            Some(v) => clf_escape(out, v),
            None => dash(out),
        }
        out.push(b'"');
    }
    for &f in fields {
        if f.in_combined_prefix() {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(f.name().as_bytes());
        out.push(b'=');
        value(out, r, f, false);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
