//! The admin API end to end: the bearer token (required when configured,
//! `/healthz` open, changed by a reload), `GET /config` (secrets redacted),
//! consistent JSON errors, and the OpenAPI description covering every
//! endpoint the router serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::{Backend, Preamble, Proxy, client, metric_in, servers, wait_admin_ready, within};
use serde_json::Value;

const TOKEN_A: &str = "token-a-0123456789abcdef";
const TOKEN_B: &str = "token-b-fedcba9876543210";

/// The test preamble with `[admin] token` (when given) and one route to
/// `backend`.
fn config(token: Option<&str>, backend: &Backend) -> String {
    let preamble = Preamble::default().to_string();
    let preamble = match token {
        Some(t) => preamble.replacen(
            "[admin]\naddress = \"127.0.0.1:0\"\n",
            &format!("[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"{t}\"\n"),
            1,
        ),
        None => preamble,
    };
    assert!(
        token.is_none() || preamble.contains("token ="),
        "{preamble}"
    );
    format!(
        "{preamble}{}",
        common::route_all(&servers(&[backend]), "", "")
    )
}

/// A request to the admin API with an optional bearer token: status,
/// headers and body.
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let c = client();
    let url = format!("http://{addr}{path}");
    let mut req = match method {
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = within(path, req.send()).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A 401 as documented: the challenge and the JSON error body.
fn assert_unauthorized(status: u16, headers: &http::HeaderMap, body: &str) {
    assert_eq!(status, 401, "{body}");
    let challenge = headers
        .get("www-authenticate")
        .expect("WWW-Authenticate on a 401")
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let v = json(body);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_except_for_healthz() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(Some(TOKEN_A), &b));
    let a = p.admin();
    wait_admin_ready(a).await;

    for path in [
        "/status",
        "/metrics",
        "/config",
        "/upstreams",
        "/reloads",
        "/api/stats",
        "/nope",
    ] {
        let (s, h, body) = admin(a, "GET", path, None).await;
        assert_unauthorized(s, &h, &body);
        assert!(
            !h.get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "no token is not an invalid token"
        );
        let (s, h, body) = admin(a, "GET", path, Some(TOKEN_B)).await;
        assert_unauthorized(s, &h, &body);
        assert!(
            h.get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Another scheme, or the token with a byte missing, is refused too.
    let r = client()
        .get(format!("http://{a}/status"))
        .basic_auth("admin", Some(TOKEN_A))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, h, body) = admin(a, "GET", "/status", Some(&TOKEN_A[1..])).await;
    assert_unauthorized(s, &h, &body);
    // Changing state without the token is refused, and changes nothing.
    let (s, h, body) = admin(a, "POST", "/reload", None).await;
    assert_unauthorized(s, &h, &body);
    let drain = format!("/upstreams/u/servers/{}/drain", b.addr);
    let (s, h, body) = admin(a, "POST", &drain, Some("wrong-token-0123456789")).await;
    assert_unauthorized(s, &h, &body);

    // Liveness probes need no token.
    let (s, _, body) = admin(a, "GET", "/healthz", None).await;
    assert_eq!((s, body.as_str()), (200, "ok\n"));

    // With the token, everything answers.
    let (s, _, body) = admin(a, "GET", "/status", Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["config_version"], 1);
    let (s, _, body) = admin(a, "GET", "/upstreams", Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["upstreams"][0]["servers"][0]["draining"], false);
    let (s, _, metrics) = admin(a, "GET", "/metrics", Some(TOKEN_A)).await;
    assert_eq!(s, 200);
    // 7 paths x 2, the basic-auth and short-token requests, reload, drain.
    assert_eq!(
        metric_in(&metrics, "switchyard_admin_unauthorized_total", &[]),
        18.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_the_running_configuration_with_secrets_redacted() {
    let b = Backend::start("b").await;
    let toml = format!(
        r#"{}
[tracing]
endpoint = "http://127.0.0.1:9/v1/traces"
sample_ratio = 0.0
headers = {{ authorization = "Bearer otlp-secret-0123456789", x-tenant = "tenant-secret-42" }}
[[routes]]
name = "all"
upstream = "u"
timeout = "2s"
[upstreams.u]
servers = [{}]
response_timeout = "1m30s"
[upstreams.u.sticky]
secret = "sticky-secret-0123456789"
"#,
        config(Some(TOKEN_A), &b)
            .split("\n[[routes]]")
            .next()
            .unwrap(),
        servers(&[&b])
    );
    let p = Proxy::start(&toml);
    let a = p.admin();
    wait_admin_ready(a).await;

    let (s, h, body) = admin(a, "GET", "/config", Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(h["content-type"], "application/json");
    for secret in [
        TOKEN_A,
        "otlp-secret-0123456789",
        "tenant-secret-42",
        "sticky-secret-0123456789",
    ] {
        assert!(!body.contains(secret), "{secret} leaked: {body}");
    }
    let v = json(&body);
    assert_eq!(v["config_version"], 1);
    let cfg = &v["config"];
    assert_eq!(cfg["admin"]["token"], "<redacted>");
    assert_eq!(cfg["tracing"]["headers"]["authorization"], "<redacted>");
    assert_eq!(cfg["tracing"]["headers"]["x-tenant"], "<redacted>");
    assert_eq!(cfg["tracing"]["endpoint"], "http://127.0.0.1:9/v1/traces");
    let u = &cfg["upstreams"][0];
    assert_eq!(u["name"], "u");
    assert_eq!(u["sticky"]["secret"], "<redacted>");
    assert_eq!(u["servers"][0]["address"], b.addr.to_string());
    assert_eq!(u["response_timeout"], "1m30s");
    assert_eq!(u["connect_timeout"], "5s");
    assert_eq!(u["balancer"], "round_robin");
    let r = &cfg["routes"][0];
    assert_eq!(r["name"], "all");
    assert_eq!(r["upstream"], "u");
    assert_eq!(r["timeout"], "2s");
    assert_eq!(cfg["listeners"][0]["name"], "main");
    assert_eq!(cfg["runtime"]["workers"], 2);

    // A reload shows at once.
    p.write_config(&toml.replace("timeout = \"2s\"", "timeout = \"3s\""));
    let (s, _, body) = admin(a, "POST", "/reload", Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    let (_, _, body) = admin(a, "GET", "/config", Some(TOKEN_A)).await;
    let v = json(&body);
    assert_eq!(v["config_version"], 2);
    assert_eq!(v["config"]["routes"][0]["timeout"], "3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_token_in_effect() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(Some(TOKEN_A), &b));
    let a = p.admin();
    wait_admin_ready(a).await;
    assert_eq!(admin(a, "GET", "/status", Some(TOKEN_A)).await.0, 200);

    // A -> B: the reload request itself carries the old token.
    p.write_config(&config(Some(TOKEN_B), &b));
    let (s, _, body) = admin(a, "POST", "/reload", Some(TOKEN_A)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["config_version"], 2);
    let (s, h, body) = admin(a, "GET", "/status", Some(TOKEN_A)).await;
    assert_unauthorized(s, &h, &body);
    assert_eq!(admin(a, "GET", "/status", Some(TOKEN_B)).await.0, 200);

    // A rejected reload keeps the token in effect.
    p.write_config("[admin]\naddress = 1\n");
    let (s, _, body) = admin(a, "POST", "/reload", Some(TOKEN_B)).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(json(&body)["ok"], false);
    assert_eq!(admin(a, "GET", "/status", None).await.0, 401);
    assert_eq!(admin(a, "GET", "/status", Some(TOKEN_B)).await.0, 200);

    // B -> no token: the API is open again.
    p.write_config(&config(None, &b));
    let (s, _, body) = admin(a, "POST", "/reload", Some(TOKEN_B)).await;
    assert_eq!(s, 200, "{body}");
    let (s, _, body) = admin(a, "GET", "/config", None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["config"]["admin"]["token"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&config(None, &b));
    let a = p.admin();
    wait_admin_ready(a).await;

    let (s, h, body) = admin(a, "GET", "/nope", None).await;
    assert_eq!(s, 404);
    assert_eq!(h["content-type"], "application/json");
    let v = json(&body);
    assert_eq!(v["ok"], false);
    let listed: Vec<&str> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), sy_server::admin::ENDPOINTS.len());
    assert!(listed.contains(&"GET /config"), "{listed:?}");

    let (s, h, body) = admin(a, "POST", "/status", None).await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "GET");
    assert_eq!(json(&body)["ok"], false);
    let (s, h, body) = admin(a, "GET", "/reload", None).await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "POST");
    assert_eq!(json(&body)["error"], "method not allowed");
    let (s, _, body) = admin(
        a,
        "DELETE",
        &format!("/upstreams/u/servers/{}/drain", b.addr),
        None,
    )
    .await;
    assert_eq!(s, 405);
    json(&body);

    let (s, _, body) = admin(a, "POST", "/upstreams/nope/servers/1.2.3.4:5/drain", None).await;
    assert_eq!(s, 404);
    assert_eq!(json(&body)["error"], "no upstream nope");
    let (s, _, body) = admin(a, "POST", "/upstreams/u/servers/%zz/drain", None).await;
    assert_eq!(s, 400);
    assert_eq!(json(&body)["ok"], false);
}

/// Every endpoint of the router is described in docs/openapi.yaml, with
/// its method, and the description names no path the router does not
/// serve.
#[test]
fn openapi_describes_every_endpoint() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let doc = std::fs::read_to_string(path).unwrap();
    assert!(
        doc.starts_with("openapi: 3.0."),
        "not an OpenAPI 3.0 document"
    );
    let described = openapi_operations(&doc);
    let served: Vec<(String, String)> = sy_server::admin::ENDPOINTS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for op in &served {
        assert!(described.contains(op), "{op:?} is not in docs/openapi.yaml");
    }
    for op in &described {
        assert!(
            served.contains(op),
            "docs/openapi.yaml describes {op:?}, which the router does not serve"
        );
    }
    for needle in [
        "bearerAuth:",
        "scheme: bearer",
        "'401':",
        "WWW-Authenticate",
        "Error:",
        "Config:",
        "Upstreams:",
        "Status:",
    ] {
        assert!(doc.contains(needle), "docs/openapi.yaml lacks {needle}");
    }
}

/// (METHOD, path) of every operation in an OpenAPI YAML document: the keys
/// under `paths:` (two-space indent) and their operations (four).
fn openapi_operations(doc: &str) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() && !line.starts_with('#') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let key = line.trim().trim_end_matches(':');
        if indent == 2 && line.trim_end().ends_with(':') {
            let p = key.trim_matches('\'').trim_matches('"').to_string();
            assert!(p.starts_with('/'), "odd key under paths: {line}");
            current = Some(p);
        } else if indent == 4
            && line.trim_end().ends_with(':')
            && let Some(p) = &current
            && ["get", "post", "put", "delete", "patch", "head"].contains(&key)
        {
            ops.push((key.to_uppercase(), p.clone()));
        }
    }
    assert!(!ops.is_empty(), "no operations found under paths:");
    ops
}
