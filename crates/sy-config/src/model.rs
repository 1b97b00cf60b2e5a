//! The validated domain model: what the rest of Switchyard consumes.
//!
//! Everything here has been checked: durations and sizes parsed, addresses
//! parsed, regexes compiled once for validation, names cross-referenced. No
//! value here can make the server panic. Field docs name the TOML key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

/// A whole validated configuration file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// `[admin]`: the admin listener (health, metrics, reload).
    pub admin: Admin,
    /// `[runtime]`: process-wide settings.
    pub runtime: Runtime,
    /// `[listeners.NAME]`, in name order.
    pub listeners: Vec<Listener>,
    /// `[[routes]]`, in file order (file order breaks precedence ties).
    pub routes: Vec<Route>,
    /// `[upstreams.NAME]`, in name order.
    pub upstreams: Vec<Upstream>,
    /// `[access_log]`: None = no access log.
    pub access_log: Option<AccessLog>,
    /// `[tracing]`: None = no trace export (incoming `traceparent` is still
    /// passed upstream unchanged).
    pub tracing: Option<Tracing>,
    /// `[filters.NAME]`: filters defined once, used by name in the
    /// `filters` lists of listeners and routes; in name order.
    #[serde(serialize_with = "ser::named_filters")]
    pub filters: Vec<NamedFilter>,
}

/// A `[filters.NAME]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedFilter {
    /// The table name.
    pub name: String,
    /// What it does.
    pub filter: Filter,
}

/// One entry of a `filters` list of a listener or a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FilterRef {
    /// `"NAME"`: the `[filters.NAME]` entry (it exists).
    Named(String),
    /// `{ KIND = { ... } }`: a filter written in place.
    Inline(Filter),
}

/// A filter: one step of the request pipeline (docs/filters.md). In the
/// file, a table with one key, the kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// `request_id = { ... }`: a request id, generated when missing.
    RequestId(RequestIdFilter),
    /// `headers = { request = { ... }, response = { ... } }`: header rules.
    Headers(HeadersFilter),
    /// `rewrite = { ... }`: the path and query sent upstream.
    Rewrite(RewriteFilter),
    /// `error_page = { ... }`: the body of Switchyard's own error answers.
    ErrorPage(ErrorPageFilter),
    /// `cors = { allow_origins = [...], ... }`: cross-origin requests.
    Cors(CorsFilter),
    /// `ip = { allow = [...], deny = [...] }`: IP allow and deny lists
    /// checked on the client address (403).
    Ip(IpFilter),
    /// `compress = { ... }`: compression of responses.
    Compress(CompressFilter),
}

impl Filter {
    /// The kind, as the file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Filter::RequestId(_) => "request_id",
            Filter::Headers(_) => "headers",
            Filter::Rewrite(_) => "rewrite",
            Filter::ErrorPage(_) => "error_page",
            Filter::Cors(_) => "cors",
            Filter::Ip(_) => "ip",
            Filter::Compress(_) => "compress",
        }
    }
}

/// `rewrite = { ... }`: the path (one way) and the query sent upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RewriteFilter {
    /// `strip_prefix`, `replace_prefix` or `path_regex`; None = path kept.
    #[serde(flatten)]
    pub path: Option<PathRewrite>,
    /// `query = { ... }`: parameter edits (none by default).
    #[serde(skip_serializing_if = "QueryRewrite::is_empty")]
    pub query: QueryRewrite,
}

/// How a `rewrite` filter changes the path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRewrite {
    /// `strip_prefix = "/api"` or `replace_prefix = { from, to }`: a path
    /// prefix (matched as a route's `path`) replaced; strip = to "".
    ReplacePrefix {
        /// `from`: starts with `/`.
        from: String,
        /// `to`: empty or starts with `/`.
        to: String,
    },
    /// `path_regex = { pattern, replacement }`: the first match replaced;
    /// `$1` / `${name}` are captures.
    PathRegex {
        /// `pattern` (Rust regex syntax; it compiles).
        pattern: String,
        /// `replacement`.
        replacement: String,
    },
}

