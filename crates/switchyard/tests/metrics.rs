//! `/metrics` against docs/metrics.md: after traffic that creates a series
//! of every family, every family the documentation lists is exported with
//! the documented type, in both formats, every exported family is
//! documented, every label is a documented one (never a raw path or a
//! client address), and the byte, pool, route, listener, connection and
//! CORS series carry sensible values. Also: the `Accept` negotiation
//! between the Prometheus text format and OpenMetrics, and that an
//! upstream without optional features exports no series for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Backend, Preamble, Proxy, RawHttp, RawResponse, client, eventually, metric_in, refused_addr,
    servers, simple_config, tls_client, tls_connect, wait_admin_ready, write_cert,
};

/// The `Accept` header Prometheus sends by default.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A documented family: its type and the backquoted words of its labels
/// column (label names, and the values some rows list).
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

/// Every `| \`switchyard_...\` | type | labels | meaning |` row of
/// docs/metrics.md.
fn documented() -> BTreeMap<String, Documented> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        if !line.starts_with("| `switchyard_") {
            continue;
        }
        let cols: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
        let name = cols[1].trim_matches('`').to_string();
        let labels = cols[3]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let prev = out.insert(
            name.clone(),
            Documented {
                kind: cols[2].to_string(),
                labels,
            },
        );
        assert!(prev.is_none(), "{name} is documented twice");
    }
    assert!(out.len() > 20, "few rows parsed from docs/metrics.md");
    out
}

