//! Compiling a validated `Config` into the immutable `Snapshot` the data
//! path reads: per-listener route tables, TLS acceptors, upstreams with
//! their balancers and transports, and pre-resolved metric handles.
//!
//! Building a snapshot does file IO (certificates) and must run off the
//! request path; the result is swapped in atomically by `runtime`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;
use http::HeaderValue;
use sy_config::model::{
    Action, BalancerKind, CircuitBreaker, Config, FilterRef, HashAlgorithm, HashKey, HealthCheck,
    HealthCheckKind, Hedge, Listener, Retry, Route, Sticky, Upstream, UpstreamProtocol,
};
use sy_policy::balance::{self, Balancer, Kind};
use sy_policy::outlier::OutlierConfig;
use sy_policy::retry_budget::RetryBudget;
use sy_policy::route::RouteTable;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::filter::{Chain, Filter};
use crate::live::{Live, LiveKeys, ServerKey, ServerLive, TransportKey, UpstreamKey, UpstreamLive};
use crate::metrics::{
    ListenerLabel, ListenerRequests, Metrics, RouteMetrics, RouteOutcome, RouteUpstream,
    ServerMetrics, UpstreamFeatures, UpstreamMetrics,
};
use crate::tls;
use crate::upstream::connect::{Target, Transport, UpstreamTls};

/// One immutable compiled configuration.
pub struct Snapshot {
    /// 1 for the first load, +1 per successful reload.
    pub version: u64,
    /// The validated configuration it was built from.
    pub config: Arc<Config>,
    /// Listeners, by name order.
    pub listeners: Vec<Arc<ListenerRt>>,
    /// Upstreams, by name order.
    pub upstreams: Vec<Arc<UpstreamRt>>,
    /// The running access log; None = off. Set by `runtime` after
    /// `compile` (kept across reloads that leave `[access_log]` unchanged).
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// Settings the file changed that apply only on restart (`config`
    /// holds the running values). Set by `runtime` on reload.
    pub pending_restart: Vec<PendingSetting>,
}

/// A setting a reload changed that applies only when the process restarts;
/// the running value stays, and `GET /config` shows both.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingSetting {
    /// The key, e.g. "runtime.workers".
    pub key: &'static str,
    /// What runs.
    pub running: serde_json::Value,
    /// What the file says now.
    pub configured: serde_json::Value,
}

impl Snapshot {
    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.cfg.name == name)
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<UpstreamRt>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// A listener as the data path sees it.
pub struct ListenerRt {
    /// Its configuration.
    pub cfg: Listener,
    /// TLS acceptor when the listener terminates TLS.
    pub tls: Option<TlsAcceptor>,
    /// Route matcher over `routes`.
    pub table: RouteTable,
    /// The routes serving this listener; `table` returns indexes into it.
    pub routes: Vec<Arc<RouteRt>>,
    /// The filter chain of each route on this listener (the listener's
    /// filters, then the route's), parallel to `routes`.
    pub chains: Vec<Chain>,
    /// The listener's own filters: the chain of answers no route gave.
    pub default_chain: Chain,
    /// "1.1 switchyard" style `Via` values, precomputed.
    pub via_h1: HeaderValue,
    /// Via for HTTP/2 requests.
    pub via_h2: HeaderValue,
    /// Connection metric handles.
    pub metrics: ListenerMetrics,
}

/// Per-listener connection metric handles.
pub struct ListenerMetrics {
    /// Connections accepted.
    pub total: prometheus_client::metrics::counter::Counter,
    /// Connections open.
    pub active: prometheus_client::metrics::gauge::Gauge,
    /// Idle connections parked (buffers released).
    pub parked: prometheus_client::metrics::gauge::Gauge,
    /// Bytes read from clients.
    pub bytes_received: prometheus_client::metrics::counter::Counter,
    /// Bytes written to clients.
    pub bytes_sent: prometheus_client::metrics::counter::Counter,
    /// Every answer, routed or not, by status class.
    pub requests: ListenerRequests,
}

/// A route as the data path sees it.
pub struct RouteRt {
    /// Route name (metric label, logs).
    pub name: String,
    /// What to do.
    pub action: ActionRt,
    /// Total deadline up to the response head.
    pub timeout: Option<Duration>,
    /// Request body limit.
    pub max_request_body: Option<u64>,
    /// Host sent upstream instead of the client's.
    pub host_rewrite: Option<HeaderValue>,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// Hedging policy.
    pub hedge: Option<Hedge>,
    /// Mirroring.
    pub mirror: Option<MirrorRt>,
    /// Metric handles.
    pub metrics: RouteMetrics,
}

