//! Prometheus metrics. The registry and its families live outside the
//! snapshot so counters survive reloads; per-listener, per-route and
//! per-upstream handles are resolved once when a snapshot is built, so the
//! request path only increments atomics. Every name here is documented in
//! docs/metrics.md; [`mod@format`] turns the encoder's OpenMetrics text into
//! the Prometheus text format when the scraper asks for that.
//!
//! Series of a feature an upstream or route does not use (circuit-breaker
//! limits, sticky sessions, outlier detection, retries and hedges) are not
//! created: its handle is an unregistered metric (see [`gated`]), so the
//! request path stays branch-free and nothing is exported for it.

pub mod dashboard;
pub mod format;
mod labels;

use std::hash::Hash;

pub use labels::*;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    /// switchyard_tls_handshakes_total (kind = ok | error | timeout)
    pub tls_handshakes: Family<ListenerKind, Counter>,
    /// switchyard_listener_requests_total: every answer, routed or not
    pub listener_requests: Family<ListenerClass, Counter>,
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
    /// switchyard_health_checks_total (outcome = ok | fail)
    pub health_checks: Family<ServerOutcome, Counter>,
    /// switchyard_health_transitions_total (outcome = healthy | unhealthy)
    pub health_transitions: Family<ServerOutcome, Counter>,
    /// switchyard_upstream_server_healthy
    pub server_healthy: Family<ServerLabel, Gauge>,
    /// switchyard_upstream_server_ejected
    pub server_ejected: Family<ServerLabel, Gauge>,
    /// switchyard_upstream_server_draining
    pub server_draining: Family<ServerLabel, Gauge>,
    /// switchyard_outlier_ejections_total (outcome = ejected | returned)
    pub ejections: Family<ServerOutcome, Counter>,
    /// switchyard_outlier_ejections_skipped_total
    pub ejections_skipped: Family<UpstreamLabel, Counter>,
    /// switchyard_upstream_panic_total
    pub panic: Family<UpstreamLabel, Counter>,
    /// switchyard_retries_total
    pub retries: Family<RouteUpstreamReason, Counter>,
    /// switchyard_retry_budget_exhausted_total
    pub budget_exhausted: Family<UpstreamLabel, Counter>,
    /// switchyard_circuit_breaker_trips_total (outcome = the breaker)
    pub breaker_trips: Family<UpstreamOutcome, Counter>,
    /// switchyard_hedges_total (outcome = sent | won)
    pub hedges: Family<RouteOutcome, Counter>,
    /// switchyard_mirror_requests_total (outcome = sent | ok | failed | dropped | skipped)
    pub mirrors: Family<RouteOutcome, Counter>,
    /// switchyard_split_requests_total
    pub split: Family<RouteUpstream, Counter>,
    /// switchyard_sticky_sessions_total (outcome = hit | assigned | moved)
    pub sticky: Family<UpstreamOutcome, Counter>,
    /// switchyard_cors_requests_total (outcome = preflight | allowed | denied)
    pub cors_requests: Family<RouteOutcome, Counter>,
    /// switchyard_config_version
    pub config_version: Gauge,
    /// The dashboard's per-route and per-upstream series (not exported to
    /// Prometheus; `GET /api/stats`).
    pub dashboard: dashboard::Stats,
    /// switchyard_trace_spans_total (result = exported | failed | dropped)
    pub trace_spans: Family<ResultLabel, Counter>,
    /// switchyard_access_log_dropped_total
    pub access_log_dropped: Counter,
    /// switchyard_downstream_bytes_received_total
    pub downstream_bytes_received: Family<ListenerLabel, Counter>,
    /// switchyard_downstream_bytes_sent_total
    pub downstream_bytes_sent: Family<ListenerLabel, Counter>,
    /// switchyard_upstream_bytes_sent_total
    pub upstream_bytes_sent: Family<ServerLabel, Counter>,
    /// switchyard_upstream_bytes_received_total
    pub upstream_bytes_received: Family<ServerLabel, Counter>,
    /// switchyard_upstream_pool_reused_total
    pub upstream_pool_reused: Family<ServerLabel, Counter>,
    /// switchyard_upstream_connections_open (set at scrape time, see [`refresh`])
    pub upstream_conns_open: Family<UpstreamLabel, Gauge>,
    /// switchyard_route_active_requests
    pub route_active: Family<RouteLabel, Gauge>,
    /// switchyard_admin_unauthorized_total
    pub admin_unauthorized: Counter,
    /// switchyard_build_info (always 1)
    pub build_info: Family<VersionLabel, Gauge>,
    /// switchyard_compressed_responses_total
    pub compressed: Family<RouteEncoding, Counter>,
    /// switchyard_compression_bytes_total (direction = in | out)
    pub compression_bytes: Family<RouteEncodingDirection, Counter>,
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
            listener_requests: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            proxy_errors: Family::default(),
            upstream_requests: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram),
            upstream_conns_opened: Family::default(),
            upstream_active: Family::default(),
            reloads: Family::default(),
            config_version: Gauge::default(),
            dashboard: Default::default(),
            health_checks: Family::default(),
            health_transitions: Family::default(),
            server_healthy: Family::default(),
            server_ejected: Family::default(),
            server_draining: Family::default(),
            ejections: Family::default(),
            ejections_skipped: Family::default(),
            panic: Family::default(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            breaker_trips: Family::default(),
            hedges: Family::default(),
            mirrors: Family::default(),
            split: Family::default(),
            sticky: Family::default(),
            cors_requests: Family::default(),
            trace_spans: Family::default(),
            access_log_dropped: Counter::default(),
            downstream_bytes_received: Family::default(),
            downstream_bytes_sent: Family::default(),
            upstream_bytes_sent: Family::default(),
            upstream_bytes_received: Family::default(),
            upstream_pool_reused: Family::default(),
            upstream_conns_open: Family::default(),
            route_active: Family::default(),
            admin_unauthorized: Counter::default(),
            build_info: Family::default(),
            compressed: Family::default(),
            compression_bytes: Family::default(),
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
            "listener_requests",
            "Requests answered on each listener, by status class, routed or not",
            m.listener_requests.clone(),
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
        registry.register(
            "health_checks",
            "Active health checks run, by server and outcome (ok | fail)",
            m.health_checks.clone(),
        );
        registry.register(
            "health_transitions",
            "Active health state changes, by server and new state (healthy | unhealthy)",
            m.health_transitions.clone(),
        );
        registry.register(
            "upstream_server_healthy",
            "1 when the server passes its active health checks (or has none), else 0",
            m.server_healthy.clone(),
        );
        registry.register(
            "upstream_server_ejected",
            "1 while outlier detection has ejected the server, else 0",
            m.server_ejected.clone(),
        );
        registry.register(
            "upstream_server_draining",
            "1 while the server is drained through the admin API, else 0",
            m.server_draining.clone(),
        );
        registry.register(
            "outlier_ejections",
            "Outlier detection events, by server (outcome = ejected | returned)",
            m.ejections.clone(),
        );
        registry.register(
            "outlier_ejections_skipped",
            "Ejections not made because max_ejected_percent was reached",
            m.ejections_skipped.clone(),
        );
        registry.register(
            "upstream_panic",
            "Requests balanced over all servers because too few were healthy (panic_threshold)",
            m.panic.clone(),
        );
        registry.register(
            "retries",
            "Retry attempts, by route, upstream and reason",
            m.retries.clone(),
        );
        registry.register(
            "retry_budget_exhausted",
            "Retries not made because the upstream's retry budget was spent",
            m.budget_exhausted.clone(),
        );
        registry.register(
            "circuit_breaker_trips",
            "Requests failed fast by a circuit breaker (outcome = the breaker)",
            m.breaker_trips.clone(),
        );
        registry.register(
            "hedges",
            "Hedged attempts sent, and how many of them answered first (outcome = sent | won)",
            m.hedges.clone(),
        );
        registry.register(
            "mirror_requests",
            "Mirrored copies (outcome = sent | ok | failed | dropped | skipped)",
            m.mirrors.clone(),
        );
        registry.register(
            "split_requests",
            "Requests of a split route, by the upstream chosen",
            m.split.clone(),
        );
        registry.register(
            "sticky_sessions",
            "Sticky-cookie decisions (outcome = hit | assigned | moved)",
            m.sticky.clone(),
        );
        registry.register(
            "cors_requests",
            "CORS requests answered by a cors filter (outcome = preflight | allowed | denied)",
            m.cors_requests.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer's queue was full",
            m.access_log_dropped.clone(),
        );
        registry.register(
            "trace_spans",
            "Spans of sampled requests, by result (exported | failed | dropped: the export queue was full)",
            m.trace_spans.clone(),
        );
        registry.register(
            "downstream_bytes_received",
            "Bytes read from clients, per listener (after TLS decryption)",
            m.downstream_bytes_received.clone(),
        );
        registry.register(
            "downstream_bytes_sent",
            "Bytes written to clients, per listener (before TLS encryption)",
            m.downstream_bytes_sent.clone(),
        );
        registry.register(
            "upstream_bytes_sent",
            "Bytes written to each upstream server (before TLS encryption)",
            m.upstream_bytes_sent.clone(),
        );
        registry.register(
            "upstream_bytes_received",
            "Bytes read from each upstream server (after TLS decryption)",
            m.upstream_bytes_received.clone(),
        );
        registry.register(
            "upstream_pool_reused",
            "Requests sent on an already open connection (pooled HTTP/1.1 or shared HTTP/2)",
            m.upstream_pool_reused.clone(),
        );
        registry.register(
            "upstream_connections_open",
            "Connections open to the servers of each upstream",
            m.upstream_conns_open.clone(),
        );
        registry.register(
            "route_active_requests",
            "Requests of each route waiting for their upstream's response head",
            m.route_active.clone(),
        );
        registry.register(
            "admin_unauthorized",
            "Admin API requests refused for a missing or wrong bearer token",
            m.admin_unauthorized.clone(),
        );
        registry.register(
            "compressed_responses",
            "Responses compressed by a compress filter, by route and coding",
            m.compressed.clone(),
        );
        registry.register(
            "compression_bytes",
            "Body bytes given to the compress filter's encoders (in) and produced by them (out)",
            m.compression_bytes.clone(),
        );
        m.build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the label carries the version of the running binary",
            m.build_info.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The exposition of everything in `format`.
    pub fn encode(&self, format: format::Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        match format {
            format::Format::OpenMetrics => out,
            format::Format::Prometheus => format::to_prometheus(&out),
        }
    }

    /// Counts an answer on listener `listener` made outside the request
    /// path's handles (hyper's own 400 and 431 answers to requests it
    /// could not parse). Cold path: it looks the series up.
    pub fn count_listener_answer(&self, listener: &str, status: u16) {
        self.listener_requests
            .get_or_create(&ListenerClass {
                listener: listener.to_string(),
                class: CLASSES[class_index(status)].to_string(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The status classes, in `by_class` order.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of `status`'s class in [`CLASSES`] (below 100 counts as 1xx,
/// above 599 as 5xx).
#[inline]
pub fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// A handle of `family` for `labels` when `on` (the feature it counts is
/// configured), else an unregistered metric that is never exported. A
/// series that already exists (the feature was on before a reload) keeps
/// being fed, so a gauge set then still goes back to 0.
pub fn gated<S, M, C>(family: &Family<S, M, C>, labels: &S, on: bool) -> M
where
    S: Clone + Hash + Eq,
    M: Clone + Default,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    if on {
        return family.get_or_create_owned(labels);
    }
    let existing = family.get(labels).map(|m| m.clone());
    existing.unwrap_or_default()
}

/// Answers counted by status class (index 0 = 1xx .. 4 = 5xx, as in
/// [`CLASSES`]), resolved once per snapshot: an answer costs one atomic add.
#[derive(Clone)]
pub struct ByClass([Counter; 5]);

impl ByClass {
    /// The counters `handle` gives for each class name.
    fn of(handle: impl FnMut(&'static str) -> Counter) -> Self {
        ByClass(CLASSES.map(handle))
    }

    /// Counts one answered request.
    #[inline]
    pub fn count(&self, status: u16) {
        self.0[class_index(status)].inc();
    }

    /// Answers so far, by class.
    pub fn totals(&self) -> [u64; 5] {
        self.0.each_ref().map(Counter::get)
    }
}

impl ByClass {
    /// `listener_requests_total` of listener `name` (the dashboard samples
    /// the same counters).
    pub fn listener(m: &Metrics, name: &str) -> Self {
        ByClass::of(|class| {
            m.listener_requests.get_or_create_owned(&ListenerClass {
                listener: name.to_string(),
                class: class.to_string(),
            })
        })
    }
}

/// Per-route handles, resolved once per snapshot.
#[derive(Clone)]
pub struct RouteMetrics {
    /// Requests by status class.
    pub requests: ByClass,
    /// Request duration.
    pub duration: Histogram,
    /// The route's dashboard series (survives reloads).
    pub dash: std::sync::Arc<dashboard::Counters>,
    /// Requests waiting for their upstream's response head.
    pub active: Gauge,
}

impl RouteMetrics {
    /// Resolves the handles of route `name`.
    pub fn new(m: &Metrics, name: &str) -> Self {
        RouteMetrics {
            requests: ByClass::of(|class| {
                m.requests.get_or_create_owned(&RouteClass {
                    route: name.to_string(),
                    class: class.to_string(),
                })
            }),
            duration: m
                .request_duration
                .get_or_create(&RouteLabel {
                    route: name.to_string(),
                })
                .clone(),
            dash: m.dashboard.route(name),
            active: m
                .route_active
                .get_or_create(&RouteLabel {
                    route: name.to_string(),
                })
                .clone(),
        }
    }

    /// Counts one answered request.
    #[inline]
    pub fn count(&self, status: u16) {
        self.requests.count(status);
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
    /// Requests sent on an already open connection.
    pub reused: Counter,
    /// Bytes written to the server.
    pub bytes_sent: Counter,
    /// Bytes read from the server.
    pub bytes_received: Counter,
    /// In flight.
    pub active: Gauge,
    /// Passes active checks.
    pub healthy: Gauge,
    /// Ejected by outlier detection.
    pub ejected: Gauge,
    /// Drained.
    pub draining: Gauge,
    /// Ejections.
    pub ejections: Counter,
    /// Returns from ejection.
    pub returns: Counter,
}

impl ServerMetrics {
    /// Resolves the handles of one server; the outlier-ejection series
    /// only when the upstream has `[outlier]` (see [`gated`]).
    pub fn new(m: &Metrics, upstream: &str, server: &str, outlier: bool) -> Self {
        let l = ServerLabel {
            upstream: upstream.to_string(),
            server: server.to_string(),
        };
        // One statement per handle of the same family: `get_or_create`
        // returns a read guard that lives to the end of its statement, and
        // a second call on that family in the same statement deadlocks.
        let ejections = gated(&m.ejections, &outcome(upstream, server, "ejected"), outlier);
        let returns = gated(
            &m.ejections,
            &outcome(upstream, server, "returned"),
            outlier,
        );
        ServerMetrics {
            requests: m.upstream_requests.get_or_create(&l).clone(),
            latency: m.upstream_latency.get_or_create(&l).clone(),
            opened: m.upstream_conns_opened.get_or_create(&l).clone(),
            reused: m.upstream_pool_reused.get_or_create(&l).clone(),
            bytes_sent: m.upstream_bytes_sent.get_or_create(&l).clone(),
            bytes_received: m.upstream_bytes_received.get_or_create(&l).clone(),
            active: m.upstream_active.get_or_create(&l).clone(),
            healthy: m.server_healthy.get_or_create(&l).clone(),
            ejected: gated(&m.server_ejected, &l, outlier),
            draining: m.server_draining.get_or_create(&l).clone(),
            ejections,
            returns,
        }
    }
}

/// `ServerOutcome` labels.
pub fn outcome(upstream: &str, server: &str, outcome: &str) -> ServerOutcome {
    ServerOutcome {
        upstream: upstream.to_string(),
        server: server.to_string(),
        outcome: outcome.to_string(),
    }
}

/// Per-upstream handles for the resilience counters, resolved once per snapshot.
#[derive(Clone)]
pub struct UpstreamMetrics {
    /// Breaker trips: max_connections, max_pending_requests, max_requests, max_retries.
    pub trips: [Counter; 4],
    /// Retry budget exhausted.
    pub budget_exhausted: Counter,
    /// Picks in panic mode.
    pub panic: Counter,
    /// Ejections refused by max_ejected_percent.
    pub ejections_skipped: Counter,
    /// Sticky: hit, assigned, moved.
    pub sticky: [Counter; 3],
    /// The upstream's dashboard series: attempts, their statuses and
    /// response-head latency (survives reloads).
    pub dash: std::sync::Arc<dashboard::Counters>,
    /// Open connections (set from the live counter at scrape time).
    pub connections_open: Gauge,
}

/// The breakers, in `UpstreamMetrics::trips` order.
pub const BREAKERS: [&str; 4] = [
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
];

/// The optional features an upstream uses: which of its series exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamFeatures {
    /// Per breaker (in [`BREAKERS`] order): it can trip. A limit is
    /// configured; for `max_retries`, some route also retries or hedges
    /// to the upstream.
    pub breakers: [bool; 4],
    /// Some route retries or hedges to the upstream (its retry budget is
    /// used).
    pub retried: bool,
    /// `[outlier]` is configured.
    pub outlier: bool,
    /// `[sticky]` is configured.
    pub sticky: bool,
}

impl UpstreamFeatures {
    /// The features of `u`; `retried`: some route retries or hedges to it.
    pub fn of(u: &sy_config::model::Upstream, retried: bool) -> Self {
        let b = &u.circuit_breaker;
        UpstreamFeatures {
            breakers: [
                b.max_connections.is_some(),
                b.max_pending_requests.is_some(),
                b.max_requests.is_some(),
                b.max_retries.is_some() && retried,
            ],
            retried,
            outlier: u.outlier.is_some(),
            sticky: u.sticky.is_some(),
        }
    }
}

impl UpstreamMetrics {
    /// Resolves the handles of upstream `name`; the series of features it
    /// does not use are left out (see [`gated`]).
    pub fn new(m: &Metrics, name: &str, uses: &UpstreamFeatures) -> Self {
        let u = UpstreamLabel {
            upstream: name.to_string(),
        };
        let o = |family: &Family<UpstreamOutcome, Counter>, outcome: &str, on: bool| {
            let labels = UpstreamOutcome {
                upstream: name.to_string(),
                outcome: outcome.to_string(),
            };
            gated(family, &labels, on)
        };
        let trips = std::array::from_fn(|i| o(&m.breaker_trips, BREAKERS[i], uses.breakers[i]));
        UpstreamMetrics {
            trips,
            budget_exhausted: gated(&m.budget_exhausted, &u, uses.retried),
            panic: m.panic.get_or_create_owned(&u),
            ejections_skipped: gated(&m.ejections_skipped, &u, uses.outlier),
            sticky: ["hit", "assigned", "moved"].map(|s| o(&m.sticky, s, uses.sticky)),
            dash: m.dashboard.upstream(name),
            connections_open: m.upstream_conns_open.get_or_create_owned(&u),
        }
    }
}

/// Holds one unit of a gauge (e.g. a request in flight) until dropped.
pub struct GaugeGuard<'a>(&'a Gauge);

impl<'a> GaugeGuard<'a> {
    /// Increments `g`; the drop decrements it.
    #[inline]
    pub fn new(g: &'a Gauge) -> Self {
        g.inc();
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.dec();
    }
}
