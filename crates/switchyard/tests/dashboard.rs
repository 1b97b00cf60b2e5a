//! End to end in headless Chromium: the admin listener's dashboard (`/`)
//! shows non-zero request rates per route, an error rate for a failing
//! route, and — after a backend is killed — its server as unhealthy. Saves
//! a screenshot to `<target dir>/dashboard-screenshot.png`. Requests no
//! route matches are counted per listener in `/metrics` and `/api/stats`
//! and shown on the listener's card and in the totals.
//!
//! Needs `chromium` (or `chromium-browser`) on PATH; CI installs it (see
//! .ci/run). Without it the test fails, unless SWITCHYARD_SKIP_BROWSER=1
//! (see common/browser.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Deadline for the page to show what a step waits for.
const SHOWS: Duration = Duration::from_secs(20);
/// Background traffic stops by itself after this long or this many requests.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(60);
const TRAFFIC_MAX: usize = 200_000;

/// How the dashboard is looked at: dark theme, a wide window, and virtual
/// time so the page's 1 s poll runs a few times before the DOM is dumped
/// or the screenshot taken (network waits do not count against it).
const LOOK: &[&str] = &[
    "--force-dark-mode",
    "--window-size=1440,1000",
    "--virtual-time-budget=2500",
];

impl Browser {
    /// Runs Chromium on `url` as the dashboard is looked at, with `extra`
    /// flags; returns its stdout.
    async fn look(&self, extra: &[&str], url: &str) -> String {
        let flags: Vec<&str> = LOOK.iter().chain(extra).copied().collect();
        self.run(&flags, url).await
    }

    async fn dom(&self, url: &str) -> String {
        self.look(&["--dump-dom"], url).await
    }

    /// Dumps the DOM until `ok` accepts it; panics at the deadline with
    /// `what` and the last DOM's data attributes.
    async fn dom_until(&self, url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SHOWS;
        loop {
            let dom = self.dom(url).await;
            if ok(&dom) {
                return dom;
            }
            if Instant::now() > deadline {
                panic!("the dashboard never showed: {what}\n{}", summary(&dom));
            }
        }
    }
}

/// Attributes of every start tag of `html` that has attribute `attr`.
fn tags_with(html: &str, attr: &str) -> Vec<HashMap<String, String>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        // The tag ends at the first '>' outside a quoted value.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == '>' && !quoted
            })
            .map_or(rest.len(), |(j, _)| j);
        let tag = &rest[..end];
        rest = &rest[end..];
        if tag.starts_with(['/', '!']) {
            continue;
        }
        let attrs = parse_attrs(tag);
        if attrs.contains_key(attr) {
            out.push(attrs);
        }
    }
    out
}

/// `name a="1" b="x y" c` -> {a: 1, b: "x y", c: ""} (Chromium serializes
/// every value in double quotes).
fn parse_attrs(tag: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let body = tag.trim_end_matches('/');
    let mut rest = body
        .find(char::is_whitespace)
        .map_or("", |i| &body[i..])
        .trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_string();
        rest = &rest[name_end..];
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix("=\"") {
            let close = r.find('"').unwrap_or(r.len());
            value = r[..close]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            rest = r.get(close + 1..).unwrap_or("");
        }
        m.insert(name, value);
        rest = rest.trim_start();
    }
    m
}

/// The tag with `attr` = `value`.
fn tag(dom: &str, attr: &str, value: &str) -> Option<HashMap<String, String>> {
    tags_with(dom, attr)
        .into_iter()
        .find(|t| t.get(attr).is_some_and(|v| v == value))
}

