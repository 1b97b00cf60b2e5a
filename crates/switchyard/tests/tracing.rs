//! End to end: W3C trace context and OTLP span export. A small OTLP/HTTP
//! collector in the test decodes what the real proxy exports; the echo
//! backend shows the `traceparent` it received.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// How long exported spans may take to arrive (export_interval is 50ms).
const EXPORT: Duration = Duration::from_secs(20);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// One exported span with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    span: Span,
}

/// An OTLP/HTTP (protobuf) trace collector on 127.0.0.1:0.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Exported>>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (spans.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, r) = (s.clone(), r.clone());
                        async move {
                            let ok = req.uri().path() == "/v1/traces"
                                && req.headers()["content-type"] == "application/x-protobuf";
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = match ExportTraceServiceRequest::decode(body) {
                                Ok(msg) if ok => {
                                    r.fetch_add(1, Ordering::SeqCst);
                                    let mut out = s.lock().unwrap();
                                    for rs in msg.resource_spans {
                                        let service = rs
                                            .resource
                                            .as_ref()
                                            .and_then(|res| {
                                                res.attributes
                                                    .iter()
                                                    .find(|kv| kv.key == "service.name")
                                            })
                                            .and_then(|kv| {
                                                as_string(kv.value.as_ref()?.value.as_ref()?)
                                            })
                                            .unwrap_or_default();
                                        for ss in rs.scope_spans {
                                            for span in ss.spans {
                                                out.push(Exported {
                                                    service: service.clone(),
                                                    span,
                                                });
                                            }
                                        }
                                    }
                                    200
                                }
                                _ => 400,
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Collector {
            addr,
            spans,
            requests,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The spans of trace `trace_id` (hex) received so far.
    fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|e| hex(&e.span.trace_id) == trace_id)
            .map(|e| e.span.clone())
            .collect()
    }

    /// Waits until `n` spans of `trace_id` arrived, and returns them.
    async fn wait_trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        eventually(
            &format!("{n} spans of trace {trace_id} exported"),
            EXPORT,
            async || self.trace(trace_id).len() >= n,
        )
        .await;
        self.trace(trace_id)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// Attribute `key` of `span`, rendered as a string (ints too).
fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap()
}

fn one(spans: &[Span], k: SpanKind) -> Span {
    let found: Vec<&Span> = spans.iter().filter(|s| kind(s) == k).collect();
    assert_eq!(found.len(), 1, "expected one {k:?} span in {spans:#?}");
    found[0].clone()
}

/// A parsed `traceparent` as the backend saw it: (trace id, parent id,
/// flags).
fn parse_tp(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {v:?}");
    assert_eq!(parts[0], "00", "traceparent {v:?}");
    assert_eq!(parts[1].len(), 32, "traceparent {v:?}");
    assert_eq!(parts[2].len(), 16, "traceparent {v:?}");
    (
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    )
}

/// One route "all" (+ `route_extra`) to upstream "u" on `backend`, then
/// `tail` (a `[tracing]` table, or nothing).
fn config(backend: SocketAddr, route_extra: &str, tail: &str) -> String {
    format!(
        "{}{}",
        Preamble::default(),
        route_all(&format!("\"{backend}\""), route_extra, tail)
    )
}

