//! End to end: resilience under failure. A backend killed under load costs
//! no request and comes back (health checks, outlier ejection, retries,
//! slow start); panic mode; circuit breakers; the retry budget; hedging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// Deadline for a state change (health checks run every 100ms, ejections
/// last about a second).
const CHANGE: Duration = Duration::from_secs(15);

/// A backend answering every request `503` (with `x-backend`).
async fn unavailable(name: &str) -> Backend {
    let n = name.to_string();
    Backend::start_with(
        name,
        Arc::new(move |_req: &Request<Incoming>| {
            Some(
                Response::builder()
                    .status(503)
                    .header("x-backend", n.as_str())
                    .body(Full::new(Bytes::from_static(b"backend unavailable\n")))
                    .unwrap(),
            )
        }),
    )
    .await
}

/// One route `all` to upstream `u` over `servers`, with `route_extra`
/// (tables of the route) and `upstream_extra` (keys and tables of `u`).
fn config(servers: &str, route_extra: &str, upstream_extra: &str) -> String {
    format!(
        "{}{}",
        Preamble::default(),
        route_all(servers, route_extra, upstream_extra)
    )
}

fn addrs(list: &[SocketAddr]) -> String {
    list.iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn upstreams(p: &Proxy) -> serde_json::Value {
    let (status, body) = admin_get(p.admin(), "/upstreams").await;
    assert_eq!(status, 200, "GET /upstreams: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `/upstreams` entry of server `addr` in upstream "u".
fn server_entry(v: &serde_json::Value, addr: SocketAddr) -> serde_json::Value {
    let u = v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "u")
        .unwrap_or_else(|| panic!("no upstream u in {v}"));
    u["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("no server {addr} in {v}"))
        .clone()
}

/// What a client saw of one response.
#[derive(Debug)]
struct Seen {
    status: u16,
    backend: Option<String>,
    error: Option<String>,
    breaker: Option<String>,
    body: String,
}

async fn get(c: &reqwest::Client, url: &str) -> Seen {
    let r = within("GET through the proxy", c.get(url).send())
        .await
        .unwrap();
    let h = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, backend, error, breaker) = (
        r.status().as_u16(),
        h("x-backend"),
        h("x-switchyard-error"),
        h("x-switchyard-breaker"),
    );
    let body = within("response body", r.text()).await.unwrap();
    Seen {
        status,
        backend,
        error,
        breaker,
        body,
    }
}

/// Issue 3: one of three backends dies while 20 clients send GETs. Retries
/// hide the failure, the health check marks the server down, and when a
/// server comes back on the same address it is marked healthy, ramps up
/// (slow start) and gets traffic again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_costs_no_request_and_recovers_on_the_same_port() {
    const CLIENTS: usize = 20;
    // Per client: a bound for the loop, far above what the test needs.
    const MAX_REQUESTS: usize = 5_000;

    let a = KillableBackend::start("a").await;
    let b = KillableBackend::start("b").await;
    let c = KillableBackend::start("c").await;
    let c_addr = c.addr;
    // A long slow-start window keeps the ramp visible in /upstreams for
    // the whole test, whatever the scheduling delays.
    let p = Proxy::start(&config(
        &addrs(&[a.addr, b.addr, c.addr]),
        "[routes.retry]\nattempts = 3\nbackoff_base = \"1ms\"\nbackoff_max = \"10ms\"\n",
        r#"slow_start = "30s"
[upstreams.u.health_check]
type = "tcp"
interval = "100ms"
jitter = "20ms"
timeout = "1s"
unhealthy_threshold = 2
healthy_threshold = 2
[upstreams.u.outlier]
consecutive_gateway_failures = 1
base_ejection_time = "1s"
max_ejection_time = "2s"
"#,
    ));
    wait_admin_ready(p.admin()).await;
    let url = p.url("main", "/load");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, ok, failures, url) = (stop.clone(), ok.clone(), failures.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            for _ in 0..MAX_REQUESTS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = match c.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let err = r
                            .headers()
                            .get("x-switchyard-error")
                            .map(|v| format!("{v:?}"));
                        match r.text().await {
                            Ok(body)
                                if status == 200 && ["a", "b", "c", "c2"].contains(&&*body) =>
                            {
                                Ok(())
                            }
                            Ok(body) => Err(format!("status {status} ({err:?}), body {body:?}")),
                            Err(e) => Err(format!("body error: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request error: {e:?}")),
                };
                match outcome {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }

    eventually("traffic reaches all three", CHANGE, async || {
        a.hits() > 0 && b.hits() > 0 && c.hits() > 0 && ok.load(Ordering::SeqCst) >= 200
    })
    .await;

    // Kill c: its listener and its open connections close.
    c.kill().await;
    let killed_at = ok.load(Ordering::SeqCst);
    let label = c_addr.to_string();
    let transitions = |o: &'static str| {
        [
            ("upstream", "u"),
            ("server", label.as_str()),
            ("outcome", o),
        ]
    };
    // The checker sets the state, then the gauge, then counts the
    // transition: once counted, all three show it.
    eventually("the health check marks c unhealthy", CHANGE, async || {
        scrape_metric(
            &p,
            "switchyard_health_transitions_total",
            &transitions("unhealthy"),
        )
        .await
            >= 1.0
    })
    .await;
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_upstream_server_healthy",
            &[("upstream", "u"), ("server", label.as_str())]
        )
        .await,
        0.0
    );
    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, c_addr)["health"], "unhealthy", "{v}");
    // Traffic goes on without c.
    eventually("traffic goes on while c is down", CHANGE, async || {
        ok.load(Ordering::SeqCst) >= killed_at + 200
    })
    .await;

    // A new server on the same address.
    let c2 = KillableBackend::start_on("c2", c_addr).await;
    assert_eq!(c2.addr, c_addr);
    let mut ramp = None;
    eventually("c healthy and not ejected again", CHANGE, async || {
        let s = server_entry(&upstreams(&p).await, c_addr);
        if s["health"] != "healthy" {
            return false;
        }
        ramp.get_or_insert_with(|| s["slow_start_factor"].as_f64().unwrap());
        s["ejected"] == false
    })
    .await;
    // Right after the transition the server ramps up (the window is 30s).
    let ramp = ramp.unwrap();
    assert!(
        (0.0..1.0).contains(&ramp),
        "slow_start_factor {ramp} right after recovery"
    );
    eventually("the healthy transition is counted", CHANGE, async || {
        scrape_metric(
            &p,
            "switchyard_health_transitions_total",
            &transitions("healthy"),
        )
        .await
            == 1.0
    })
    .await;
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_health_transitions_total",
            &transitions("unhealthy")
        )
        .await,
        1.0
    );
    eventually(
        "the recovered server receives traffic",
        CHANGE,
        async || c2.hits() >= 10,
    )
    .await;

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within("client task finishes", t).await.unwrap();
    }
    let failures = failures.lock().unwrap();
    let ok = ok.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed; first: {:?}",
        failures.len(),
        ok + failures.len(),
        failures.first()
    );
    assert!(ok > 0);
}

