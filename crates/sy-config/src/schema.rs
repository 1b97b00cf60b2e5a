//! The shape of the file, checked on the spanned document before serde sees it.
//!
//! serde stops at the first unknown key or wrong type; a user fixing a file
//! wants all of them at once. So the parsed document is first walked against
//! this table of known keys and value kinds: every unknown key and type
//! mismatch is reported with its position, and the offending entry is removed
//! so that the typed [`crate::raw`] model can still be deserialized from the
//! rest and checked semantically. The table must mirror `raw.rs`; the golden
//! and property tests fail loudly (an "internal" diagnostic) if they drift.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Report, did_you_mean, index, join, list};
use crate::raw::RawConfig;

/// What a key accepts.
pub(crate) enum Kind {
    /// A string.
    Str,
    /// A string holding a duration ("5s").
    Duration,
    /// A size: a string ("64KiB") or a non-negative integer (bytes).
    Size,
    /// An integer that fits in an i64.
    Int,
    /// A number: an integer (fits in an i64) or a float.
    Number,
    /// `true` or `false`.
    Bool,
    /// An array whose elements all have the given kind.
    Array(&'static Kind),
    /// A table with a fixed set of keys.
    Table(&'static [Field]),
    /// A table with user-chosen keys (names), each value of the given kind.
    Map(&'static Kind),
    /// A string, or a table with the given keys; the texts describe one
    /// such value and several of them.
    StrOrTable(&'static [Field], &'static str, &'static str),
    /// A string or an integer; the texts describe one such value and
    /// several of them.
    StrOrInt(&'static str, &'static str),
}

/// One known key of a table.
pub(crate) struct Field {
    name: &'static str,
    kind: Kind,
}

impl Field {
    /// A key and what it accepts; `#[derive(Shape)]` writes these.
    pub(crate) const fn new(name: &'static str, kind: Kind) -> Field {
        Field { name, kind }
    }
}

/// What a type of the raw model accepts, as a [`Kind`].
///
/// Structs of `raw.rs` derive it (`#[derive(Shape)]` from sy-config-derive:
/// a [`Kind::Table`] of their fields, in order, with an inherent `FIELDS`
/// constant); the types with a hand-written `Deserialize` (string or
/// table, string or integer) implement it by hand next to that impl; the
/// impls below cover the scalars and containers the fields are made of.
pub(crate) trait Shape {
    /// What a value of this type is written as.
    const KIND: Kind;
}

impl Shape for String {
    const KIND: Kind = Str;
}

impl Shape for i64 {
    const KIND: Kind = Int;
}

impl Shape for f64 {
    const KIND: Kind = Number;
}

impl Shape for bool {
    const KIND: Kind = Bool;
}

/// A missing key is judged by validation, not by its shape.
impl<T: Shape> Shape for Option<T> {
    const KIND: Kind = T::KIND;
}

/// A position does not change what is written.
impl<T: Shape> Shape for Spanned<T> {
    const KIND: Kind = T::KIND;
}

impl<T: Shape> Shape for Box<T> {
    const KIND: Kind = T::KIND;
}

impl<T: Shape> Shape for Vec<T> {
    const KIND: Kind = Array(&T::KIND);
}

/// A table whose keys are names the user chooses.
impl<K, T: Shape> Shape for std::collections::BTreeMap<K, T> {
    const KIND: Kind = Map(&T::KIND);
}

use Kind::{Array, Bool, Duration, Int, Map, Number, Size, Str, StrOrInt, StrOrTable, Table};

/// The hand-written tables the derived ones replace, kept for one commit
/// to show that the derived tables are the same, key for key.
#[cfg(test)]
mod hand_written {
    use super::*;

    const fn f(name: &'static str, kind: Kind) -> Field {
        Field { name, kind }
    }

    /// The whole file.
    pub(super) static ROOT: &[Field] = &[
        f("admin", Table(ADMIN)),
        f("runtime", Table(RUNTIME)),
        f("listeners", Map(&Table(LISTENER))),
        f("routes", Array(&Table(ROUTE))),
        f("upstreams", Map(&Table(UPSTREAM))),
        f("access_log", Table(ACCESS_LOG)),
        f("tracing", Table(TRACING)),
        f("filters", Map(&Table(FILTER))),
    ];

    static FILTER_REF: Kind = StrOrTable(
        FILTER,
        "a filter name or an inline filter table such as { headers = { ... } }",
        "filter names or inline filter tables",
    );

    static FILTER: &[Field] = &[
        f("request_id", Table(REQUEST_ID)),
        f("headers", Table(HEADERS)),
        f("rewrite", Table(REWRITE)),
        f("error_page", Table(ERROR_PAGE)),
        f("cors", Table(CORS)),
        f("ip", Table(IP)),
        f("compress", Table(COMPRESS)),
    ];

    static COMPRESS: &[Field] = &[
        f("algorithms", Array(&Str)),
        f("min_size", Size),
        f("content_types", Array(&Str)),
        f("gzip_level", Int),
        f("brotli_level", Int),
        f("zstd_level", Int),
    ];

    static IP: &[Field] = &[
        f("allow", Array(&Str)),
        f("deny", Array(&Str)),
        f("allow_files", Array(&Str)),
        f("deny_files", Array(&Str)),
    ];

    static REWRITE: &[Field] = &[
        f("strip_prefix", Str),
        f("replace_prefix", Table(&[f("from", Str), f("to", Str)])),
        f(
            "path_regex",
            Table(&[f("pattern", Str), f("replacement", Str)]),
        ),
        f("query", Table(QUERY_OPS)),
    ];

    static QUERY_OPS: &[Field] = &[
        f("remove", Array(&Str)),
        f("rename", Map(&Str)),
        f("set", Map(&Str)),
        f("add", Map(&Str)),
    ];

    static ERROR_PAGE: &[Field] = &[f("format", Str), f("content_type", Str), f("body", Str)];

    static CORS: &[Field] = &[
        f("allow_origins", Array(&CORS_ORIGIN)),
        f("allow_methods", Array(&Str)),
        f("allow_headers", Array(&Str)),
        f("expose_headers", Array(&Str)),
        f("allow_credentials", Bool),
        f("max_age", Duration),
    ];

    static CORS_ORIGIN: Kind = StrOrTable(
        &[f("regex", Str)],
        "an origin such as \"https://app.example\" or a table { regex = \"...\" }",
        "origins or { regex = \"...\" } tables",
    );

    static REQUEST_ID: &[Field] = &[
        f("header", Str),
        f("trust_incoming", Str),
        f("response", Bool),
    ];

    static HEADERS: &[Field] = &[
        f("request", Table(HEADER_OPS)),
        f("response", Table(HEADER_OPS)),
    ];

    static HEADER_OPS: &[Field] = &[
        f("set", Map(&Str)),
        f("add", Map(&Str)),
        f("append", Map(&Str)),
        f("remove", Array(&Str)),
    ];

    static ADMIN: &[Field] = &[
        f("address", Str),
        f("enabled", Bool),
        f("token", Str),
        f("token_file", Str),
    ];

    static RUNTIME: &[Field] = &[
        f("workers", Int),
        f("drain_timeout", Duration),
        f("watch_config", Bool),
        f("watch_debounce", Duration),
        f("log_level", Str),
        f("log_format", Str),
    ];

    static ACCESS_LOG: &[Field] = &[
        f("enabled", Bool),
        f("format", Str),
        f("path", Str),
        f("fields", Array(&Str)),
        f("sample", Number),
        f("queue", Int),
    ];

    static TRACING: &[Field] = &[
        f("enabled", Bool),
        f("endpoint", Str),
        f("sample_ratio", Number),
        f("parent_based", Bool),
        f("service_name", Str),
        f("headers", Map(&Str)),
        f("max_queue", Int),
        f("max_batch", Int),
        f("export_interval", Duration),
        f("export_timeout", Duration),
    ];

    static LISTENER: &[Field] = &[
        f("address", Str),
        f("request_header_timeout", Duration),
        f("idle_timeout", Duration),
        f("max_request_header_bytes", Size),
        f("max_request_headers", Int),
        f("max_connections", Int),
        f("http2", Bool),
        f("forwarded", Table(FORWARDED)),
        f("tls", Table(LISTENER_TLS)),
        f("ip", Table(IP)),
        f("filters", Array(&FILTER_REF)),
    ];

    static FORWARDED: &[Field] = &[
        f("trusted_proxies", Array(&Str)),
        f("x_forwarded", Bool),
        f("forwarded", Bool),
        f("via", Bool),
    ];

    static LISTENER_TLS: &[Field] = &[
        f("min_version", Str),
        f("default_certificate", Str),
        f("certificates", Array(&Table(CERTIFICATE))),
    ];

    static CERTIFICATE: &[Field] = &[
        f("name", Str),
        f("cert", Str),
        f("key", Str),
        f("server_names", Array(&Str)),
    ];

    static ROUTE: &[Field] = &[
        f("name", Str),
        f("listeners", Array(&Str)),
        f("match", Table(MATCH)),
        f("upstream", Str),
        f("respond", Table(RESPOND)),
        f("redirect", Table(REDIRECT)),
        f("split", Table(SPLIT)),
        f("timeout", Duration),
        f("max_request_body", Size),
        f("host_rewrite", Str),
        f("retry", Table(RETRY)),
        f("hedge", Table(HEDGE)),
        f("mirror", Table(MIRROR)),
        f("filters", Array(&FILTER_REF)),
    ];

    static CONDITION: Kind = StrOrTable(
        &[f("present", Bool), f("regex", Str)],
        "a string (exact value) or a table { present = true } / { regex = \"...\" }",
        "strings or { present = true } / { regex = \"...\" } tables",
    );

    static MATCH: &[Field] = &[
        f("hosts", Array(&Str)),
        f("path", Str),
        f("path_exact", Str),
        f("path_regex", Str),
        f("methods", Array(&Str)),
        f("headers", Map(&CONDITION)),
        f("query", Map(&CONDITION)),
    ];

    static RESPOND: &[Field] = &[f("status", Int), f("body", Str), f("content_type", Str)];

    static REDIRECT: &[Field] = &[
        f("location", Str),
        f("status", Int),
        f("keep_path", Bool),
        f("scheme", Str),
        f("host", Str),
        f("port", Int),
    ];

    static SPLIT: &[Field] = &[
        f("backends", Array(&Table(SPLIT_BACKEND))),
        f("header", Str),
        f("cookie", Str),
        f("skip_unavailable", Bool),
    ];

    static SPLIT_BACKEND: &[Field] = &[f("upstream", Str), f("weight", Int)];

    static RETRY: &[Field] = &[
        f("attempts", Int),
        f("on", Array(&Str)),
        f("statuses", Array(&Int)),
        f("per_try_timeout", Duration),
        f("backoff_base", Duration),
        f("backoff_max", Duration),
        f("non_idempotent", Bool),
        f("buffer", Size),
    ];

    static HEDGE: &[Field] = &[f("delay", Str), f("fallback", Duration)];

    static MIRROR: &[Field] = &[
        f("upstream", Str),
        f("percent", Number),
        f("max_in_flight", Int),
        f("max_body", Size),
    ];

    static UPSTREAM: &[Field] = &[
        f("servers", Array(&SERVER)),
        f("balancer", Str),
        f("hash", Table(HASH)),
        f("protocol", Str),
        f("connect_timeout", Duration),
        f("response_timeout", Duration),
        f("pool", Table(POOL)),
        f("tls", Table(UPSTREAM_TLS)),
        f("health_check", Table(HEALTH_CHECK)),
        f("outlier", Table(OUTLIER)),
        f("panic_threshold", Int),
        f("slow_start", Duration),
        f("circuit_breaker", Table(CIRCUIT_BREAKER)),
        f("retry_budget", Table(RETRY_BUDGET)),
        f("sticky", Table(STICKY)),
    ];

    static SERVER: Kind = StrOrTable(
        &[f("address", Str), f("weight", Int)],
        "an address string or a table { address = \"...\", weight = N }",
        "address strings or { address = \"...\", weight = N } tables",
    );

    static HASH: &[Field] = &[f("key", Str), f("algorithm", Str)];

    static POOL: &[Field] = &[f("max_idle_per_server", Int), f("idle_timeout", Duration)];

    static UPSTREAM_TLS: &[Field] = &[f("server_name", Str), f("ca", Str), f("verify", Bool)];

    static HEALTH_CHECK: &[Field] = &[
        f("type", Str),
        f("interval", Duration),
        f("jitter", Duration),
        f("timeout", Duration),
        f("unhealthy_threshold", Int),
        f("healthy_threshold", Int),
        f("method", Str),
        f("path", Str),
        f("host", Str),
        f("expect_status", Array(&STATUS)),
        f("expect_body", Str),
        f("service", Str),
    ];

    static STATUS: Kind = StrOrInt(
        "a status such as 200 or a string such as \"200-299\"",
        "statuses such as 200 or strings such as \"200-299\"",
    );

    static OUTLIER: &[Field] = &[
        f("consecutive_5xx", Int),
        f("consecutive_gateway_failures", Int),
        f("base_ejection_time", Duration),
        f("max_ejection_time", Duration),
        f("max_ejected_percent", Int),
    ];

    static CIRCUIT_BREAKER: &[Field] = &[
        f("max_connections", Int),
        f("max_pending_requests", Int),
        f("max_requests", Int),
        f("max_retries", Int),
    ];

    static RETRY_BUDGET: &[Field] = &[
        f("ratio", Number),
        f("min_retries_per_second", Int),
        f("window", Duration),
    ];

    static STICKY: &[Field] = &[
        f("cookie", Str),
        f("ttl", Duration),
        f("path", Str),
        f("domain", Str),
        f("secure", Bool),
        f("http_only", Bool),
        f("same_site", Str),
        f("secret", Str),
    ];
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Str => "a string".into(),
            Duration => "a duration string such as \"5s\"".into(),
            Size => "a size such as \"64KiB\" or a number of bytes".into(),
            Int => "an integer".into(),
            Number => "a number".into(),
            Bool => "a boolean (true or false)".into(),
            Array(inner) => format!("an array of {}", plural(inner)),
            Table(_) | Map(_) => "a table".into(),
            StrOrTable(_, one, _) | StrOrInt(one, _) => (*one).into(),
        }
    }
}

fn plural(kind: &Kind) -> String {
    match kind {
        Str => "strings".into(),
        Table(_) => "tables".into(),
        StrOrTable(_, _, many) | StrOrInt(_, many) => (*many).into(),
        Int => "integers".into(),
        other => other.describe(),
    }
}

fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The shape of the file as a JSON Schema (draft 7), for editors: taplo
/// and Even Better TOML complete and check keys with it. Made from the same
/// tables the checker walks, so it cannot drift from what `check` accepts
/// (values are checked further by validation).
pub(crate) fn json_schema() -> serde_json::Value {
    let mut root = table_schema(RawConfig::FIELDS);
    if let Some(obj) = root.as_object_mut() {
        obj.insert(
            "$schema".into(),
            "http://json-schema.org/draft-07/schema#".into(),
        );
        obj.insert("title".into(), "Switchyard configuration".into());
        obj.insert(
            "description".into(),
            "switchyard.toml: see docs/configuration.md".into(),
        );
    }
    root
}

fn table_schema(fields: &[Field]) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|f| (f.name.to_owned(), kind_schema(&f.kind)))
        .collect();
    serde_json::json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    })
}

