//! The file as written: a serde model that mirrors the TOML keys one to one.
//!
//! Nothing here is checked beyond TOML types; every key is optional so that a
//! missing one is reported by validation with a position instead of by serde.
//! `Spanned` keeps byte ranges for the diagnostics.
//!
//! This file is also the one list of known keys: `#[derive(Shape)]`
//! (sy-config-derive) makes each struct the table of its keys, in field
//! order, which `schema.rs` checks the document against before serde and
//! prints the JSON Schema from. A key's kind follows from its type; a
//! string that holds a duration is marked `#[shape(duration)]`. A type
//! with a hand-written `Deserialize` implements `Shape` by hand, right
//! after it, with the texts the diagnostics and the JSON Schema use for
//! it. Adding a key or a filter means adding a field here (and validating
//! it), nothing in `schema.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use sy_config_derive::Shape;
use toml::Spanned;

use crate::shape::{Kind, Shape};

/// A string value with its position.
pub(crate) type Text = Spanned<String>;
/// An integer value with its position.
pub(crate) type Int = Spanned<i64>;
/// A number (TOML integer or float) with its position.
pub(crate) type Number = Spanned<f64>;

/// The whole file.
#[derive(Debug, Default, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub admin: Option<Spanned<RawAdmin>>,
    pub runtime: Option<RawRuntime>,
    #[serde(default)]
    pub listeners: BTreeMap<Text, Spanned<RawListener>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub upstreams: BTreeMap<Text, Spanned<RawUpstream>>,
    pub access_log: Option<Spanned<RawAccessLog>>,
    pub tracing: Option<Spanned<RawTracing>>,
    #[serde(default)]
    pub filters: BTreeMap<Text, Spanned<RawFilter>>,
}

/// A `filters = [...]` list: names of `[filters.NAME]` or inline tables.
pub(crate) type RawFilterList = Spanned<Vec<Spanned<RawFilterRef>>>;

/// One entry of a `filters` list.
#[derive(Debug)]
pub(crate) enum RawFilterRef {
    Name(String),
    Inline(Box<RawFilter>),
}

impl<'de> Deserialize<'de> for RawFilterRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            RawFilterRef::Name,
            |f| RawFilterRef::Inline(Box::new(f)),
            "a filter name or an inline filter table",
        )
    }
}

impl Shape for RawFilterRef {
    const KIND: Kind = Kind::StrOrTable(
        RawFilter::FIELDS,
        "a filter name or an inline filter table such as { headers = { ... } }",
        "filter names or inline filter tables",
    );
}

/// A filter: a table with exactly one key, its kind.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    pub request_id: Option<Spanned<RawRequestId>>,
    pub headers: Option<Spanned<RawHeaders>>,
    pub rewrite: Option<Spanned<RawRewrite>>,
    pub error_page: Option<Spanned<RawErrorPage>>,
    pub cors: Option<Spanned<RawCors>>,
    pub ip: Option<Spanned<RawIp>>,
    pub compress: Option<Spanned<RawCompress>>,
}

/// `rewrite = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRewrite {
    pub strip_prefix: Option<Text>,
    pub replace_prefix: Option<Spanned<RawReplacePrefix>>,
    pub path_regex: Option<Spanned<RawPathRegex>>,
    pub query: Option<Spanned<RawQueryOps>>,
}

/// `replace_prefix = { from, to }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplacePrefix {
    pub from: Option<Text>,
    pub to: Option<Text>,
}

/// `path_regex = { pattern, replacement }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPathRegex {
    pub pattern: Option<Text>,
    pub replacement: Option<Text>,
}

/// `query = { remove, rename, set, add }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueryOps {
    pub remove: Option<Vec<Text>>,
    pub rename: Option<BTreeMap<Text, Text>>,
    pub set: Option<BTreeMap<Text, Text>>,
    pub add: Option<BTreeMap<Text, Text>>,
}

/// `error_page = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrorPage {
    pub format: Option<Text>,
    pub content_type: Option<Text>,
    pub body: Option<Text>,
}

/// `cors = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCors {
    pub allow_origins: Option<Spanned<Vec<Spanned<RawCorsOrigin>>>>,
    pub allow_methods: Option<Vec<Text>>,
    pub allow_headers: Option<Vec<Text>>,
    pub expose_headers: Option<Vec<Text>>,
    pub allow_credentials: Option<Spanned<bool>>,
    #[shape(duration)]
    pub max_age: Option<Text>,
}

