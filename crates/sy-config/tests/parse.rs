//! What a valid file turns into: defaults, normalisation, references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sy_config::model::{
    Action, BalancerKind, HashAlgorithm, HashKey, PathMatch, TlsVersion, UpstreamProtocol,
    ValueMatch,
};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn parse_ok(source: &str) -> sy_config::Config {
    match sy_config::parse(source, "test.toml", &examples_dir()) {
        Ok(config) => config,
        Err(diagnostics) => panic!("expected a valid config:\n{diagnostics}"),
    }
}

fn parse_err(source: &str) -> String {
    match sy_config::parse(source, "test.toml", &examples_dir()) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

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
    assert!(config.listeners.is_empty() && config.routes.is_empty() && config.upstreams.is_empty());
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
    assert!(web.tls.is_none());
    assert!(web.forwarded.trusted_proxies.is_empty());
    assert!(web.forwarded.x_forwarded && web.forwarded.via && !web.forwarded.rfc7239);
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
        Action::Redirect {
            status: 302,
            location: "https://example.com".into(),
            keep_path: false
        }
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
