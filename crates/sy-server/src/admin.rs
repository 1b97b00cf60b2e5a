//! The admin listener: `/healthz`, `/metrics` (Prometheus or OpenMetrics
//! text, by `Accept`),
//! `POST /reload`, `GET /status` (JSON), `GET /reloads` (JSON),
//! `GET /upstreams` (JSON: live state of every upstream and server) and
//! `POST /upstreams/{upstream}/servers/{address}/drain` (and `/undrain`),
//! `GET /config` (the running configuration, secrets redacted), and the
//! web dashboard (`/`, `/assets/...`, `GET /api/stats`; see
//! `crate::dashboard`). With `[admin] token`, every request but `/healthz`
//! (and the dashboard's static files) needs `Authorization: Bearer TOKEN`.
//! Documented in docs/admin-api.md and docs/openapi.yaml ([`ENDPOINTS`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;

use sy_config::model::{BalancerKind, HealthCheckKind};

use crate::control::{Control, ReloadError};
use crate::live::{flag, now_ns};
use crate::metrics::format;
use crate::snapshot::Snapshot;
use crate::upstream::rt::UpstreamRt;

/// Serves the admin API on `sock` until the process stops.
pub async fn serve(sock: std::net::TcpListener, control: Arc<Control>) {
    let listener = match tokio::net::TcpListener::from_std(sock) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register admin listener");
            return;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let c = control.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let c = c.clone();
                async move { Ok::<_, Infallible>(route(&c, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, ct: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    text(status, "application/json", v.to_string())
}

/// Every error of the admin API has this body: `{"ok":false,"error":"..."}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_resp(status, json!({"ok": false, "error": message.into()}))
}

/// Every endpoint the admin listener serves, as (method, path template):
/// `{name}` stands for one path segment. The 404 answer lists them, 405
/// answers take `Allow` from them, and a test checks that docs/openapi.yaml
/// describes each one.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/status"),
    ("GET", "/config"),
    ("GET", "/reloads"),
    ("POST", "/reload"),
    ("GET", "/upstreams"),
    ("POST", "/upstreams/{upstream}/servers/{address}/drain"),
    ("POST", "/upstreams/{upstream}/servers/{address}/undrain"),
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/assets/{file}"),
    ("GET", "/api/stats"),
];

/// Paths answered without the admin token: liveness probes cannot carry
/// one. (The dashboard's page and assets, which hold no data, are served
/// before the check too; see `crate::dashboard::is_asset`.)
pub const OPEN_PATHS: &[&str] = &["/healthz"];

/// Whether `path` fits `template` (see [`ENDPOINTS`]).
fn fits(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// The methods [`ENDPOINTS`] serves at `path` ("GET, POST"); None when no
/// endpoint has that path.
fn allowed(path: &str) -> Option<String> {
    let methods: Vec<&str> = ENDPOINTS
        .iter()
        .filter(|(_, t)| fits(t, path))
        .map(|(m, _)| *m)
        .collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// The outcome of the bearer-token check.
#[derive(Debug, PartialEq, Eq)]
enum Auth {
    Ok,
    /// No `Authorization` header.
    Missing,
    /// Another scheme, several headers, or the wrong token.
    Invalid,
}

/// Checks `Authorization: Bearer TOKEN` against `token` (the scheme is
/// case-insensitive; the token is compared in constant time).
fn check_bearer(headers: &http::HeaderMap, token: &str) -> Auth {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let v = match (values.next(), values.next()) {
        (None, _) => return Auth::Missing,
        (Some(v), None) => v.as_bytes(),
        (Some(_), Some(_)) => return Auth::Invalid,
    };
    let Some((scheme, given)) = v.split_first_chunk::<7>() else {
        return Auth::Invalid;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return Auth::Invalid;
    }
    if constant_time_eq(given.trim_ascii(), token.as_bytes()) {
        Auth::Ok
    } else {
        Auth::Invalid
    }
}

/// `given == expected`, in a time that depends on the lengths only, not
/// on where the first differing byte is.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff = std::hint::black_box(diff | (g ^ e));
    }
    diff == 0
}

/// 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750).
fn unauthorized(auth: &Auth) -> Response<Full<Bytes>> {
    let (challenge, message) = match auth {
        Auth::Missing => (
            "Bearer realm=\"switchyard-admin\"",
            "this admin API needs `Authorization: Bearer TOKEN`",
        ),
        _ => (
            "Bearer realm=\"switchyard-admin\", error=\"invalid_token\"",
            "the bearer token is not valid",
        ),
    };
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

async fn route(c: &Arc<Control>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    // The dashboard page and its assets hold no data, and a browser cannot
    // send a token when it navigates: keep them ahead of any auth check.
    // The page sends the token itself on its API calls (`/api/stats`...).
    if let Some(r) = crate::dashboard::asset(req.method(), req.uri().path(), req.headers()) {
        return r;
    }
    if !OPEN_PATHS.contains(&req.uri().path())
        && let Some(token) = &c.shared.snapshot.load().config.admin.token
    {
        let auth = check_bearer(req.headers(), token);
        if auth != Auth::Ok {
            c.shared.metrics.admin_unauthorized.inc();
            return unauthorized(&auth);
        }
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/metrics") => {
            c.shared.snapshot.load().refresh_gauges();
            let accept = req.headers().get_all(http::header::ACCEPT);
            let format = format::negotiate(accept.iter().filter_map(|v| v.to_str().ok()));
            let mut r = text(
                StatusCode::OK,
                format.content_type(),
                c.shared.metrics.encode(format),
            );
            r.headers_mut()
                .insert(http::header::VARY, HeaderValue::from_static("accept"));
            r
        }
        (&Method::GET, "/status") => {
            let snap = c.shared.snapshot.load();
            let listeners: Vec<_> = c
                .listener_addrs()
                .into_iter()
                .map(|(name, addr)| json!({"name": name, "address": addr.to_string()}))
                .collect();
            json_resp(
                StatusCode::OK,
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "config_version": snap.version,
                    "uptime_seconds": c.shared.started.elapsed().as_secs(),
                    "workers": c.shared.workers,
                    "listeners": listeners,
                }),
            )
        }
        (&Method::GET, "/config") => config_json(&c.shared.snapshot.load()),
        (&Method::GET, "/reloads") => {
            let list: Vec<_> = match c.reloads.lock() {
                Ok(h) => h.iter().cloned().collect(),
                Err(p) => p.into_inner().iter().cloned().collect(),
            };
            let items: Vec<_> = list
                .iter()
                .map(|r| {
                    json!({"at_unix": r.at_unix, "trigger": r.trigger, "version": r.version,
                           "ok": r.ok, "message": r.message, "warnings": r.warnings})
                })
                .collect();
            json_resp(StatusCode::OK, json!({ "reloads": items }))
        }
        (&Method::POST, "/reload") => {
            let c2 = c.clone();
            let res = tokio::task::spawn_blocking(move || c2.reload("admin")).await;
            match res {
                Ok(Ok(v)) => json_resp(StatusCode::OK, json!({"ok": true, "config_version": v})),
                Ok(Err(e @ ReloadError::NoConfigFile)) => {
                    error(StatusCode::CONFLICT, e.to_string())
                }
                Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
                Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload task failed"),
            }
        }
        (&Method::GET, "/upstreams") => {
            json_resp(StatusCode::OK, upstreams_json(&c.shared.snapshot.load()))
        }
        (&Method::GET, "/api/stats") => crate::dashboard::api_stats(&c.shared, req.uri().query()),
        (m, path) => match drain_path(path) {
            Some(_) if m != Method::POST => method_not_allowed("POST"),
            Some(Ok((upstream, server, on))) => drain(c, &upstream, &server, on),
            Some(Err(e)) => error(StatusCode::BAD_REQUEST, e),
            None => match allowed(path) {
                Some(methods) if !methods.split(", ").any(|a| a == m.as_str()) => {
                    method_not_allowed(&methods)
                }
                _ => not_found(),
            },
        },
    }
}

