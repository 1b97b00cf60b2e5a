//! What a valid file turns into: defaults, normalisation, references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sy_config::model::{
    Action, BalancerKind, CircuitBreaker, HashAlgorithm, HashKey, HealthCheck, HealthCheckKind,
    Hedge, HedgeDelay, LogFormat, Mirror, Outlier, PathMatch, Redirect, RedirectTarget, Retry,
    RetryBudget, RetryOn, Split, SplitBackend, Sticky, TlsVersion, UpstreamProtocol, ValueMatch,
};

mod support;

use support::{examples_dir, parse_err, parse_ok};

#[test]
fn an_empty_file_is_all_defaults() {
    let config = parse_ok("");
    assert_eq!(
        config.admin.address,
        Some("127.0.0.1:9901".parse().unwrap())
    );
    assert_eq!(config.runtime.workers, 0);
    assert_eq!(config.runtime.drain_timeout, Duration::from_secs(30));
    assert!(config.runtime.watch_config);
    assert_eq!(config.runtime.log_level, "info");
    assert_eq!(config.runtime.log_format, LogFormat::Text);
    assert_eq!(config.admin.token, None);
    assert!(config.listeners.is_empty() && config.routes.is_empty() && config.upstreams.is_empty());
    assert_eq!(config.access_log, None);
    assert_eq!(config.tracing, None);
}