async fn panic_config(panic_threshold: u32) -> (Proxy, [Backend; 3]) {
    let bs = [
        unavailable("a").await,
        unavailable("b").await,
        unavailable("c").await,
    ];
    let p = Proxy::start(&config(
        &servers(&[&bs[0], &bs[1], &bs[2]]),
        "",
        &format!(
            "panic_threshold = {panic_threshold}\n[upstreams.u.outlier]\nconsecutive_5xx = 3\n\
             max_ejected_percent = 100\nbase_ejection_time = \"30s\"\n"
        ),
    ));
    wait_admin_ready(p.admin()).await;
    (p, bs)
}

/// Every server answers 503: all get ejected, the upstream panics and
/// balances over all of them, so clients see the servers' own 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_failing_panic_mode_keeps_sending_them_traffic() {
    let (p, bs) = panic_config(50).await;
    let c = client();
    let url = p.url("main", "/");
    for i in 0..30 {
        let s = get(&c, &url).await;
        assert_eq!(s.status, 503, "request {i}: {s:?}");
        assert_eq!(
            s.error, None,
            "request {i}: Switchyard answered itself: {s:?}"
        );
        assert!(s.backend.is_some(), "request {i}: {s:?}");
        assert_eq!(s.body, "backend unavailable\n");
    }
    let ejected = scrape_metric(
        &p,
        "switchyard_outlier_ejections_total",
        &[("upstream", "u"), ("outcome", "ejected")],
    )
    .await;
    assert!(ejected >= 2.0, "ejections: {ejected}");
    let panics = scrape_metric(&p, "switchyard_upstream_panic_total", &[("upstream", "u")]).await;
    assert!(panics > 0.0, "panic picks: {panics}");
    let v = upstreams(&p).await;
    assert_eq!(v["upstreams"][0]["panic"], true, "{v}");
    // In panic, the ejected servers still get requests.
    assert!(
        bs.iter().all(|b| b.hits() >= 3),
        "hits: {:?}",
        bs.each_ref().map(Backend::hits)
    );
}