fn kind_schema(kind: &Kind) -> serde_json::Value {
    use serde_json::json;
    match kind {
        Str => json!({"type": "string"}),
        Duration => json!({
            "type": "string",
            "pattern": "^(0|([0-9]*\\.?[0-9]+(ns|us|ms|s|m|h|d))+)$",
            "description": "a duration: numbers with units ns, us, ms, s, m, h or d, e.g. \"250ms\", \"5s\", \"1m30s\"",
        }),
        Size => json!({
            "anyOf": [
                {"type": "string", "description": "a size such as \"64KiB\" or \"10MB\""},
                {"type": "integer", "minimum": 0},
            ],
        }),
        Int => json!({"type": "integer"}),
        Number => json!({"type": "number"}),
        Bool => json!({"type": "boolean"}),
        Array(inner) => json!({"type": "array", "items": kind_schema(inner)}),
        Table(fields) => table_schema(fields),
        Map(inner) => json!({"type": "object", "additionalProperties": kind_schema(inner)}),
        StrOrTable(fields, one, _) => json!({
            "anyOf": [{"type": "string"}, table_schema(fields)],
            "description": one,
        }),
        StrOrInt(one, _) => json!({
            "anyOf": [{"type": "string"}, {"type": "integer"}],
            "description": one,
        }),
    }
}