/// `[tracing]` exporting to `c` every 50ms.
fn tracing_table(c: &Collector, extra: &str) -> String {
    format!(
        "[tracing]\nendpoint = \"{}\"\nexport_interval = \"50ms\"\n{extra}\n",
        c.endpoint()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continues_an_incoming_trace_with_server_and_client_spans() {
    let c = Collector::start().await;
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(
        b.addr,
        "",
        &tracing_table(&c, "sample_ratio = 1.0"),
    ));
    let r = client()
        .get(p.url("main", "/hello?x=1"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor=abc,other=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (tid, seen_parent, flags) = parse_tp(header(&r, "x-seen-traceparent"));
    assert_eq!(tid, TRACE_ID, "same trace upstream");
    assert_ne!(seen_parent, PARENT_ID, "a new parent id upstream");
    assert_eq!(flags, "01");
    assert_eq!(header(&r, "x-seen-tracestate"), "vendor=abc,other=1");

    let spans = c.wait_trace(TRACE_ID, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    // The SERVER span's parent is the caller's span; the CLIENT span is its
    // child, and its id is the parent id the backend received.
    assert_eq!(hex(&server.parent_span_id), PARENT_ID);
    assert_eq!(client_span.parent_span_id, server.span_id);
    assert_eq!(hex(&client_span.span_id), seen_parent);
    assert_eq!(server.trace_state, "vendor=abc,other=1");

    assert_eq!(server.name, "GET all");
    assert_eq!(attr(&server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(&server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(&server, "http.route").as_deref(), Some("all"));
    assert_eq!(attr(&server, "url.path").as_deref(), Some("/hello"));
    assert_eq!(attr(&server, "url.query").as_deref(), Some("x=1"));
    assert_eq!(attr(&server, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr(&server, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(&server, "server.port"),
        Some(p.addr("main").port().to_string())
    );
    assert_eq!(
        attr(&server, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(&server, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(attr(&server, "error.type"), None);

    assert_eq!(client_span.name, "GET");
    assert_eq!(
        attr(&client_span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr(&client_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&client_span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(&client_span, "server.port"),
        Some(b.addr.port().to_string())
    );
    assert_eq!(attr(&client_span, "http.request.resend_count"), None);
    assert!(
        attr(&client_span, "url.full")
            .unwrap()
            .ends_with("/hello?x=1")
    );
    // Both spans lie within the request, the client inside the server.
    assert!(server.start_time_unix_nano <= client_span.start_time_unix_nano);
    assert!(client_span.end_time_unix_nano <= server.end_time_unix_nano);

    let services: Vec<String> = c
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.service.clone())
        .collect();
    assert!(services.iter().all(|s| s == "switchyard"), "{services:?}");
    assert!(c.requests.load(Ordering::SeqCst) >= 1);
    wait_admin_ready(p.admin()).await;
    eventually("exported spans counted", EXPORT, async || {
        scrape_metric(
            &p,
            "switchyard_trace_spans_total",
            &[("result", "exported")],
        )
        .await
            >= 2.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_a_new_trace_without_a_valid_traceparent() {
    let c = Collector::start().await;
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(b.addr, "", &tracing_table(&c, "")));

    // No traceparent; a tracestate without one is not passed on.
    let r = client()
        .get(p.url("main", "/new"))
        .header("tracestate", "stale=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (tid, seen_parent, flags) = parse_tp(header(&r, "x-seen-traceparent"));
    assert_eq!(flags, "01", "sample_ratio defaults to 1");
    assert!(r.headers().get("x-seen-tracestate").is_none());
    let spans = c.wait_trace(&tid, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    assert!(server.parent_span_id.is_empty(), "a root span");
    assert_eq!(hex(&client_span.span_id), seen_parent);
    assert_eq!(client_span.parent_span_id, server.span_id);

    // An invalid traceparent (upper-case hex) also starts a new trace.
    let r = client()
        .get(p.url("main", "/invalid"))
        .header(
            "traceparent",
            format!("00-{}-{PARENT_ID}-01", TRACE_ID.to_uppercase()),
        )
        .send()
        .await
        .unwrap();
    let (tid2, _, _) = parse_tp(header(&r, "x-seen-traceparent"));
    assert_ne!(tid2, TRACE_ID);
    assert_ne!(tid2, tid);
    let spans = c.wait_trace(&tid2, 2).await;
    assert!(one(&spans, SpanKind::Server).parent_span_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_has_a_client_span_per_attempt() {
    let c = Collector::start().await;
    // The first request fails (503), the rest succeed; every traceparent
    // received is kept.
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (s, n) = (seen.clone(), count.clone());
    let b = Backend::start_with(
        "b",
        Arc::new(move |req: &Request<Incoming>| {
            if let Some(v) = req.headers().get("traceparent") {
                s.lock().unwrap().push(v.to_str().unwrap().to_string());
            }
            (n.fetch_add(1, Ordering::SeqCst) == 0).then(|| {
                Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::from_static(b"not yet\n")))
                    .unwrap()
            })
        }),
    )
    .await;
    let p = Proxy::start(&config(
        b.addr,
        "[routes.retry]\nattempts = 2\nbackoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n",
        &tracing_table(&c, ""),
    ));
    let r = client()
        .get(p.url("main", "/retry"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "two attempts: {seen:?}");

    let spans = c.wait_trace(TRACE_ID, 3).await;
    let server = one(&spans, SpanKind::Server);
    let mut clients: Vec<Span> = spans
        .iter()
        .filter(|s| kind(s) == SpanKind::Client)
        .cloned()
        .collect();
    assert_eq!(clients.len(), 2, "{spans:#?}");
    clients.sort_by_key(|s| s.start_time_unix_nano);
    for (cs, tp) in clients.iter().zip(&seen) {
        assert_eq!(cs.parent_span_id, server.span_id);
        let (tid, parent, _) = parse_tp(tp);
        assert_eq!(tid, TRACE_ID);
        assert_eq!(hex(&cs.span_id), parent, "each attempt its own span id");
    }
    assert_ne!(clients[0].span_id, clients[1].span_id);
    assert_eq!(
        attr(&clients[0], "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(attr(&clients[0], "error.type").as_deref(), Some("503"));
    assert_eq!(attr(&clients[0], "http.request.resend_count"), None);
    assert_eq!(
        attr(&clients[1], "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&clients[1], "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(&server, "http.response.status_code").as_deref(),
        Some("200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upstream_marks_both_spans_with_the_error_stage() {
    let c = Collector::start().await;
    let gone = refused_addr();
    let p = Proxy::start(&config(gone, "", &tracing_table(&c, "")));
    let r = client()
        .get(p.url("main", "/down"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let spans = c.wait_trace(TRACE_ID, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    assert_eq!(attr(&server, "error.type").as_deref(), Some("connect"));
    assert_eq!(
        attr(&server, "http.response.status_code").as_deref(),
        Some("502")
    );
    assert_eq!(attr(&client_span, "error.type").as_deref(), Some("connect"));
    assert_eq!(attr(&client_span, "http.response.status_code"), None);
    // Status code 2 = STATUS_CODE_ERROR.
    assert_eq!(server.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(client_span.status.as_ref().map(|s| s.code), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_based_sampling_follows_the_incoming_flag() {
    let c = Collector::start().await;
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(
        b.addr,
        "",
        &tracing_table(&c, "sample_ratio = 0.0\nparent_based = true"),
    ));
    let get = async |tp: Option<String>| {
        let mut req = client().get(p.url("main", "/s"));
        if let Some(tp) = tp {
            req = req.header("traceparent", tp);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        parse_tp(header(&r, "x-seen-traceparent"))
    };
    // No incoming context: the ratio (0) decides; the backend still gets a
    // traceparent, flagged not sampled.
    let (new_tid, _, flags) = get(None).await;
    assert_eq!(flags, "00");
    // An incoming unsampled parent stays unsampled.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let (tid, _, flags) = get(Some(format!("00-{unsampled}-{PARENT_ID}-00"))).await;
    assert_eq!((tid.as_str(), flags.as_str()), (unsampled, "00"));
    // An incoming sampled parent is recorded despite the ratio.
    let (tid, _, flags) = get(Some(format!("00-{TRACE_ID}-{PARENT_ID}-01"))).await;
    assert_eq!((tid.as_str(), flags.as_str()), (TRACE_ID, "01"));
    c.wait_trace(TRACE_ID, 2).await;
    // The spans are exported in order: had the first two requests been
    // recorded, their spans would have arrived before these.
    assert!(c.trace(&new_tid).is_empty());
    assert!(c.trace(unsampled).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tracing_trace_headers_pass_unchanged() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(b.addr, "", ""));
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = client()
        .get(p.url("main", "/plain"))
        .header("traceparent", &tp)
        .header("tracestate", "vendor=abc")
        .header("connection", "keep-alive")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-seen-traceparent"), tp);
    assert_eq!(header(&r, "x-seen-tracestate"), "vendor=abc");
    // Nothing is added to a request without one.
    let r = client().get(p.url("main", "/plain")).send().await.unwrap();
    assert!(r.headers().get("x-seen-traceparent").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_turns_tracing_on() {
    let c = Collector::start().await;
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(b.addr, "", ""));
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = client()
        .get(p.url("main", "/before"))
        .header("traceparent", &tp)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-seen-traceparent"), tp);

    p.write_config(&config(b.addr, "", &tracing_table(&c, "")));
    p.handle.reload().unwrap();
    let r = client()
        .get(p.url("main", "/after"))
        .header("traceparent", &tp)
        .send()
        .await
        .unwrap();
    let (tid, parent, _) = parse_tp(header(&r, "x-seen-traceparent"));
    assert_eq!(tid, TRACE_ID);
    assert_ne!(parent, PARENT_ID);
    let spans = c.wait_trace(TRACE_ID, 2).await;
    assert_eq!(hex(&one(&spans, SpanKind::Client).span_id), parent);
}