/// `query = { ... }` of a `rewrite` filter, applied in this order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueryRewrite {
    /// `remove = ["name"]`.
    pub remove: Vec<String>,
    /// `rename = { old = "new" }`.
    #[serde(serialize_with = "ser::pairs")]
    pub rename: Vec<(String, String)>,
    /// `set = { name = "value" }`: replace every parameter of the name.
    #[serde(serialize_with = "ser::pairs")]
    pub set: Vec<(String, String)>,
    /// `add = { name = "value" }`: one more parameter.
    #[serde(serialize_with = "ser::pairs")]
    pub add: Vec<(String, String)>,
}

impl QueryRewrite {
    /// No edit at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }
}

/// `error_page = { ... }`: what Switchyard's own errors look like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorPageFilter {
    /// `content_type`: of the body. Default "application/json" with
    /// `format = "json"`.
    pub content_type: String,
    /// The body: `format = "json"` or a `body` template.
    pub body: ErrorPageBody,
}

/// The body of an error page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPageBody {
    /// `format = "json"`: `{"error": STAGE, "message": ..., "status": N,
    /// "request_id": ID or null}`.
    Json,
    /// `body = "..."`: a template with `${status}`, `${reason}`,
    /// `${error}`, `${message}` and the header variables.
    Template(crate::template::Template),
}

/// `cors = { ... }`: the CORS protocol of the Fetch standard, answered at
/// the edge (docs/filters.md#cors).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorsFilter {
    /// `allow_origins`: exact origins (normalised: lower-case, no default
    /// port), `"null"`, wildcard hosts (`"https://*.example.com"`),
    /// `{ regex = "..." }` entries, or `"*"` alone. Required.
    pub allow_origins: Vec<CorsOrigin>,
    /// `allow_methods`: upper-case; `["*"]` = any. Default GET, HEAD, POST.
    pub allow_methods: Vec<String>,
    /// `allow_headers`: request header names a preflight may ask for,
    /// lower-case; `["*"]` = any. Default none.
    pub allow_headers: Vec<String>,
    /// `expose_headers`: response header names scripts may read,
    /// lower-case. Default none.
    pub expose_headers: Vec<String>,
    /// `allow_credentials`: cookies and HTTP authentication may be sent and
    /// the response read. Default false.
    pub allow_credentials: bool,
    /// `max_age`: how long browsers may cache a preflight's answer (sent
    /// in whole seconds). None = no `Access-Control-Max-Age`.
    #[serde(serialize_with = "ser::opt_duration")]
    pub max_age: Option<Duration>,
}

impl CorsFilter {
    /// The policy in the form `sy_policy::cors` compiles.
    pub fn spec(&self) -> sy_policy::cors::Spec {
        use sy_policy::cors::{OriginSpec, Spec};
        Spec {
            allow_origins: self
                .allow_origins
                .iter()
                .map(|o| match o {
                    CorsOrigin::Pattern(p) if p == "*" => OriginSpec::Any,
                    CorsOrigin::Pattern(p) => OriginSpec::Pattern(p.clone()),
                    CorsOrigin::Regex { regex } => OriginSpec::Regex(regex.clone()),
                })
                .collect(),
            allow_methods: self.allow_methods.clone(),
            allow_headers: self.allow_headers.clone(),
            expose_headers: self.expose_headers.clone(),
            allow_credentials: self.allow_credentials,
            max_age_secs: self.max_age.map(|d| d.as_secs()),
        }
    }
}

/// One `allow_origins` entry of a `cors` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CorsOrigin {
    /// `"*"`, `"null"`, an exact origin or a wildcard host.
    Pattern(String),
    /// `{ regex = "..." }`: the whole origin must match.
    Regex {
        /// The pattern as written (matched anchored).
        regex: String,
    },
}

/// `request_id = { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestIdFilter {
    /// `header`: the header carrying the id (lower-cased). Default
    /// "x-request-id".
    pub header: String,
    /// `trust_incoming`: whose incoming id is kept: "trusted" (default:
    /// peers in the listener's `forwarded.trusted_proxies`), "always" or
    /// "never". Otherwise a new id replaces it.
    pub trust_incoming: TrustIncoming,
    /// `response`: also send the id back on the response. Default true.
    pub response: bool,
}

