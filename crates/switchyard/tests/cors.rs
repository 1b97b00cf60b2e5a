//! End to end: the `cors` filter. Preflights answered at the edge with
//! exact headers (and refused with a `403` without CORS headers) that never
//! reach the upstream; actual requests from allowed and refused origins;
//! `Vary` merging; the upstream's own CORS headers replaced; Switchyard's
//! own answers (`502`, `404`) carrying CORS headers; a route's cors
//! replacing its listener's; the order of a `headers` filter and `cors` on
//! one route; `switchyard_cors_requests_total`. Then in headless Chromium:
//! a page on one origin fetches an API on another through Switchyard, which
//! works for an allowed origin and is blocked by the browser for another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::body::Incoming;

use common::*;

/// The preflight `Vary` of an origin-dependent policy.
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// Sends one HTTP/1.1 request with exactly `headers` (and Host).
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut c = RawHttp::connect(addr).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.send(req.as_bytes()).await;
    c.read_response().await
}

/// The `access-control-*` and `vary` fields of `r`, sorted by name (the
/// order of fields of different names means nothing).
fn cors_fields(r: &RawResponse) -> Vec<(&str, &str)> {
    let mut f: Vec<(&str, &str)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-") || k == "vary")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    f.sort_by_key(|(k, _)| *k);
    f
}