/// Same, with panic mode off: once every server is ejected, Switchyard
/// answers 503 no-healthy-server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_ejected_without_panic_mode_is_no_healthy_server() {
    let (p, bs) = panic_config(0).await;
    let c = client();
    let url = p.url("main", "/");
    let mut from_backends = 0;
    let mut own = 0;
    for i in 0..30 {
        let s = get(&c, &url).await;
        assert_eq!(s.status, 503, "request {i}: {s:?}");
        match s.error.as_deref() {
            None => {
                assert_eq!(
                    own, 0,
                    "request {i}: a server answered after all were ejected: {s:?}"
                );
                assert!(s.backend.is_some(), "{s:?}");
                from_backends += 1;
            }
            Some("no-healthy-server") => own += 1,
            Some(e) => panic!("request {i}: unexpected error {e}: {s:?}"),
        }
    }
    // Three 503s in a row eject a server: nine requests eject all three.
    assert!(
        (9..30).contains(&from_backends),
        "{from_backends} answered by servers"
    );
    assert_eq!(bs.iter().map(Backend::hits).sum::<usize>(), from_backends);
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_outlier_ejections_total",
            &[("upstream", "u"), ("outcome", "ejected")]
        )
        .await,
        3.0
    );
    assert_eq!(
        scrape_metric(&p, "switchyard_upstream_panic_total", &[("upstream", "u")]).await,
        0.0
    );
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_proxy_errors_total",
            &[("route", "all"), ("stage", "no-healthy-server")]
        )
        .await,
        own as f64
    );
}

/// Starts two GETs that the gated backend holds, and waits until both
/// reached it.
async fn hold_two(url: &str, backend: &Backend) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    let held: Vec<_> = (0..2)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let r = client().get(&url).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.text().await.unwrap())
            })
        })
        .collect();
    eventually("both requests reach the backend", CHANGE, async || {
        backend.hits() == 2
    })
    .await;
    held
}