/// An `allow_origins` entry: `"https://app.example"` or `{ regex = "..." }`.
#[derive(Debug)]
pub(crate) enum RawCorsOrigin {
    Text(String),
    Table(RawCorsRegex),
}

/// The table form of an `allow_origins` entry.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCorsRegex {
    pub regex: Option<Text>,
}

impl<'de> Deserialize<'de> for RawCorsOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            RawCorsOrigin::Text,
            RawCorsOrigin::Table,
            "an origin or a { regex = \"...\" } table",
        )
    }
}

impl Shape for RawCorsOrigin {
    const KIND: Kind = Kind::StrOrTable(
        RawCorsRegex::FIELDS,
        "an origin such as \"https://app.example\" or a table { regex = \"...\" }",
        "origins or { regex = \"...\" } tables",
    );
}

/// `request_id = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequestId {
    pub header: Option<Text>,
    pub trust_incoming: Option<Text>,
    pub response: Option<bool>,
}

/// `headers = { request = { ... }, response = { ... } }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaders {
    pub request: Option<RawHeaderOps>,
    pub response: Option<RawHeaderOps>,
}

/// `compress = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompress {
    pub algorithms: Option<Spanned<Vec<Text>>>,
    pub min_size: Option<Spanned<RawSize>>,
    pub content_types: Option<Spanned<Vec<Text>>>,
    pub gzip_level: Option<Int>,
    pub brotli_level: Option<Int>,
    pub zstd_level: Option<Int>,
}

/// What to do to the headers of one direction.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderOps {
    pub set: Option<BTreeMap<Text, Text>>,
    pub add: Option<BTreeMap<Text, Text>>,
    pub append: Option<BTreeMap<Text, Text>>,
    pub remove: Option<Vec<Text>>,
}

/// `ip = { ... }` and `[listeners.NAME.ip]`: allow and deny lists.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIp {
    pub allow: Option<Vec<Text>>,
    pub deny: Option<Vec<Text>>,
    pub allow_files: Option<Vec<Text>>,
    pub deny_files: Option<Vec<Text>>,
}

/// `[admin]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub address: Option<Text>,
    pub enabled: Option<bool>,
    pub token: Option<Text>,
    pub token_file: Option<Text>,
}

/// `[runtime]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub workers: Option<Int>,
    #[shape(duration)]
    pub drain_timeout: Option<Text>,
    pub watch_config: Option<bool>,
    #[shape(duration)]
    pub watch_debounce: Option<Text>,
    pub log_level: Option<Text>,
    pub log_format: Option<Text>,
}

/// `[access_log]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessLog {
    pub enabled: Option<bool>,
    pub format: Option<Text>,
    pub path: Option<Text>,
    pub fields: Option<Spanned<Vec<Text>>>,
    pub sample: Option<Number>,
    pub queue: Option<Int>,
}

/// `[tracing]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub enabled: Option<bool>,
    pub endpoint: Option<Text>,
    pub sample_ratio: Option<Number>,
    pub parent_based: Option<bool>,
    pub service_name: Option<Text>,
    pub headers: Option<BTreeMap<Text, Text>>,
    pub max_queue: Option<Int>,
    pub max_batch: Option<Int>,
    #[shape(duration)]
    pub export_interval: Option<Text>,
    #[shape(duration)]
    pub export_timeout: Option<Text>,
}

/// `[listeners.NAME]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub address: Option<Text>,
    #[shape(duration)]
    pub request_header_timeout: Option<Text>,
    #[shape(duration)]
    pub idle_timeout: Option<Text>,
    pub max_request_header_bytes: Option<Spanned<RawSize>>,
    pub max_request_headers: Option<Int>,
    pub max_connections: Option<Int>,
    pub http2: Option<bool>,
    pub proxy_protocol: Option<bool>,
    pub forwarded: Option<RawForwarded>,
    pub tls: Option<Spanned<RawListenerTls>>,
    pub ip: Option<Spanned<RawIp>>,
    pub filters: Option<RawFilterList>,
}

/// `[listeners.NAME.forwarded]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarded {
    pub trusted_proxies: Option<Vec<Text>>,
    pub x_forwarded: Option<bool>,
    pub forwarded: Option<bool>,
    pub via: Option<bool>,
}

/// `[listeners.NAME.tls]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub min_version: Option<Text>,
    pub default_certificate: Option<Text>,
    pub certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
}

