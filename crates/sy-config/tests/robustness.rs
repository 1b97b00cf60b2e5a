//! `parse` returns (never panics) on any input, and the shape check in front
//! of serde never lets through something serde then rejects (that would show
//! as an "internal" diagnostic).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(name)).unwrap()
}

/// Parses and checks the invariants that hold for every input.
fn check(source: &str) -> Result<(), TestCaseError> {
    if let Err(diagnostics) = sy_config::parse(source, "fuzz.toml", &examples_dir()) {
        prop_assert!(!diagnostics.errors.is_empty());
        for d in &diagnostics.errors {
            prop_assert!(
                !d.message.starts_with("internal:"),
                "schema/raw drift: {}",
                d
            );
            prop_assert!(!d.message.is_empty());
            // One diagnostic is one line plus an optional hint line.
            prop_assert!(d.to_string().lines().count() <= 2, "{}", d);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    DropLine(usize),
    DuplicateLine(usize),
}

fn apply(source: &str, mutation: &Mutation) -> String {
    let mut chars: Vec<char> = source.chars().collect();
    let mut lines: Vec<&str> = source.lines().collect();
    match *mutation {
        Mutation::Delete(i) if !chars.is_empty() => {
            chars.remove(i % chars.len());
        }
        Mutation::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
        Mutation::Replace(i, c) if !chars.is_empty() => {
            let len = chars.len();
            chars[i % len] = c;
        }
        Mutation::DropLine(i) if !lines.is_empty() => {
            lines.remove(i % lines.len());
            return lines.join("\n");
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let line = lines[i % lines.len()];
            lines.insert(i % lines.len(), line);
            return lines.join("\n");
        }
        _ => {}
    }
    chars.into_iter().collect()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        '"', '\'', '[', ']', '{', '}', '=', ',', '.', '\n', '#', '0', '-', ' ', 'x', '*', '/', ':',
        '\\', 'é',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting.clone()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<usize>(), interesting).prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

/// A file built from the config's own vocabulary: sections with unique
/// keys, so that most generated files are valid TOML that reaches the schema
/// check, serde and validation.
fn config_file() -> impl Strategy<Value = String> {
    let headers = prop::sample::select(vec![
        "[admin]",
        "[runtime]",
        "[listeners.web]",
        "[listeners.web.tls]",
        "[listeners.web.forwarded]",
        "[listeners.other]",
        "[[routes]]",
        "[routes.match]",
        "[upstreams.api]",
        "[upstreams.api.hash]",
        "[upstreams.api.pool]",
        "[upstreams.api.tls]",
        "[upstreams.api.health_check]",
        "[upstreams.api.outlier]",
        "[upstreams.api.circuit_breaker]",
        "[upstreams.api.retry_budget]",
        "[upstreams.api.sticky]",
        "[upstreams.b]",
        "[routes.split]",
        "[[routes.split.backends]]",
        "[routes.retry]",
        "[routes.hedge]",
        "[routes.mirror]",
        "[access_log]",
        "[tracing]",
        "[tracing.headers]",
    ]);
    let keys = prop::sample::select(vec![
        "address",
        "enabled",
        "workers",
        "drain_timeout",
        "watch_config",
        "log_level",
        "request_header_timeout",
        "idle_timeout",
        "max_request_header_bytes",
        "max_request_headers",
        "max_connections",
        "http2",
        "proxy_protocol",
        "trusted_proxies",
        "x_forwarded",
        "forwarded",
        "via",
        "min_version",
        "default_certificate",
        "certificates",
        "name",
        "listeners",
        "upstream",
        "respond",
        "redirect",
        "timeout",
        "max_request_body",
        "host_rewrite",
        "hosts",
        "path",
        "path_exact",
        "path_regex",
        "methods",
        "headers",
        "query",
        "servers",
        "balancer",
        "protocol",
        "connect_timeout",
        "response_timeout",
        "key",
        "algorithm",
        "max_idle_per_server",
        "server_name",
        "ca",
        "verify",
        "match",
        "hash",
        "pool",
        "tls",
        "adress",
        "split",
        "retry",
        "hedge",
        "mirror",
        "backends",
        "weight",
        "header",
        "cookie",
        "attempts",
        "on",
        "statuses",
        "per_try_timeout",
        "backoff_base",
        "backoff_max",
        "non_idempotent",
        "buffer",
        "delay",
        "fallback",
        "percent",
        "max_in_flight",
        "max_body",
        "health_check",
        "outlier",
        "panic_threshold",
        "slow_start",
        "circuit_breaker",
        "retry_budget",
        "sticky",
        "type",
        "interval",
        "jitter",
        "unhealthy_threshold",
        "healthy_threshold",
        "method",
        "host",
        "expect_status",
        "expect_body",
        "service",
        "consecutive_5xx",
        "base_ejection_time",
        "max_ejection_time",
        "max_ejected_percent",
        "max_requests",
        "ratio",
        "window",
        "ttl",
        "same_site",
        "secure",
        "secret",
        "token",
        "token_file",
        "log_format",
        "format",
        "fields",
        "sample",
        "queue",
        "endpoint",
        "sample_ratio",
        "parent_based",
        "service_name",
        "max_queue",
        "max_batch",
        "export_interval",
        "export_timeout",
        "authorization",
    ]);
    let values = prop::sample::select(vec![
        "\"127.0.0.1:8080\"",
        "\"127.0.0.1:9901\"",
        "\"5s\"",
        "\"0s\"",
        "\"64KiB\"",
        "\"x\"",
        "\"\"",
        "\"/api\"",
        "\"api\"",
        "\"web\"",
        "\"consistent_hash\"",
        "\"h2\"",
        "\"h2c\"",
        "\"header:x-user\"",
        "\"1.2\"",
        "'('",
        "\"*.example.com\"",
        "0",
        "1",
        "-1",
        "3",
        "99999999999999999999",
        "1.5",
        "true",
        "false",
        "1979-05-27",
        "[]",
        "[\"a\"]",
        "[1]",
        "[\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 0 }]",
        "[{}]",
        "{}",
        "{ present = true }",
        "{ regex = \"(\" }",
        "{ status = 200 }",
        "{ location = \"x\" }",
        "{ \"x-a\" = \"1\", \"x-b\" = { present = false } }",
        "{ cert = \"certs/a.example.com.pem\" }",
        "[{ cert = \"certs/a.example.com.pem\", key = \"nope\", name = \"a\" }]",
        "0.5",
        "1e400",
        "nan",
        "-inf",
        "\"p95\"",
        "\"50ms\"",
        "\"none\"",
        "\"grpc\"",
        "\"tcp\"",
        "\"2xx\"",
        "\"300-200\"",
        "[200, \"300-399\", \"5é\"]",
        "[\"reset\", \"timeout\", \"rest\"]",
        "[{ upstream = \"api\", weight = 0 }, { upstream = \"b\" }]",
        "{ upstream = \"api\" }",
        "{ delay = \"p95\", fallback = \"0s\" }",
        "{ backends = [{ upstream = \"api\" }] }",
        "\"0.0.0.0:9901\"",
        "\"0123456789abcdef\"",
        "\"certs/README.md\"",
        "\"certs\"",
        "\"json\"",
        "\"combined\"",
        "\"stdout\"",
        "\"no-such-dir/access.log\"",
        "\"http://127.0.0.1:4318/v1/traces\"",
        "\"grpc://[::1]:4317\"",
        "\"http://u@:99999/#\"",
        "[\"time\", \"status\", \"time\", \"tme\"]",
        "{ authorization = \"Bearer x\", Authorization = \"\\u0001\", \"Content-Type\" = \"y\" }",
        "0.01",
        "4096",
    ]);
    let section = (headers, prop::collection::btree_map(keys, values, 0..6));
    prop::collection::vec(section, 0..12).prop_map(|sections| {
        let mut seen = std::collections::HashSet::new();
        let mut out = String::new();
        for (header, entries) in sections {
            // A repeated [table] is a syntax error; [[arrays]] may repeat.
            if !header.starts_with("[[") && !seen.insert(header) {
                continue;
            }
            out.push_str(header);
            out.push('\n');
            for (key, value) in entries {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(source in "\\PC*") {
        check(&source)?;
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn mutated_examples_never_panic(
        name in prop::sample::select(vec![
            "basic.toml", "tls.toml", "routing.toml", "balancers.toml", "h2-upstreams.toml",
            "resilience.toml", "observability.toml",
        ]),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut source = example(name);
        for m in &mutations {
            source = apply(&source, m);
        }
        check(&source)?;
    }

    #[test]
    fn config_shaped_files_never_panic_or_drift(source in config_file()) {
        check(&source)?;
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let deep = format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(sy_config::parse(&deep, "deep.toml", Path::new(".")).is_err());
    let tables = format!("x = {}1{}", "{a = ".repeat(50_000), "}".repeat(50_000));
    assert!(sy_config::parse(&tables, "deep.toml", Path::new(".")).is_err());
}