async fn trips(p: &Proxy, breaker: &str) -> f64 {
    scrape_metric(
        p,
        "switchyard_circuit_breaker_trips_total",
        &[("upstream", "u"), ("outcome", breaker)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_breaker_fails_the_third_request_fast() {
    let (slow, gate) = Backend::start_gated("slow").await;
    let p = Proxy::start(&simple_config(
        &[&slow],
        "[upstreams.u.circuit_breaker]\nmax_requests = 2\n",
    ));
    let url = p.url("main", "/");
    let held = hold_two(&url, &slow).await;

    let s = get(&client(), &url).await;
    assert_eq!(s.status, 503, "{s:?}");
    assert_eq!(s.error.as_deref(), Some("circuit-open"), "{s:?}");
    assert_eq!(s.breaker.as_deref(), Some("max_requests"), "{s:?}");
    assert_eq!(slow.hits(), 2, "the refused request reached the backend");
    assert_eq!(trips(&p, "max_requests").await, 1.0);
    let v = upstreams(&p).await;
    assert_eq!(v["upstreams"][0]["requests_in_flight"], 2, "{v}");
    assert_eq!(
        v["upstreams"][0]["circuit_breaker"]["max_requests"], 2,
        "{v}"
    );

    gate.send(true).unwrap();
    for h in held {
        assert_eq!(
            within("held request", h).await.unwrap(),
            (200, "slow".to_string())
        );
    }
    // The breaker closes again with the requests.
    let s = get(&client(), &url).await;
    assert_eq!((s.status, s.body.as_str()), (200, "slow"), "{s:?}");
    assert_eq!(trips(&p, "max_requests").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_breaker_fails_a_request_needing_a_new_connection() {
    let (slow, gate) = Backend::start_gated("slow").await;
    // One worker: one idle pool, so a released connection serves the next
    // request.
    let p = Proxy::start(&format!(
        r#"{}
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = ["{}"]
[upstreams.u.circuit_breaker]
max_connections = 2
"#,
        Preamble {
            workers: 1,
            ..Preamble::default()
        },
        slow.addr
    ));
    let url = p.url("main", "/");
    let held = hold_two(&url, &slow).await;

    let s = get(&client(), &url).await;
    assert_eq!(s.status, 503, "{s:?}");
    assert_eq!(s.error.as_deref(), Some("circuit-open"), "{s:?}");
    assert_eq!(s.breaker.as_deref(), Some("max_connections"), "{s:?}");
    assert_eq!(slow.hits(), 2);
    assert_eq!(trips(&p, "max_connections").await, 1.0);
    assert_eq!(trips(&p, "max_requests").await, 0.0);

    gate.send(true).unwrap();
    for h in held {
        assert_eq!(
            within("held request", h).await.unwrap(),
            (200, "slow".to_string())
        );
    }
    // Once a held connection is back in the pool it serves new requests.
    let c = client();
    eventually("a request reuses a pooled connection", CHANGE, async || {
        get(&c, &url).await.status == 200
    })
    .await;
    let v = upstreams(&p).await;
    assert!(
        v["upstreams"][0]["connections"].as_u64().unwrap() <= 2,
        "{v}"
    );
}

/// Sends `n` sequential GETs; every answer must be the backends' 503.
async fn send_failing(p: &Proxy, n: usize) {
    let c = client();
    let url = p.url("main", "/");
    for i in 0..n {
        let s = get(&c, &url).await;
        assert_eq!(
            (s.status, s.error.as_deref()),
            (503, None),
            "request {i}: {s:?}"
        );
    }
}

fn budget_config(bs: &[Backend; 3], ratio: &str, min_per_second: u32) -> String {
    config(
        &servers(&[&bs[0], &bs[1], &bs[2]]),
        "[routes.retry]\nattempts = 5\non = [\"gateway-error\"]\nbackoff_base = \"1ms\"\n\
         backoff_max = \"2ms\"\n",
        &format!(
            "[upstreams.u.retry_budget]\nratio = {ratio}\nmin_retries_per_second = \
             {min_per_second}\nwindow = \"10s\"\n"
        ),
    )
}

async fn retries(p: &Proxy) -> f64 {
    scrape_metric(
        p,
        "switchyard_retries_total",
        &[
            ("route", "all"),
            ("upstream", "u"),
            ("reason", "gateway-error"),
        ],
    )
    .await
}

/// With every server failing, a 10% budget caps the retries at 10% of the
/// requests instead of four retries per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries_when_everything_fails() {
    const REQUESTS: usize = 200;
    let bs = [
        unavailable("a").await,
        unavailable("b").await,
        unavailable("c").await,
    ];
    let p = Proxy::start(&budget_config(&bs, "0.1", 0));
    send_failing(&p, REQUESTS).await;

    let hits: usize = bs.iter().map(Backend::hits).sum();
    let retried = retries(&p).await;
    assert_eq!(
        hits as f64,
        REQUESTS as f64 + retried,
        "backend hits vs retries_total"
    );
    // floor(0.1 * requests in the window) + min_retries_per_second * 10s.
    assert!(
        (1.0..=20.0).contains(&retried),
        "{retried} retries for {REQUESTS} requests under a 10% budget"
    );
    let exhausted = scrape_metric(
        &p,
        "switchyard_retry_budget_exhausted_total",
        &[("upstream", "u")],
    )
    .await;
    assert!(exhausted > 0.0, "budget never exhausted");
}

/// The same failing upstream with a budget that does not bind: every
/// request is tried five times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_binding_budget_every_attempt_is_made() {
    const REQUESTS: usize = 20;
    let bs = [
        unavailable("a").await,
        unavailable("b").await,
        unavailable("c").await,
    ];
    let p = Proxy::start(&budget_config(&bs, "1.0", 1000));
    send_failing(&p, REQUESTS).await;
    let hits: usize = bs.iter().map(Backend::hits).sum();
    assert_eq!(hits, 5 * REQUESTS);
    assert_eq!(retries(&p).await, (4 * REQUESTS) as f64);
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_retry_budget_exhausted_total",
            &[("upstream", "u")]
        )
        .await,
        0.0
    );
}

/// One server answers after 2s, the other at once: with a 50ms hedge every
/// request is answered by the fast one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedged_requests_are_answered_by_the_fast_server() {
    let slow = Backend::start_delayed("slow", Duration::from_secs(2)).await;
    let fast = Backend::start("fast").await;
    let p = Proxy::start(&config(
        &servers(&[&slow, &fast]),
        "[routes.hedge]\ndelay = \"50ms\"\n",
        "",
    ));
    let c = client();
    let url = p.url("main", "/");
    for i in 0..20 {
        let s = get(&c, &url).await;
        assert_eq!(
            (s.status, s.body.as_str()),
            (200, "fast"),
            "request {i}: {s:?}"
        );
    }
    assert!(slow.hits() >= 1, "the slow server was never tried");
    let hedges = |o: &'static str| [("route", "all"), ("outcome", o)];
    let sent = scrape_metric(&p, "switchyard_hedges_total", &hedges("sent")).await;
    let won = scrape_metric(&p, "switchyard_hedges_total", &hedges("won")).await;
    assert!(sent >= 1.0, "hedges sent: {sent}");
    assert!(won >= 1.0 && won <= sent, "hedges won: {won} of {sent}");
}