/// `trust_incoming` of a `request_id` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustIncoming {
    /// Keep an id from any client.
    Always,
    /// Keep an id only from the listener's trusted proxies.
    Trusted,
    /// Always make a new id.
    Never,
}

/// `headers = { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadersFilter {
    /// `request`: rules for the request sent upstream.
    pub request: HeaderOps,
    /// `response`: rules for the response sent to the client.
    pub response: HeaderOps,
}

/// The rules of one direction, applied in this order: `remove`, `set`,
/// `add`, `append`. Header names are lower-cased.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HeaderOps {
    /// `remove = ["name", ...]`: remove every field of these names.
    pub remove: Vec<String>,
    /// `set = { name = "value" }`: replace every field of the name by one.
    #[serde(serialize_with = "ser::pairs")]
    pub set: Vec<(String, crate::template::Template)>,
    /// `add = { name = "value" }`: add the field only when the name is absent.
    #[serde(serialize_with = "ser::pairs")]
    pub add: Vec<(String, crate::template::Template)>,
    /// `append = { name = "value" }`: add one more field line.
    #[serde(serialize_with = "ser::pairs")]
    pub append: Vec<(String, crate::template::Template)>,
}

impl HeaderOps {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.append.is_empty()
    }
}

/// `ip = { ... }` (a filter: a refused request gets 403) and
/// `[listeners.NAME.ip]` (checked on the TCP peer right after accept: a
/// refused connection is closed). A client inside a `deny` entry is
/// refused; otherwise, when the allow list has entries, only a client
/// inside one of them is let in. `sy_policy::ip` decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpFilter {
    /// `allow` and `allow_files`. Never empty when either key is given.
    pub allow: IpList,
    /// `deny` and `deny_files`.
    pub deny: IpList,
}

/// The entries of one list of an [`IpFilter`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IpList {
    /// `allow` / `deny`: entries written in place: CIDRs, or addresses
    /// meaning /32 or /128; host bits below the prefix cleared.
    pub entries: Vec<IpNet>,
    /// `allow_files` / `deny_files`: files of entries, one a line, read
    /// when the configuration is loaded and at every reload.
    pub files: Vec<IpListFile>,
}

/// One file of an [`IpList`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpListFile {
    /// The path, resolved against the configuration file's directory.
    pub path: PathBuf,
    /// Its entries in file order, host bits cleared. Shared by every use
    /// of the same file in one configuration, so a large list is held once.
    pub entries: Arc<[IpNet]>,
}

impl IpList {
    /// Every entry: the inline ones, then each file's.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.entries
            .iter()
            .chain(self.files.iter().flat_map(|f| f.entries.iter()))
            .copied()
    }

    /// The number of entries, inline and in files.
    pub fn len(&self) -> usize {
        self.entries.len() + self.files.iter().map(|f| f.entries.len()).sum::<usize>()
    }

    /// No entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `compress = { ... }`: responses compressed with the best coding the
/// client accepts (docs/filters.md#compress).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressFilter {
    /// `algorithms`: the codings offered, in the server's order of
    /// preference when the client's q-values tie. Default `["zstd", "br",
    /// "gzip"]`: zstd compresses as well as brotli at level 4 for a third of
    /// the CPU (BENCHMARKS.md).
    pub algorithms: Vec<Compression>,
    /// `min_size`: a body whose length is known and smaller is sent as it
    /// is (a body of unknown length is compressed). Default 1 KiB.
    pub min_size: u64,
    /// `content_types`: the media types compressed, as `type/subtype`,
    /// `type/*` or `type/*+suffix`, lower-cased. Default
    /// [`CompressFilter::DEFAULT_CONTENT_TYPES`].
    pub content_types: Vec<String>,
    /// `gzip_level`: 1 (fastest) to 9 (smallest). Default 6.
    pub gzip_level: u32,
    /// `brotli_level`: 0 (fastest) to 11 (smallest). Default 4.
    pub brotli_level: u32,
    /// `zstd_level`: 1 (fastest) to 19 (smallest). Default 3.
    pub zstd_level: i32,
}