/// `GET /config`: the running configuration, secrets redacted.
fn config_json(snap: &Snapshot) -> Response<Full<Bytes>> {
    match serde_json::to_value(&*snap.config) {
        Ok(cfg) => {
            let mut r = json_resp(
                StatusCode::OK,
                json!({
                    "config_version": snap.version,
                    "config": cfg,
                    "pending_restart": snap.pending_restart,
                }),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the configuration: {e}"),
        ),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    let endpoints: Vec<String> = ENDPOINTS.iter().map(|(m, p)| format!("{m} {p}")).collect();
    json_resp(
        StatusCode::NOT_FOUND,
        json!({"ok": false, "error": "not found", "endpoints": endpoints}),
    )
}

fn method_not_allowed(allow: &str) -> Response<Full<Bytes>> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    if let Ok(v) = HeaderValue::from_str(allow) {
        r.headers_mut().insert(http::header::ALLOW, v);
    }
    r
}

/// `/upstreams/{upstream}/servers/{address}/drain` or `.../undrain`:
/// None for any other path; Some(Err) when a segment is not valid
/// percent-encoded UTF-8; else (upstream, address, drain?).
fn drain_path(path: &str) -> Option<Result<(String, String, bool), &'static str>> {
    let rest = path.strip_prefix("/upstreams/")?;
    let mut parts = rest.split('/');
    let (up, servers, addr, action) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || servers != "servers" || up.is_empty() || addr.is_empty() {
        return None;
    }
    let on = match action {
        "drain" => true,
        "undrain" => false,
        _ => return None,
    };
    Some(match (percent_decode(up), percent_decode(addr)) {
        (Some(u), Some(a)) => Ok((u, a, on)),
        _ => Err("invalid percent-encoding in the path"),
    })
}