/// The families of an exposition: documented name (counters with their
/// `_total`) -> (type, label names seen on its samples). OpenMetrics names
/// a counter family without the `_total` its samples carry; the Prometheus
/// text format with it.
fn exported(text: &str, openmetrics: bool) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    // TYPE name -> documented name.
    let mut by_type_name: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let doc_name = if kind == "counter" && openmetrics {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            by_type_name.push((name.to_string(), doc_name.clone()));
            families.insert(doc_name, (kind.to_string(), BTreeSet::new()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let series = line.rsplit_once(' ').unwrap().0;
        let (sample, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        // The family whose TYPE name is the longest prefix of the sample
        // (`_total`, `_bucket`, `_sum`, `_count` follow it).
        let (_, doc_name) = by_type_name
            .iter()
            .filter(|(n, _)| sample.starts_with(n.as_str()))
            .max_by_key(|(n, _)| n.len())
            .unwrap_or_else(|| panic!("sample {sample} before its TYPE line"));
        let keys = families.get_mut(doc_name).unwrap();
        for k in label_names(labels) {
            if k != "le" {
                keys.1.insert(k);
            }
        }
    }
    families
}

/// The names in `a="x",b="y"` (values may hold escaped quotes).
fn label_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        names.push(k.trim_start_matches(',').trim().to_string());
        let mut escaped = false;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = i + 1;
                    break;
                }
                _ => escaped = false,
            }
        }
        rest = &after[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_family_is_exported_and_vice_versa() {
    let b = Backend::start("b").await;
    let m = Backend::start("m").await;
    let slow1 = Backend::start_delayed("slow1", Duration::from_millis(100)).await;
    let slow2 = Backend::start_delayed("slow2", Duration::from_millis(100)).await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(certs.path(), "secure", &["secure.example.test"]);
    let toml = format!(
        r#"{preamble}
[listeners.secure]
address = "127.0.0.1:0"
[listeners.secure.tls]
certificates = [{{ cert = "{cert}", key = "{key}" }}]
[listeners.secure.ip]
allow = ["127.0.0.1"]
[tracing]
endpoint = "http://{b}/v1/traces"
sample_ratio = 0.0
[[routes]]
name = "app"
upstream = "u"
[routes.match]
path = "/app"
[routes.mirror]
upstream = "mirror"
[[routes]]
name = "retry"
upstream = "flaky"
[routes.match]
path = "/retry"
[routes.retry]
attempts = 3
on = ["connect-failure"]
[[routes]]
name = "hedge"
upstream = "slow"
[routes.match]
path = "/hedge"
[routes.hedge]
delay = "1ms"
[[routes]]
name = "cors"
upstream = "u"
filters = [{{ cors = {{ allow_origins = ["https://app.example"] }} }}]
[routes.match]
path = "/cors"
[[routes]]
name = "compressed"
filters = [{{ compress = {{ min_size = 0 }} }}]
respond = {{ status = 200, body = "compressible text, compressible text", content_type = "text/plain" }}
[routes.match]
path = "/compressed"
[[routes]]
name = "canary"
[routes.match]
path = "/canary"
[routes.split]
backends = [{{ upstream = "u", weight = 1 }}, {{ upstream = "mirror", weight = 1 }}]
[upstreams.u]
servers = [{u}]
[upstreams.u.health_check]
type = "tcp"
interval = "1s"
[upstreams.mirror]
servers = [{m}]
[upstreams.mirror.outlier]
[upstreams.mirror.sticky]
[upstreams.flaky]
servers = ["{refused}", {u}]
[upstreams.flaky.circuit_breaker]
max_connections = 1000
max_pending_requests = 1000
max_requests = 1000
max_retries = 1000
[upstreams.slow]
servers = [{slow}]
"#,
        preamble = Preamble::default(),
        cert = cert.display(),
        key = key.display(),
        b = b.addr,
        u = servers(&[&b]),
        m = servers(&[&m]),
        refused = refused_addr(),
        slow = servers(&[&slow1, &slow2]),
    );
    let p = Proxy::start(&toml);
    let admin = p.admin();
    wait_admin_ready(admin).await;
    let c = client();
    let scrape = async || {
        let r = c
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };

    // Proxied requests on one keep-alive connection: the second one on
    // reuses the pooled upstream connection.
    eventually(
        "a pooled connection is reused",
        Duration::from_secs(20),
        async || {
            let r = c.get(p.url("main", "/app")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            metric_in(
                &scrape().await,
                "switchyard_upstream_pool_reused_total",
                &[("upstream", "u")],
            ) > 0.0
        },
    )
    .await;
    // Round robin over a refused address and a live server: a retry.
    eventually("a retry", Duration::from_secs(20), async || {
        let r = c.get(p.url("main", "/retry")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        metric_in(
            &scrape().await,
            "switchyard_retries_total",
            &[("route", "retry")],
        ) > 0.0
    })
    .await;
    // Servers slower than the hedge delay: a hedge.
    eventually("a hedge", Duration::from_secs(20), async || {
        let r = c.get(p.url("main", "/hedge")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        metric_in(
            &scrape().await,
            "switchyard_hedges_total",
            &[("route", "hedge")],
        ) > 0.0
    })
    .await;
    // A compressed response.
    let r = c
        .get(p.url("main", "/compressed"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    r.bytes().await.unwrap();
    let r = c.get(p.url("main", "/canary")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A CORS preflight, answered at the edge.
    let r = c
        .request(reqwest::Method::OPTIONS, p.url("main", "/cors"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // No route: a proxy error.
    let r = c.get(p.url("main", "/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // No Host: a downstream error.
    let mut raw = RawHttp::connect(p.addr("main")).await;
    raw.send(b"GET /app HTTP/1.1\r\n\r\n").await;
    assert_eq!(raw.read_response().await.status, 400);
    // A TLS handshake.
    let tls = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    drop(
        tls_connect(&tls, p.addr("secure"), Some("secure.example.test"))
            .await
            .unwrap(),
    );
    // A reload.
    let r = c
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The health checker has started.
    eventually("health-check series", Duration::from_secs(20), async || {
        scrape().await.contains("switchyard_health_checks_total{")
    })
    .await;

    let text = scrape().await;
    let docs = documented();
    let got = exported(&text, false);
    // The same families, types and labels in OpenMetrics.
    let om = get_with_accept(admin, "/metrics", Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(om.header("content-type"), Some(OPENMETRICS));
    assert_eq!(
        exported(&om.body_str(), true),
        got,
        "the two formats differ"
    );
    for (name, d) in &docs {
        let Some((kind, labels)) = got.get(name) else {
            panic!("{name} is documented in docs/metrics.md but not exported:\n{text}");
        };
        assert_eq!(kind, &d.kind, "{name}: type");
        for l in labels {
            assert!(
                d.labels.contains(l),
                "{name}: label {l} is not in docs/metrics.md ({:?})",
                d.labels
            );
        }
    }
    for name in got.keys() {
        assert!(
            docs.contains_key(name),
            "{name} is exported but not documented in docs/metrics.md"
        );
    }
    // Labels name configured things and small fixed sets, never request
    // data or clients.
    for (name, (_, labels)) in &got {
        for banned in [
            "path",
            "uri",
            "url",
            "client",
            "client_ip",
            "ip",
            "peer",
            "host",
            "user_agent",
        ] {
            assert!(!labels.contains(banned), "{name} has a {banned} label");
        }
    }

    // The values.
    let v = |name: &str, labels: &[(&str, &str)]| metric_in(&text, name, labels);
    let main = [("listener", "main")];
    assert!(v("switchyard_downstream_bytes_received_total", &main) > 0.0);
    assert!(v("switchyard_downstream_bytes_sent_total", &main) > 0.0);
    let u = [("upstream", "u")];
    assert!(v("switchyard_upstream_bytes_sent_total", &u) > 0.0);
    assert!(v("switchyard_upstream_bytes_received_total", &u) > 0.0);
    assert!(
        v("switchyard_upstream_connections_open", &u) >= 1.0,
        "the pooled connection is open"
    );
    assert_eq!(
        v("switchyard_route_active_requests", &[("route", "app")]),
        0.0
    );
    assert_eq!(
        v("switchyard_route_active_requests", &[]),
        0.0,
        "no request in flight"
    );
    assert_eq!(
        v(
            "switchyard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        v(
            "switchyard_tls_handshakes_total",
            &[("listener", "secure"), ("kind", "ok")]
        ),
        1.0
    );
    assert_eq!(v("switchyard_admin_unauthorized_total", &[]), 0.0);
    // A listener with IP lists exports its refusals from the start.
    assert!(
        text.contains(
            "switchyard_downstream_errors_total{listener=\"secure\",kind=\"ip_denied\"} 0"
        ),
        "{text}"
    );
    // Every answer on `main`, routed or not: the 404 (no route) and the
    // 400 (no Host) are its only 4xx.
    let main_4xx = [("listener", "main"), ("class", "4xx")];
    assert_eq!(v("switchyard_listener_requests_total", &main_4xx), 2.0);
    assert!(
        v(
            "switchyard_listener_requests_total",
            &[("listener", "main"), ("class", "2xx")]
        ) >= 4.0
    );
    assert_eq!(
        v(
            "switchyard_cors_requests_total",
            &[("route", "cors"), ("outcome", "preflight")]
        ),
        1.0
    );
    // The split counts by upstream only (no always-empty `reason`).
    assert!(text.contains("switchyard_split_requests_total{route=\"canary\",upstream="));
    assert!(
        !text.contains("reason=\"\""),
        "an always-empty label:\n{text}"
    );
}

/// GETs `path` on `admin` with `accept` as the only optional header (none:
/// no `Accept` at all, which reqwest would add).
async fn get_with_accept(admin: SocketAddr, path: &str, accept: Option<&str>) -> RawResponse {
    let mut raw = RawHttp::connect(admin).await;
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{accept}Connection: close\r\n\r\n");
    raw.send(req.as_bytes()).await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    r
}

/// Checks a Prometheus 0.0.4 exposition: no OpenMetrics-only lines, one
/// TYPE line per family with a HELP of the same name, and every sample
/// named after the family of the TYPE line before it (`_bucket`, `_sum`
/// and `_count` after a histogram's).
fn check_prometheus_text(text: &str) {
    let mut declared: BTreeSet<&str> = BTreeSet::new();
    let mut family: Option<(&str, &str)> = None;
    let mut help: Option<&str> = None;
    for line in text.lines() {
        assert!(!line.starts_with("# EOF"), "# EOF in 0.0.4 text");
        assert!(!line.starts_with("# UNIT"), "# UNIT in 0.0.4 text: {line}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap().0);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "not a 0.0.4 type: {line}"
            );
            assert!(declared.insert(name), "{name} declared twice");
            assert_eq!(
                help.take(),
                Some(name),
                "HELP and TYPE names differ: {line}"
            );
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter named without _total: {line}"
                );
            }
            family = Some((name, kind));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        assert!(!line.contains(" # "), "an exemplar: {line}");
        let (name, kind) = family.unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let sample = line.split(['{', ' ']).next().unwrap();
        let ok = match kind {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| sample.strip_prefix(name) == Some(s)),
            _ => sample == name,
        };
        assert!(ok, "sample {sample} is not of family {name} ({kind})");
        assert!(!sample.ends_with("_created"), "{line}");
    }
    assert!(declared.len() > 10, "few families:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_follows_the_accept_header() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&simple_config(&[&b], ""));
    let admin = p.admin();
    wait_admin_ready(admin).await;
    let r = client().get(p.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let cases: &[(Option<&str>, &str)] = &[
        (None, PROMETHEUS_TEXT),
        (Some("*/*"), PROMETHEUS_TEXT),
        (Some("text/plain; version=0.0.4"), PROMETHEUS_TEXT),
        (
            Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            PROMETHEUS_TEXT,
        ),
        (Some("application/json"), PROMETHEUS_TEXT),
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS),
        (
            Some("application/openmetrics-text; version=0.0.1"),
            OPENMETRICS,
        ),
        (Some("application/openmetrics-text"), OPENMETRICS),
    ];
    for (accept, want) in cases {
        let r = get_with_accept(admin, "/metrics", *accept).await;
        assert_eq!(r.header("content-type"), Some(*want), "Accept: {accept:?}");
        assert_eq!(r.header("vary"), Some("accept"));
        let body = r.body_str();
        if *want == OPENMETRICS {
            assert!(body.ends_with("# EOF\n"), "OpenMetrics without # EOF");
            assert!(body.contains("# TYPE switchyard_requests counter\n"));
        } else {
            check_prometheus_text(&body);
            assert!(body.contains("# TYPE switchyard_requests_total counter\n"));
            assert!(body.contains("# TYPE switchyard_request_duration_seconds histogram\n"));
            assert!(body.contains("# TYPE switchyard_build_info gauge\n"));
        }
        assert_eq!(
            metric_in(
                &body,
                "switchyard_requests_total",
                &[("route", "all"), ("class", "2xx")]
            ),
            1.0,
            "Accept: {accept:?}"
        );
    }
}

/// Families that only features an upstream does not use would fill.
const FEATURE_FAMILIES: &[&str] = &[
    "switchyard_circuit_breaker_trips_total",
    "switchyard_sticky_sessions_total",
    "switchyard_upstream_server_ejected",
    "switchyard_outlier_ejections_total",
    "switchyard_outlier_ejections_skipped_total",
    "switchyard_retry_budget_exhausted_total",
];

/// The sample lines of `text` for upstream `u`.
fn upstream_samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains("upstream=\"u\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_without_features_has_no_series_for_them() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&simple_config(&[&b], ""));
    let admin = p.admin();
    wait_admin_ready(admin).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(p.url("main", "/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let text = get_with_accept(admin, "/metrics", None).await.body_str();
    for family in FEATURE_FAMILIES {
        assert_eq!(
            upstream_samples(&text, family),
            Vec::<&str>::new(),
            "{family}:\n{text}"
        );
    }
    // The series of what it does use are there.
    let srv = [("upstream", "u"), ("server", &*b.addr.to_string())];
    assert_eq!(
        metric_in(&text, "switchyard_upstream_requests_total", &srv),
        3.0
    );
    assert_eq!(
        metric_in(&text, "switchyard_upstream_server_healthy", &srv),
        1.0
    );
    assert!(
        !text.contains("reason=\"\""),
        "an always-empty label:\n{text}"
    );

    // A reload that turns the features on creates their series, at 0.
    let features = r#"
[upstreams.u.circuit_breaker]
max_requests = 100
[upstreams.u.sticky]
[upstreams.u.outlier]
"#;
    p.write_config(&simple_config(&[&b], features));
    let r = c
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let text = get_with_accept(admin, "/metrics", None).await.body_str();
    let breakers = upstream_samples(&text, "switchyard_circuit_breaker_trips_total");
    assert_eq!(breakers.len(), 1, "only the configured breaker:\n{text}");
    assert!(
        breakers[0].contains("outcome=\"max_requests\""),
        "{breakers:?}"
    );
    assert_eq!(
        upstream_samples(&text, "switchyard_sticky_sessions_total").len(),
        3
    );
    assert_eq!(
        upstream_samples(&text, "switchyard_upstream_server_ejected").len(),
        1
    );
    assert_eq!(
        upstream_samples(&text, "switchyard_outlier_ejections_total").len(),
        2
    );
    assert_eq!(
        upstream_samples(&text, "switchyard_outlier_ejections_skipped_total").len(),
        1
    );
    // No route retries or hedges to it.
    assert!(upstream_samples(&text, "switchyard_retry_budget_exhausted_total").is_empty());
    // Sticky sessions count from now on.
    let r = c.get(p.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = get_with_accept(admin, "/metrics", None).await.body_str();
    assert_eq!(
        metric_in(
            &text,
            "switchyard_sticky_sessions_total",
            &[("upstream", "u"), ("outcome", "assigned")]
        ),
        1.0
    );
}