/// One entry of `certificates`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub name: Option<Text>,
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub server_names: Option<Vec<Text>>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<Text>,
    pub listeners: Option<Vec<Text>>,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub upstream: Option<Text>,
    pub respond: Option<Spanned<RawRespond>>,
    pub redirect: Option<Spanned<RawRedirect>>,
    pub split: Option<Spanned<RawSplit>>,
    #[shape(duration)]
    pub timeout: Option<Text>,
    pub max_request_body: Option<Spanned<RawSize>>,
    pub host_rewrite: Option<Text>,
    pub retry: Option<Spanned<RawRetry>>,
    pub hedge: Option<Spanned<RawHedge>>,
    pub mirror: Option<Spanned<RawMirror>>,
    pub filters: Option<RawFilterList>,
}

/// `[routes.match]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub hosts: Option<Vec<Text>>,
    pub path: Option<Text>,
    pub path_exact: Option<Text>,
    pub path_regex: Option<Text>,
    pub methods: Option<Vec<Text>>,
    pub headers: Option<BTreeMap<Text, Spanned<RawCondition>>>,
    pub query: Option<BTreeMap<Text, Spanned<RawCondition>>>,
}

/// `respond = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRespond {
    pub status: Option<Int>,
    pub body: Option<String>,
    pub content_type: Option<Text>,
}

/// `redirect = { ... }`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirect {
    pub location: Option<Text>,
    pub status: Option<Int>,
    pub keep_path: Option<bool>,
    pub scheme: Option<Text>,
    pub host: Option<Text>,
    pub port: Option<Int>,
}

/// `[routes.split]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSplit {
    pub backends: Option<Spanned<Vec<Spanned<RawSplitBackend>>>>,
    pub header: Option<Text>,
    pub cookie: Option<Text>,
    pub skip_unavailable: Option<bool>,
}

/// One `[[routes.split.backends]]` entry.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSplitBackend {
    pub upstream: Option<Text>,
    pub weight: Option<Int>,
}

/// `[routes.retry]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub attempts: Option<Int>,
    pub on: Option<Spanned<Vec<Text>>>,
    pub statuses: Option<Vec<Int>>,
    #[shape(duration)]
    pub per_try_timeout: Option<Text>,
    #[shape(duration)]
    pub backoff_base: Option<Text>,
    #[shape(duration)]
    pub backoff_max: Option<Text>,
    pub non_idempotent: Option<bool>,
    pub buffer: Option<Spanned<RawSize>>,
}

/// `[routes.hedge]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHedge {
    pub delay: Option<Text>,
    #[shape(duration)]
    pub fallback: Option<Text>,
}

/// `[routes.mirror]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    pub upstream: Option<Text>,
    pub percent: Option<Number>,
    pub max_in_flight: Option<Int>,
    pub max_body: Option<Spanned<RawSize>>,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
    pub balancer: Option<Text>,
    pub hash: Option<Spanned<RawHash>>,
    pub protocol: Option<Text>,
    #[shape(duration)]
    pub connect_timeout: Option<Text>,
    #[shape(duration)]
    pub response_timeout: Option<Text>,
    pub pool: Option<RawPool>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
    pub health_check: Option<Spanned<RawHealthCheck>>,
    pub outlier: Option<RawOutlier>,
    pub panic_threshold: Option<Int>,
    #[shape(duration)]
    pub slow_start: Option<Text>,
    pub circuit_breaker: Option<RawCircuitBreaker>,
    pub retry_budget: Option<RawRetryBudget>,
    pub sticky: Option<RawSticky>,
}

/// `[upstreams.NAME.hash]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHash {
    pub key: Option<Text>,
    pub algorithm: Option<Text>,
}

/// `[upstreams.NAME.pool]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub max_idle_per_server: Option<Int>,
    #[shape(duration)]
    pub idle_timeout: Option<Text>,
}

/// `[upstreams.NAME.tls]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub server_name: Option<Text>,
    pub ca: Option<Text>,
    pub verify: Option<bool>,
}

/// `[upstreams.NAME.health_check]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<Text>,
    #[shape(duration)]
    pub interval: Option<Text>,
    #[shape(duration)]
    pub jitter: Option<Text>,
    #[shape(duration)]
    pub timeout: Option<Text>,
    pub unhealthy_threshold: Option<Int>,
    pub healthy_threshold: Option<Int>,
    pub method: Option<Text>,
    pub path: Option<Text>,
    pub host: Option<Text>,
    pub expect_status: Option<Spanned<Vec<Spanned<RawStatus>>>>,
    pub expect_body: Option<Text>,
    pub service: Option<Text>,
}