#[test]
fn listener_defaults() {
    let config = parse_ok("[listeners.web]\naddress = \"127.0.0.1:8080\"\n");
    let web = &config.listeners[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.address, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(web.request_header_timeout, Duration::from_secs(10));
    assert_eq!(web.idle_timeout, Duration::from_secs(60));
    assert_eq!(web.max_request_header_bytes, 64 * 1024);
    assert_eq!(web.max_request_headers, 100);
    assert_eq!(web.max_connections, 0);
    assert!(web.http2);
    assert!(!web.proxy_protocol);
    assert!(web.tls.is_none());
    assert!(web.forwarded.trusted_proxies.is_empty());
    assert!(web.forwarded.x_forwarded && web.forwarded.via && !web.forwarded.rfc7239);
}

#[test]
fn proxy_protocol_is_a_listener_switch() {
    let config = parse_ok("[listeners.web]\naddress = \"127.0.0.1:8080\"\nproxy_protocol = true\n");
    assert!(config.listeners[0].proxy_protocol);
    let d = parse_err("[listeners.web]\naddress = \"127.0.0.1:8080\"\nproxy_protocol = \"v2\"\n");
    assert!(
        d.contains("listeners.web.proxy_protocol: expected a boolean"),
        "{d}"
    );
}

#[test]
fn listeners_and_upstreams_come_in_name_order_routes_in_file_order() {
    let config = parse_ok(
        r#"
        [listeners.b]
        address = "127.0.0.1:8081"
        [listeners.a]
        address = "127.0.0.1:8080"
        [[routes]]
        name = "z"
        upstream = "y"
        [[routes]]
        name = "a"
        upstream = "x"
        [upstreams.y]
        servers = ["127.0.0.1:1"]
        [upstreams.x]
        servers = ["127.0.0.1:2"]
        "#,
    );
    let names = |v: Vec<&str>| v.join(",");
    assert_eq!(
        names(config.listeners.iter().map(|l| l.name.as_str()).collect()),
        "a,b"
    );
    assert_eq!(
        names(config.routes.iter().map(|r| r.name.as_str()).collect()),
        "z,a"
    );
    assert_eq!(
        names(config.upstreams.iter().map(|u| u.name.as_str()).collect()),
        "x,y"
    );
}

#[test]
fn matches_are_normalised() {
    let config = parse_ok(
        r#"
        [[routes]]
        name = "r"
        upstream = "u"
        host_rewrite = "api.internal"
        timeout = "1m30s"
        max_request_body = "10MiB"
        [routes.match]
        hosts = ["API.Example.com", "*.Example.COM"]
        path_regex = '^/v[0-9]+/'
        methods = ["get", "Post"]
        headers = { "X-Canary" = "1", "x-trace" = { present = true }, "User-Agent" = { regex = "^curl/" } }
        query = { "Debug" = "1" }
        [upstreams.u]
        servers = ["127.0.0.1:9000"]
        "#,
    );
    let route = &config.routes[0];
    assert_eq!(route.matcher.hosts, ["api.example.com", "*.example.com"]);
    assert_eq!(
        route.matcher.path,
        Some(PathMatch::Regex("^/v[0-9]+/".into()))
    );
    assert_eq!(route.matcher.methods, ["GET", "POST"]);
    assert_eq!(
        route.matcher.headers,
        vec![
            ("user-agent".to_owned(), ValueMatch::Regex("^curl/".into())),
            ("x-canary".to_owned(), ValueMatch::Exact("1".into())),
            ("x-trace".to_owned(), ValueMatch::Present),
        ]
    );
    // Query parameter names are case-sensitive and kept as written.
    assert_eq!(
        route.matcher.query,
        vec![("Debug".to_owned(), ValueMatch::Exact("1".into()))]
    );
    assert_eq!(route.action, Action::Upstream("u".into()));
    assert_eq!(route.timeout, Some(Duration::from_secs(90)));
    assert_eq!(route.max_request_body, Some(10 << 20));
    assert_eq!(route.host_rewrite.as_deref(), Some("api.internal"));
    assert!(route.listeners.is_empty());
}

#[test]
fn respond_and_redirect_defaults() {
    let config = parse_ok(
        r#"
        [[routes]]
        name = "r1"
        respond = {}
        [[routes]]
        name = "r2"
        redirect = { location = "https://example.com" }
        [routes.match]
        path_exact = "/old"
        "#,
    );
    assert_eq!(
        config.routes[0].action,
        Action::Respond {
            status: 200,
            body: String::new(),
            content_type: "text/plain; charset=utf-8".into()
        }
    );
    assert_eq!(
        config.routes[1].action,
        Action::Redirect(Redirect {
            status: 302,
            target: RedirectTarget::Location {
                location: "https://example.com".into(),
                keep_path: false
            }
        })
    );
    assert_eq!(
        config.routes[1].matcher.path,
        Some(PathMatch::Exact("/old".into()))
    );
}

#[test]
fn upstream_details() {
    let config = parse_ok(
        r#"
        [upstreams.api]
        servers = ["127.0.0.1:9000", { address = "backend.internal:9001", weight = 3 }]
        balancer = "consistent_hash"
        protocol = "h2"
        [upstreams.api.hash]
        key = "header:X-User"
        [upstreams.api.tls]
        ca = "certs/upstream-ca.pem"
        "#,
    );
    let api = config.upstream("api").unwrap();
    assert_eq!(api.servers[0].weight, 1);
    assert_eq!(api.servers[1].address, "backend.internal:9001");
    assert_eq!(api.servers[1].weight, 3);
    assert_eq!(api.balancer, BalancerKind::ConsistentHash);
    let hash = api.hash.as_ref().unwrap();
    assert_eq!(hash.key, HashKey::Header("x-user".into()));
    assert_eq!(hash.algorithm, HashAlgorithm::Maglev);
    assert_eq!(api.protocol, UpstreamProtocol::H2);
    assert_eq!(api.connect_timeout, Duration::from_secs(5));
    assert_eq!(api.response_timeout, Duration::from_secs(60));
    assert_eq!(api.pool.max_idle_per_server, 64);
    assert_eq!(api.pool.idle_timeout, Duration::from_secs(90));
    let tls = api.tls.as_ref().unwrap();
    assert!(tls.verify && tls.server_name.is_none());
    assert_eq!(
        tls.ca.as_deref(),
        Some(examples_dir().join("certs/upstream-ca.pem").as_path())
    );
}

#[test]
fn listener_tls_and_forwarded() {
    let config = parse_ok(
        r#"
        [admin]
        enabled = false
        [listeners.web]
        address = "[::1]:8443"
        [listeners.web.forwarded]
        trusted_proxies = ["10.0.0.1/8", "127.0.0.1", "::1"]
        forwarded = true
        [listeners.web.tls]
        min_version = "1.3"
        default_certificate = "cert-1"
        certificates = [
          { cert = "certs/a.example.com.pem", key = "certs/a.example.com.key", server_names = ["A.example.com"] },
          { cert = "certs/b.example.com.pem", key = "certs/b.example.com.key" },
        ]
        "#,
    );
    assert_eq!(config.admin.address, None);
    let web = &config.listeners[0];
    let proxies: Vec<String> = web
        .forwarded
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    assert!(web.forwarded.rfc7239);
    let tls = web.tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    assert_eq!(tls.certificates[0].name, "cert-0");
    assert_eq!(tls.certificates[0].server_names, ["a.example.com"]);
    assert_eq!(tls.default_certificate, 1);
}

#[test]
fn load_resolves_paths_against_the_file_and_names_it() {
    let config = sy_config::load(&examples_dir().join("tls.toml")).unwrap();
    let https = config.listeners.iter().find(|l| l.name == "https").unwrap();
    let cert = &https.tls.as_ref().unwrap().certificates[0].cert;
    assert!(cert.starts_with(examples_dir()), "{}", cert.display());

    let missing = Path::new("/nonexistent/switchyard.toml");
    let err = sy_config::load(missing).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/switchyard.toml: error: cannot read the configuration file:"),
        "{err}"
    );
}

