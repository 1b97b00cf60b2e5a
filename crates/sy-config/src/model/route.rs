//! `[[routes]]`: matching, actions, retries, hedging, mirroring, splits.

use std::time::Duration;

use serde::Serialize;

use super::{FilterRef, ser};

/// One `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// `name`: required, unique.
    pub name: String,
    /// `listeners`: listener names this route serves; empty = all.
    pub listeners: Vec<String>,
    /// `[routes.match]`.
    #[serde(rename = "match")]
    pub matcher: Match,
    /// The action: exactly one of `upstream`, `split`, `respond`, `redirect`.
    #[serde(flatten)]
    pub action: Action,
    /// `timeout`: total deadline for the whole exchange up to the end of
    /// the response headers. Default none (the upstream's timeouts apply).
    #[serde(serialize_with = "ser::opt_duration")]
    pub timeout: Option<Duration>,
    /// `max_request_body`: larger bodies get 413. Default none (unlimited).
    pub max_request_body: Option<u64>,
    /// `host_rewrite`: None keeps the client's Host; Some(h) sends h.
    pub host_rewrite: Option<String>,
    /// `[routes.retry]`: None = no retries.
    pub retry: Option<Retry>,
    /// `[routes.hedge]`: None = no hedging.
    pub hedge: Option<Hedge>,
    /// `[routes.mirror]`: None = no mirroring.
    pub mirror: Option<Mirror>,
    /// `filters`: the route's filters, after the listener's. Default none.
    pub filters: Vec<FilterRef>,
}

/// `[routes.retry]`: when and how a failed attempt is tried again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// `attempts`: total tries including the first, 2..=10. Default 3.
    pub attempts: u32,
    /// `on`: the failures that are retried.
    pub on: RetryOn,
    /// `per_try_timeout`: deadline for each attempt's response head.
    /// Default none (the upstream's `response_timeout`).
    #[serde(serialize_with = "ser::opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// `backoff_base`: first backoff; doubles per retry, full jitter. Default 25ms.
    #[serde(serialize_with = "ser::duration")]
    pub backoff_base: Duration,
    /// `backoff_max`: backoff cap. Default 250ms.
    #[serde(serialize_with = "ser::duration")]
    pub backoff_max: Duration,
    /// `non_idempotent`: also retry POST, PATCH and other non-idempotent
    /// methods. Default false.
    pub non_idempotent: bool,
    /// `buffer`: a request body up to this size is kept for replay; a
    /// larger (or unknown-length) body is sent once. Default 64KiB.
    pub buffer: u64,
}

/// `on = [...]` of `[routes.retry]`, plus `statuses`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RetryOn {
    /// "connect-failure": the connection to the server could not be made.
    pub connect_failure: bool,
    /// "refused-stream": an HTTP/2 server refused the stream (REFUSED_STREAM).
    pub refused_stream: bool,
    /// "reset": the connection or stream was reset / closed before the
    /// response head arrived.
    pub reset: bool,
    /// "timeout": the per-try timeout (or the upstream's response timeout) expired.
    pub timeout: bool,
    /// "gateway-error": the server answered 502, 503 or 504.
    pub gateway_error: bool,
    /// `statuses = [409, ...]`: further response statuses that are retried.
    pub statuses: Vec<u16>,
}

/// `[routes.hedge]`: send a second attempt if the first is slow.
#[derive(Debug, Clone, PartialEq)]
pub struct Hedge {
    /// `delay`: a duration, or "p95" for the upstream's recent p95 latency.
    pub delay: HedgeDelay,
}

/// When the hedged attempt is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// `delay = "50ms"`.
    Fixed(Duration),
    /// `delay = "p95"`: the upstream's recent 95th percentile response time
    /// (falls back to `fallback`, default 100ms, until enough samples exist).
    P95 {
        /// `fallback`: delay used while there are fewer than 20 samples.
        fallback: Duration,
    },
}

/// `[routes.mirror]`: copy a share of requests to another upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mirror {
    /// `upstream`: where copies go (must exist).
    pub upstream: String,
    /// `percent`: share of requests copied, 0 < p <= 100. Default 100.
    pub percent: f64,
    /// `max_in_flight`: copies outstanding at once; more are dropped and
    /// counted. Default 64.
    pub max_in_flight: u32,
    /// `max_body`: requests with larger (or unknown-length) bodies are not
    /// mirrored. Default 64KiB.
    pub max_body: u64,
}

/// `[routes.match]`. All given conditions must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Match {
    /// `hosts`: exact names or `*.suffix` wildcards (case-insensitive, port
    /// ignored). Empty = any host.
    pub hosts: Vec<String>,
    /// `path` (prefix), `path_exact` or `path_regex`; at most one. None = any path.
    #[serde(flatten)]
    pub path: Option<PathMatch>,
    /// `methods`: upper-case method names. Empty = any.
    pub methods: Vec<String>,
    /// `headers`: header name (lower-cased) -> condition.
    #[serde(serialize_with = "ser::pairs")]
    pub headers: Vec<(String, ValueMatch)>,
    /// `query`: query parameter name -> condition.
    #[serde(serialize_with = "ser::pairs")]
    pub query: Vec<(String, ValueMatch)>,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PathMatch {
    /// `path_exact = "/x"`.
    #[serde(rename = "path_exact")]
    Exact(String),
    /// `path = "/api"`: matches "/api", "/api/..." and "/api?...", not "/apix".
    /// A prefix ending in "/" matches anything under it.
    #[serde(rename = "path")]
    Prefix(String),
    /// `path_regex = "^/v[0-9]+/"` (Rust regex syntax, unanchored unless the
    /// pattern anchors itself).
    #[serde(rename = "path_regex")]
    Regex(String),
}