impl CompressFilter {
    /// The default `algorithms`.
    pub const DEFAULT_ALGORITHMS: [Compression; 3] =
        [Compression::Zstd, Compression::Br, Compression::Gzip];
    /// The default `min_size`.
    pub const DEFAULT_MIN_SIZE: u64 = 1024;
    /// The default `content_types`: text, and the textual formats that are
    /// not `text/*` (JSON, JavaScript, XML and their `+json`/`+xml`
    /// relatives, WebAssembly, SVG, icons, uncompressed fonts). Images,
    /// video, archives and WOFF fonts are compressed already.
    pub const DEFAULT_CONTENT_TYPES: [&str; 14] = [
        "text/*",
        "application/json",
        "application/*+json",
        "application/x-ndjson",
        "application/javascript",
        "application/xml",
        "application/*+xml",
        "application/wasm",
        "application/x-yaml",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
    ];
    /// The default `gzip_level`.
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    /// The default `brotli_level`.
    pub const DEFAULT_BROTLI_LEVEL: u32 = 4;
    /// The default `zstd_level`.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
}

/// A coding of `algorithms`, named as in `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `br`: Brotli.
    Br,
    /// `zstd`: Zstandard.
    Zstd,
    /// `gzip`.
    Gzip,
}

/// `[access_log]`: one line per request, written off the request path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessLog {
    /// `format`: "json" (default, one JSON object per line) or "combined"
    /// (Apache/nginx combined log format plus `key=value` extras).
    pub format: AccessLogFormat,
    /// `path`: "stdout" (default), "stderr" or a file path, stored resolved
    /// (relative paths resolve against the config file's directory; the
    /// file's directory existed at load time). Files are appended to and
    /// reopened on SIGUSR1 (log rotation).
    pub path: String,
    /// `fields`: which fields a line carries, in this order. Default: all
    /// of [`ACCESS_LOG_FIELDS`].
    pub fields: Vec<String>,
    /// `sample`: share of requests logged, 0 < s <= 1. Default 1.0.
    pub sample: f64,
    /// `queue`: lines buffered between the workers and the writer thread;
    /// when full, lines are dropped and counted. 16..=1048576, default 8192.
    pub queue: usize,
}

/// Every access-log field name, in the default order.
pub const ACCESS_LOG_FIELDS: &[&str] = &[
    "time",
    "client",
    "method",
    "host",
    "path",
    "protocol",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_connect_ms",
    "ttfb_ms",
    "route",
    "upstream",
    "server",
    "attempts",
    "trace_id",
    "user_agent",
    "request_id",
];

/// `format` of `[access_log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// "json".
    Json,
    /// "combined".
    Combined,
}