/// `[upstreams.NAME.outlier]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutlier {
    pub consecutive_5xx: Option<Int>,
    pub consecutive_gateway_failures: Option<Int>,
    #[shape(duration)]
    pub base_ejection_time: Option<Text>,
    #[shape(duration)]
    pub max_ejection_time: Option<Text>,
    pub max_ejected_percent: Option<Int>,
}

/// `[upstreams.NAME.circuit_breaker]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCircuitBreaker {
    pub max_connections: Option<Int>,
    pub max_pending_requests: Option<Int>,
    pub max_requests: Option<Int>,
    pub max_retries: Option<Int>,
}

/// `[upstreams.NAME.retry_budget]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryBudget {
    pub ratio: Option<Number>,
    pub min_retries_per_second: Option<Int>,
    #[shape(duration)]
    pub window: Option<Text>,
}

/// `[upstreams.NAME.sticky]`.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSticky {
    pub cookie: Option<Text>,
    #[shape(duration)]
    pub ttl: Option<Text>,
    pub path: Option<Text>,
    pub domain: Option<Text>,
    pub secure: Option<bool>,
    pub http_only: Option<bool>,
    pub same_site: Option<Text>,
    pub secret: Option<Text>,
}

/// One `expect_status` entry: `204` or `"200"` / `"200-299"`.
#[derive(Debug)]
pub(crate) enum RawStatus {
    Code(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = RawStatus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code or a string such as \"200-299\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawStatus, E> {
                Ok(RawStatus::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawStatus, E> {
                Ok(RawStatus::Code(v))
            }
        }
        deserializer.deserialize_any(StatusVisitor)
    }
}

impl Shape for RawStatus {
    const KIND: Kind = Kind::StrOrInt(
        "a status such as 200 or a string such as \"200-299\"",
        "statuses such as 200 or strings such as \"200-299\"",
    );
}

/// A size: `"64KiB"` or a plain integer number of bytes.
#[derive(Debug)]
pub(crate) enum RawSize {
    Text(String),
    Bytes(i64),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Shape for RawSize {
    const KIND: Kind = Kind::Size;
}

/// One entry of `servers`: `"host:port"` or `{ address, weight }`.
#[derive(Debug)]
pub(crate) enum RawServer {
    Address(String),
    Table(RawServerTable),
}

/// The table form of a server entry.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTable {
    pub address: Option<Text>,
    pub weight: Option<Int>,
}

/// A header or query condition: `"exact"` or `{ present = true }` /
/// `{ regex = "..." }`.
#[derive(Debug)]
pub(crate) enum RawCondition {
    Exact(String),
    Table(RawConditionTable),
}

/// The table form of a condition.
#[derive(Debug, Deserialize, Shape)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConditionTable {
    pub present: Option<Spanned<bool>>,
    pub regex: Option<Text>,
}

/// Deserializes "a string, or a table of type T" without serde's untagged
/// enums, which buffer the input and so lose the `Spanned` positions inside.
fn string_or_table<'de, D, T, R>(
    deserializer: D,
    from_str: fn(String) -> R,
    from_table: fn(T) -> R,
    expecting: &'static str,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Either<T, R> {
        from_str: fn(String) -> R,
        from_table: fn(T) -> R,
        expecting: &'static str,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for Either<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.from_str)(v.to_owned()))
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<R, M::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(self.from_table)
        }
    }
    deserializer.deserialize_any(Either {
        from_str,
        from_table,
        expecting,
    })
}

impl<'de> Deserialize<'de> for RawServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            RawServer::Address,
            RawServer::Table,
            "a server address or { address, weight } table",
        )
    }
}

impl Shape for RawServer {
    const KIND: Kind = Kind::StrOrTable(
        RawServerTable::FIELDS,
        "an address string or a table { address = \"...\", weight = N }",
        "address strings or { address = \"...\", weight = N } tables",
    );
}

impl<'de> Deserialize<'de> for RawCondition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            RawCondition::Exact,
            RawCondition::Table,
            "a string or { present = true } / { regex = \"...\" } table",
        )
    }
}

impl Shape for RawCondition {
    const KIND: Kind = Kind::StrOrTable(
        RawConditionTable::FIELDS,
        "a string (exact value) or a table { present = true } / { regex = \"...\" }",
        "strings or { present = true } / { regex = \"...\" } tables",
    );
}
