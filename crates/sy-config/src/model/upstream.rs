//! `[upstreams.NAME]`: servers, balancers, health, outlier detection,
//! breakers, pools and TLS to the servers.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::ser;

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upstream {
    /// The table name.
    pub name: String,
    /// `servers`: at least one. Each is `"host:port"` or
    /// `{ address = "host:port", weight = 1 }`.
    pub servers: Vec<Server>,
    /// `balancer`, default round_robin.
    pub balancer: BalancerKind,
    /// `[upstreams.NAME.hash]`: required when `balancer = "consistent_hash"`.
    pub hash: Option<HashPolicy>,
    /// `protocol`: how to speak to the servers. Default http1.
    pub protocol: UpstreamProtocol,
    /// `connect_timeout`, default 5s.
    #[serde(serialize_with = "ser::duration")]
    pub connect_timeout: Duration,
    /// `response_timeout`: from request sent to response headers. Default 60s.
    #[serde(serialize_with = "ser::duration")]
    pub response_timeout: Duration,
    /// `[upstreams.NAME.pool]`.
    pub pool: Pool,
    /// `[upstreams.NAME.tls]`; None = plaintext.
    pub tls: Option<UpstreamTls>,
    /// `[upstreams.NAME.health_check]`: active checks; None = none.
    pub health_check: Option<HealthCheck>,
    /// `[upstreams.NAME.outlier]`: passive health; None = off.
    pub outlier: Option<Outlier>,
    /// `panic_threshold`: percent 0..=100. When fewer than this share of
    /// servers are healthy, balance over all of them. Default 50; 0 = never.
    pub panic_threshold: u8,
    /// `slow_start`: ramp window for a new or recovered server. Default none.
    #[serde(serialize_with = "ser::opt_duration")]
    pub slow_start: Option<Duration>,
    /// `[upstreams.NAME.circuit_breaker]`.
    pub circuit_breaker: CircuitBreaker,
    /// `[upstreams.NAME.retry_budget]`.
    pub retry_budget: RetryBudget,
    /// `[upstreams.NAME.sticky]`: cookie-based session persistence; None = off.
    pub sticky: Option<Sticky>,
}

/// `[upstreams.NAME.health_check]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthCheck {
    /// `type` ("http" default, "tcp", "grpc") and its keys.
    #[serde(flatten)]
    pub kind: HealthCheckKind,
    /// `interval`: time between checks of one server. Default 5s.
    #[serde(serialize_with = "ser::duration")]
    pub interval: Duration,
    /// `jitter`: each interval is shortened or lengthened by up to this.
    /// Default interval / 10. Must be less than `interval`.
    #[serde(serialize_with = "ser::duration")]
    pub jitter: Duration,
    /// `timeout`: one check's deadline. Default 2s.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
    /// `unhealthy_threshold`: consecutive failures that mark a server down. Default 3.
    pub unhealthy_threshold: u32,
    /// `healthy_threshold`: consecutive successes that mark it up again. Default 2.
    pub healthy_threshold: u32,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `type = "http"`: a request whose status (and optionally body) is checked.
    Http {
        /// `method`, default "GET".
        method: String,
        /// `path`, default "/". Must start with "/".
        path: String,
        /// `host`: Host header; default the server address.
        host: Option<String>,
        /// `expect_status`: inclusive ranges; "200", "200-299" or 204 in
        /// TOML. Default [200-399].
        #[serde(serialize_with = "ser::status_ranges")]
        expect_status: Vec<(u16, u16)>,
        /// `expect_body`: the body must contain this substring (first 64KiB).
        expect_body: Option<String>,
    },
    /// `type = "tcp"`: the TCP (and TLS, if configured) connection succeeds.
    Tcp,
    /// `type = "grpc"`: grpc.health.v1.Health/Check answers SERVING.
    Grpc {
        /// `service`: the service name asked about; default "" (the server).
        service: String,
    },
}

/// `[upstreams.NAME.outlier]`: passive health (outlier detection).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlier {
    /// `consecutive_5xx`: eject after this many 5xx answers in a row. Default 5; 0 = off.
    pub consecutive_5xx: u32,
    /// `consecutive_gateway_failures`: eject after this many gateway
    /// failures in a row (connect refused/failed, reset, timeout, 502/503/504).
    /// Default 5; 0 = off.
    pub consecutive_gateway_failures: u32,
    /// `base_ejection_time`: first ejection's length; the n-th in a row
    /// lasts n times this. Default 30s.
    #[serde(serialize_with = "ser::duration")]
    pub base_ejection_time: Duration,
    /// `max_ejection_time`: cap on one ejection. Default 300s.
    #[serde(serialize_with = "ser::duration")]
    pub max_ejection_time: Duration,
    /// `max_ejected_percent`: at most this share of servers ejected at once
    /// (at least one may always be). Default 10.
    pub max_ejected_percent: u8,
}