/// Walks the whole document, reporting and removing malformed entries.
pub(crate) fn check_document(root: &mut DeTable<'_>, report: &mut Report<'_>) {
    check_table(root, RawConfig::FIELDS, "", report);
}

/// Checks a table against its known keys; malformed entries are removed.
fn check_table(table: &mut DeTable<'_>, fields: &[Field], path: &str, report: &mut Report<'_>) {
    let mut remove = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let child = join(path, name);
        let keep = match fields.iter().find(|field| field.name == name) {
            Some(field) => check_value(value, &field.kind, &child, report),
            None => {
                let names: Vec<&str> = fields.iter().map(|field| field.name).collect();
                let hint = match did_you_mean(name, names.iter().copied()) {
                    Some(best) => {
                        // A typo of a required key: the missing-key check
                        // for `best` would only repeat this error.
                        report.prune(join(path, best));
                        format!("did you mean `{best}`?")
                    }
                    None => format!("this table accepts {}", list(&names, "and")),
                };
                report
                    .error(key.span(), &child, format!("unknown key `{name}`"))
                    .hint(hint);
                false
            }
        };
        if !keep {
            remove.push(key.get_ref().to_string());
            report.prune(child);
        }
    }
    for key in remove {
        table.remove(key.as_str());
    }
}

