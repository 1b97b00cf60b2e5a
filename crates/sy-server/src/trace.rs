//! Distributed tracing: W3C trace context (`traceparent` / `tracestate`)
//! and OTLP/HTTP span export (ADR 0004, docs/tracing.md).
//!
//! The request path pays for tracing in two steps. Every request, when
//! `[tracing]` is configured: parse the incoming `traceparent` (or draw a
//! new trace id), decide sampling, and per upstream attempt write one
//! `traceparent` header with a fresh span id — no locks, no allocation but
//! the header value. Only a sampled request builds spans: a SERVER span for
//! the downstream exchange and a CLIENT span per upstream attempt, handed as
//! finished [`SpanData`] to the SDK's `BatchSpanProcessor`, whose own thread
//! batches them and exports them with the OTLP exporter.
//!
//! Without `[tracing]`, nothing here runs: an incoming `traceparent` and
//! `tracestate` pass upstream unchanged like any end-to-end header.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use http_body_util::BodyExt;
use ipnet::IpNet;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanExporter, SpanLinks,
    SpanProcessor,
};
use prometheus_client::metrics::counter::Counter;
use sy_config::model::Tracing;
use sy_core::{ERROR_HEADER, ProxyError};

use crate::metrics::{Metrics, ResultLabel};

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

mod propagation;
pub use propagation::*;

/// Header counts up to which one pass over a request's header names
/// costs less than hashed look-ups of custom names.
const SCAN_HEADERS: usize = 12;

/// Whether `h` holds a `traceparent`, and a `tracestate`.
fn trace_headers(h: &HeaderMap) -> (bool, bool) {
    if h.keys_len() > SCAN_HEADERS {
        return (h.contains_key(&TRACEPARENT), h.contains_key(&TRACESTATE));
    }
    let (mut parent, mut state) = (false, false);
    for name in h.keys() {
        parent |= *name == TRACEPARENT;
        state |= *name == TRACESTATE;
    }
    (parent, state)
}

/// The single `traceparent` of `h`, if valid. Several `traceparent`
/// headers are invalid together.
pub fn incoming_parent(h: &HeaderMap) -> Option<Parent> {
    let mut all = h.get_all(&TRACEPARENT).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => parse_traceparent(v.as_bytes()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Per request.

/// One request's trace context, kept in its exchange record (`Exchange`).
pub struct TraceCtx {
    /// The trace this request belongs to.
    pub trace_id: u128,
    /// Our SERVER span's id (the parent of every upstream attempt).
    pub span_id: u64,
    /// The caller's span from a valid incoming `traceparent`.
    pub parent: Option<u64>,
    /// Spans of this request are recorded and exported.
    pub sampled: bool,
    /// A new trace whose request may carry a `tracestate` (the client sent
    /// one, or filters ran that may have set one): each attempt removes it.
    pub stale_state: bool,
    /// Set when sampled.
    rec: Option<Box<ServerRec>>,
}

impl TraceCtx {
    /// The trace id in hex.
    pub fn trace_id_hex(&self) -> String {
        trace_id_hex(self.trace_id)
    }

    /// The incoming trace was continued (its `tracestate` is kept).
    pub fn continued(&self) -> bool {
        self.parent.is_some()
    }
}

/// The SERVER span of a sampled request.
struct ServerRec {
    tracer: Arc<Tracer>,
    start: SystemTime,
    method: &'static str,
    /// Taken when the span ends ([`server_end`] records it once).
    attrs: Mutex<Option<Vec<KeyValue>>>,
    state: TraceState,
}

/// Where a request came from, for [`start`].
pub struct Downstream<'a> {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// Proxies whose X-Forwarded-For is believed (for `client.address`).
    pub trusted: &'a [IpNet],
}

/// Starts tracing a request: None when tracing is off. Continues a valid
/// incoming `traceparent`, else starts a new trace; decides sampling; and
/// for a sampled request opens its SERVER span.
pub fn start<B>(
    slot: &ArcSwapOption<Tracer>,
    req: &Request<B>,
    from: &Downstream<'_>,
) -> Option<TraceCtx> {
    let guard = slot.load();
    let tracer = guard.as_ref()?;
    let (has_parent, has_state) = trace_headers(req.headers());
    let parent = if has_parent {
        incoming_parent(req.headers())
    } else {
        None
    };
    let trace_id = parent.map_or_else(new_trace_id, |p| p.trace_id);
    let sampled = match parent {
        Some(p) if tracer.parent_based => p.sampled(),
        _ => ratio_sampled(trace_id, tracer.bound),
    };
    let rec = sampled.then(|| server_rec(tracer.clone(), req, from, parent.is_some()));
    Some(TraceCtx {
        trace_id,
        span_id: new_span_id(),
        parent: parent.map(|p| p.span_id),
        sampled,
        stale_state: parent.is_none() && has_state,
        rec,
    })
}

/// A method as the semantic conventions name it: known ones as they are,
/// anything else `_OTHER`.
fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Splits "host:port" / "[v6]:port" / "host".
fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (authority, None),
    }
}

