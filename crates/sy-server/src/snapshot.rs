//! Compiling a validated `Config` into the immutable `Snapshot` the data
//! path reads: per-listener route tables, TLS acceptors, upstreams with
//! their balancers and transports, and pre-resolved metric handles.
//!
//! Building a snapshot does file IO (certificates) and must run off the
//! request path; the result is swapped in atomically by `runtime`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use sy_config::model::{
    Action, BalancerKind, Config, HashAlgorithm, HashKey, Listener, PathMatch, Route, Upstream,
    ValueMatch,
};
use sy_policy::balance::{self, Balancer, Kind};
use sy_policy::route::{PathSpec, RouteSpec, RouteTable, ValueSpec};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::live::{Live, ServerLive};
use crate::metrics::{ListenerLabel, Metrics, RouteMetrics, ServerMetrics};
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
}

impl Snapshot {
    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.cfg.name == name)
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
    /// Metric handles.
    pub metrics: RouteMetrics,
}

/// A compiled route action.
pub enum ActionRt {
    /// Proxy to an upstream.
    Upstream(Arc<UpstreamRt>),
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
        /// Target.
        location: String,
        /// Append path and query.
        keep_path: bool,
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
}

/// One server of an upstream.
pub struct ServerRt {
    /// Where it is.
    pub target: Target,
    /// Live state (survives reloads).
    pub live: Arc<ServerLive>,
    /// Metric handles.
    pub metrics: ServerMetrics,
    /// Live-state key.
    pub key: String,
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
    for u in &config.upstreams {
        match compile_upstream(u, live, metrics) {
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
    let mut listeners = Vec::new();
    for l in &config.listeners {
        match compile_listener(l, &config.routes, &routes, metrics) {
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
    })
}

fn compile_listener(
    l: &Listener,
    route_cfgs: &[Route],
    routes: &[Arc<RouteRt>],
    metrics: &Metrics,
) -> Result<ListenerRt, String> {
    let tls = match &l.tls {
        Some(t) => Some(TlsAcceptor::from(
            tls::server_config(t, l.http2).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let mut specs = Vec::new();
    let mut mine = Vec::new();
    for (cfg, rt) in route_cfgs.iter().zip(routes) {
        if cfg.listeners.is_empty() || cfg.listeners.iter().any(|n| n == &l.name) {
            specs.push(route_spec(cfg));
            mine.push(rt.clone());
        }
    }
    let table = RouteTable::new(&specs).map_err(|e| format!("route table: {e}"))?;
    Ok(ListenerRt {
        cfg: l.clone(),
        tls,
        table,
        routes: mine,
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
            }
        },
    })
}

fn value_spec(v: &ValueMatch) -> ValueSpec {
    match v {
        ValueMatch::Exact(s) => ValueSpec::Exact(s.clone()),
        ValueMatch::Regex(s) => ValueSpec::Regex(s.clone()),
        ValueMatch::Present => ValueSpec::Present,
    }
}

fn route_spec(r: &Route) -> RouteSpec {
    let m = &r.matcher;
    RouteSpec {
        hosts: m.hosts.clone(),
        path: m.path.as_ref().map(|p| match p {
            PathMatch::Exact(s) => PathSpec::Exact(s.clone()),
            PathMatch::Prefix(s) => PathSpec::Prefix(s.clone()),
            PathMatch::Regex(s) => PathSpec::Regex(s.clone()),
        }),
        methods: m.methods.clone(),
        headers: m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), value_spec(v)))
            .collect(),
        query: m
            .query
            .iter()
            .map(|(k, v)| (k.clone(), value_spec(v)))
            .collect(),
    }
}

fn compile_route(
    r: &Route,
    upstreams: &[Arc<UpstreamRt>],
    metrics: &Metrics,
) -> Result<RouteRt, String> {
    let action = match &r.action {
        Action::Upstream(name) => ActionRt::Upstream(
            upstreams
                .iter()
                .find(|u| &u.name == name)
                .cloned()
                .ok_or_else(|| format!("unknown upstream {name}"))?,
        ),
        Action::Respond {
            status,
            body,
            content_type,
        } => ActionRt::Respond {
            status: http::StatusCode::from_u16(*status).map_err(|e| e.to_string())?,
            body: Bytes::from(body.clone()),
            content_type: HeaderValue::from_str(content_type).map_err(|e| e.to_string())?,
        },
        Action::Redirect {
            status,
            location,
            keep_path,
        } => ActionRt::Redirect {
            status: http::StatusCode::from_u16(*status).map_err(|e| e.to_string())?,
            location: location.clone(),
            keep_path: *keep_path,
        },
    };
    let host_rewrite = match &r.host_rewrite {
        Some(h) => Some(HeaderValue::from_str(h).map_err(|e| format!("host_rewrite: {e}"))?),
        None => None,
    };
    Ok(RouteRt {
        name: r.name.clone(),
        action,
        timeout: r.timeout,
        max_request_body: r.max_request_body,
        host_rewrite,
        metrics: RouteMetrics::new(metrics, &r.name),
    })
}

fn compile_upstream(u: &Upstream, live: &Live, metrics: &Metrics) -> Result<UpstreamRt, String> {
    let tls = match &u.tls {
        Some(t) => {
            let cfg = tls::client_config(t, u.protocol).map_err(|e| e.to_string())?;
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
    };
    // Pools are only shared between snapshots that connect the same way.
    let fingerprint = format!(
        "{:?}|{:?}|{:?}|{:?}",
        u.protocol, u.tls, u.pool, u.connect_timeout
    );
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
            let key = format!("{}\u{0}{}\u{0}{}", u.name, s.address, fingerprint);
            ServerRt {
                target: Target::new(&s.address),
                live: live.server(&key, u.pool.max_idle_per_server, u.pool.idle_timeout),
                metrics: ServerMetrics::new(metrics, &u.name, &s.address),
                key,
            }
        })
        .collect();
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

/// The live-state keys a snapshot uses (everything else can be forgotten).
pub fn live_keys(s: &Snapshot) -> Vec<String> {
    let mut keys = Vec::new();
    for l in &s.listeners {
        for r in &l.routes {
            if let ActionRt::Upstream(u) = &r.action {
                for srv in &u.servers {
                    keys.push(srv.key.clone());
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}