/// Checks one value; returns false when it must be removed.
fn check_value(
    value: &mut Spanned<DeValue<'_>>,
    kind: &Kind,
    path: &str,
    report: &mut Report<'_>,
) -> bool {
    let span = value.span();
    match (kind, value.get_mut()) {
        (Str | Duration | StrOrInt(..), DeValue::String(_)) | (Bool, DeValue::Boolean(_)) => true,
        (Int | Size | Number | StrOrInt(..), DeValue::Integer(int)) => {
            let digits = int.as_str().replace('_', "");
            if i64::from_str_radix(&digits, int.radix()).is_ok() {
                true
            } else {
                report.error_value(span, path, "integer is out of range");
                false
            }
        }
        (Size, DeValue::String(_)) => true,
        (Number, DeValue::Float(float)) => {
            // Mirrors toml's own conversion: a finite literal that overflows
            // to infinity is refused by the deserializer.
            let text = float.as_str();
            if text
                .parse::<f64>()
                .is_ok_and(|x| !x.is_infinite() || text.contains("inf"))
            {
                true
            } else {
                report.error_value(span, path, "number is out of range");
                false
            }
        }
        (Table(fields) | StrOrTable(fields, ..), DeValue::Table(table)) => {
            check_table(table, fields, path, report);
            true
        }
        (StrOrTable(..), DeValue::String(_)) => true,
        (Map(inner), DeValue::Table(table)) => {
            let mut remove = Vec::new();
            for (key, entry) in table.iter_mut() {
                let child = join(path, key.get_ref());
                if !check_value(entry, inner, &child, report) {
                    remove.push(key.get_ref().to_string());
                    report.prune(child);
                }
            }
            for key in remove {
                table.remove(key.as_str());
            }
            true
        }
        (Array(inner), DeValue::Array(items)) => {
            let mut all_ok = true;
            for (i, item) in items.iter_mut().enumerate() {
                // Elements cannot be removed without renumbering the ones
                // after them, so one bad element drops the whole array.
                all_ok &= check_value(item, inner, &index(path, i), report);
            }
            all_ok
        }
        (kind, found) => {
            let message = format!("expected {}, found {}", kind.describe(), article(found));
            let diagnostic = report.error_value(span.clone(), path, message);
            if let Some(hint) = type_hint(kind, found, path) {
                diagnostic.hint(hint);
            }
            false
        }
    }
}