fn tracestate_of(h: &HeaderMap) -> TraceState {
    let mut joined = String::new();
    for v in h.get_all(&TRACESTATE) {
        let Ok(s) = v.to_str() else {
            return TraceState::default();
        };
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(s);
    }
    joined.parse().unwrap_or_default()
}

fn server_rec<B>(
    tracer: Arc<Tracer>,
    req: &Request<B>,
    from: &Downstream<'_>,
    continued: bool,
) -> Box<ServerRec> {
    let start = SystemTime::now();
    let method = method_name(req.method());
    let mut attrs = Vec::with_capacity(16);
    attrs.push(KeyValue::new("http.request.method", method));
    if method == "_OTHER" {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_string(),
        ));
    }
    attrs.push(KeyValue::new("url.path", req.uri().path().to_string()));
    if let Some(q) = req.uri().query() {
        attrs.push(KeyValue::new("url.query", q.to_string()));
    }
    attrs.push(KeyValue::new(
        "url.scheme",
        if from.tls { "https" } else { "http" },
    ));
    let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    });
    if let Some(a) = authority {
        let (host, port) = split_host_port(a);
        attrs.push(KeyValue::new("server.address", host.to_string()));
        if let Some(p) = port {
            attrs.push(KeyValue::new("server.port", i64::from(p)));
        }
    }
    let client = crate::forwarded::client_ip(req.headers(), from.peer.ip(), from.trusted);
    attrs.push(KeyValue::new("client.address", client.to_string()));
    attrs.push(KeyValue::new(
        "network.peer.address",
        from.peer.ip().to_string(),
    ));
    attrs.push(KeyValue::new(
        "network.peer.port",
        i64::from(from.peer.port()),
    ));
    attrs.push(KeyValue::new(
        "network.protocol.version",
        version_name(req.version()),
    ));
    if let Some(ua) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attrs.push(KeyValue::new("user_agent.original", ua.to_string()));
    }
    let state = if continued {
        tracestate_of(req.headers())
    } else {
        TraceState::default()
    };
    Box::new(ServerRec {
        tracer,
        start,
        method,
        attrs: Mutex::new(Some(attrs)),
        state,
    })
}

/// Ends the SERVER span of a sampled request with its response head and
/// the route that served it (None: no route matched). A no-op otherwise,
/// and after the first call.
pub fn server_end<B>(
    ctx: Option<&TraceCtx>,
    resp: &Response<B>,
    route: Option<&str>,
    request_id: Option<&http::HeaderValue>,
) {
    let Some(ctx) = ctx else { return };
    let Some(rec) = ctx.rec.as_deref() else {
        return;
    };
    let taken = match rec.attrs.lock() {
        Ok(mut a) => a.take(),
        Err(p) => p.into_inner().take(),
    };
    let Some(mut attrs) = taken else { return };
    let status = resp.status().as_u16();
    attrs.push(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if let Some(r) = route {
        attrs.push(KeyValue::new("http.route", r.to_string()));
    }
    if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
        attrs.push(KeyValue::new("switchyard.request_id", id.to_string()));
    }
    let stage = resp
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok());
    let error = match stage {
        Some(s) => Some(s.to_string()),
        None if status >= 500 => Some(status.to_string()),
        None => None,
    };
    let failed = status >= 500;
    if let Some(e) = &error {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    let name = match route {
        Some(r) => format!("{} {r}", rec.method),
        None => rec.method.to_string(),
    };
    rec.tracer.record(SpanParts {
        trace_id: ctx.trace_id,
        span_id: ctx.span_id,
        parent: ctx.parent.unwrap_or(0),
        parent_remote: ctx.parent.is_some(),
        state: rec.state.clone(),
        kind: SpanKind::Server,
        name: name.into(),
        start: rec.start,
        attrs,
        error: error.filter(|_| failed),
    });
}