/// `[upstreams.NAME.circuit_breaker]`. Each limit is None (unlimited) by default.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CircuitBreaker {
    /// `max_connections`: open connections to all servers of the upstream.
    pub max_connections: Option<u64>,
    /// `max_pending_requests`: requests waiting for a connection.
    pub max_pending_requests: Option<u64>,
    /// `max_requests`: requests in flight to the upstream.
    pub max_requests: Option<u64>,
    /// `max_retries`: retries (and hedges) in flight to the upstream.
    pub max_retries: Option<u64>,
}

/// `[upstreams.NAME.retry_budget]`: retries allowed per window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBudget {
    /// `ratio`: retries may add this share of the window's requests,
    /// 0.0..=1.0. Default 0.2.
    pub ratio: f64,
    /// `min_retries_per_second`: retries always allowed per second of the
    /// window, whatever the ratio. Default 10.
    pub min_retries_per_second: u32,
    /// `window`: how far back requests and retries are counted, 1s..=60s. Default 10s.
    #[serde(serialize_with = "ser::duration")]
    pub window: Duration,
}

/// `[upstreams.NAME.sticky]`: a proxy-inserted cookie pins a client to a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sticky {
    /// `cookie`: the cookie name. Default "sy_server".
    pub cookie: String,
    /// `ttl`: Max-Age; None = a session cookie. Default none.
    #[serde(serialize_with = "ser::opt_duration")]
    pub ttl: Option<Duration>,
    /// `path`: cookie Path. Default "/".
    pub path: String,
    /// `domain`: cookie Domain. Default none.
    pub domain: Option<String>,
    /// `secure`: add Secure. Default false.
    pub secure: bool,
    /// `http_only`: add HttpOnly. Default true.
    pub http_only: bool,
    /// `same_site`: "lax", "strict" or "none". Default none (attribute omitted).
    pub same_site: Option<String>,
    /// `secret`: mixed into the cookie value so it cannot be mapped back to
    /// an address. Default: the upstream's name.
    #[serde(serialize_with = "ser::redacted")]
    pub secret: String,
}

/// One server of an upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    /// `address`: "ip:port" or "hostname:port" (resolved at connect time).
    pub address: String,
    /// `weight`: 1..=10000, default 1.
    pub weight: u32,
}

/// `balancer = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancerKind {
    /// "round_robin": each healthy server in turn, weights ignored.
    RoundRobin,
    /// "weighted_round_robin": nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// "least_connections": fewest in-flight requests divided by weight.
    LeastConnections,
    /// "random": uniformly random, weighted.
    Random,
    /// "p2c_ewma": power of two choices over peak-EWMA latency x load.
    P2cEwma,
    /// "consistent_hash": see `[upstreams.NAME.hash]`.
    ConsistentHash,
}

/// `[upstreams.NAME.hash]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashPolicy {
    /// `key`: "client_ip", "path", "header:NAME" or "cookie:NAME".
    pub key: HashKey,
    /// `algorithm`: "maglev" (default) or "ring".
    pub algorithm: HashAlgorithm,
}

/// What a consistent hash is computed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP (the trusted X-Forwarded-For client when the peer is
    /// a trusted proxy).
    ClientIp,
    /// The request path (without query).
    Path,
    /// A request header's value (name lower-cased).
    Header(String),
    /// A cookie's value.
    Cookie(String),
}

/// Consistent-hash table construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// Google's Maglev lookup table (65537 entries).
    Maglev,
    /// A ketama-style ring with 160 points per unit of weight.
    Ring,
}

/// `protocol = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// "http1": HTTP/1.1 with keep-alive pools.
    Http1,
    /// "h2c": HTTP/2 over cleartext, prior knowledge, multiplexed.
    H2c,
    /// "h2": HTTP/2 over TLS (requires `[tls]`), ALPN h2.
    H2,
    /// "auto": with TLS, ALPN offers h2 and http/1.1 and uses what the
    /// server picks; without TLS, HTTP/1.1.
    Auto,
}

/// `[upstreams.NAME.pool]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Pool {
    /// `max_idle_per_server`: idle keep-alive connections kept per server
    /// (per worker). Default 64.
    pub max_idle_per_server: usize,
    /// `idle_timeout`: an idle pooled connection is closed after this.
    /// Default 90s.
    #[serde(serialize_with = "ser::duration")]
    pub idle_timeout: Duration,
}

/// `[upstreams.NAME.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamTls {
    /// `server_name`: SNI and the name verified; default: the host part of
    /// each server's address.
    pub server_name: Option<String>,
    /// `ca`: PEM file of trusted roots; default: the system roots.
    pub ca: Option<PathBuf>,
    /// `verify`: verify the server certificate. Default true.
    pub verify: bool,
}

impl Serialize for HashKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HashKey::ClientIp => s.serialize_str("client_ip"),
            HashKey::Path => s.serialize_str("path"),
            HashKey::Header(h) => s.collect_str(&format_args!("header:{h}")),
            HashKey::Cookie(c) => s.collect_str(&format_args!("cookie:{c}")),
        }
    }
}