/// `[tracing]`: W3C trace context and OTLP span export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tracing {
    /// `endpoint`: OTLP/HTTP traces endpoint, e.g.
    /// "http://127.0.0.1:4318/v1/traces". Required.
    pub endpoint: String,
    /// `sample_ratio`: share of new traces recorded, 0..=1. Default 1.0.
    pub sample_ratio: f64,
    /// `parent_based`: follow the sampled flag of an incoming `traceparent`
    /// instead of the ratio. Default true.
    pub parent_based: bool,
    /// `service_name`: the `service.name` resource attribute. Default "switchyard".
    pub service_name: String,
    /// `headers`: extra HTTP headers sent with each export (e.g.
    /// authorization): names lower-cased and unique, in file order. Values
    /// are redacted in the admin API.
    #[serde(serialize_with = "ser::redacted_values")]
    pub headers: Vec<(String, String)>,
    /// `max_queue`: spans buffered for export; more are dropped and counted.
    /// Default 2048.
    pub max_queue: usize,
    /// `max_batch`: spans per export request. Default 512.
    pub max_batch: usize,
    /// `export_interval`: longest wait before a partial batch is sent. Default 5s.
    #[serde(serialize_with = "ser::duration")]
    pub export_interval: Duration,
    /// `export_timeout`: deadline of one export request. Default 10s.
    #[serde(serialize_with = "ser::duration")]
    pub export_timeout: Duration,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admin {
    /// `address`, default `127.0.0.1:9901`. `None` when `enabled = false`.
    pub address: Option<SocketAddr>,
    /// `token` (or `token_file`, a file holding it, trimmed): bearer token
    /// every admin request must carry (`Authorization: Bearer TOKEN`).
    /// Required when `address` is not a loopback address. Redacted in the
    /// admin API.
    #[serde(serialize_with = "ser::redacted_opt")]
    pub token: Option<String>,
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runtime {
    /// `workers`: worker threads, each with its own event loop and
    /// SO_REUSEPORT listener sockets. Default 0 = one per CPU.
    pub workers: usize,
    /// `drain_timeout`: on shutdown, how long in-flight requests may take
    /// before the process exits anyway. Default 30s.
    #[serde(serialize_with = "ser::duration")]
    pub drain_timeout: Duration,
    /// `watch_config`: reload when the config file changes. Default true.
    pub watch_config: bool,
    /// `watch_debounce`: with `watch_config`, how long the file must stay
    /// unchanged after a change before it is reloaded, so a save in
    /// several steps is read once, finished. 0s..=10s, default 500ms.
    #[serde(serialize_with = "ser::duration")]
    pub watch_debounce: Duration,
    /// `log_level`: default tracing filter when RUST_LOG is unset. Default "info".
    pub log_level: String,
    /// `log_format`: process logs as "text" (default) or "json" (one
    /// object per line, fixed field names); the environment variable
    /// SWITCHYARD_LOG_FORMAT overrides it.
    pub log_format: LogFormat,
}

/// `log_format` of `[runtime]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// `[listeners.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// The table name.
    pub name: String,
    /// `address`, e.g. "127.0.0.1:8080".
    pub address: SocketAddr,
    /// `[listeners.NAME.tls]`; None = plaintext (HTTP/1.1 and h2c by prior knowledge).
    pub tls: Option<ListenerTls>,
    /// `request_header_timeout`: time to receive a complete request head
    /// (slowloris defence). Default 10s.
    #[serde(serialize_with = "ser::duration")]
    pub request_header_timeout: Duration,
    /// `idle_timeout`: keep-alive connection idle time. Default 60s.
    #[serde(serialize_with = "ser::duration")]
    pub idle_timeout: Duration,
    /// `max_request_header_bytes`: total size of the request head; larger
    /// gets 431. Default 64KiB.
    pub max_request_header_bytes: u64,
    /// `max_request_headers`: number of request header fields; more gets
    /// 431. Default 100.
    pub max_request_headers: usize,
    /// `max_connections`: concurrent connections; 0 = unlimited. Default 0.
    pub max_connections: usize,
    /// `http2`: accept HTTP/2 (h2c prior knowledge on plaintext, ALPN "h2"
    /// on TLS). Default true.
    pub http2: bool,
    /// `proxy_protocol`: every connection starts with a PROXY protocol
    /// header (v1 or v2), read before TLS and HTTP within
    /// `request_header_timeout`; the client it names is the connection's
    /// client for the `ip` lists, forwarding headers, filters and logs. A
    /// connection without a valid header is closed. Default false.
    pub proxy_protocol: bool,
    /// `[listeners.NAME.forwarded]`.
    pub forwarded: Forwarded,
    /// `[listeners.NAME.ip]`: allow and deny lists checked on the TCP peer
    /// right after accept, before TLS and before any byte is read (with
    /// `proxy_protocol`: on the client the header names, once it is read);
    /// a refused connection is closed and counted. Default none.
    pub ip: Option<IpFilter>,
    /// `filters`: run on every request of the listener, before the route's
    /// own filters, and on answers no route gave (404, 400). Default none.
    pub filters: Vec<FilterRef>,
}

/// `[listeners.NAME.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerTls {
    /// `certificates`: at least one; chosen by SNI against `server_names`.
    pub certificates: Vec<Certificate>,
    /// `default_certificate`: index into `certificates` used when SNI is
    /// absent or matches nothing. From the key `default_certificate` (a
    /// certificate's `name`); default: the first certificate.
    pub default_certificate: usize,
    /// `min_version`: "1.2" (default) or "1.3".
    pub min_version: TlsVersion,
}

