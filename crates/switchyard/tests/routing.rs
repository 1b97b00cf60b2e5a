//! End to end: route selection and route actions through the real proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;

/// A config with listener "main" (plus `more_listeners`), no upstreams
/// unless `rest` declares them, and `rest` appended (routes, upstreams).
fn config(more_listeners: &str, rest: &str) -> String {
    format!(
        r#"{}{more_listeners}
{rest}
"#,
        Preamble::default()
    )
}

/// A route answering its own name, so responses tell which route won.
fn named(name: &str, matcher: &str) -> String {
    format!(
        r#"
[[routes]]
name = "{name}"
respond = {{ body = "{name}" }}
[routes.match]
{matcher}
"#
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET `path` with Host `host` (None = the client's default) and extra
/// headers; the status and body.
async fn get(
    proxy: &Proxy,
    host: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    send(proxy, "main", reqwest::Method::GET, host, path, headers).await
}

async fn send(
    proxy: &Proxy,
    listener: &str,
    method: reqwest::Method,
    host: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut rb = client().request(method, proxy.url(listener, path));
    if let Some(h) = host {
        rb = rb.header("host", h);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_host_beats_longest_wildcard_beats_no_host() {
    // Written in the reverse of precedence order, so file order alone would
    // pick the wrong route every time.
    let routes = [
        named("any-host", ""),
        named("wild", r#"hosts = ["*.example.com"]"#),
        named("wild-eu", r#"hosts = ["*.eu.example.com"]"#),
        named("exact", r#"hosts = ["api.example.com"]"#),
    ]
    .concat();
    let proxy = Proxy::start(&config("", &routes));
    let cases = [
        ("api.example.com", "exact"),
        ("API.Example.COM:8443", "exact"),
        ("www.example.com", "wild"),
        ("a.b.example.com", "wild"),
        ("shop.eu.example.com", "wild-eu"),
        ("example.com", "any-host"),
        ("other.test", "any-host"),
    ];
    for (host, want) in cases {
        assert_eq!(
            get(&proxy, Some(host), "/", &[]).await,
            (200, want.to_string()),
            "Host: {host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_compared_before_path() {
    let routes = [
        named("path-only", r#"path_exact = "/combo""#),
        named("host-only", r#"hosts = ["combo.test"]"#),
    ]
    .concat();
    let proxy = Proxy::start(&config("", &routes));
    assert_eq!(
        get(&proxy, Some("combo.test"), "/combo", &[]).await.1,
        "host-only"
    );
    assert_eq!(
        get(&proxy, Some("other.test"), "/combo", &[]).await.1,
        "path-only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_exact_beats_longer_prefix_beats_regex_beats_no_path() {
    let routes = [
        named("no-path", ""),
        named("regex", r#"path_regex = '^/ap'"#),
        named("prefix-short", r#"path = "/api""#),
        named("prefix-long", r#"path = "/api/v1""#),
        named("exact", r#"path_exact = "/api/v1/users""#),
    ]
    .concat();
    let proxy = Proxy::start(&config("", &routes));
    let cases = [
        ("/api/v1/users", "exact"),
        ("/api/v1/users?page=2", "exact"),
        ("/api/v1/users/7", "prefix-long"),
        ("/api/v1", "prefix-long"),
        ("/api/v2/users", "prefix-short"),
        ("/api", "prefix-short"),
        ("/api?x=1", "prefix-short"),
        ("/apix", "regex"),
        ("/apple", "regex"),
        ("/other", "no-path"),
        ("/", "no-path"),
    ];
    for (path, want) in cases {
        assert_eq!(
            get(&proxy, None, path, &[]).await,
            (200, want.to_string()),
            "path {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_header_and_query_conditions() {
    let routes = [
        named("plain", r#"path = "/m""#),
        named("post", "path = \"/m\"\nmethods = [\"post\"]"),
        named(
            "canary",
            "path = \"/m\"\nheaders = { \"X-Canary\" = \"1\" }",
        ),
        named("debug", "path = \"/m\"\nquery = { debug = \"1\" }"),
        named(
            "canary-debug",
            "path = \"/m\"\nheaders = { \"x-canary\" = \"1\" }\nquery = { debug = \"1\" }",
        ),
        named(
            "curl",
            "path = \"/m\"\nheaders = { \"user-agent\" = { regex = '^curl/' } }",
        ),
        named(
            "traced",
            "path = \"/m\"\nheaders = { \"x-trace\" = { present = true } }",
        ),
    ]
    .concat();
    let proxy = Proxy::start(&config("", &routes));
    use reqwest::Method;
    /// Method, path, headers, the route that must win.
    type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 11] = [
        (Method::GET, "/m", &[], "plain"),
        (Method::DELETE, "/m", &[], "plain"),
        (Method::POST, "/m", &[], "post"),
        (Method::GET, "/m", &[("x-canary", "1")], "canary"),
        (Method::GET, "/m", &[("x-canary", "2")], "plain"),
        (Method::GET, "/m?debug=1", &[], "debug"),
        (Method::GET, "/m?debug=0", &[], "plain"),
        (
            Method::GET,
            "/m?debug=1",
            &[("x-canary", "1")],
            "canary-debug",
        ),
        (Method::GET, "/m", &[("user-agent", "curl/8.5.0")], "curl"),
        (
            Method::GET,
            "/m",
            &[("user-agent", "Mozilla/5.0 curl/8")],
            "plain",
        ),
        (Method::GET, "/m", &[("x-trace", "")], "traced"),
    ];
    for (method, path, headers, want) in cases {
        let got = send(&proxy, "main", method.clone(), None, path, headers).await;
        assert_eq!(got, (200, want.to_string()), "{method} {path} {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_action_sets_status_body_and_content_type() {
    let routes = r#"
[[routes]]
name = "teapot"
respond = { status = 418, body = '{"short":"stout"}', content_type = "application/json" }
[routes.match]
path = "/teapot"

[[routes]]
name = "defaults"
respond = { body = "ok" }
"#;
    let proxy = Proxy::start(&config("", routes));
    let r = client()
        .get(proxy.url("main", "/teapot/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("x-switchyard-error").is_none());
    assert_eq!(r.text().await.unwrap(), r#"{"short":"stout"}"#);

    let r = client()
        .get(proxy.url("main", "/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_https_keeps_host_path_and_query() {
    let routes = r#"
[[routes]]
name = "port"
redirect = { scheme = "https", port = 8443 }
[routes.match]
path = "/port"

[[routes]]
name = "www"
redirect = { host = "www.example.com", status = 308 }
[routes.match]
path = "/www"

[[routes]]
name = "to-https"
redirect = { scheme = "https", status = 301 }
"#;
    let proxy = Proxy::start(&config("", routes));
    let addr = proxy.addr("main");
    // (Host sent, target, expected status, expected Location)
    let cases = [
        (
            "example.com",
            "/a/b?x=1&y=2",
            301,
            "https://example.com/a/b?x=1&y=2",
        ),
        ("example.com:8080", "/", 301, "https://example.com/"),
        (
            "Shop.Example.com",
            "/cart",
            301,
            "https://shop.example.com/cart",
        ),
        ("[::1]:8080", "/v6", 301, "https://[::1]/v6"),
        (
            "example.com:8080",
            "/port/x?q",
            302,
            "https://example.com:8443/port/x?q",
        ),
        (
            "example.com:8080",
            "/www/page",
            308,
            "http://www.example.com:8080/www/page",
        ),
    ];
    for (host, target, status, location) in cases {
        let mut raw = RawHttp::connect(addr).await;
        raw.send(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        let r = raw.read_response().await;
        assert_eq!(r.status, status, "{host}{target}");
        assert_eq!(r.header("location"), Some(location), "{host}{target}");
    }
    // HTTP/2 carries the host in :authority.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = h2
        .get(format!("http://{addr}/h2?z=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], format!("https://127.0.0.1/h2?z=9"));
    // A Host that is no host gets 400, not a Location built from it.
    let mut raw = RawHttp::connect(addr).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n")
        .await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_with_and_without_keep_path() {
    let routes = r#"
[[routes]]
name = "login"
redirect = { location = "https://login.example.com/start" }
[routes.match]
path = "/account"

[[routes]]
name = "to-https"
redirect = { location = "https://www.example.com/", status = 308, keep_path = true }
"#;
    let proxy = Proxy::start(&config("", routes));
    let c = no_redirects();

    let r = c
        .get(proxy.url("main", "/account/settings?tab=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "default redirect status");
    assert_eq!(r.headers()["location"], "https://login.example.com/start");

    let r = c
        .post(proxy.url("main", "/a/b?x=1&y=2"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        "https://www.example.com/a/b?x=1&y=2"
    );

    let r = c.get(proxy.url("main", "/")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "https://www.example.com/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_route_is_404_no_route() {
    let routes = named("only", r#"hosts = ["only.test"]"#);
    let proxy = Proxy::start(&config("", &routes));
    let labels = [("route", ""), ("stage", "no-route")];
    let before = scrape_metric(&proxy, "switchyard_proxy_errors_total", &labels).await;

    let r = client().get(proxy.url("main", "/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-switchyard-error"], "no-route");
    assert!(r.text().await.unwrap().contains("no route"));
    // The route itself still works.
    assert_eq!(
        get(&proxy, Some("only.test"), "/x", &[]).await,
        (200, "only".into())
    );

    let after = scrape_metric(&proxy, "switchyard_proxy_errors_total", &labels).await;
    assert_eq!(after - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_be_limited_to_one_listener() {
    let routes = r#"
[[routes]]
name = "internal-only"
listeners = ["internal"]
respond = { body = "internal" }
[routes.match]
path = "/admin"

[[routes]]
name = "public"
respond = { body = "public" }
[routes.match]
path = "/public"
"#;
    let proxy = Proxy::start(&config(
        "[listeners.internal]\naddress = \"127.0.0.1:0\"\n",
        routes,
    ));
    assert_ne!(proxy.addr("main"), proxy.addr("internal"));
    let on = async |listener: &str, path: &str| {
        let r = client()
            .get(proxy.url(listener, path))
            .send()
            .await
            .unwrap();
        let err = r
            .headers()
            .get("x-switchyard-error")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), err, r.text().await.unwrap())
    };
    assert_eq!(
        on("internal", "/admin").await,
        (200, None, "internal".into())
    );
    let (status, err, _) = on("main", "/admin").await;
    assert_eq!((status, err.as_deref()), (404, Some("no-route")));
    // A route without `listeners` serves both.
    assert_eq!(on("main", "/public").await, (200, None, "public".into()));
    assert_eq!(
        on("internal", "/public").await,
        (200, None, "public".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rewrite_changes_the_host_the_backend_sees() {
    let backend = Backend::start("b").await;
    let rest = format!(
        r#"
[[routes]]
name = "rewritten"
upstream = "u"
host_rewrite = "api.internal:8080"
[routes.match]
path = "/rw"

[[routes]]
name = "kept"
upstream = "u"

[upstreams.u]
servers = ["{}"]
"#,
        backend.addr
    );
    let proxy = Proxy::start(&config("", &rest));
    let seen = async |path: &str, host: Option<&str>| {
        let mut rb = client().get(proxy.url("main", path));
        if let Some(h) = host {
            rb = rb.header("host", h);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        (h("x-seen-host"), h("x-seen-x-forwarded-host"))
    };

    let (host, xfh) = seen("/rw", Some("shop.example.com")).await;
    assert_eq!(host.as_deref(), Some("api.internal:8080"));
    assert_eq!(
        xfh.as_deref(),
        Some("shop.example.com"),
        "X-Forwarded-Host keeps the client's Host"
    );

    let (host, _) = seen("/kept", Some("shop.example.com")).await;
    assert_eq!(host.as_deref(), Some("shop.example.com"));

    // Without an explicit Host the client sends the proxy's address, and
    // that is what the backend sees.
    let (host, _) = seen("/kept", None).await;
    assert_eq!(host, Some(proxy.addr("main").to_string()));
}
