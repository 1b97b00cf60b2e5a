//! End to end: traffic management. Sticky sessions (and what happens when
//! the pinned server dies), a canary split, mirroring, and a blue-green
//! switch by reload under load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const DEADLINE: Duration = Duration::from_secs(15);

/// Status, `x-backend`, body and `Set-Cookie` of one GET with `headers`.
#[derive(Debug)]
struct Seen {
    status: u16,
    backend: String,
    body: String,
    set_cookie: Option<String>,
}

async fn get(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Seen {
    let mut rb = c.get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = within("GET through the proxy", rb.send()).await.unwrap();
    let status = r.status().as_u16();
    let backend = r
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert!(cookies.len() <= 1, "more than one Set-Cookie: {cookies:?}");
    let set_cookie = cookies.first().map(|v| v.to_str().unwrap().to_string());
    let body = within("response body", r.text()).await.unwrap();
    Seen {
        status,
        backend,
        body,
        set_cookie,
    }
}

/// The value of a `sy_server` Set-Cookie; checks its form.
fn sticky_value(set_cookie: &str) -> String {
    let (pair, attrs) = set_cookie.split_once(';').unwrap();
    let value = pair
        .strip_prefix("sy_server=")
        .unwrap_or_else(|| panic!("not the sticky cookie: {set_cookie}"));
    assert_eq!(value.len(), 16, "{set_cookie}");
    assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{set_cookie}");
    assert_eq!(attrs, " Path=/; HttpOnly", "{set_cookie}");
    value.to_string()
}

async fn sticky(p: &Proxy, outcome: &str) -> f64 {
    scrape_metric(
        p,
        "switchyard_sticky_sessions_total",
        &[("upstream", "u"), ("outcome", outcome)],
    )
    .await
}

/// A client keeping its sticky cookie stays on one server; when that server
/// dies, the request is retried elsewhere and the cookie moves with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_pins_a_client_and_moves_when_its_server_dies() {
    let mut backends = vec![
        KillableBackend::start("a").await,
        KillableBackend::start("b").await,
        KillableBackend::start("c").await,
    ];
    let list = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ");
    let p = Proxy::start(&format!(
        r#"{}
[[routes]]
name = "all"
upstream = "u"
[routes.retry]
attempts = 3
on = ["connect-failure", "reset"]
[upstreams.u]
servers = [{list}]
[upstreams.u.sticky]
cookie = "sy_server"
"#,
        Preamble::default()
    ));
    let c = client();
    let url = p.url("main", "/");

    let first = get(&c, &url, &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    let value = sticky_value(
        first
            .set_cookie
            .as_deref()
            .expect("first answer sets the cookie"),
    );
    let pinned = first.backend.clone();
    let cookie = format!("sy_server={value}");
    for i in 0..100 {
        let s = get(&c, &url, &[("cookie", &cookie)]).await;
        assert_eq!(
            (s.status, s.backend.as_str()),
            (200, pinned.as_str()),
            "request {i}: {s:?}"
        );
        assert_eq!(
            s.set_cookie, None,
            "request {i}: the cookie was rewritten: {s:?}"
        );
    }
    assert_eq!(sticky(&p, "hit").await, 100.0);
    assert_eq!(sticky(&p, "assigned").await, 1.0);

    // Kill the pinned server.
    let i = backends.iter().position(|b| b.name == pinned).unwrap();
    backends.remove(i).kill().await;
    let moved = get(&c, &url, &[("cookie", &cookie)]).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_ne!(moved.backend, pinned, "{moved:?}");
    let new_value = sticky_value(
        moved
            .set_cookie
            .as_deref()
            .expect("the moved request gets a new cookie"),
    );
    assert_ne!(new_value, value);
    assert_eq!(sticky(&p, "moved").await, 1.0);

    let cookie = format!("sy_server={new_value}");
    for i in 0..20 {
        let s = get(&c, &url, &[("cookie", &cookie)]).await;
        assert_eq!(
            (s.status, &s.backend),
            (200, &moved.backend),
            "request {i}: {s:?}"
        );
        assert_eq!(s.set_cookie, None, "request {i}: {s:?}");
    }
}

/// Sends `total` GETs over `clients` keep-alive clients at once, with
/// `headers`; returns how many answers came from each backend name.
async fn spread(
    url: &str,
    clients: usize,
    total: usize,
    headers: &'static [(&'static str, &'static str)],
) -> std::collections::HashMap<String, usize> {
    let per = total / clients;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut seen = std::collections::HashMap::<String, usize>::new();
            for _ in 0..per {
                let s = get(&c, &url, headers).await;
                assert_eq!(s.status, 200, "{s:?}");
                assert_eq!(s.body, s.backend);
                *seen.entry(s.body).or_default() += 1;
            }
            seen
        }));
    }
    let mut all = std::collections::HashMap::new();
    for t in tasks {
        for (k, v) in within("client task", t).await.unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_split_sends_ten_percent_and_the_header_forces_it() {
    const TOTAL: usize = 10_000;
    let stable = Backend::start("stable").await;
    let canary = Backend::start("canary").await;
    let p = Proxy::start(&format!(
        r#"{}
[[routes]]
name = "api"
[routes.split]
header = "x-canary"
[[routes.split.backends]]
upstream = "stable"
weight = 90
[[routes.split.backends]]
upstream = "canary"
weight = 10

[upstreams.stable]
servers = ["{}"]
[upstreams.canary]
servers = ["{}"]
"#,
        Preamble::default(),
        stable.addr,
        canary.addr
    ));
    let url = p.url("main", "/api");
    let seen = spread(&url, 10, TOTAL, &[]).await;
    let to_canary = seen.get("canary").copied().unwrap_or(0);
    let to_stable = seen.get("stable").copied().unwrap_or(0);
    assert_eq!(to_canary + to_stable, TOTAL, "{seen:?}");
    // 10% +- 2 (the standard deviation is 0.3%).
    assert!(
        (800..=1200).contains(&to_canary),
        "{to_canary} of {TOTAL} requests went to the canary"
    );
    let split = |u: &'static str| [("route", "api"), ("upstream", u)];
    assert_eq!(
        scrape_metric(&p, "switchyard_split_requests_total", &split("canary")).await,
        to_canary as f64
    );
    assert_eq!(
        scrape_metric(&p, "switchyard_split_requests_total", &split("stable")).await,
        to_stable as f64
    );

    // The header forces the canary.
    let forced = spread(&url, 4, 100, &[("x-canary", "canary")]).await;
    assert_eq!(forced.get("canary"), Some(&100), "{forced:?}");
    assert_eq!(canary.hits(), to_canary + 100);
    assert_eq!(stable.hits(), to_stable);
}

fn mirror_config(primary: &Backend, mirror: &str, mirror_keys: &str) -> String {
    format!(
        r#"{}
[[routes]]
name = "all"
upstream = "primary"
[routes.mirror]
upstream = "shadow"
{mirror_keys}

[upstreams.primary]
servers = ["{}"]
[upstreams.shadow]
servers = ["{mirror}"]
"#,
        Preamble::default(),
        primary.addr
    )
}

async fn mirrored(p: &Proxy, outcome: &str) -> f64 {
    scrape_metric(
        p,
        "switchyard_mirror_requests_total",
        &[("route", "all"), ("outcome", outcome)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_half_of_the_requests() {
    // More than the 1,000 of the issue: 50% +- 5 is then 4.5 standard
    // deviations instead of 3.2.
    const TOTAL: usize = 2_000;
    let primary = Backend::start("primary").await;
    let shadow = Backend::start("shadow").await;
    let p = Proxy::start(&mirror_config(
        &primary,
        &shadow.addr.to_string(),
        "percent = 50\nmax_in_flight = 10000\n",
    ));
    let url = p.url("main", "/m");
    let seen = spread(&url, 8, TOTAL, &[]).await;
    assert_eq!(seen.get("primary"), Some(&TOTAL), "{seen:?}");
    assert_eq!(primary.hits(), TOTAL);

    // Copies are fire-and-forget: wait for the last ones to land.
    eventually("every copy sent is answered", DEADLINE, async || {
        let sent = mirrored(&p, "sent").await;
        sent > 0.0 && mirrored(&p, "ok").await == sent && shadow.hits() as f64 == sent
    })
    .await;
    let copies = shadow.hits();
    assert!(
        (900..=1100).contains(&copies),
        "{copies} of {TOTAL} requests mirrored at 50%"
    );
    assert_eq!(mirrored(&p, "dropped").await, 0.0);
    assert_eq!(mirrored(&p, "failed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_mirror_never_delays_the_primary() {
    const TOTAL: usize = 200;
    let primary = Backend::start("primary").await;
    let hole = Blackhole::start().await;
    let p = Proxy::start(&mirror_config(
        &primary,
        &hole.addr.to_string(),
        "percent = 100\nmax_in_flight = 8\n",
    ));
    let url = p.url("main", "/m");
    let c = client();
    for i in 0..TOTAL {
        let s = get(&c, &url, &[]).await;
        assert_eq!(
            (s.status, s.body.as_str()),
            (200, "primary"),
            "request {i}: {s:?}"
        );
    }
    let (sent, dropped) = (mirrored(&p, "sent").await, mirrored(&p, "dropped").await);
    assert!(dropped > 0.0, "no copy dropped ({sent} sent)");
    assert!(sent >= 8.0, "{sent} copies sent");
    assert_eq!(sent + dropped, TOTAL as f64);
    eventually("the mirror holds the copies", DEADLINE, async || {
        hole.accepted.load(Ordering::SeqCst) >= 8
    })
    .await;
}

/// Blue-green: 20 clients send requests while a reload switches the route
/// from "blue" to "green". No request fails, and a client that saw green
/// never sees blue again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switch_by_reload_under_load() {
    const CLIENTS: usize = 20;
    const MAX_REQUESTS: usize = 5_000;
    let blue = Backend::start("blue").await;
    let green = Backend::start("green").await;
    let cfg = |to: &str| {
        format!(
            r#"{}
[[routes]]
name = "all"
upstream = "{to}"
[upstreams.blue]
servers = ["{}"]
[upstreams.green]
servers = ["{}"]
"#,
            Preamble::default(),
            blue.addr,
            green.addr
        )
    };
    let p = Proxy::start(&cfg("blue"));
    let url = p.url("main", "/");

    let stop = Arc::new(AtomicBool::new(false));
    // Requests completed, per client.
    let done: Vec<Arc<AtomicUsize>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for d in &done {
        let (stop, done, failures, url) = (stop.clone(), d.clone(), failures.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut saw_green = false;
            for _ in 0..MAX_REQUESTS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = match c.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.text().await {
                            Ok(b) if status == 200 && b == "green" => {
                                saw_green = true;
                                Ok(())
                            }
                            Ok(b) if status == 200 && b == "blue" && !saw_green => Ok(()),
                            Ok(b) => Err(format!(
                                "status {status}, body {b:?}, saw green before: {saw_green}"
                            )),
                            Err(e) => Err(format!("body error: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request error: {e:?}")),
                };
                if let Err(e) = outcome {
                    failures.lock().unwrap().push(e);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let total =
        |done: &[Arc<AtomicUsize>]| done.iter().map(|d| d.load(Ordering::SeqCst)).sum::<usize>();
    eventually("blue serves traffic", DEADLINE, async || blue.hits() >= 200).await;

    p.write_config(&cfg("green"));
    p.handle.reload().unwrap();
    // Once every client has completed two more requests, none is still in
    // a request that began before the switch.
    let at_switch: Vec<usize> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
    eventually(
        "every client sends after the switch",
        DEADLINE,
        async || {
            done.iter()
                .zip(&at_switch)
                .all(|(d, n)| d.load(Ordering::SeqCst) >= n + 2)
        },
    )
    .await;
    let blue_after = blue.hits();
    let green_after = green.hits();
    let more = total(&done);
    eventually("more traffic after the switch", DEADLINE, async || {
        total(&done) >= more + 200
    })
    .await;
    assert_eq!(blue.hits(), blue_after, "blue still receives traffic");
    assert!(green.hits() >= green_after + 200);
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within("client task", t).await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed; first: {:?}",
        failures.len(),
        total(&done),
        failures.first()
    );
}

/// A 90/10 split whose 90% side ("main") has one server, `dead`, where
/// nothing listens; the 10% side ("canary") is `alive`. `route_keys` are
/// tables of the route, `split_keys` keys of `[routes.split]`, `main_keys`
/// tables of upstream "main".
fn split_with_a_dead_side(
    dead: std::net::SocketAddr,
    alive: &Backend,
    route_keys: &str,
    split_keys: &str,
    main_keys: &str,
) -> String {
    format!(
        r#"{}
[[routes]]
name = "api"
{route_keys}
[routes.split]
{split_keys}
[[routes.split.backends]]
upstream = "main"
weight = 90
[[routes.split.backends]]
upstream = "canary"
weight = 10

[upstreams.main]
servers = ["{dead}"]
{main_keys}
[upstreams.canary]
servers = ["{}"]
"#,
        Preamble::default(),
        alive.addr
    )
}

/// Statuses of `n` sequential GETs, by status.
async fn statuses(url: &str, n: usize) -> std::collections::BTreeMap<u16, usize> {
    let c = client();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        *seen.entry(get(&c, url, &[]).await.status).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_moves_to_the_other_side_of_a_split() {
    let canary = Backend::start("canary").await;
    let dead = refused_addr();
    // No health check: nothing knows yet that "main" is down.
    let p = Proxy::start(&split_with_a_dead_side(
        dead,
        &canary,
        "[routes.retry]\nattempts = 2\non = [\"connect-failure\"]",
        "",
        "",
    ));
    let seen = statuses(&p.url("main", "/"), 50).await;
    assert_eq!(seen, [(200, 50)].into(), "{seen:?}");
    assert_eq!(canary.hits(), 50);
    // Every retry went to the canary (about 45 of the 50 requests first
    // chose the dead side).
    let moved = scrape_metric(
        &p,
        "switchyard_retries_total",
        &[("route", "api"), ("upstream", "canary")],
    )
    .await;
    assert!(moved >= 20.0, "{moved} retries moved to the canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_skips_a_side_whose_servers_are_all_down() {
    let canary = Backend::start("canary").await;
    let dead = refused_addr();
    let check = "[upstreams.main.health_check]\ntype = \"tcp\"\ninterval = \"100ms\"\n\
                 jitter = \"10ms\"\ntimeout = \"1s\"\nunhealthy_threshold = 1";
    // Off: panic mode keeps sending to the dead server.
    let p = Proxy::start(&split_with_a_dead_side(
        dead,
        &canary,
        "",
        "skip_unavailable = false",
        check,
    ));
    let url = p.url("main", "/");
    eventually(
        "the dead server is marked unhealthy",
        DEADLINE,
        async || {
            let (_, body) = admin_get(p.admin(), "/upstreams").await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["upstreams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == "main" && u["servers"][0]["health"] == "unhealthy")
        },
    )
    .await;
    let seen = statuses(&url, 50).await;
    assert!(seen.get(&502).copied().unwrap_or(0) > 0, "{seen:?}");

    // On (the default): every request goes to the side that can answer.
    p.write_config(&split_with_a_dead_side(dead, &canary, "", "", check));
    p.handle.reload().unwrap();
    let seen = statuses(&url, 100).await;
    assert_eq!(seen, [(200, 100)].into(), "{seen:?}");
}