/// A preflight from `origin` for `method` asking for `headers`.
async fn preflight(
    addr: SocketAddr,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> RawResponse {
    let mut h = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if !headers.is_empty() {
        h.push(("Access-Control-Request-Headers", headers));
    }
    raw(addr, "OPTIONS", path, &h).await
}

/// The API's CORS policy in the tests below.
const API_CORS: &str = r#"{ cors = { allow_origins = ["https://app.example", "https://*.example.com"], allow_methods = ["GET", "PUT"], allow_headers = ["X-Api-Key", "Content-Type"], expose_headers = ["X-Total"], allow_credentials = true, max_age = "10m" } }"#;

/// Listener `main`, route "api" (`/api`) to `servers` with `filters`.
fn api_config(servers: &str, filters: &str) -> String {
    format!(
        r#"{preamble}
[[routes]]
name = "api"
upstream = "u"
filters = [{filters}]
[routes.match]
path = "/api"
[upstreams.u]
servers = [{servers}]
"#,
        preamble = Preamble::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_at_the_edge() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&api_config(&servers(&[&b]), API_CORS));
    let addr = p.addr("main");

    // Allowed: 204 with exactly the policy's headers, no body.
    let r = preflight(
        addr,
        "/api/items",
        "https://app.example",
        "PUT",
        "content-type,x-api-key",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body_str());
    assert_eq!(
        cors_fields(&r),
        [
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-headers", "x-api-key, content-type"),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-max-age", "600"),
            ("vary", PREFLIGHT_VARY),
        ]
    );
    let mut others: Vec<&str> = r
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.starts_with("access-control-") && *k != "vary")
        .collect();
    others.sort_unstable();
    // Nothing else (`connection: close` answers the request's own).
    assert_eq!(others, ["connection", "date"], "{:?}", r.headers);
    assert!(r.body.is_empty());
    // A wildcard origin is echoed; GET passes whatever the list says.
    let r = preflight(addr, "/api", "https://a.b.example.com", "GET", "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.b.example.com")
    );

    // Refused: 403, no CORS header, the reason in the body.
    for (origin, method, headers, why) in [
        ("https://evil-example.com", "PUT", "", "origin not allowed"),
        ("https://example.com", "GET", "", "origin not allowed"),
        ("null", "GET", "", "origin not allowed"),
        (
            "https://app.example",
            "DELETE",
            "",
            "method DELETE not allowed",
        ),
        (
            "https://app.example",
            "PUT",
            "x-api-key, x-debug",
            "request header x-debug not allowed",
        ),
    ] {
        let r = preflight(addr, "/api", origin, method, headers).await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}");
        assert_eq!(cors_fields(&r), [("vary", PREFLIGHT_VARY)], "{origin}");
        assert_eq!(r.header("x-switchyard-error"), Some("forbidden"));
        assert!(
            r.body_str()
                .contains(&format!("CORS preflight refused: {why}")),
            "{}",
            r.body_str()
        );
    }
    assert_eq!(b.hits(), 0, "no preflight reached the upstream");

    // OPTIONS that is not a preflight goes upstream: without an
    // Access-Control-Request-Method, or without an Origin.
    let r = raw(
        addr,
        "OPTIONS",
        "/api",
        &[("Origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("b"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = raw(
        addr,
        "OPTIONS",
        "/api",
        &[("Access-Control-Request-Method", "PUT")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(b.hits(), 2);

    let m = |outcome: &str| {
        let p = &p;
        let outcome = outcome.to_owned();
        async move {
            scrape_metric(
                p,
                "switchyard_cors_requests_total",
                &[("route", "api"), ("outcome", &outcome)],
            )
            .await
        }
    };
    assert_eq!(m("preflight").await, 2.0);
    assert_eq!(m("denied").await, 5.0);
    assert_eq!(m("allowed").await, 1.0);
    // A refused preflight is also Switchyard's own 403.
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_proxy_errors_total",
            &[("route", "api"), ("stage", "forbidden")]
        )
        .await,
        5.0
    );
}

/// A backend that answers with its own CORS headers and `Vary`, as
/// upstreams often do.
async fn cors_minded_backend() -> Backend {
    Backend::start_with(
        "b",
        Arc::new(|req: &hyper::Request<Incoming>| {
            let mut r = Response::builder()
                .header("x-backend", "b")
                .header("x-total", "42")
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-methods", "DELETE")
                .header("access-control-expose-headers", "x-secret");
            r = match req.uri().path() {
                "/api/vary-origin" => r.header("vary", "origin"),
                "/api/vary-star" => r.header("vary", "*"),
                _ => r.header("vary", "Accept-Encoding"),
            };
            Some(r.body(Full::new(Bytes::from_static(b"data"))).unwrap())
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_requests_get_the_policys_headers_for_allowed_origins_only() {
    let b = cors_minded_backend().await;
    let p = Proxy::start(&api_config(&servers(&[&b]), API_CORS));
    let addr = p.addr("main");

    // Allowed: the origin echoed, credentials, exposed headers; the
    // upstream's CORS headers are replaced, its Vary merged.
    let r = raw(addr, "GET", "/api", &[("Origin", "https://app.example")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "data");
    assert_eq!(
        cors_fields(&r),
        [
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-expose-headers", "x-total"),
            ("vary", "Accept-Encoding, Origin"),
        ]
    );
    // Refused: the answer is sent (the browser withholds it), without any
    // CORS header, the upstream's included.
    for origin in ["https://evil.example", "https://evil-example.com", "null"] {
        let r = raw(addr, "GET", "/api", &[("Origin", origin)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            cors_fields(&r),
            [("vary", "Accept-Encoding, Origin")],
            "{origin}"
        );
    }
    // No Origin: not a CORS request; the answer still varies by Origin.
    let r = raw(addr, "GET", "/api", &[]).await;
    assert_eq!(cors_fields(&r), [("vary", "Accept-Encoding, Origin")]);
    // Vary already naming Origin, or `*`: left as it is.
    let r = raw(
        addr,
        "GET",
        "/api/vary-origin",
        &[("Origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.header("vary"), Some("origin"));
    assert_eq!(r.headers.iter().filter(|(k, _)| k == "vary").count(), 1);
    let r = raw(
        addr,
        "GET",
        "/api/vary-star",
        &[("Origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.header("vary"), Some("*"));

    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_cors_requests_total",
            &[("route", "api"), ("outcome", "allowed")]
        )
        .await,
        3.0
    );
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_cors_requests_total",
            &[("route", "api"), ("outcome", "denied")]
        )
        .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_answers_a_star_without_vary_origin() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&api_config(
        &servers(&[&b]),
        r#"{ cors = { allow_origins = ["*"], allow_headers = ["*"] } }"#,
    ));
    let addr = p.addr("main");
    let r = preflight(addr, "/api", "https://anyone.example", "POST", "x-a, x-b").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        cors_fields(&r),
        [
            ("access-control-allow-headers", "x-a, x-b"),
            ("access-control-allow-methods", "GET, HEAD, POST"),
            ("access-control-allow-origin", "*"),
            (
                "vary",
                "Access-Control-Request-Method, Access-Control-Request-Headers"
            ),
        ]
    );
    for h in [&[("Origin", "https://anyone.example")][..], &[][..]] {
        let r = raw(addr, "GET", "/api", h).await;
        assert_eq!(
            cors_fields(&r),
            [("access-control-allow-origin", "*")],
            "{h:?}"
        );
    }
    assert_eq!(b.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyards_own_answers_carry_cors_headers() {
    let b = Backend::start("b").await;
    // The listener allows one site everywhere; route "special" has a cors
    // of its own, which replaces the listener's; route "dead" has no
    // server that answers.
    let toml = format!(
        r#"{preamble}filters = [{{ cors = {{ allow_origins = ["https://site.example"] }} }}]
[[routes]]
name = "api"
upstream = "u"
[routes.match]
path = "/api"
[[routes]]
name = "special"
upstream = "u"
filters = [{{ cors = {{ allow_origins = ["https://other.example"] }} }}]
[routes.match]
path = "/special"
[[routes]]
name = "dead"
upstream = "dead"
[routes.match]
path = "/dead"
[upstreams.u]
servers = [{u}]
[upstreams.dead]
servers = ["{refused}"]
"#,
        preamble = Preamble::default(),
        u = servers(&[&b]),
        refused = refused_addr(),
    );
    let p = Proxy::start(&toml);
    let addr = p.addr("main");
    let site = [("Origin", "https://site.example")];
    let other = [("Origin", "https://other.example")];

    // A 502 of Switchyard's own.
    let r = raw(addr, "GET", "/dead", &site).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        cors_fields(&r),
        [
            ("access-control-allow-origin", "https://site.example"),
            ("vary", "Origin"),
        ]
    );
    let r = raw(addr, "GET", "/dead", &other).await;
    assert_eq!(r.status, 502);
    assert_eq!(cors_fields(&r), [("vary", "Origin")]);
    // A 404: no route, the listener's filters.
    let r = raw(addr, "GET", "/nowhere", &site).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://site.example")
    );
    // The route's own cors replaces the listener's.
    let r = raw(addr, "GET", "/special", &other).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://other.example")
    );
    let r = raw(addr, "GET", "/special", &site).await;
    assert_eq!(cors_fields(&r), [("vary", "Origin")]);
    let r = preflight(addr, "/special", "https://site.example", "GET", "").await;
    assert_eq!(r.status, 403);
    let r = raw(addr, "GET", "/api", &site).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://site.example")
    );
    // Counted under the route that answered; "" for no route.
    let v = |route: &'static str, outcome: &'static str| {
        let p = &p;
        async move {
            scrape_metric(
                p,
                "switchyard_cors_requests_total",
                &[("route", route), ("outcome", outcome)],
            )
            .await
        }
    };
    assert_eq!(v("dead", "allowed").await, 1.0);
    assert_eq!(v("dead", "denied").await, 1.0);
    assert_eq!(v("", "allowed").await, 1.0);
    assert_eq!(v("special", "denied").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_cors_act_in_the_documented_order() {
    let b = Backend::start("b").await;
    let rule = r#"{ headers = { request = { remove = ["origin"] }, response = { set = { access-control-allow-origin = "https://rule.example", x-rule = "ran" } } } }"#;
    let cors = r#"{ cors = { allow_origins = ["https://app.example"] } }"#;
    let toml = format!(
        r#"{preamble}
[[routes]]
name = "cors-first"
upstream = "u"
filters = [{cors}, {rule}]
[routes.match]
path = "/cors-first"
[[routes]]
name = "headers-first"
upstream = "u"
filters = [{rule}, {cors}]
[routes.match]
path = "/headers-first"
[upstreams.u]
servers = [{u}]
"#,
        preamble = Preamble::default(),
        u = servers(&[&b]),
    );
    let p = Proxy::start(&toml);
    let addr = p.addr("main");
    let app = [("Origin", "https://app.example")];
    // Requests run in order, responses in reverse: the filter written
    // first has the last word on the response.
    let r = raw(addr, "GET", "/cors-first", &app).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("x-rule"), Some("ran"));
    let r = raw(addr, "GET", "/headers-first", &app).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://rule.example")
    );
    // cors decides on the Origin as received: the rule removed it from
    // the request before cors ran (headers-first) or after (cors-first),
    // and the backend never saw it either way.
    for path in ["/cors-first", "/headers-first"] {
        let r = raw(addr, "GET", path, &app).await;
        assert_eq!(r.header("x-seen-origin"), None, "{path}");
        assert!(
            r.header("vary").is_some_and(|v| v.contains("Origin")),
            "{path}"
        );
    }
    // A preflight answered by cors still passes every filter's response
    // phase: the rule's header is on the 204; cors written first keeps
    // its own Allow-Origin.
    let r = preflight(addr, "/cors-first", "https://app.example", "GET", "").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-rule"), Some("ran"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = preflight(addr, "/headers-first", "https://app.example", "GET", "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://rule.example")
    );
    assert_eq!(b.hits(), 4, "the preflights stayed at the edge");
}

// --- In a browser ----------------------------------------------------------

/// What the API backend of the browser test saw: method and the
/// `x-api-key` header of every request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// The page: fetches `?api=URL` with a custom header and credentials (so
/// the browser sends a preflight first), and writes the outcome into
/// `<body data-result>`: `ok:<status>:<body>:<x-total>` or
/// `error:<name>`.
const PAGE: &str = r#"<!doctype html>
<html><head><title>cors</title></head><body data-result="pending">
<script>
const api = new URLSearchParams(location.search).get("api");
fetch(api, { method: "PUT", credentials: "include", headers: { "X-Api-Key": "k1" }, body: "{}" })
  .then(async r => {
    const text = await r.text();
    document.body.dataset.result = "ok:" + r.status + ":" + text + ":" + r.headers.get("x-total");
  })
  .catch(e => { document.body.dataset.result = "error:" + e.name; });
</script></body></html>"#;

/// A backend serving [`PAGE`] for every request.
async fn page_server(name: &str) -> Backend {
    Backend::start_with(
        name,
        Arc::new(|_req: &hyper::Request<Incoming>| {
            Some(
                Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from_static(PAGE.as_bytes())))
                    .unwrap(),
            )
        }),
    )
    .await
}

/// The `data-result` of the page's body in a dumped DOM.
fn result_of(dom: &str) -> Option<&str> {
    let at = dom.find("data-result=\"")? + "data-result=\"".len();
    dom[at..].split('"').next()
}

/// Loads `url` until the page's fetch has an outcome (a fresh profile
/// each time, so no preflight is cached); panics after 30 s.
async fn fetch_outcome(browser: &Browser, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut run = 0;
    loop {
        run += 1;
        let dom = browser
            .run_in(
                &format!("profile-{run}"),
                &["--dump-dom", "--virtual-time-budget=5000"],
                url,
            )
            .await;
        match result_of(&dom) {
            Some(r) if r != "pending" => return r.to_owned(),
            _ if Instant::now() > deadline => panic!("the page never showed an outcome:\n{dom}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_fetches_across_origins_only_when_allowed() {
    let Some(browser) = Browser::find("the CORS browser test") else {
        return;
    };
    // The two sites: different ports of 127.0.0.1 are different origins.
    let allowed = page_server("allowed-site").await;
    let refused = page_server("refused-site").await;
    let seen: Seen = Arc::default();
    let api = Backend::start_with(
        "api",
        Arc::new({
            let seen = seen.clone();
            move |req: &hyper::Request<Incoming>| {
                let key = req
                    .headers()
                    .get("x-api-key")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                seen.lock().unwrap().push((req.method().to_string(), key));
                Some(
                    Response::builder()
                        .header("x-total", "42")
                        .body(Full::new(Bytes::from_static(b"hello")))
                        .unwrap(),
                )
            }
        }),
    )
    .await;
    let cors = format!(
        r#"{{ cors = {{ allow_origins = ["http://{}"], allow_methods = ["GET", "PUT"], allow_headers = ["x-api-key", "content-type"], expose_headers = ["x-total"], allow_credentials = true }} }}"#,
        allowed.addr
    );
    let p = Proxy::start(&api_config(&servers(&[&api]), &cors));
    let endpoint = format!("http://{}/api/items", p.addr("main"));

    // From the allowed origin: the preflight is answered at the edge, the
    // PUT reaches the API, and the page reads the body and the exposed
    // header.
    let url = format!("http://{}/?api={endpoint}", allowed.addr);
    assert_eq!(fetch_outcome(&browser, &url).await, "ok:200:hello:42");
    let calls = seen.lock().unwrap().clone();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|(m, key)| m == "PUT" && key == "k1"),
        "only the actual requests reached the API: {calls:?}"
    );

    // From another origin: the preflight is refused and the browser
    // blocks the fetch (a TypeError for the page); the API sees nothing.
    let before = seen.lock().unwrap().len();
    let url = format!("http://{}/?api={endpoint}", refused.addr);
    assert_eq!(fetch_outcome(&browser, &url).await, "error:TypeError");
    assert_eq!(seen.lock().unwrap().len(), before, "the API was not called");

    let v = |outcome: &'static str| {
        let p = &p;
        async move {
            scrape_metric(
                p,
                "switchyard_cors_requests_total",
                &[("route", "api"), ("outcome", outcome)],
            )
            .await
        }
    };
    assert!(v("preflight").await >= 1.0);
    assert!(v("allowed").await >= 1.0);
    assert!(v("denied").await >= 1.0);
}
