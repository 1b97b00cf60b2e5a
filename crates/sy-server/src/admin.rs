//! The admin listener: `/healthz`, `/metrics` (Prometheus text),
//! `POST /reload`, `GET /status` (JSON), `GET /reloads` (JSON),
//! `GET /upstreams` (JSON: live state of every upstream and server) and
//! `POST /upstreams/{upstream}/servers/{address}/drain` (and `/undrain`).
//! Documented in docs/admin-api.md.

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

use crate::live::{flag, now_ns};
use crate::runtime::{Control, ReloadError};
use crate::snapshot::{Snapshot, UpstreamRt};

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

async fn route(c: &Arc<Control>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            c.shared.metrics.encode(),
        ),
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
        (&Method::GET, "/reloads") => {
            let list: Vec<_> = match c.shared.reloads.lock() {
                Ok(h) => h.iter().cloned().collect(),
                Err(p) => p.into_inner().iter().cloned().collect(),
            };
            let items: Vec<_> = list
                .iter()
                .map(|r| {
                    json!({"at_unix": r.at_unix, "trigger": r.trigger, "version": r.version,
                           "ok": r.ok, "message": r.message})
                })
                .collect();
            json_resp(StatusCode::OK, json!({ "reloads": items }))
        }
        (&Method::POST, "/reload") => {
            let c2 = c.clone();
            let res = tokio::task::spawn_blocking(move || c2.reload("admin")).await;
            match res {
                Ok(Ok(v)) => json_resp(StatusCode::OK, json!({"ok": true, "config_version": v})),
                Ok(Err(e @ ReloadError::NoConfigFile)) => json_resp(
                    StatusCode::CONFLICT,
                    json!({"ok": false, "error": e.to_string()}),
                ),
                Ok(Err(e)) => json_resp(
                    StatusCode::BAD_REQUEST,
                    json!({"ok": false, "error": e.to_string()}),
                ),
                Err(_) => json_resp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"ok": false, "error": "reload task failed"}),
                ),
            }
        }
        (&Method::GET, "/upstreams") => {
            json_resp(StatusCode::OK, upstreams_json(&c.shared.snapshot.load()))
        }
        (_, "/healthz" | "/metrics" | "/status" | "/reloads" | "/reload" | "/upstreams") => {
            method_not_allowed()
        }
        (m, path) => match drain_path(path) {
            Some(_) if m != Method::POST => method_not_allowed(),
            Some(Ok((upstream, server, on))) => drain(c, &upstream, &server, on),
            Some(Err(e)) => json_resp(StatusCode::BAD_REQUEST, json!({"ok": false, "error": e})),
            None => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found; try /healthz, /metrics, /status, /reloads, /upstreams, \
                 POST /reload, POST /upstreams/NAME/servers/ADDRESS/drain (or /undrain)\n",
            ),
        },
    }
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        "method not allowed\n",
    )
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
        return json_resp(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error": format!("no upstream {upstream}")}),
        );
    };
    let Some(s) = u.servers.iter().find(|s| s.target.authority == address) else {
        return json_resp(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error": format!("no server {address} in upstream {upstream}")}),
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
    use super::*;

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