/// One entry of `certificates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificate {
    /// `name`: optional label; default "cert-N" (N = index).
    pub name: String,
    /// `cert`: PEM chain path (relative paths resolve against the config
    /// file's directory). Re-read on every reload.
    pub cert: PathBuf,
    /// `key`: PEM private key path.
    pub key: PathBuf,
    /// `server_names`: exact names or `*.example.com` wildcards this
    /// certificate serves. May be empty for a default-only certificate.
    pub server_names: Vec<String>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// `[listeners.NAME.forwarded]`: how X-Forwarded-* and `Forwarded` are set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forwarded {
    /// `trusted_proxies`: CIDRs whose incoming X-Forwarded-For / Forwarded
    /// are kept and appended to. From anyone else they are replaced.
    /// Default empty (trust nobody).
    #[serde(serialize_with = "ser::display_seq")]
    pub trusted_proxies: Vec<IpNet>,
    /// `x_forwarded`: set X-Forwarded-For/-Proto/-Host. Default true.
    pub x_forwarded: bool,
    /// `forwarded`: set the RFC 7239 `Forwarded` header. Default false.
    #[serde(rename = "forwarded")]
    pub rfc7239: bool,
    /// `via`: add a `Via` header (request and response). Default true.
    pub via: bool,
}

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

impl Config {
    /// The upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

// `Serialize` (the admin API's `GET /config`) writes the model the way the
// TOML file spells it: durations as the file writes them ("5s", "1m30s"),
// enums by their configuration names, and secrets (`admin.token`, the
// values of `tracing.headers`, `sticky.secret`) as "<redacted>".

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

impl Serialize for IpFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let lists = [
            ("allow", "allow_files", &self.allow),
            ("deny", "deny_files", &self.deny),
        ];
        for (key, files_key, list) in lists {
            if !list.entries.is_empty() {
                m.serialize_entry(key, &ser::Displayed(&list.entries))?;
            }
            if !list.files.is_empty() {
                let paths: Vec<_> = list.files.iter().map(|f| &f.path).collect();
                m.serialize_entry(files_key, &paths)?;
            }
        }
        m.end()
    }
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

/// `serialize_with` helpers of the model's `Serialize` derives.
mod ser {
    use std::fmt::Display;
    use std::time::Duration;

    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};

    /// What a secret serializes as.
    pub(super) const REDACTED: &str = "<redacted>";

    /// A duration that serializes as the file writes it ("5s", "1m30s").
    pub(super) struct Human(pub(super) Duration);

    impl Serialize for Human {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&crate::units::format_duration(self.0))
        }
    }

    pub(super) fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        Human(*d).serialize(s)
    }

    pub(super) fn opt_duration<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => Human(*d).serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn redacted<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }

    pub(super) fn redacted_opt<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_str(REDACTED),
            None => s.serialize_none(),
        }
    }

    /// Header name -> "<redacted>".
    pub(super) fn redacted_values<S: Serializer>(
        pairs: &[(String, String)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, _) in pairs {
            m.serialize_entry(k, REDACTED)?;
        }
        m.end()
    }

    /// `[filters.NAME]` entries as an object of name -> filter.
    pub(super) fn named_filters<S: Serializer>(
        filters: &[super::NamedFilter],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(filters.len()))?;
        for f in filters {
            m.serialize_entry(&f.name, &f.filter)?;
        }
        m.end()
    }

    /// Name/value pairs as an object, in order.
    pub(super) fn pairs<S: Serializer, V: Serialize>(
        pairs: &[(String, V)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, v) in pairs {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    /// Items by their `Display` form (CIDRs).
    pub(super) fn display_seq<S: Serializer, T: Display>(
        items: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(items.len()))?;
        for i in items {
            q.serialize_element(&format_args!("{i}"))?;
        }
        q.end()
    }

    /// Items serialized by their `Display` form (CIDRs).
    pub(super) struct Displayed<'a, T>(pub(super) &'a [T]);

    impl<T: Display> Serialize for Displayed<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            display_seq(self.0, s)
        }
    }

    /// Status ranges as the file writes them: "200-299", or "204".
    pub(super) fn status_ranges<S: Serializer>(
        ranges: &[(u16, u16)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(ranges.len()))?;
        for &(lo, hi) in ranges {
            if lo == hi {
                q.serialize_element(&format_args!("{lo}"))?;
            } else {
                q.serialize_element(&format_args!("{lo}-{hi}"))?;
            }
        }
        q.end()
    }
}