fn num(t: &HashMap<String, String>, attr: &str) -> f64 {
    t.get(attr).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// The route cards and server tiles of a DOM, for failure messages.
fn summary(dom: &str) -> String {
    let mut s = String::new();
    for attr in [
        "data-state",
        "data-tile",
        "data-listener-card",
        "data-route",
        "data-upstream",
        "data-server",
    ] {
        for t in tags_with(dom, attr) {
            let mut kv: Vec<_> = t
                .iter()
                .filter(|(k, _)| k.starts_with("data-"))
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            kv.sort();
            s.push_str(&kv.join(" "));
            s.push('\n');
        }
    }
    if s.is_empty() {
        s = format!(
            "(no dashboard elements; DOM starts with: {})",
            &dom[..dom.len().min(2000)]
        );
    }
    s
}

fn config(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"{}[[routes]]
name = "api"
upstream = "u"
[routes.match]
path = "/api"

[[routes]]
name = "broken"
respond = {{ status = 503, body = "down for the test" }}
[routes.match]
path_exact = "/broken"

[[routes]]
name = "web"
upstream = "u"

[upstreams.u]
servers = ["{a}", "{b}"]
[upstreams.u.health_check]
path = "/health"
interval = "100ms"
jitter = "20ms"
timeout = "1s"
unhealthy_threshold = 2
healthy_threshold = 2
"#,
        Preamble::default()
    )
}