#[test]
fn load_rejects_non_utf8_and_accepts_a_bom() {
    let dir = std::env::temp_dir().join(format!("sy-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"[runtime]\nlog_level = \"caf\xe9\"\n").unwrap();
    let err = sy_config::load(&latin1).unwrap_err().to_string();
    assert!(
        err.ends_with("error: the configuration file is not valid UTF-8"),
        "{err}"
    );
    let bom = dir.join("bom.toml");
    std::fs::write(&bom, "\u{feff}[runtime]\nworkers = 2\n").unwrap();
    assert_eq!(sy_config::load(&bom).unwrap().runtime.workers, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn diagnostics_carry_structured_fields() {
    let source = "[upstreams.api]\nservers = [{ address = \"127.0.0.1:1\", weight = 0 }]\n";
    let diagnostics = sy_config::parse(source, "x.toml", Path::new(".")).unwrap_err();
    let [d] = diagnostics.errors.as_slice() else {
        panic!("{diagnostics}")
    };
    assert_eq!((d.line, d.column), (2, 48));
    assert_eq!(d.path, "upstreams.api.servers[0].weight");
    assert_eq!(d.value.as_deref(), Some("0"));
    assert_eq!(d.hint.as_deref(), Some("use 1 for an equal share"));
    let error: &dyn std::error::Error = &diagnostics;
    assert!(error.to_string().starts_with("x.toml:2:48: error: "));
}

#[test]
fn a_typo_is_not_also_reported_as_missing() {
    let err = parse_err("[listeners.web]\nadress = \"127.0.0.1:8080\"\n");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("did you mean `address`?"));
}

#[test]
fn a_malformed_table_does_not_hide_errors_elsewhere() {
    let err = parse_err(
        "[upstreams.a]\nservers = [1]\n[upstreams.b]\nservers = [\"127.0.0.1:1\"]\nbalancer = \"nope\"\n",
    );
    assert!(err.contains("upstreams.a.servers[0]: expected"), "{err}");
    assert!(
        err.contains("upstreams.b.balancer: unknown balancer"),
        "{err}"
    );
    assert!(!err.contains("missing required key"), "{err}");
}

#[test]
fn resilience_keys_default_to_off_or_their_documented_values() {
    let config = parse_ok(
        r#"
        [[routes]]
        name = "r"
        upstream = "api"
        [routes.retry]
        [routes.hedge]
        delay = "p95"
        [routes.mirror]
        upstream = "api"
        [upstreams.api]
        servers = ["127.0.0.1:9000"]
        [upstreams.api.health_check]
        [upstreams.api.outlier]
        [upstreams.api.sticky]
        [upstreams.bare]
        servers = ["127.0.0.1:9001"]
        "#,
    );
    let route = &config.routes[0];
    assert_eq!(
        route.retry,
        Some(Retry {
            attempts: 3,
            on: RetryOn {
                connect_failure: true,
                refused_stream: true,
                reset: true,
                timeout: true,
                gateway_error: true,
                statuses: vec![],
            },
            per_try_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            non_idempotent: false,
            buffer: 64 * 1024,
        })
    );
    assert_eq!(
        route.hedge,
        Some(Hedge {
            delay: HedgeDelay::P95 {
                fallback: Duration::from_millis(100)
            }
        })
    );
    assert_eq!(
        route.mirror,
        Some(Mirror {
            upstream: "api".into(),
            percent: 100.0,
            max_in_flight: 64,
            max_body: 64 * 1024,
        })
    );

    let api = config.upstream("api").unwrap();
    assert_eq!(
        api.health_check,
        Some(HealthCheck {
            kind: HealthCheckKind::Http {
                method: "GET".into(),
                path: "/".into(),
                host: None,
                expect_status: vec![(200, 399)],
                expect_body: None,
            },
            interval: Duration::from_secs(5),
            jitter: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        })
    );
    assert_eq!(
        api.outlier,
        Some(Outlier {
            consecutive_5xx: 5,
            consecutive_gateway_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 10,
        })
    );
    assert_eq!(
        api.sticky,
        Some(Sticky {
            cookie: "sy_server".into(),
            ttl: None,
            path: "/".into(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: None,
            secret: "api".into(),
        })
    );

    let bare = config.upstream("bare").unwrap();
    assert_eq!(bare.health_check, None);
    assert_eq!(bare.outlier, None);
    assert_eq!(bare.panic_threshold, 50);
    assert_eq!(bare.slow_start, None);
    assert_eq!(bare.circuit_breaker, CircuitBreaker::default());
    assert_eq!(
        bare.retry_budget,
        RetryBudget {
            ratio: 0.2,
            min_retries_per_second: 10,
            window: Duration::from_secs(10),
        }
    );
    assert_eq!(bare.sticky, None);
    assert_eq!(config.routes[0].action, Action::Upstream("api".into()));

    // A route without the tables has none of the policies.
    let plain = parse_ok(
        "[[routes]]\nname = \"p\"\nupstream = \"u\"\n[upstreams.u]\nservers = [\"127.0.0.1:1\"]\n",
    );
    let route = &plain.routes[0];
    assert!(route.retry.is_none() && route.hedge.is_none() && route.mirror.is_none());
}

#[test]
fn the_resilience_example_loads_the_way_it_reads() {
    let config = sy_config::load(&examples_dir().join("resilience.toml")).unwrap();
    let api = &config.routes[0];
    assert_eq!(
        api.action,
        Action::Split(Split {
            backends: vec![
                SplitBackend {
                    upstream: "api-v1".into(),
                    weight: 90
                },
                SplitBackend {
                    upstream: "api-v2".into(),
                    weight: 10
                },
            ],
            header: Some("x-canary".into()),
            cookie: Some("canary".into()),
            skip_unavailable: true,
        })
    );
    assert_eq!(
        api.retry,
        Some(Retry {
            attempts: 3,
            on: RetryOn {
                connect_failure: true,
                refused_stream: true,
                reset: true,
                timeout: false,
                gateway_error: true,
                statuses: vec![429],
            },
            per_try_timeout: Some(Duration::from_secs(2)),
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            non_idempotent: false,
            buffer: 64 * 1024,
        })
    );
    assert_eq!(
        api.hedge,
        Some(Hedge {
            delay: HedgeDelay::P95 {
                fallback: Duration::from_millis(100)
            }
        })
    );
    assert_eq!(
        api.mirror,
        Some(Mirror {
            upstream: "shadow".into(),
            percent: 5.0,
            max_in_flight: 32,
            max_body: 16 * 1024,
        })
    );

    let v1 = config.upstream("api-v1").unwrap();
    assert_eq!(
        v1.health_check,
        Some(HealthCheck {
            kind: HealthCheckKind::Http {
                method: "GET".into(),
                path: "/healthz".into(),
                host: Some("api.internal".into()),
                expect_status: vec![(204, 204), (200, 299)],
                expect_body: Some("ok".into()),
            },
            interval: Duration::from_secs(5),
            jitter: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        })
    );
    assert_eq!(
        v1.outlier,
        Some(Outlier {
            consecutive_5xx: 5,
            consecutive_gateway_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 34,
        })
    );
    assert_eq!(v1.panic_threshold, 50);
    assert_eq!(v1.slow_start, Some(Duration::from_secs(30)));
    assert_eq!(
        v1.circuit_breaker,
        CircuitBreaker {
            max_connections: Some(1000),
            max_pending_requests: Some(200),
            max_requests: Some(2000),
            max_retries: Some(50),
        }
    );
    assert_eq!(
        v1.retry_budget,
        RetryBudget {
            ratio: 0.2,
            min_retries_per_second: 10,
            window: Duration::from_secs(10),
        }
    );

    let v2 = config.upstream("api-v2").unwrap();
    let check = v2.health_check.as_ref().unwrap();
    assert_eq!(
        check.kind,
        HealthCheckKind::Grpc {
            service: "api.v2.Api".into()
        }
    );
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.jitter, Duration::from_secs(1), "interval / 10");
    assert_eq!(
        config
            .upstream("shadow")
            .unwrap()
            .health_check
            .as_ref()
            .unwrap()
            .kind,
        HealthCheckKind::Tcp
    );

    assert_eq!(
        config.upstream("app").unwrap().sticky,
        Some(Sticky {
            cookie: "sy_app".into(),
            ttl: Some(Duration::from_secs(3600)),
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: Some("lax".into()),
            secret: "change-me".into(),
        })
    );
}

#[test]
fn resilience_values_are_normalised() {
    let config = parse_ok(
        r#"
        [[routes]]
        name = "r"
        [routes.split]
        header = "X-Canary"
        backends = [{ upstream = "a" }, { upstream = "b", weight = 0 }]
        [routes.retry]
        on = ["timeout"]
        statuses = [503, 409, 503]
        backoff_base = "0s"
        backoff_max = "0s"
        non_idempotent = true
        buffer = 0
        [routes.hedge]
        delay = "40ms"
        [routes.mirror]
        upstream = "b"
        percent = 0.5
        [upstreams.a]
        servers = ["127.0.0.1:1"]
        panic_threshold = 0
        [upstreams.a.health_check]
        method = "head"
        path = "/status?full=1"
        expect_status = ["200", 301]
        [upstreams.a.retry_budget]
        ratio = 1
        window = "1s"
        [upstreams.a.circuit_breaker]
        max_requests = 1_000_000
        [upstreams.a.sticky]
        domain = ".Example.com"
        same_site = "none"
        secure = true
        [upstreams.b]
        servers = ["127.0.0.1:2"]
        [upstreams.b.health_check]
        type = "grpc"
        "#,
    );
    let route = &config.routes[0];
    let Action::Split(split) = &route.action else {
        panic!("{:?}", route.action)
    };
    assert_eq!(split.header.as_deref(), Some("x-canary"));
    assert_eq!(split.cookie, None);
    assert_eq!(
        split.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
        [1, 0]
    );
    let retry = route.retry.as_ref().unwrap();
    assert_eq!(
        retry.on,
        RetryOn {
            timeout: true,
            statuses: vec![503, 409],
            ..RetryOn::default()
        }
    );
    assert_eq!(retry.backoff_base, Duration::ZERO);
    assert!(retry.non_idempotent);
    assert_eq!(retry.buffer, 0);
    assert_eq!(
        route.hedge.as_ref().unwrap().delay,
        HedgeDelay::Fixed(Duration::from_millis(40))
    );
    assert_eq!(route.mirror.as_ref().unwrap().percent, 0.5);

    let a = config.upstream("a").unwrap();
    assert_eq!(a.panic_threshold, 0);
    let HealthCheckKind::Http {
        method,
        path,
        expect_status,
        ..
    } = &a.health_check.as_ref().unwrap().kind
    else {
        panic!("{:?}", a.health_check)
    };
    assert_eq!(method, "HEAD");
    assert_eq!(path, "/status?full=1");
    assert_eq!(expect_status, &[(200, 200), (301, 301)]);
    assert_eq!(a.retry_budget.ratio, 1.0);
    assert_eq!(a.retry_budget.window, Duration::from_secs(1));
    assert_eq!(a.circuit_breaker.max_requests, Some(1_000_000));
    assert_eq!(a.circuit_breaker.max_connections, None);
    let sticky = a.sticky.as_ref().unwrap();
    assert_eq!(sticky.domain.as_deref(), Some(".Example.com"));
    assert_eq!(sticky.same_site.as_deref(), Some("none"));
    assert_eq!(
        config
            .upstream("b")
            .unwrap()
            .health_check
            .as_ref()
            .unwrap()
            .kind,
        HealthCheckKind::Grpc {
            service: String::new()
        }
    );
}

#[test]
fn resilience_errors_point_at_the_value() {
    let err = parse_err(
        "[[routes]]\nname = \"r\"\nupstream = \"u\"\nretry = { on = [\"resett\"] }\n[upstreams.u]\nservers = [\"127.0.0.1:1\"]\n",
    );
    assert!(
        err.starts_with("test.toml:4:17: error: routes[0].retry.on[0]: unknown retry condition (got \"resett\")\n  hint: did you mean `reset`?"),
        "{err}"
    );
    let err = parse_err(
        "[[routes]]\nname = \"r\"\nredirect = { location = \"/\" }\nmirror = { upstream = \"nope\" }\n",
    );
    assert!(
        err.contains(
            "routes[0].mirror: `mirror` applies to routes with `upstream` or `split` only"
        ),
        "{err}"
    );
    assert!(
        err.contains("routes[0].mirror.upstream: unknown upstream `nope`"),
        "{err}"
    );
}

#[test]
fn compression_algorithms_are_the_policys_codings_and_show_as_tokens() {
    use sy_policy::compress::Coding;
    let config = parse_ok("[filters.z]\ncompress = { algorithms = [\"gzip\", \"BR\"] }\n");
    let sy_config::model::Filter::Compress(c) = &config.filters[0].filter else {
        panic!("not a compress filter");
    };
    assert_eq!(c.algorithms, [Coding::Gzip, Coding::Br]);
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["algorithms"], serde_json::json!(["gzip", "br"]));
    // The configuration names a coding by its token; x-gzip is for clients.
    let d = parse_err("[filters.z]\ncompress = { algorithms = [\"x-gzip\"] }\n");
    assert!(d.contains("did you mean `gzip`?"), "{d}");
}
