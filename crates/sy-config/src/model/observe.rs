//! `[access_log]`, `[tracing]`, `[admin]` and `[runtime]`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::ser;

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
    /// `queue`: about how many lines (of 512 bytes) are buffered between
    /// the workers and the writer thread, split between the workers'
    /// buffers; beyond, lines are dropped and counted. 16..=1048576,
    /// default 8192.
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