/// A field path as a TOML table header: `routes[5].split.backends` is
/// written `routes.split.backends` under its `[[routes]]` entry.
fn table_header(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

fn type_hint(kind: &Kind, found: &DeValue<'_>, path: &str) -> Option<String> {
    match (kind, found) {
        (Array(Table(_)), DeValue::Table(_)) => Some(format!(
            "write each entry as [[{}]], with double brackets",
            table_header(path)
        )),
        (Duration, DeValue::Integer(int)) => {
            Some(format!("durations need a unit, e.g. \"{}s\"", int.as_str()))
        }
        (Str, DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_)) => {
            Some("put the value in double quotes".into())
        }
        (Array(_), DeValue::String(_)) => Some("wrap the value in [ ]".into()),
        (Int | Number, DeValue::String(_)) => Some("remove the quotes".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of every key the tables know, for the test below.
    fn sample(kind: &Kind) -> serde_json::Value {
        use serde_json::json;
        match kind {
            Str => json!("x"),
            Duration => json!("1s"),
            Size => json!("1KiB"),
            Int => json!(1),
            Number => json!(0.5),
            Bool => json!(true),
            Array(inner) => json!([sample(inner)]),
            Table(fields) | StrOrTable(fields, ..) => sample_table(fields),
            Map(inner) => json!({ "k": sample(inner) }),
            StrOrInt(..) => json!(200),
        }
    }

    fn sample_table(fields: &[Field]) -> serde_json::Value {
        serde_json::Value::Object(
            fields
                .iter()
                .map(|f| (f.name.to_owned(), sample(&f.kind)))
                .collect(),
        )
    }

    /// The tables and raw.rs declare the same keys: a document holding
    /// every key the tables know, with a value of the right kind, reaches
    /// the serde model without an "internal" drift diagnostic or an
    /// unknown key (values are judged by validation, which may complain).
    #[test]
    fn every_key_the_tables_know_is_a_field_of_the_raw_model() {
        let doc = sample_table(RawConfig::FIELDS);
        let text = toml::to_string(&doc).unwrap_or_else(|e| panic!("{e}"));
        let errors = match crate::parse(&text, "all-keys.toml", std::path::Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(d) => d.errors.into_iter().map(|e| e.to_string()).collect(),
        };
        let drift: Vec<&String> = errors
            .iter()
            .filter(|e| e.contains(" error: internal: ") || e.contains("unknown key"))
            .collect();
        assert!(drift.is_empty(), "{drift:#?}");
        // The same document with a key no table knows is caught: the test
        // would see drift.
        let mut doc = doc;
        if let Some(runtime) = doc.get_mut("runtime").and_then(|r| r.as_object_mut()) {
            runtime.insert("zzz".into(), serde_json::json!(1));
        }
        let text = toml::to_string(&doc).unwrap_or_else(|e| panic!("{e}"));
        let caught = crate::parse(&text, "x.toml", std::path::Path::new("."))
            .err()
            .is_some_and(|d| d.errors.iter().any(|e| e.message.contains("unknown key")));
        assert!(caught);
    }

    fn same_kind(a: &Kind, b: &Kind, path: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Str, Str)
            | (Duration, Duration)
            | (Size, Size)
            | (Int, Int)
            | (Number, Number)
            | (Bool, Bool) => {}
            (Array(a), Array(b)) | (Map(a), Map(b)) => same_kind(a, b, path, out),
            (Table(a), Table(b)) => same_fields(a, b, path, out),
            (StrOrTable(a, a1, a2), StrOrTable(b, b1, b2)) => {
                same_fields(a, b, path, out);
                if (a1, a2) != (b1, b2) {
                    out.push(format!("{path}: texts differ"));
                }
            }
            (StrOrInt(a1, a2), StrOrInt(b1, b2)) => {
                if (a1, a2) != (b1, b2) {
                    out.push(format!("{path}: texts differ"));
                }
            }
            _ => out.push(format!("{path}: {} vs {}", a.describe(), b.describe())),
        }
    }

    fn same_fields(a: &[Field], b: &[Field], path: &str, out: &mut Vec<String>) {
        let names = |f: &[Field]| f.iter().map(|f| f.name).collect::<Vec<_>>().join(",");
        if names(a) != names(b) {
            out.push(format!("{path}: keys {} vs {}", names(a), names(b)));
            return;
        }
        for (x, y) in a.iter().zip(b) {
            same_kind(&x.kind, &y.kind, &join(path, x.name), out);
        }
    }

    /// The tables derived from raw.rs (`#[derive(Shape)]`) are exactly the
    /// hand-written ones, key for key, in the same order.
    #[test]
    fn derived_tables_equal_the_hand_written_ones() {
        let mut out = Vec::new();
        same_fields(RawConfig::FIELDS, hand_written::ROOT, "", &mut out);
        assert!(out.is_empty(), "{out:#?}");
    }

    fn check(source: &str) -> (String, Vec<String>) {
        let mut report = Report::new("t.toml", source);
        let Ok(doc) = DeTable::parse(source) else {
            return (String::new(), vec!["syntax".into()]);
        };
        let mut table = doc.into_inner();
        check_document(&mut table, &mut report);
        let remaining: Vec<String> = table.keys().map(|k| k.get_ref().to_string()).collect();
        let errors = report
            .finish()
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        (remaining.join(","), errors)
    }

    #[test]
    fn unknown_keys_are_all_reported_and_removed() {
        let (remaining, errors) = check("[admin]\nadress = \"x\"\n[runtim]\nworkers = 1\n");
        assert_eq!(remaining, "admin");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("2:1: error: admin.adress: unknown key `adress`"));
        assert!(errors[0].contains("did you mean `address`?"));
        assert!(errors[1].contains("did you mean `runtime`?"));
    }

    #[test]
    fn wrong_types_name_both_types() {
        let (_, errors) = check("[runtime]\nworkers = \"2\"\ndrain_timeout = 30\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("expected an integer, found a string (got \"2\")"));
        assert!(errors[1].contains("durations need a unit, e.g. \"30s\""));
    }

    #[test]
    fn numbers_take_integers_and_finite_floats() {
        let source = "[upstreams.a.retry_budget]\nratio = 1\n[upstreams.b.retry_budget]\nratio = 0.5\n[upstreams.c.retry_budget]\nratio = 1e400\n[upstreams.d.retry_budget]\nratio = \"0.5\"\n";
        let (_, errors) = check(source);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("upstreams.c.retry_budget.ratio: number is out of range"));
        assert!(errors[1].contains("expected a number, found a string"));
        assert!(errors[1].contains("remove the quotes"));
    }

    #[test]
    fn statuses_take_integers_and_strings() {
        let (_, errors) =
            check("[upstreams.a.health_check]\nexpect_status = [200, \"300-399\", true]\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("expect_status[2]: expected a status such as 200"));
    }

    #[test]
    fn huge_integers_are_rejected() {
        let (_, errors) = check("[runtime]\nworkers = 99999999999999999999\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("integer is out of range"));
    }
}
