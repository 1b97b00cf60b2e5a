//! End to end: the request pipeline. Listener and route filter chains, their
//! order, named filters, the answers no route gave, a reload changing a
//! filter while a request is in flight, and the `request_id` and `headers`
//! filters (variables, the access log, what the backend sees).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// Listener `main` with `listener_filters`, then `rest` (routes,
/// upstreams, named filters).
fn config(listener_filters: &str, rest: &str) -> String {
    format!(
        "{}filters = [{listener_filters}]\n{rest}",
        Preamble::default()
    )
}

/// One route "all" to `b` with `route_filters`.
fn route(b: &Backend, route_filters: &str) -> String {
    format!(
        r#"
[[routes]]
name = "all"
upstream = "u"
filters = [{route_filters}]
[upstreams.u]
servers = ["{}"]
"#,
        b.addr
    )
}

fn values(h: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_made_sent_upstream_returned_and_logged() {
    let b = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = Proxy::start(&format!(
        "{}\n[access_log]\npath = \"{}\"\n",
        config(
            "\"rid\"",
            &format!("{}\n[filters.rid]\nrequest_id = {{}}\n", route(&b, ""))
        ),
        log.display()
    ));
    let c = client();
    let r = c.get(p.url("main", "/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = header(&r, "x-request-id").to_owned();
    assert_eq!(id.len(), 36, "{id}");
    // The backend saw the same id.
    assert_eq!(header(&r, "x-seen-x-request-id"), id);

    // An id from a client that is not a trusted proxy is replaced.
    let r = c
        .get(p.url("main", "/y"))
        .header("x-request-id", "client-chosen")
        .send()
        .await
        .unwrap();
    let replaced = header(&r, "x-request-id").to_owned();
    assert_ne!(replaced, "client-chosen");
    assert_eq!(header(&r, "x-seen-x-request-id"), replaced);

    // Both are in the access log.
    eventually("two access log lines", DEADLINE, async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // In either order: the two requests may come on two connections served
    // by two workers, whose log buffers are written one after the other.
    ids.sort_unstable();
    let mut want = [id, replaced];
    want.sort_unstable();
    assert_eq!(ids, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_id_from_a_trusted_proxy_is_kept() {
    let b = Backend::start("b").await;
    let toml = format!(
        "{}{}[listeners.main.forwarded]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        config("{ request_id = { trust_incoming = \"trusted\" } }", ""),
        route(&b, "")
    );
    let p = Proxy::start(&toml);
    let r = client()
        .get(p.url("main", "/"))
        .header("x-request-id", "edge-42")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-request-id"), "edge-42");
    assert_eq!(header(&r, "x-seen-x-request-id"), "edge-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_with_variables_both_ways() {
    let b = Backend::start("b").await;
    let rules = r#"{ headers = { request = { set = { x-client = "${client_ip}", x-route = "${route}" }, remove = ["x-secret"] }, response = { set = { x-served-by = "${upstream}/${server}", x-method = "${method} ${path}" }, remove = ["x-seen-x-secret"] } } }"#;
    let p = Proxy::start(&config("", &route(&b, rules)));
    let r = client()
        .get(p.url("main", "/orders?id=7"))
        .header("x-secret", "s3cr3t")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The peer is no trusted proxy: its X-Forwarded-For names nobody.
    assert_eq!(header(&r, "x-seen-x-client"), "127.0.0.1");
    assert_eq!(header(&r, "x-seen-x-route"), "all");
    assert_eq!(header(&r, "x-served-by"), format!("u/{}", b.addr));
    assert_eq!(header(&r, "x-method"), "GET /orders");
    // Removed on the way in: the backend never saw it.
    assert!(r.headers().get("x-seen-x-secret").is_none());

    // Behind a trusted proxy, the client is the one X-Forwarded-For names.
    let trusted = format!(
        "{}[listeners.main.forwarded]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        config("", &route(&b, rules))
    );
    let p = Proxy::start(&trusted);
    let r = client()
        .get(p.url("main", "/"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-seen-x-client"), "203.0.113.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_filters_run_first_and_responses_in_reverse() {
    let b = Backend::start("b").await;
    let append = |v: &str| {
        format!(
            r#"{{ headers = {{ request = {{ append = {{ x-order = "{v}" }} }}, response = {{ append = {{ x-order = "{v}" }} }} }} }}"#
        )
    };
    let rest = format!(
        "{}\n[filters.named]\nheaders = {{ request = {{ append = {{ x-order = \"named\" }} }}, response = {{ append = {{ x-order = \"named\" }} }} }}\n",
        route(&b, &format!("\"named\", {}", append("route")))
    );
    let p = Proxy::start(&config(&append("listener"), &rest));
    let r = client().get(p.url("main", "/")).send().await.unwrap();
    assert_eq!(
        values(r.headers(), "x-seen-x-order"),
        ["listener", "named", "route"],
        "the backend sees the request phase in order"
    );
    assert_eq!(
        values(r.headers(), "x-order"),
        ["route", "named", "listener"],
        "the response phase runs in reverse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_no_route_gave_pass_the_listeners_filters() {
    let b = Backend::start("b").await;
    let only_api = format!(
        r#"
[[routes]]
name = "api"
upstream = "u"
filters = [{{ headers = {{ response = {{ set = {{ x-route-filter = "ran" }} }} }} }}]
[routes.match]
path = "/api"
[upstreams.u]
servers = ["{}"]
"#,
        b.addr
    );
    let p = Proxy::start(&config(
        r#"{ request_id = {} }, { headers = { response = { set = { x-edge = "${listener}:${route}" } } } }"#,
        &only_api,
    ));
    let r = client()
        .get(p.url("main", "/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-switchyard-error"), "no-route");
    assert_eq!(header(&r, "x-edge"), "main:");
    assert_eq!(header(&r, "x-request-id").len(), 36);
    assert!(r.headers().get("x-route-filter").is_none());
    // A 502 of Switchyard's own passes the route's filters too.
    b.stop();
    let r = client().get(p.url("main", "/api")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-route-filter"), "ran");
    assert_eq!(header(&r, "x-edge"), "main:api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_filters_for_new_requests_only() {
    let (b, gate) = Backend::start_gated("b").await;
    let with = |v: &str| {
        config(
            "",
            &route(
                &b,
                &format!(r#"{{ headers = {{ response = {{ set = {{ x-version = "{v}" }} }} }} }}"#),
            ),
        )
    };
    let p = Proxy::start(&with("one"));
    let url = p.url("main", "/");
    // A request in flight, held by the backend.
    let inflight = tokio::spawn({
        let url = url.clone();
        async move { client().get(url).send().await.unwrap() }
    });
    eventually("the backend holds the request", DEADLINE, async || {
        b.hits() == 1
    })
    .await;
    p.write_config(&with("two"));
    assert_eq!(p.handle.reload().unwrap(), 2);
    gate.send(true).unwrap();
    let old = within("the request in flight", inflight).await.unwrap();
    assert_eq!(header(&old, "x-version"), "one");
    let new = client().get(&url).send().await.unwrap();
    assert_eq!(header(&new, "x-version"), "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_filters_is_untouched() {
    let b = Backend::start("b").await;
    let p = Proxy::start(&format!(
        "{}{}",
        Preamble::default(),
        route_all(&servers(&[&b]), "", "")
    ));
    let r = client()
        .get(p.url("main", "/"))
        .header("x-request-id", "mine")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-seen-x-request-id"), "mine");
    assert!(r.headers().get("x-request-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_change_what_the_upstream_sees() {
    let b = Backend::start("b").await;
    let rules = r#"{ rewrite = { strip_prefix = "/api", query = { remove = ["debug"], rename = { q = "query" }, add = { via = "edge" } } } }"#;
    let routed = format!(
        r#"
[[routes]]
name = "api"
upstream = "u"
filters = [{rules}]
[routes.match]
path = "/api"

[[routes]]
name = "users"
upstream = "u"
filters = [{{ rewrite = {{ path_regex = {{ pattern = "^/users/([0-9]+)$", replacement = "/u/$1/profile" }} }} }}]
[routes.match]
path = "/users"

[upstreams.u]
servers = ["{}"]
"#,
        b.addr
    );
    let p = Proxy::start(&config("", &routed));
    let c = client();
    let r = c
        .get(p.url("main", "/api/orders?q=shoes&debug=1&page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-seen-path"),
        "/orders?query=shoes&page=2&via=edge"
    );
    let r = c.get(p.url("main", "/api")).send().await.unwrap();
    assert_eq!(header(&r, "x-seen-path"), "/?via=edge");
    let r = c.get(p.url("main", "/users/42")).send().await.unwrap();
    assert_eq!(header(&r, "x-seen-path"), "/u/42/profile");
    // No match: the path goes as it came.
    let r = c.get(p.url("main", "/users/me")).send().await.unwrap();
    assert_eq!(header(&r, "x-seen-path"), "/users/me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_shape_switchyards_own_errors_only() {
    let down = refused_addr();
    let teapot = Backend::start_with(
        "teapot",
        std::sync::Arc::new(|_req: &http::Request<hyper::body::Incoming>| {
            Some(
                http::Response::builder()
                    .status(500)
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                        b"backend says no",
                    )))
                    .unwrap(),
            )
        }),
    )
    .await;
    let routes = format!(
        r#"
[[routes]]
name = "down"
upstream = "down"
[routes.match]
path = "/down"

[[routes]]
name = "own"
upstream = "own"
filters = [{{ error_page = {{ content_type = "text/html; charset=utf-8", body = "<h1>${{status}} ${{reason}}</h1><p>${{error}}</p>" }} }}]
[routes.match]
path = "/own"

[[routes]]
name = "html"
upstream = "down"
filters = [{{ error_page = {{ content_type = "text/html; charset=utf-8", body = "<h1>${{status}} ${{reason}}</h1><p>${{error}}</p>" }} }}]
[routes.match]
path = "/html"

[upstreams.down]
servers = ["{down}"]
[upstreams.own]
servers = ["{}"]
"#,
        teapot.addr
    );
    let p = Proxy::start(&config(
        r#"{ request_id = {} }, { error_page = { format = "json" } }"#,
        &routes,
    ));
    let c = client();
    // No route: the listener's page, with the request id.
    let r = c.get(p.url("main", "/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-switchyard-error"), "no-route");
    assert_eq!(header(&r, "content-type"), "application/json");
    let id = header(&r, "x-request-id").to_owned();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"error": "no-route", "message": "no route matches this request", "status": 404, "request_id": id})
    );
    // A 502 of Switchyard's own.
    let r = c.get(p.url("main", "/down")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "connect");
    assert_eq!(v["status"], 502);
    // The route's page wins over the listener's.
    let r = c.get(p.url("main", "/html")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "<h1>502 Bad Gateway</h1><p>connect</p>"
    );
    // The backend's own 500 is left alone, whatever the page says.
    let r = c.get(p.url("main", "/own")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().await.unwrap(), "backend says no");
}