/// Decodes `%XX` escapes; None when an escape is malformed or the result
/// is not UTF-8. `+` stays `+` (this is a path, not a form).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Drains (`on`) or undrains server `address` of `upstream`.
fn drain(c: &Control, upstream: &str, address: &str, on: bool) -> Response<Full<Bytes>> {
    let snap = c.shared.snapshot.load();
    let Some(u) = snap.upstream(upstream) else {
        return error(StatusCode::NOT_FOUND, format!("no upstream {upstream}"));
    };
    let Some(s) = u.servers.iter().find(|s| s.target.authority == address) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no server {address} in upstream {upstream}"),
        );
    };
    let changed = s.live.state.set(flag::DRAINING, on);
    s.metrics.draining.set(i64::from(on));
    if changed {
        tracing::info!(
            upstream,
            server = address,
            draining = on,
            "{} through the admin API",
            if on {
                "server drained"
            } else {
                "server undrained"
            }
        );
    }
    json_resp(
        StatusCode::OK,
        json!({"ok": true, "upstream": upstream, "server": address, "draining": on}),
    )
}

/// The configuration name of a balancer.
fn balancer_name(k: BalancerKind) -> &'static str {
    match k {
        BalancerKind::RoundRobin => "round_robin",
        BalancerKind::WeightedRoundRobin => "weighted_round_robin",
        BalancerKind::LeastConnections => "least_connections",
        BalancerKind::Random => "random",
        BalancerKind::P2cEwma => "p2c_ewma",
        BalancerKind::ConsistentHash => "consistent_hash",
    }
}

/// `GET /upstreams`: the live state of every upstream and server.
fn upstreams_json(snap: &Snapshot) -> serde_json::Value {
    let now = now_ns();
    let ups: Vec<_> = snap
        .upstreams
        .iter()
        .map(|u| upstream_json(u, now))
        .collect();
    json!({ "upstreams": ups })
}

fn ns_to_ms(ns: f64) -> f64 {
    ns / 1e6
}

