//! `/metrics` against docs/metrics.md: after traffic that creates a series
//! of every family, every family the documentation lists is exported with
//! the documented type, every exported family is documented, every label
//! is a documented one (never a raw path or a client address), and the
//! byte, pool, route and connection gauges added with the admin API carry
//! sensible values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{
    Backend, Preamble, Proxy, RawHttp, client, eventually, metric_in, refused_addr, servers,
    tls_client, tls_connect, wait_admin_ready, write_cert,
};

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
/// `_total`) -> (type, label names seen on its samples).
fn exported(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    // TYPE name -> documented name.
    let mut by_type_name: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let doc_name = if kind == "counter" {
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
[upstreams.flaky]
servers = ["{refused}", {u}]
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
    let r = c.get(p.url("main", "/canary")).send().await.unwrap();
    assert_eq!(r.status(), 200);
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
    let got = exported(&text);
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
}
