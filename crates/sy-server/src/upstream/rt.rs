//! An upstream as the data path sees it ([`UpstreamRt`]): its servers,
//! balancer, transport, live state and metric handles, compiled from its
//! `[upstreams.NAME]` table, and the route parts that point at upstreams
//! (splits and mirrors).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use sy_config::model::{
    BalancerKind, CircuitBreaker, HashAlgorithm, HashKey, HealthCheck, HealthCheckKind, Sticky,
    Upstream, UpstreamProtocol,
};
use sy_policy::balance::{self, Balancer, Kind};
use sy_policy::outlier::OutlierConfig;
use sy_policy::retry_budget::RetryBudget;
use tokio_rustls::TlsConnector;

use crate::live::{Live, ServerKey, ServerLive, TransportKey, UpstreamKey, UpstreamLive};
use crate::metrics::{Metrics, ServerMetrics, UpstreamFeatures, UpstreamMetrics};
use crate::tls;
use crate::upstream::connect::{Target, Transport, UpstreamTls};

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

/// What compiling an upstream needs besides its table.
pub struct UpstreamCtx<'a> {
    /// State that survives reloads.
    pub live: &'a Live,
    /// Metric families.
    pub metrics: &'a Metrics,
    /// Servers new to the live registry start a slow-start ramp (not on
    /// the first load).
    pub ramp: bool,
    /// Some route retries or hedges to it.
    pub budgeted: bool,
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

/// Compiles one `[upstreams.NAME]`.
pub fn compile_upstream(u: &Upstream, ctx: &UpstreamCtx<'_>) -> Result<UpstreamRt, String> {
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