/// One upstream attempt's CLIENT span (sampled requests only). Ended with
/// [`ClientSpan::end`]; dropped unended (a hedge that lost, a timeout that
/// cancelled the attempt) it is recorded as cancelled.
pub struct ClientSpan<'a> {
    ctx: &'a TraceCtx,
    rec: &'a ServerRec,
    span_id: u64,
    start: SystemTime,
    method: &'static str,
    attrs: Vec<KeyValue>,
    done: bool,
}

/// The upstream server an attempt goes to, for [`attempt_start`].
pub struct UpstreamSide<'a> {
    /// Upstream name.
    pub upstream: &'a str,
    /// The server's host (name or IP).
    pub host: &'a str,
    /// "host:port" as configured.
    pub authority: &'a str,
    /// TLS towards it.
    pub tls: bool,
    /// Attempts made for this request so far, this one included.
    pub attempt: u32,
}

/// Prepares one upstream attempt: writes `traceparent` (a fresh span id,
/// the sampled flag) into `req`, drops `tracestate` when the trace is new,
/// and opens the CLIENT span of a sampled request. A no-op when `ctx` is
/// None (tracing off): the client's headers pass unchanged.
pub fn attempt_start<'a, B>(
    ctx: Option<&'a TraceCtx>,
    req: &mut Request<B>,
    to: &UpstreamSide<'_>,
) -> Option<ClientSpan<'a>> {
    let ctx = ctx?;
    let span_id = new_span_id();
    let tp = format_traceparent(ctx.trace_id, span_id, ctx.sampled);
    let h = req.headers_mut();
    if let Ok(v) = HeaderValue::from_bytes(&tp) {
        h.insert(TRACEPARENT.clone(), v);
    }
    if ctx.parent.is_none() && ctx.stale_state {
        h.remove(&TRACESTATE);
    }
    let rec = ctx.rec.as_deref()?;
    let start = SystemTime::now();
    let method = method_name(req.method());
    let mut attrs = Vec::with_capacity(12);
    attrs.push(KeyValue::new("http.request.method", method));
    if method == "_OTHER" {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_string(),
        ));
    }
    let (_, port) = split_host_port(to.authority);
    attrs.push(KeyValue::new("server.address", to.host.to_string()));
    if let Some(p) = port {
        attrs.push(KeyValue::new("server.port", i64::from(p)));
    }
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let scheme = if to.tls { "https" } else { "http" };
    attrs.push(KeyValue::new(
        "url.full",
        format!("{scheme}://{}{pq}", to.authority),
    ));
    attrs.push(KeyValue::new(
        "switchyard.upstream",
        to.upstream.to_string(),
    ));
    if to.attempt > 1 {
        attrs.push(KeyValue::new(
            "http.request.resend_count",
            i64::from(to.attempt - 1),
        ));
    }
    Some(ClientSpan {
        ctx,
        rec,
        span_id,
        start,
        method,
        attrs,
        done: false,
    })
}

impl ClientSpan<'_> {
    /// Ends the span with the attempt's outcome: the response head, or the
    /// error (its stage token becomes `error.type`).
    pub fn end<B>(mut self, res: &Result<Response<B>, ProxyError>) {
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                self.attrs.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                self.attrs.push(KeyValue::new(
                    "network.protocol.version",
                    version_name(r.version()),
                ));
                let err = (status >= 400).then(|| status.to_string());
                self.finish(err);
            }
            Err(e) => self.finish(Some(e.stage.as_str().to_string())),
        }
    }

    fn finish(&mut self, error: Option<String>) {
        self.done = true;
        let mut attrs = std::mem::take(&mut self.attrs);
        if let Some(e) = &error {
            attrs.push(KeyValue::new("error.type", e.clone()));
        }
        self.rec.tracer.record(SpanParts {
            trace_id: self.ctx.trace_id,
            span_id: self.span_id,
            parent: self.ctx.span_id,
            parent_remote: false,
            state: self.rec.state.clone(),
            kind: SpanKind::Client,
            name: Cow::Borrowed(self.method),
            start: self.start,
            attrs,
            error,
        });
    }
}

impl Drop for ClientSpan<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Some("cancelled".to_string()));
        }
    }
}

// ---------------------------------------------------------------------------
// The tracer: sampling settings and the export pipeline.

