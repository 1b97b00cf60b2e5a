//! Prometheus metrics. The registry and its families live outside the
//! snapshot so counters survive reloads; per-route and per-upstream handles
//! are resolved once when a snapshot is built, so the request path only
//! increments atomics. Every name here is documented in docs/metrics.md.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels: a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// Listener name.
    pub listener: String,
}

/// Labels: a listener and an error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerKind {
    /// Listener name.
    pub listener: String,
    /// What went wrong.
    pub kind: String,
}

/// Labels: a route and a status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteClass {
    /// Route name.
    pub route: String,
    /// "1xx".."5xx".
    pub class: String,
}

/// Labels: a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route name.
    pub route: String,
}

/// Labels: a route and the failed stage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStage {
    /// Route name ("" when no route matched).
    pub route: String,
    /// The stage token, as in the `x-switchyard-error` header.
    pub stage: String,
}

/// Labels: an upstream server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    /// Upstream name.
    pub upstream: String,
    /// Server address as configured.
    pub server: String,
}

/// Labels: reload outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// "ok" or "rejected".
    pub result: String,
}

fn latency_histogram() -> Histogram {
    // 100µs .. ~52s
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// All of Switchyard's metric families.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// switchyard_downstream_connections_total
    pub conns_total: Family<ListenerLabel, Counter>,
    /// switchyard_downstream_connections_active
    pub conns_active: Family<ListenerLabel, Gauge>,
    /// switchyard_downstream_connections_parked
    pub conns_parked: Family<ListenerLabel, Gauge>,
    /// switchyard_downstream_errors_total
    pub downstream_errors: Family<ListenerKind, Counter>,
    /// switchyard_tls_handshakes_total (kind = ok | error)
    pub tls_handshakes: Family<ListenerKind, Counter>,
    /// switchyard_requests_total
    pub requests: Family<RouteClass, Counter>,
    /// switchyard_request_duration_seconds
    pub request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// switchyard_proxy_errors_total
    pub proxy_errors: Family<RouteStage, Counter>,
    /// switchyard_upstream_requests_total
    pub upstream_requests: Family<ServerLabel, Counter>,
    /// switchyard_upstream_response_seconds
    pub upstream_latency: Family<ServerLabel, Histogram, fn() -> Histogram>,
    /// switchyard_upstream_connections_opened_total
    pub upstream_conns_opened: Family<ServerLabel, Counter>,
    /// switchyard_upstream_active_requests
    pub upstream_active: Family<ServerLabel, Gauge>,
    /// switchyard_reloads_total
    pub reloads: Family<ResultLabel, Counter>,
    /// switchyard_config_version
    pub config_version: Gauge,
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let m = Metrics {
            registry: Registry::default(),
            conns_total: Family::default(),
            conns_active: Family::default(),
            conns_parked: Family::default(),
            downstream_errors: Family::default(),
            tls_handshakes: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            proxy_errors: Family::default(),
            upstream_requests: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram),
            upstream_conns_opened: Family::default(),
            upstream_active: Family::default(),
            reloads: Family::default(),
            config_version: Gauge::default(),
        };
        registry.register(
            "downstream_connections",
            "Client connections accepted",
            m.conns_total.clone(),
        );
        registry.register(
            "downstream_connections_active",
            "Client connections open now",
            m.conns_active.clone(),
        );
        registry.register(
            "downstream_connections_parked",
            "Idle HTTP/1.1 connections whose buffers were released (kept as a bare socket)",
            m.conns_parked.clone(),
        );
        registry.register(
            "downstream_errors",
            "Client connections or requests rejected as malformed, oversized or too slow",
            m.downstream_errors.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes on listeners, by outcome",
            m.tls_handshakes.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by route and status class",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head received to response head sent",
            m.request_duration.clone(),
        );
        registry.register(
            "proxy_errors",
            "Requests Switchyard answered with an error of its own, by failed stage",
            m.proxy_errors.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests sent to each upstream server",
            m.upstream_requests.clone(),
        );
        registry.register(
            "upstream_response_seconds",
            "Time from request sent to response head received, per server",
            m.upstream_latency.clone(),
        );
        registry.register(
            "upstream_connections_opened",
            "Connections opened to each upstream server (compare with upstream_requests for reuse)",
            m.upstream_conns_opened.clone(),
        );
        registry.register(
            "upstream_active_requests",
            "Requests in flight to each upstream server",
            m.upstream_active.clone(),
        );
        registry.register(
            "reloads",
            "Configuration reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "config_version",
            "Version of the running configuration snapshot (1 = first load)",
            m.config_version.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Prometheus text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-route handles, resolved once per snapshot.
#[derive(Clone)]
pub struct RouteMetrics {
    /// Requests by status class, index 0 = 1xx .. 4 = 5xx.
    pub by_class: [Counter; 5],
    /// Request duration.
    pub duration: Histogram,
}

impl RouteMetrics {
    /// Resolves the handles of route `name`.
    pub fn new(m: &Metrics, name: &str) -> Self {
        let c = |class: &str| {
            m.requests
                .get_or_create(&RouteClass {
                    route: name.to_string(),
                    class: class.to_string(),
                })
                .clone()
        };
        RouteMetrics {
            by_class: [c("1xx"), c("2xx"), c("3xx"), c("4xx"), c("5xx")],
            duration: m
                .request_duration
                .get_or_create(&RouteLabel {
                    route: name.to_string(),
                })
                .clone(),
        }
    }

    /// Counts one answered request.
    pub fn count(&self, status: u16) {
        let i = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[i].inc();
    }
}

/// Per-server handles, resolved once per snapshot.
#[derive(Clone)]
pub struct ServerMetrics {
    /// Requests sent.
    pub requests: Counter,
    /// Response-head latency.
    pub latency: Histogram,
    /// Connections opened.
    pub opened: Counter,
    /// In flight.
    pub active: Gauge,
}

impl ServerMetrics {
    /// Resolves the handles of one server.
    pub fn new(m: &Metrics, upstream: &str, server: &str) -> Self {
        let l = ServerLabel {
            upstream: upstream.to_string(),
            server: server.to_string(),
        };
        ServerMetrics {
            requests: m.upstream_requests.get_or_create(&l).clone(),
            latency: m.upstream_latency.get_or_create(&l).clone(),
            opened: m.upstream_conns_opened.get_or_create(&l).clone(),
            active: m.upstream_active.get_or_create(&l).clone(),
        }
    }
}
