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
use sy_config::model::{Action, Config, FilterRef, Hedge, Listener, Retry, Route};
use sy_policy::ip::IpRules;
use sy_policy::route::RouteTable;
use tokio_rustls::TlsAcceptor;

use crate::filter::{Chain, CompileCache, Filter, Fixed};
use crate::live::{Live, LiveKeys, UpstreamKey};
use crate::metrics::{
    ByClass, ListenerKind, ListenerLabel, Metrics, RouteMetrics, RouteOutcome, RouteUpstream,
};
use crate::tls;
use crate::upstream::rt::{MirrorRt, SplitRt, UpstreamCtx, UpstreamRt, compile_upstream};

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
    /// Brings the gauges that mirror live state up to date; called right
    /// before `/metrics` is encoded, so the request path does not touch them.
    pub fn refresh_gauges(&self) {
        for u in &self.upstreams {
            let open = u
                .live
                .connections
                .load(std::sync::atomic::Ordering::Relaxed);
            u.metrics
                .connections_open
                .set(i64::try_from(open).unwrap_or(i64::MAX));
        }
    }

    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.cfg.name == name)
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<UpstreamRt>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// A route as one listener serves it.
pub struct ListenerRoute {
    /// The route.
    pub route: Arc<RouteRt>,
    /// Its filter chain on this listener: the listener's filters, then the
    /// route's.
    pub chain: Chain,
}

/// A listener as the data path sees it.
pub struct ListenerRt {
    /// Its configuration.
    pub cfg: Listener,
    /// TLS acceptor when the listener terminates TLS.
    pub tls: Option<TlsAcceptor>,
    /// `[listeners.NAME.ip]`, checked on the peer of each accepted
    /// connection.
    pub ip: Option<IpGate>,
    /// `proxy_protocol`: the header every connection must start with, and
    /// the counters of connections refused for it.
    pub proxy_protocol: Option<ProxyProtocolGate>,
    /// Route matcher over `routes`.
    pub table: RouteTable,
    /// The routes serving this listener, each with its filter chain here;
    /// `table` returns indexes into it.
    pub routes: Vec<ListenerRoute>,
    /// The listener's own filters: the chain of answers no route gave.
    pub default_chain: Chain,
    /// "1.1 switchyard" style `Via` values, precomputed.
    pub via_h1: HeaderValue,
    /// Via for HTTP/2 requests.
    pub via_h2: HeaderValue,
    /// Connection metric handles.
    pub metrics: ListenerMetrics,
}

/// A listener's IP rules, checked right after accept, before TLS and
/// before any byte is read.
pub struct IpGate {
    /// The allow and deny lists (shared with equal lists of filters).
    pub rules: Arc<IpRules>,
    /// `downstream_errors_total{kind="ip_denied"}` of the listener.
    pub refused: prometheus_client::metrics::counter::Counter,
}

/// A listener's PROXY protocol counters: `downstream_errors_total` of the
/// listener by `kind`, resolved once so that a refusal costs one add.
pub struct ProxyProtocolGate {
    /// `kind="proxy_protocol_missing"`: the connection began with something
    /// else (plain HTTP, a TLS ClientHello).
    pub missing: prometheus_client::metrics::counter::Counter,
    /// `kind="proxy_protocol_invalid"`: a malformed or over-long header, or
    /// one cut short by the client closing.
    pub invalid: prometheus_client::metrics::counter::Counter,
    /// `kind="proxy_protocol_timeout"`: no complete header within
    /// `request_header_timeout`.
    pub timeout: prometheus_client::metrics::counter::Counter,
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
    pub requests: ByClass,
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
    // Named filters are compiled once and shared by every chain using them;
    // the cache shares the IP rules of equal lists across all of them.
    let mut cache = CompileCache::default();
    let mut named: HashMap<&str, Arc<Filter>> = HashMap::new();
    for f in &config.filters {
        match Filter::compile_in(&f.filter, &mut cache) {
            Ok(c) => {
                named.insert(&f.name, Arc::new(c));
            }
            Err(e) => errors.push(format!("filter {}: {e}", f.name)),
        }
    }
    let mut filters = Filters {
        named: &named,
        cache,
    };
    let mut listeners = Vec::new();
    for l in &config.listeners {
        match compile_listener(l, &config.routes, &routes, &mut filters, metrics) {
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
    cache: CompileCache<'a>,
}

impl<'a> Filters<'a> {
    /// The compiled filters of a `filters` list, in order.
    fn resolve(&mut self, refs: &'a [FilterRef]) -> Result<Vec<Arc<Filter>>, String> {
        refs.iter()
            .map(|r| match r {
                FilterRef::Named(name) => self
                    .named
                    .get(name.as_str())
                    .cloned()
                    .ok_or_else(|| format!("unknown filter {name}")),
                FilterRef::Inline(f) => Filter::compile_in(f, &mut self.cache).map(Arc::new),
            })
            .collect()
    }
}

fn compile_listener<'a>(
    l: &'a Listener,
    route_cfgs: &'a [Route],
    routes: &[Arc<RouteRt>],
    filters: &mut Filters<'a>,
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
    for (cfg, rt) in route_cfgs.iter().zip(routes) {
        if cfg.serves(&l.name) {
            specs.push(cfg.matcher.spec());
            // One CORS policy per chain: a route's cors replaces its
            // listener's.
            let own = filters.resolve(&cfg.filters)?;
            let replaces_cors = own.iter().any(|f| f.is_cors());
            let mut chain: Vec<_> = defaults
                .iter()
                .filter(|f| !(replaces_cors && f.is_cors()))
                .cloned()
                .collect();
            chain.extend(own);
            let fixed = Fixed {
                listener: &l.name,
                route: &cfg.name,
            };
            mine.push(ListenerRoute {
                route: rt.clone(),
                chain: Chain::for_route(chain, fixed, metrics),
            });
        }
    }
    let table = RouteTable::new(&specs).map_err(|e| format!("route table: {e}"))?;
    let ip = l.ip.as_ref().map(|cfg| IpGate {
        rules: filters.cache.ip_rules(cfg),
        refused: metrics
            .downstream_errors
            .get_or_create(&ListenerKind {
                listener: l.name.clone(),
                kind: "ip_denied".to_owned(),
            })
            .clone(),
    });
    let kind_counter = |kind: &str| {
        metrics
            .downstream_errors
            .get_or_create(&ListenerKind {
                listener: l.name.clone(),
                kind: kind.to_owned(),
            })
            .clone()
    };
    let proxy_protocol = l.proxy_protocol.then(|| ProxyProtocolGate {
        missing: kind_counter("proxy_protocol_missing"),
        invalid: kind_counter("proxy_protocol_invalid"),
        timeout: kind_counter("proxy_protocol_timeout"),
    });
    Ok(ListenerRt {
        cfg: l.clone(),
        tls,
        ip,
        proxy_protocol,
        table,
        routes: mine,
        default_chain: Chain::for_route(
            defaults,
            Fixed {
                listener: &l.name,
                route: "",
            },
            metrics,
        ),
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
                requests: ByClass::listener(metrics, &l.name),
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