/// A finished span, before it becomes [`SpanData`].
struct SpanParts {
    trace_id: u128,
    span_id: u64,
    /// 0 = a root span.
    parent: u64,
    parent_remote: bool,
    state: TraceState,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    attrs: Vec<KeyValue>,
    /// Some = the span failed (`Status::Error` with this description).
    error: Option<String>,
}

/// Sampling settings and the export pipeline built from `[tracing]`.
/// Lives in the shared state (`Shared`); rebuilt on reload only when `[tracing]`
/// changed.
pub struct Tracer {
    cfg: Tracing,
    bound: u64,
    parent_based: bool,
    scope: InstrumentationScope,
    /// None only while being dropped.
    processor: Option<BatchSpanProcessor>,
    /// Spans handed to the processor and not yet taken by the exporter.
    pending: Arc<AtomicUsize>,
    max_queue: usize,
    dropped: Counter,
    shut: AtomicBool,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("endpoint", &self.cfg.endpoint)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// Builds the exporter (OTLP/HTTP, protobuf) and its batch processor,
    /// which starts its export thread.
    pub fn build(cfg: &Tracing, metrics: &Metrics) -> anyhow::Result<Tracer> {
        let counter = |result: &str| {
            metrics
                .trace_spans
                .get_or_create(&ResultLabel {
                    result: result.to_string(),
                })
                .clone()
        };
        // The configured headers go on in OtlpHttp: `with_headers` would
        // percent-decode their values.
        let client = OtlpHttp::new(cfg)?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.clone())
            .with_timeout(cfg.export_timeout)
            .with_http_client(client)
            .build()
            .map_err(|e| anyhow::anyhow!("tracing: cannot build the OTLP exporter: {e}"))?;
        let resource = Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        exporter.set_resource(&resource);
        let pending = Arc::new(AtomicUsize::new(0));
        let counting = Counting {
            inner: exporter,
            pending: pending.clone(),
            exported: counter("exported"),
            failed: counter("failed"),
        };
        let max_queue = cfg.max_queue.max(1);
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue)
            .with_max_export_batch_size(cfg.max_batch.clamp(1, max_queue))
            .with_scheduled_delay(cfg.export_interval)
            .build();
        let processor = BatchSpanProcessor::builder(counting)
            .with_batch_config(batch)
            .build();
        let scope = InstrumentationScope::builder("switchyard")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Tracer {
            cfg: cfg.clone(),
            bound: ratio_bound(cfg.sample_ratio),
            parent_based: cfg.parent_based,
            scope,
            processor: Some(processor),
            pending,
            max_queue,
            dropped: counter("dropped"),
            shut: AtomicBool::new(false),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Tracing {
        &self.cfg
    }

    /// Queues a finished span for export; a full queue drops it (counted).
    fn record(&self, s: SpanParts) {
        let Some(processor) = &self.processor else {
            return;
        };
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.dropped.inc();
            return;
        }
        let flags = TraceFlags::SAMPLED;
        let status = match s.error {
            Some(e) => Status::Error {
                description: e.into(),
            },
            None => Status::Unset,
        };
        processor.on_end(SpanData {
            span_context: SpanContext::new(
                TraceId::from(s.trace_id),
                SpanId::from(s.span_id),
                flags,
                false,
                s.state,
            ),
            parent_span_id: SpanId::from(s.parent),
            parent_span_is_remote: s.parent_remote,
            span_kind: s.kind,
            name: s.name,
            start_time: s.start,
            end_time: SystemTime::now(),
            attributes: s.attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Exports what is queued and stops the export thread, waiting at most
    /// `timeout`. Blocks: call it off any async runtime.
    pub fn shutdown(&self, timeout: Duration) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(p) = &self.processor else { return };
        if let Err(e) = p.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "tracing: span export did not finish at shutdown");
        }
    }
}

impl Drop for Tracer {
    /// A tracer replaced by a reload is dropped by whichever thread held
    /// it last, possibly a worker: its final flush runs on a thread of its
    /// own so no worker ever waits for the collector.
    fn drop(&mut self) {
        let Some(processor) = self.processor.take() else {
            return;
        };
        if self.shut.load(Ordering::Acquire) {
            return;
        }
        let timeout = self.cfg.export_timeout;
        let spawned = std::thread::Builder::new()
            .name("sy-trace-flush".into())
            .spawn(move || {
                let _ = processor.shutdown_with_timeout(timeout);
            });
        if spawned.is_err() {
            tracing::warn!("tracing: cannot start the final flush of a replaced tracer");
        }
    }
}