/// A header or query-parameter condition. In TOML, a string is `Exact`,
/// `{ present = true }` is `Present`, `{ regex = "..." }` is `Regex`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatch {
    /// The value equals this string.
    Exact(String),
    /// The value matches this regex.
    Regex(String),
    /// The header/parameter is present, whatever its value.
    Present,
}

/// What a route does with a matching request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `upstream = "NAME"`: proxy to that upstream.
    Upstream(String),
    /// `[routes.split]`: weighted split across upstreams (canary, blue-green).
    Split(Split),
    /// `respond = { status = 200, body = "...", content_type = "text/plain" }`.
    Respond {
        /// HTTP status.
        status: u16,
        /// Body text.
        body: String,
        /// Content-Type; default "text/plain; charset=utf-8".
        content_type: String,
    },
    /// `redirect = { location = "https://...", status = 302, keep_path = false }`
    /// or `redirect = { scheme = "https", port = 8443, host = "..." }`.
    Redirect(Redirect),
}

/// `redirect = { ... }` of a route: either a fixed `location`, or the
/// request's own URL with its scheme, host and/or port changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redirect {
    /// `status`: 301, 302 (default), 303, 307 or 308.
    pub status: u16,
    /// Where to send the client.
    #[serde(flatten)]
    pub target: RedirectTarget,
}

/// Where a redirect sends the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RedirectTarget {
    /// `location = "https://example.com/new"` (an absolute http(s) URL or
    /// an absolute path), sent as is; with `keep_path`, the request's path
    /// and query are appended.
    Location {
        /// `location`.
        location: String,
        /// `keep_path`: append the request's path and query. Default false.
        keep_path: bool,
    },
    /// `scheme`, `host` and/or `port`: the request's URL (its host, path
    /// and query) with these parts replaced, like nginx's
    /// `return 301 https://$host$request_uri` or HAProxy's
    /// `redirect scheme https`.
    Rewrite {
        /// `scheme`: "http" or "https"; None keeps the request's.
        #[serde(skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        /// `host`: a host name without port; None keeps the request's.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// `port`: None keeps the request's port unless the scheme
        /// changes (then the new scheme's default port is used, and not
        /// written). A port that is the scheme's default is not written.
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
}

/// `[routes.split]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    /// `[[routes.split.backends]]`: at least one; weights sum > 0.
    pub backends: Vec<SplitBackend>,
    /// `header`: a request header whose value names one of the backends'
    /// upstreams forces that upstream (e.g. `x-canary: api-v2`).
    pub header: Option<String>,
    /// `cookie`: a cookie whose value names one of the backends' upstreams
    /// forces that upstream.
    pub cookie: Option<String>,
    /// `skip_unavailable`: leave out of the weighted choice a backend whose
    /// upstream has no available server (all down, ejected or drained), and
    /// let retries move to another backend. Default true.
    pub skip_unavailable: bool,
}

/// One `[[routes.split.backends]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitBackend {
    /// `upstream`: must exist.
    pub upstream: String,
    /// `weight`: 0..=10000; the share is weight / sum of weights.
    pub weight: u32,
}

impl Match {
    /// The conditions in the form `sy_policy::route` compiles.
    pub fn spec(&self) -> sy_policy::route::RouteSpec {
        use sy_policy::route::{PathSpec, RouteSpec, ValueSpec};
        let value = |v: &ValueMatch| match v {
            ValueMatch::Exact(s) => ValueSpec::Exact(s.clone()),
            ValueMatch::Regex(s) => ValueSpec::Regex(s.clone()),
            ValueMatch::Present => ValueSpec::Present,
        };
        RouteSpec {
            hosts: self.hosts.clone(),
            path: self.path.as_ref().map(|p| match p {
                PathMatch::Exact(s) => PathSpec::Exact(s.clone()),
                PathMatch::Prefix(s) => PathSpec::Prefix(s.clone()),
                PathMatch::Regex(s) => PathSpec::Regex(s.clone()),
            }),
            methods: self.methods.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), value(v)))
                .collect(),
            query: self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), value(v)))
                .collect(),
        }
    }
}

impl Route {
    /// Whether this route serves listener `name`.
    pub fn serves(&self, listener: &str) -> bool {
        self.listeners.is_empty() || self.listeners.iter().any(|l| l == listener)
    }
}

impl Serialize for ValueMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ValueMatch::Exact(v) => s.serialize_str(v),
            ValueMatch::Regex(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("regex", r)?;
                m.end()
            }
            ValueMatch::Present => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("present", &true)?;
                m.end()
            }
        }
    }
}

impl Serialize for Hedge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.delay {
            HedgeDelay::Fixed(d) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("delay", &ser::Human(d))?;
                m.end()
            }
            HedgeDelay::P95 { fallback } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("delay", "p95")?;
                m.serialize_entry("fallback", &ser::Human(fallback))?;
                m.end()
            }
        }
    }
}