/// A compiled `[routes.mirror]`.
pub struct MirrorRt {
    /// Where copies go.
    pub upstream: Arc<UpstreamRt>,
    /// Share copied, 0..=1.
    pub fraction: f64,
    /// Copies outstanding at once.
    pub max_in_flight: u32,
    /// Copies outstanding now (per snapshot).
    pub in_flight: Arc<std::sync::atomic::AtomicU32>,
    /// Largest body copied.
    pub max_body: u64,
    /// Counters: sent, ok, failed, dropped, skipped.
    pub counters: [prometheus_client::metrics::counter::Counter; 5],
}

/// A compiled `[routes.split]`.
pub struct SplitRt {
    /// The upstreams.
    pub backends: Vec<Arc<UpstreamRt>>,
    /// Their weights.
    pub weights: Vec<u32>,
    /// Forcing header.
    pub header: Option<HeaderName>,
    /// Forcing cookie.
    pub cookie: Option<String>,
    /// Leave backends without an available server out of the choice.
    pub skip_unavailable: bool,
    /// Requests per backend.
    pub counters: Vec<prometheus_client::metrics::counter::Counter>,
}
/// A compiled route action.
pub enum ActionRt {
    /// Proxy to an upstream.
    Upstream(Arc<UpstreamRt>),
    /// Proxy to one of several upstreams, by weight.
    Split(SplitRt),
    /// Answer directly.
    Respond {
        /// Status.
        status: http::StatusCode,
        /// Body.
        body: Bytes,
        /// Content-Type.
        content_type: HeaderValue,
    },
    /// Redirect.
    Redirect {
        /// Status.
        status: http::StatusCode,
        /// Where to.
        target: sy_config::model::RedirectTarget,
    },
}

/// An upstream as the data path sees it.
pub struct UpstreamRt {
    /// Upstream name.
    pub name: String,
    /// Its servers, in configuration order.
    pub servers: Vec<ServerRt>,
    /// The balancing policy over `servers`.
    pub balancer: Box<dyn Balancer>,
    /// What consistent hashing hashes, if the balancer needs a key.
    pub hash_key: Option<HashKey>,
    /// How to connect.
    pub transport: Arc<Transport>,
    /// From request sent to response head.
    pub response_timeout: Duration,
    /// Breaker counters, retry budget, latency window (survive reloads).
    pub live: Arc<UpstreamLive>,
    /// Resilience metric handles.
    pub metrics: UpstreamMetrics,
    /// Outlier detection; None = off.
    pub outlier: Option<OutlierRt>,
    /// Percent of healthy servers below which all are used.
    pub panic_threshold: u8,
    /// Slow-start window in ns; 0 = off.
    pub slow_start_ns: u64,
    /// Circuit-breaker limits.
    pub breaker: CircuitBreaker,
    /// Sticky cookie; None = off.
    pub sticky: Option<StickyRt>,
    /// Active health checking; None = off.
    pub health: Option<HealthRt>,
    /// Some route retries or hedges to this upstream: count requests in
    /// the retry budget.
    pub budgeted: bool,
    /// The configuration it was built from.
    pub cfg: Upstream,
}

/// Compiled outlier detection.
pub struct OutlierRt {
    /// Thresholds and ejection times.
    pub cfg: OutlierConfig,
    /// Cap on ejected servers, percent.
    pub max_ejected_percent: u8,
}

/// Compiled sticky-cookie settings.
pub struct StickyRt {
    /// Cookie name.
    pub cookie: String,
    /// "; Path=/; HttpOnly ..." appended after `name=value`.
    pub attributes: String,
}

/// Compiled active health checking.
pub struct HealthRt {
    /// The check.
    pub cfg: HealthCheck,
    /// How the checker connects (HTTP/2 for gRPC checks).
    pub transport: Arc<Transport>,
}

/// One server of an upstream.
pub struct ServerRt {
    /// Where it is.
    pub target: Target,
    /// Configured weight.
    pub weight: u32,
    /// The sticky cookie value naming this server ("" without sticky).
    pub sticky_value: String,
    /// Live state (survives reloads).
    pub live: Arc<ServerLive>,
    /// Metric handles.
    pub metrics: ServerMetrics,
    /// Live-state key.
    pub key: ServerKey,
}