/// Requests to every route until `stop` (or the traffic limits).
async fn traffic(base: String, stop: Arc<AtomicBool>) {
    let c = client();
    let started = Instant::now();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < TRAFFIC_LIMIT && n < TRAFFIC_MAX {
        for path in ["/api/items", "/", "/api/items/7", "/broken"] {
            // Failures (the killed backend) are part of the picture.
            let _ = c.get(format!("{base}{path}")).send().await;
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `<target dir>/dashboard-screenshot.png`.
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("dashboard-screenshot.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_shows_rates_and_a_dead_server() {
    let Some(browser) = Browser::find("the dashboard test") else {
        return;
    };

    let a = KillableBackend::start("a").await;
    let b = KillableBackend::start("b").await;
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let p = Proxy::start(&config(a.addr, b.addr));
    wait_admin_ready(p.admin()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(traffic(p.url("main", ""), stop.clone()));
    let url = format!("http://{}/", p.admin());

    // Live rates on every proxied route; the failing route's error rate.
    let dom = browser
        .dom_until(&url, "non-zero rates on routes api and web", |dom| {
            ["api", "web"]
                .iter()
                .all(|r| tag(dom, "data-route", r).is_some_and(|t| num(&t, "data-rps") > 0.0))
        })
        .await;
    let state = tags_with(&dom, "data-state");
    assert_eq!(state[0]["data-state"], "live", "{}", summary(&dom));
    let broken = tag(&dom, "data-route", "broken").expect("a card for route broken");
    assert!(num(&broken, "data-rps") > 0.0, "{}", summary(&dom));
    assert_eq!(num(&broken, "data-error-rate"), 1.0, "{}", summary(&dom));
    let web = tag(&dom, "data-route", "web").unwrap();
    assert_eq!(num(&web, "data-error-rate"), 0.0, "{}", summary(&dom));
    let up = tag(&dom, "data-upstream", "u").expect("a card for upstream u");
    assert!(num(&up, "data-rps") > 0.0, "{}", summary(&dom));
    let version = tag(&dom, "id", "config-version").unwrap();
    assert_eq!(version["data-value"], "1");
    for addr in [&a_addr, &b_addr] {
        let s = tag(&dom, "data-server", addr).expect("a tile per server");
        assert_eq!(s["data-health"], "healthy", "{}", summary(&dom));
        assert_eq!(s["data-upstream"], "u");
    }
    assert!(
        tag(&dom, "data-listener", "main").is_some(),
        "{}",
        summary(&dom)
    );

    // A dead backend: the active health check marks it down and the
    // server grid shows it.
    b.kill().await;
    let dom = browser
        .dom_until(&url, "server b unhealthy", |dom| {
            tag(dom, "data-server", &b_addr).is_some_and(|t| t["data-health"] == "unhealthy")
        })
        .await;
    let s = tag(&dom, "data-server", &a_addr).unwrap();
    assert_eq!(s["data-health"], "healthy", "{}", summary(&dom));

    // The artifact: a screenshot of the page (dark theme).
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    browser.look(&[&arg], &url).await;
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    eprintln!("dashboard screenshot: {}", shot.display());

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_asks_for_the_admin_token() {
    let Some(browser) = Browser::find("the dashboard test") else {
        return;
    };
    let a = Backend::start("a").await;
    let toml = simple_config(&[&a], "").replace(
        "[admin]\n",
        "[admin]\ntoken = \"dashboard-test-token-0123456789\"\n",
    );
    let p = Proxy::start(&toml);
    wait_admin_ready(p.admin()).await;
    // The page itself needs no token; its API calls get 401, so it shows
    // the token prompt.
    let (status, _) = admin_get(p.admin(), "/").await;
    assert_eq!(status, 200);
    let (status, _) = admin_get(p.admin(), "/api/stats").await;
    assert_eq!(status, 401);
    let url = format!("http://{}/", p.admin());
    let dom = browser
        .dom_until(&url, "the token prompt", |dom| {
            tags_with(dom, "data-state")
                .first()
                .is_some_and(|b| b["data-state"] == "auth")
        })
        .await;
    let prompt = tag(&dom, "id", "auth").expect("the token prompt");
    assert!(!prompt.contains_key("hidden"), "prompt hidden: {prompt:?}");
    assert!(
        tags_with(&dom, "data-route").is_empty(),
        "data shown without a token"
    );
}

/// Requests to `/api/...` (routed) and to paths no route matches, two of
/// those for one routed request, until `stop`.
async fn unrouted_traffic(base: String, stop: Arc<AtomicBool>) {
    let c = client();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < TRAFFIC_LIMIT {
        for path in ["/api/items", "/nothing/here", "/favicon.ico"] {
            let _ = c.get(format!("{base}{path}")).send().await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unrouted_requests_count_on_the_listener() {
    let a = Backend::start("a").await;
    let toml = format!(
        "{}[[routes]]\nname = \"api\"\nupstream = \"u\"\n[routes.match]\npath = \"/api\"\n\
         [upstreams.u]\nservers = [{}]\n",
        Preamble::default(),
        servers(&[&a])
    );
    let p = Proxy::start(&toml);
    let admin = p.admin();
    wait_admin_ready(admin).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(unrouted_traffic(p.url("main", ""), stop.clone()));

    // /metrics: the 404s count on the listener, not on any route.
    eventually("no-route answers in /metrics", SHOWS, async || {
        let (_, text) = admin_get(admin, "/metrics").await;
        let on = |class| {
            metric_in(
                &text,
                "switchyard_listener_requests_total",
                &[("listener", "main"), ("class", class)],
            )
        };
        on("4xx") >= 10.0 && on("2xx") >= 5.0
    })
    .await;
    let (_, text) = admin_get(admin, "/metrics").await;
    let route_4xx = [("route", "api"), ("class", "4xx")];
    assert_eq!(
        metric_in(&text, "switchyard_requests_total", &route_4xx),
        0.0
    );

    // /api/stats: the listener's series has them (2 of 3 requests).
    eventually(
        "a listener point with 4xx in /api/stats",
        SHOWS,
        async || {
            let (status, body) = admin_get(admin, "/api/stats").await;
            assert_eq!(status, 200);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let l = &v["listeners"][0];
            assert_eq!(l["name"], "main");
            let last = |k: &str| {
                l[k].as_array()
                    .and_then(|a| a.iter().rev().find_map(serde_json::Value::as_f64))
            };
            l["requests_total"].as_u64().unwrap_or(0) > 0
                && last("rps").is_some_and(|r| r > 0.0)
                && last("client_error_rate").is_some_and(|r| r > 0.3)
        },
    )
    .await;

    // The page: the listener's card and the 4xx tile show them; the
    // route's card does not.
    if let Some(browser) = Browser::find("the dashboard test") {
        let url = format!("http://{admin}/");
        let dom = browser
            .dom_until(
                &url,
                "a 4xx share on listener main and in the totals",
                |dom| {
                    let card = tag(dom, "data-listener-card", "main")
                        .is_some_and(|t| num(&t, "data-client-error-rate") > 0.3);
                    let tile =
                        tag(dom, "data-tile", "4xx").is_some_and(|t| num(&t, "data-value") > 0.3);
                    card && tile
                },
            )
            .await;
        let card = tag(&dom, "data-listener-card", "main").unwrap();
        assert!(num(&card, "data-rps") > 0.0, "{}", summary(&dom));
        assert!(num(&card, "data-requests-total") > 0.0, "{}", summary(&dom));
        let api = tag(&dom, "data-route", "api").expect("a card for route api");
        assert_eq!(
            num(&api, "data-client-error-rate"),
            0.0,
            "{}",
            summary(&dom)
        );
    }

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
}