fn upstream_json(u: &UpstreamRt, now: u64) -> serde_json::Value {
    let live = &u.live;
    // The same rule as the request path (drained servers count neither way).
    let panic = crate::upstream::pick::panicking(u, now);
    let b = &u.cfg.retry_budget;
    let (requests_in_window, retries_in_window) = live.budget().counts(now);
    let cb = &u.breaker;
    let health = u.health.as_ref().map(|h| {
        let kind = match h.cfg.kind {
            HealthCheckKind::Http { .. } => "http",
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Grpc { .. } => "grpc",
        };
        json!({"type": kind, "interval_ms": h.cfg.interval.as_millis() as u64})
    });
    let servers: Vec<_> = u
        .servers
        .iter()
        .map(|s| {
            let st = &s.live.state;
            let flags = st.flags();
            let until = st.ejected_until.load(Ordering::Relaxed);
            let ejected = flags & flag::EJECTED != 0 && until > now;
            let ready_at = st.ready_at.load(Ordering::Relaxed);
            let slow_start = if u.slow_start_ns > 0 && ready_at > 0 {
                sy_policy::slow_start::factor(now.saturating_sub(ready_at), u.slow_start_ns)
            } else {
                1.0
            };
            json!({
                "address": s.target.authority,
                "weight": s.weight,
                "health": if flags & flag::DOWN != 0 { "unhealthy" } else { "healthy" },
                "ejected": ejected,
                "ejected_for_ms": if ejected { (until - now) / 1_000_000 } else { 0 },
                "ejections": st.outlier().ejections(),
                "draining": flags & flag::DRAINING != 0,
                "active_requests": s.live.active.load(Ordering::Relaxed),
                "ewma_latency_ms": ns_to_ms(crate::ewma().get(&s.live.ewma, now)),
                "slow_start_factor": slow_start,
            })
        })
        .collect();
    json!({
        "name": u.name,
        "balancer": balancer_name(u.cfg.balancer),
        "panic": panic,
        "requests_in_flight": live.requests.load(Ordering::Relaxed),
        "pending_requests": live.pending.load(Ordering::Relaxed),
        "connections": live.connections.load(Ordering::Relaxed),
        "retries_in_flight": live.retries.load(Ordering::Relaxed),
        "circuit_breaker": {
            "max_connections": cb.max_connections,
            "max_pending_requests": cb.max_pending_requests,
            "max_requests": cb.max_requests,
            "max_retries": cb.max_retries,
        },
        "retry_budget": {
            "ratio": b.ratio,
            "min_retries_per_second": b.min_retries_per_second,
            "window_seconds": b.window.as_secs_f64(),
            "requests_in_window": requests_in_window,
            "retries_in_window": retries_in_window,
        },
        "latency_p95_ms": live.latency.quantile(0.95, 20).map(|ns| ns_to_ms(ns as f64)),
        "health_check": health,
        "servers": servers,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn auth_headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        let t = "0123456789abcdef";
        assert_eq!(check_bearer(&auth_headers(&[]), t), Auth::Missing);
        assert_eq!(
            check_bearer(&auth_headers(&["Bearer 0123456789abcdef"]), t),
            Auth::Ok
        );
        assert_eq!(
            check_bearer(&auth_headers(&["bearer 0123456789abcdef "]), t),
            Auth::Ok
        );
        for bad in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdef0",
            "Bearer ",
            "Bearer",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer0123456789abcdef",
        ] {
            assert_eq!(
                check_bearer(&auth_headers(&[bad]), t),
                Auth::Invalid,
                "{bad}"
            );
        }
        let two = auth_headers(&["Bearer 0123456789abcdef", "Bearer 0123456789abcdef"]);
        assert_eq!(check_bearer(&two, t), Auth::Invalid);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(!constant_time_eq(b"abc", b""));
        // A prefix padded with NULs is not the token.
        assert!(!constant_time_eq(b"ab\0", b"ab"));
    }

    #[test]
    fn endpoint_templates() {
        assert!(fits(
            "/upstreams/{upstream}/servers/{address}/drain",
            "/upstreams/u/servers/a:1/drain"
        ));
        assert!(!fits(
            "/upstreams/{upstream}/servers/{address}/drain",
            "/upstreams/u/servers//drain"
        ));
        assert!(!fits("/upstreams", "/upstreams/"));
        assert!(fits("/", "/"));
        assert!(!fits("/", "/x"));
        assert_eq!(allowed("/reload").as_deref(), Some("POST"));
        assert_eq!(allowed("/config").as_deref(), Some("GET"));
        assert_eq!(allowed("/assets/app.js").as_deref(), Some("GET"));
        assert_eq!(allowed("/nope"), None);
        // Every file of the dashboard has an endpoint.
        for p in ["/", "/index.html", "/assets/app.js", "/assets/app.css"] {
            assert!(crate::dashboard::is_asset(p), "{p}");
            assert!(allowed(p).is_some(), "{p}");
        }
        for p in OPEN_PATHS {
            assert!(allowed(p).is_some(), "{p}");
        }
    }

    /// `GET /config` shows the configuration as the file spells it, with
    /// every secret replaced.
    #[test]
    fn config_rendering_redacts_secrets() {
        let toml = r#"
[admin]
address = "127.0.0.1:0"
token = "admin-token-0123456789"
[tracing]
endpoint = "http://127.0.0.1:4318/v1/traces"
headers = { authorization = "Bearer export-secret-1234" }
[listeners.main]
address = "127.0.0.1:0"
[listeners.main.forwarded]
trusted_proxies = ["10.0.0.0/8"]
[[routes]]
name = "api"
upstream = "u"
timeout = "1m30s"
[routes.match]
path = "/api"
headers = { x-env = "prod", x-any = { present = true } }
[routes.hedge]
delay = "p95"
[[routes]]
name = "old"
redirect = { location = "https://example.com/" }
[upstreams.u]
servers = ["127.0.0.1:1"]
balancer = "consistent_hash"
[upstreams.u.hash]
key = "header:x-user"
[upstreams.u.sticky]
secret = "sticky-secret-5678"
[upstreams.u.health_check]
type = "http"
path = "/health"
expect_status = ["200-299", 418]
"#;
        let cfg = sy_config::parse(toml, "test.toml", std::path::Path::new("."))
            .unwrap_or_else(|d| panic!("{d}"));
        let v = serde_json::to_value(&cfg).unwrap();
        let text = v.to_string();
        for secret in [
            "admin-token-0123456789",
            "export-secret-1234",
            "sticky-secret-5678",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(v["admin"]["token"], "<redacted>");
        assert_eq!(v["tracing"]["headers"]["authorization"], "<redacted>");
        let u = &v["upstreams"][0];
        assert_eq!(u["sticky"]["secret"], "<redacted>");
        assert_eq!(u["balancer"], "consistent_hash");
        assert_eq!(u["hash"]["key"], "header:x-user");
        assert_eq!(u["connect_timeout"], "5s");
        assert_eq!(u["health_check"]["type"], "http");
        assert_eq!(
            u["health_check"]["expect_status"],
            json!(["200-299", "418"])
        );
        let r = &v["routes"][0];
        assert_eq!(r["upstream"], "u");
        assert_eq!(r["timeout"], "1m30s");
        assert_eq!(r["match"]["path"], "/api");
        assert_eq!(r["match"]["headers"]["x-env"], "prod");
        assert_eq!(r["match"]["headers"]["x-any"], json!({"present": true}));
        assert_eq!(r["hedge"]["delay"], "p95");
        assert_eq!(v["routes"][1]["redirect"]["status"], 302);
        assert_eq!(
            v["listeners"][0]["forwarded"]["trusted_proxies"],
            json!(["10.0.0.0/8"])
        );
        assert_eq!(v["runtime"]["log_format"], "text");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("127.0.0.1:80").as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(
            percent_decode("%5B%3A%3A1%5D%3A80").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(
            percent_decode("%5b%3a%3a1%5d:80").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("\u{e9}"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn drain_paths() {
        assert_eq!(
            drain_path("/upstreams/api/servers/10.0.0.1:80/drain"),
            Some(Ok(("api".into(), "10.0.0.1:80".into(), true)))
        );
        assert_eq!(
            drain_path("/upstreams/api/servers/%5B%3A%3A1%5D%3A80/undrain"),
            Some(Ok(("api".into(), "[::1]:80".into(), false)))
        );
        assert_eq!(drain_path("/upstreams/api/servers/a:1/other"), None);
        assert_eq!(drain_path("/upstreams/api/servers/a:1/drain/x"), None);
        assert_eq!(drain_path("/upstreams/api/servers//drain"), None);
        assert_eq!(drain_path("/upstreams/api/nodes/a:1/drain"), None);
        assert_eq!(drain_path("/upstreams/api"), None);
        assert_eq!(drain_path("/other"), None);
        assert!(matches!(
            drain_path("/upstreams/api/servers/%zz/drain"),
            Some(Err(_))
        ));
    }

    #[test]
    fn balancer_names_match_the_configuration() {
        assert_eq!(balancer_name(BalancerKind::RoundRobin), "round_robin");
        assert_eq!(balancer_name(BalancerKind::P2cEwma), "p2c_ewma");
        assert_eq!(
            balancer_name(BalancerKind::ConsistentHash),
            "consistent_hash"
        );
    }
}