/// Builds a snapshot. Errors name the listener or upstream at fault.
pub fn compile(
    config: Config,
    version: u64,
    live: &Live,
    metrics: &Metrics,
) -> Result<Snapshot, Vec<String>> {
    let mut errors = Vec::new();
    let mut upstreams: Vec<Arc<UpstreamRt>> = Vec::new();
    let budgeted: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| r.retry.is_some() || r.hedge.is_some())
        .flat_map(|r| match &r.action {
            Action::Upstream(u) => vec![u.as_str()],
            Action::Split(s) => s.backends.iter().map(|b| b.upstream.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    for u in &config.upstreams {
        let ctx = UpstreamCtx {
            live,
            metrics,
            ramp: version > 1,
            budgeted: budgeted.contains(&u.name.as_str()),
        };
        match compile_upstream(u, &ctx) {
            Ok(rt) => upstreams.push(Arc::new(rt)),
            Err(e) => errors.push(format!("upstream {}: {e}", u.name)),
        }
    }
    let routes: Vec<Arc<RouteRt>> = config
        .routes
        .iter()
        .filter_map(|r| match compile_route(r, &upstreams, metrics) {
            Ok(rt) => Some(Arc::new(rt)),
            Err(e) => {
                errors.push(format!("route {}: {e}", r.name));
                None
            }
        })
        .collect();
    // Named filters are compiled once and shared by every chain using them.
    let mut named: HashMap<&str, Arc<Filter>> = HashMap::new();
    for f in &config.filters {
        match Filter::compile(&f.filter) {
            Ok(c) => {
                named.insert(&f.name, Arc::new(c));
            }
            Err(e) => errors.push(format!("filter {}: {e}", f.name)),
        }
    }
    let filters = Filters { named: &named };
    let mut listeners = Vec::new();
    for l in &config.listeners {
        match compile_listener(l, &config.routes, &routes, &filters, metrics) {
            Ok(rt) => listeners.push(Arc::new(rt)),
            Err(e) => errors.push(format!("listener {}: {e}", l.name)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        version,
        config: Arc::new(config),
        listeners,
        upstreams,
        access_log: None,
        pending_restart: Vec::new(),
    })
}

/// The filters a snapshot's chains are made of.
struct Filters<'a> {
    named: &'a HashMap<&'a str, Arc<Filter>>,
}

impl Filters<'_> {
    /// The compiled filters of a `filters` list, in order.
    fn resolve(&self, refs: &[FilterRef]) -> Result<Vec<Arc<Filter>>, String> {
        refs.iter()
            .map(|r| match r {
                FilterRef::Named(name) => self
                    .named
                    .get(name.as_str())
                    .cloned()
                    .ok_or_else(|| format!("unknown filter {name}")),
                FilterRef::Inline(f) => Filter::compile(f).map(Arc::new),
            })
            .collect()
    }
}

fn compile_listener(
    l: &Listener,
    route_cfgs: &[Route],
    routes: &[Arc<RouteRt>],
    filters: &Filters<'_>,
    metrics: &Metrics,
) -> Result<ListenerRt, String> {
    let tls = match &l.tls {
        Some(t) => Some(TlsAcceptor::from(
            tls::server_config(t, l.http2).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let defaults = filters.resolve(&l.filters)?;
    let mut specs = Vec::new();
    let mut mine = Vec::new();
    let mut chains = Vec::new();
    for (cfg, rt) in route_cfgs.iter().zip(routes) {
        if cfg.serves(&l.name) {
            specs.push(cfg.matcher.spec());
            mine.push(rt.clone());
            let mut chain = defaults.clone();
            chain.extend(filters.resolve(&cfg.filters)?);
            chains.push(Chain::for_route(chain, &cfg.name, metrics));
        }
    }
    let table = RouteTable::new(&specs).map_err(|e| format!("route table: {e}"))?;
    Ok(ListenerRt {
        cfg: l.clone(),
        tls,
        table,
        routes: mine,
        chains,
        default_chain: Chain::new(defaults),
        via_h1: HeaderValue::from_static("1.1 switchyard"),
        via_h2: HeaderValue::from_static("2 switchyard"),
        metrics: {
            let label = ListenerLabel {
                listener: l.name.clone(),
            };
            ListenerMetrics {
                total: metrics.conns_total.get_or_create(&label).clone(),
                active: metrics.conns_active.get_or_create(&label).clone(),
                parked: metrics.conns_parked.get_or_create(&label).clone(),
                bytes_received: metrics
                    .downstream_bytes_received
                    .get_or_create(&label)
                    .clone(),
                bytes_sent: metrics.downstream_bytes_sent.get_or_create(&label).clone(),
                requests: ListenerRequests::new(metrics, &l.name),
            }
        },
    })
}

fn compile_route(
    r: &Route,
    upstreams: &[Arc<UpstreamRt>],
    metrics: &Metrics,
) -> Result<RouteRt, String> {
    let find = |name: &str| {
        upstreams
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .ok_or_else(|| format!("unknown upstream {name}"))
    };
    let action = match &r.action {
        Action::Upstream(name) => ActionRt::Upstream(find(name)?),
        Action::Split(split) => ActionRt::Split(SplitRt {
            backends: split
                .backends
                .iter()
                .map(|b| find(&b.upstream))
                .collect::<Result<_, _>>()?,
            weights: split.backends.iter().map(|b| b.weight).collect(),
            header: match &split.header {
                Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string())?),
                None => None,
            },
            cookie: split.cookie.clone(),
            skip_unavailable: split.skip_unavailable,
            counters: split
                .backends
                .iter()
                .map(|b| {
                    metrics
                        .split
                        .get_or_create(&RouteUpstream {
                            route: r.name.clone(),
                            upstream: b.upstream.clone(),
                        })
                        .clone()
                })
                .collect(),
        }),
        Action::Respond {
            status,
            body,
            content_type,
        } => ActionRt::Respond {
            status: http::StatusCode::from_u16(*status).map_err(|e| e.to_string())?,
            body: Bytes::from(body.clone()),
            content_type: HeaderValue::from_str(content_type).map_err(|e| e.to_string())?,
        },
        Action::Redirect(redirect) => ActionRt::Redirect {
            status: http::StatusCode::from_u16(redirect.status).map_err(|e| e.to_string())?,
            target: redirect.target.clone(),
        },
    };
    let host_rewrite = match &r.host_rewrite {
        Some(h) => Some(HeaderValue::from_str(h).map_err(|e| format!("host_rewrite: {e}"))?),
        None => None,
    };
    let mirror = match &r.mirror {
        Some(m) => Some(MirrorRt {
            upstream: find(&m.upstream)?,
            fraction: (m.percent / 100.0).clamp(0.0, 1.0),
            max_in_flight: m.max_in_flight,
            in_flight: Arc::default(),
            max_body: m.max_body,
            counters: ["sent", "ok", "failed", "dropped", "skipped"].map(|o| {
                metrics
                    .mirrors
                    .get_or_create(&RouteOutcome {
                        route: r.name.clone(),
                        outcome: o.to_string(),
                    })
                    .clone()
            }),
        }),
        None => None,
    };
    Ok(RouteRt {
        name: r.name.clone(),
        action,
        timeout: r.timeout,
        max_request_body: r.max_request_body,
        host_rewrite,
        retry: r.retry.clone(),
        hedge: r.hedge.clone(),
        mirror,
        metrics: RouteMetrics::new(metrics, &r.name),
    })
}

struct UpstreamCtx<'a> {
    live: &'a Live,
    metrics: &'a Metrics,
    /// Servers new to the live registry start a slow-start ramp (not on
    /// the first load).
    ramp: bool,
    budgeted: bool,
}

fn upstream_tls(u: &Upstream, protocol: UpstreamProtocol) -> Result<Option<UpstreamTls>, String> {
    Ok(match &u.tls {
        Some(t) => {
            let cfg = tls::client_config(t, protocol).map_err(|e| e.to_string())?;
            let server_name = match &t.server_name {
                Some(n) => Some(
                    rustls::pki_types::ServerName::try_from(n.clone())
                        .map_err(|e| format!("tls.server_name: {e}"))?,
                ),
                None => None,
            };
            Some(UpstreamTls {
                connector: TlsConnector::from(cfg),
                server_name,
            })
        }
        None => None,
    })
}

fn sticky_attributes(s: &Sticky) -> String {
    let mut a = format!("; Path={}", s.path);
    if let Some(d) = &s.domain {
        a.push_str("; Domain=");
        a.push_str(d);
    }
    if let Some(ttl) = s.ttl {
        a.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if s.secure {
        a.push_str("; Secure");
    }
    if s.http_only {
        a.push_str("; HttpOnly");
    }
    if let Some(ss) = &s.same_site {
        let v = match ss.as_str() {
            "strict" => "Strict",
            "none" => "None",
            _ => "Lax",
        };
        a.push_str("; SameSite=");
        a.push_str(v);
    }
    a
}

fn compile_upstream(u: &Upstream, ctx: &UpstreamCtx<'_>) -> Result<UpstreamRt, String> {
    let (live, metrics) = (ctx.live, ctx.metrics);
    let tls = upstream_tls(u, u.protocol)?;
    let health = match &u.health_check {
        Some(hc) => {
            // gRPC health checks speak HTTP/2 whatever the data protocol.
            let protocol = match (&hc.kind, u.tls.is_some()) {
                (HealthCheckKind::Grpc { .. }, true) => UpstreamProtocol::H2,
                (HealthCheckKind::Grpc { .. }, false) => UpstreamProtocol::H2c,
                _ => u.protocol,
            };
            Some(HealthRt {
                cfg: hc.clone(),
                transport: Arc::new(Transport {
                    protocol,
                    tls: upstream_tls(u, protocol)?,
                    connect_timeout: hc.timeout,
                }),
            })
        }
        None => None,
    };
    // Pools are only shared between snapshots that connect the same way.
    let transport_key = TransportKey {
        protocol: u.protocol,
        tls: u.tls.clone(),
        pool: u.pool.clone(),
        connect_timeout: u.connect_timeout,
    };
    let weights: Vec<u32> = u.servers.iter().map(|s| s.weight.max(1)).collect();
    let ids: Vec<&str> = u.servers.iter().map(|s| s.address.as_str()).collect();
    let kind = match u.balancer {
        BalancerKind::RoundRobin => Kind::RoundRobin,
        BalancerKind::WeightedRoundRobin => Kind::WeightedRoundRobin,
        BalancerKind::LeastConnections => Kind::LeastConnections,
        BalancerKind::Random => Kind::Random,
        BalancerKind::P2cEwma => Kind::P2cEwma,
        BalancerKind::ConsistentHash => match u.hash.as_ref().map(|h| h.algorithm) {
            Some(HashAlgorithm::Ring) => Kind::Ring,
            _ => Kind::Maglev,
        },
    };
    let servers = u
        .servers
        .iter()
        .map(|s| {
            let key = ServerKey {
                upstream: u.name.clone(),
                address: s.address.clone(),
                transport: transport_key.clone(),
            };
            let srv_live = live.server(&key, ctx.ramp);
            let m = ServerMetrics::new(metrics, &u.name, &s.address, u.outlier.is_some());
            let flags = srv_live.state.flags();
            m.healthy
                .set(i64::from(flags & crate::live::flag::DOWN == 0));
            m.draining
                .set(i64::from(flags & crate::live::flag::DRAINING != 0));
            ServerRt {
                target: Target::new(&s.address),
                weight: s.weight,
                sticky_value: match &u.sticky {
                    Some(st) => sy_policy::sticky::cookie_value(&st.secret, &s.address),
                    None => String::new(),
                },
                live: srv_live,
                metrics: m,
                key,
            }
        })
        .collect();
    let b = &u.retry_budget;
    let upstream_key = UpstreamKey::of(u);
    let (ratio, floor, window) = (b.ratio, b.min_retries_per_second, b.window);
    let up_live = live.upstream(&upstream_key, || RetryBudget::new(ratio, floor, window));
    Ok(UpstreamRt {
        name: u.name.clone(),
        servers,
        balancer: balance::build_with_ids(kind, &weights, &ids),
        hash_key: u.hash.as_ref().map(|h| h.key.clone()),
        transport: Arc::new(Transport {
            protocol: u.protocol,
            tls,
            connect_timeout: u.connect_timeout,
        }),
        response_timeout: u.response_timeout,
        live: up_live,
        metrics: UpstreamMetrics::new(metrics, &u.name, &UpstreamFeatures::of(u, ctx.budgeted)),
        outlier: u.outlier.as_ref().map(|o| OutlierRt {
            cfg: OutlierConfig {
                consecutive_5xx: o.consecutive_5xx,
                consecutive_gateway: o.consecutive_gateway_failures,
                base_ejection_ns: o.base_ejection_time.as_nanos() as u64,
                max_ejection_ns: o.max_ejection_time.as_nanos() as u64,
            },
            max_ejected_percent: o.max_ejected_percent,
        }),
        panic_threshold: u.panic_threshold,
        slow_start_ns: u.slow_start.map_or(0, |d| d.as_nanos() as u64),
        breaker: u.circuit_breaker.clone(),
        sticky: u.sticky.as_ref().map(|s| StickyRt {
            cookie: s.cookie.clone(),
            attributes: sticky_attributes(s),
        }),
        health,
        budgeted: ctx.budgeted,
        cfg: u.clone(),
    })
}

impl UpstreamRt {
    /// "http" or "https" towards the servers.
    pub fn scheme(&self) -> &'static str {
        if self.transport.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The live-state keys a snapshot uses (everything else can be
/// forgotten).
pub fn live_keys(s: &Snapshot) -> LiveKeys {
    let mut keys = LiveKeys::default();
    for u in &s.upstreams {
        keys.upstreams.insert(UpstreamKey::of(&u.cfg));
        for srv in &u.servers {
            keys.servers.insert(srv.key.clone());
        }
    }
    keys
}