/// What a reload does to the tracer.
pub enum Swap {
    /// `[tracing]` is unchanged: keep the running tracer (and its queue).
    Keep,
    /// Install this one (None = tracing turned off).
    Replace(Option<Arc<Tracer>>),
}

/// Builds the tracer for a new configuration when `[tracing]` changed.
/// An error (a bad endpoint) leaves everything as it was.
pub fn prepare(
    slot: &ArcSwapOption<Tracer>,
    cfg: Option<&Tracing>,
    metrics: &Metrics,
) -> anyhow::Result<Swap> {
    if slot.load().as_deref().map(Tracer::config) == cfg {
        return Ok(Swap::Keep);
    }
    Ok(Swap::Replace(match cfg {
        Some(c) => Some(Arc::new(Tracer::build(c, metrics)?)),
        None => None,
    }))
}

/// Counts spans in and out of the batch queue and export results.
#[derive(Debug)]
struct Counting {
    inner: opentelemetry_otlp::SpanExporter,
    pending: Arc<AtomicUsize>,
    exported: Counter,
    failed: Counter,
}

impl SpanExporter for Counting {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        self.pending.fetch_sub(n, Ordering::Relaxed);
        async move {
            let r = self.inner.export(batch).await;
            match &r {
                Ok(()) => {
                    self.exported.inc_by(n as u64);
                }
                // The batch processor logs the error itself.
                Err(_) => {
                    self.failed.inc_by(n as u64);
                }
            }
            r
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// ---------------------------------------------------------------------------
// The exporter's HTTP client: one POST per batch on hyper, on a small
// runtime of its own (the batch processor's thread is not a tokio thread).

const MAX_RESPONSE: usize = 1 << 20;

struct OtlpHttp {
    rt: tokio::runtime::Runtime,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    /// `[tracing] headers`, sent with every export.
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl std::fmt::Debug for OtlpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttp")
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.len())
            .finish()
    }
}

type HttpError = opentelemetry_http::HttpError;

impl OtlpHttp {
    fn new(cfg: &Tracing) -> anyhow::Result<OtlpHttp> {
        let uri: http::Uri = cfg
            .endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("tracing: bad endpoint {:?}: {e}", cfg.endpoint))?;
        let tls = match uri.scheme_str() {
            Some("https") => Some(
                crate::tls::client_config(
                    &sy_config::model::UpstreamTls {
                        server_name: None,
                        ca: None,
                        verify: true,
                    },
                    sy_config::model::UpstreamProtocol::Http1,
                )
                .map_err(|e| anyhow::anyhow!("tracing: {e}"))?,
            ),
            Some("http") => None,
            _ => anyhow::bail!(
                "tracing: endpoint {:?} must be an http:// or https:// URL",
                cfg.endpoint
            ),
        };
        let mut headers = Vec::with_capacity(cfg.headers.len());
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| anyhow::anyhow!("tracing: header name {k:?}: {e}"))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|e| anyhow::anyhow!("tracing: value of header {k:?}: {e}"))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(OtlpHttp {
            rt,
            tls,
            timeout: cfg.export_timeout,
            headers: Arc::new(headers),
        })
    }
}

impl opentelemetry_http::HttpClient for OtlpHttp {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let mut request = request;
            for (k, v) in self.headers.iter() {
                request.headers_mut().insert(k.clone(), v.clone());
            }
            let post = post(self.tls.clone(), request);
            match self
                .rt
                .block_on(async { tokio::time::timeout(self.timeout, post).await })
            {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:?}", self.timeout).into()),
            }
        })
    }
}

async fn post(
    tls: Option<Arc<rustls::ClientConfig>>,
    req: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError> {
    let (mut parts, body) = req.into_parts();
    let uri = parts.uri.clone();
    let authority = uri.authority().ok_or("endpoint has no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let https = uri.scheme_str() == Some("https");
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    parts.uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
    let req = Request::from_parts(parts, http_body_util::Full::new(body));
    match tls {
        Some(cfg) if https => {
            let name = rustls_pki_types::ServerName::try_from(host.to_string())?;
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            exchange(s, req).await
        }
        _ => exchange(tcp, req).await,
    }
}

async fn exchange<S>(
    io: S,
    req: Request<http_body_util::Full<Bytes>>,
) -> Result<Response<Bytes>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, MAX_RESPONSE)
        .collect()
        .await?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests;
