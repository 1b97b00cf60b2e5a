//! Hot reload end to end: under load, rejected files, the three triggers
//! (admin API, file watch, SIGHUP), live state across reloads, listener
//! changes, and in-flight requests keeping the snapshot they started with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Backend, Binary, Preamble, Proxy, admin_get, client, eventually, metric_in, scrape_metric,
    scrape_metric_at, servers, simple_config, wait_admin_ready,
};
use sy_server::ReloadError;

const DEADLINE: Duration = Duration::from_secs(20);

/// Admin, runtime and the `main` listener, all on port 0.
fn head(watch: bool) -> String {
    Preamble {
        watch_config: watch,
        ..Preamble::default()
    }
    .to_string()
}

/// One route `all` to upstream `u` over `backends`.
fn route_all(backends: &[&Backend]) -> String {
    common::route_all(&servers(backends), "", "")
}

/// GET `url`: the status and the answering backend (`x-backend`).
async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let backend = r
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let _ = r.bytes().await.unwrap();
    (status, backend)
}

async fn status_json(admin: SocketAddr) -> serde_json::Value {
    let (status, body) = admin_get(admin, "/status").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

async fn reloads_json(admin: SocketAddr) -> Vec<serde_json::Value> {
    let (status, body) = admin_get(admin, "/reloads").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["reloads"]
        .as_array()
        .expect("reloads is an array")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    const CLIENTS: usize = 50;
    const RELOADS: u64 = 100;
    // Per client; a bound for the loop, far above what the test needs.
    const MAX_REQUESTS: usize = 20_000;

    let a1 = Backend::start("a1").await;
    let a2 = Backend::start("a2").await;
    let b1 = Backend::start("b1").await;
    let b2 = Backend::start("b2").await;
    let cfg_a = simple_config(&[&a1, &a2], "");
    let cfg_b = simple_config(&[&b1, &b2], "balancer = \"weighted_round_robin\"");
    let proxy = Proxy::start(&cfg_a);
    let url = proxy.url("main", "/load");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, ok, failed, first_failure, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            first_failure.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // One client per task: its own keep-alive connection.
            let c = client();
            for _ in 0..MAX_REQUESTS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = match c.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.text().await {
                            Ok(body)
                                if status == 200
                                    && ["a1", "a2", "b1", "b2"].contains(&body.as_str()) =>
                            {
                                Ok(())
                            }
                            Ok(body) => Err(format!("status {status}, body {body:?}")),
                            Err(e) => Err(format!("body error: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request error: {e:?}")),
                };
                match outcome {
                    Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        first_failure.lock().unwrap().get_or_insert(e);
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }

    // Traffic is flowing before the first reload.
    eventually("traffic before the reloads", DEADLINE, async || {
        ok.load(Ordering::SeqCst) >= 100
    })
    .await;
    for k in 1..=RELOADS {
        proxy.write_config(if k % 2 == 1 { &cfg_b } else { &cfg_a });
        let v = proxy
            .handle
            .reload()
            .unwrap_or_else(|e| panic!("reload {k} failed: {e}"));
        assert_eq!(v, k + 1);
        // Requests overlap every reload.
        let before = ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst);
        eventually("traffic after a reload", DEADLINE, async || {
            ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) >= before + 25
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(DEADLINE, t)
            .await
            .expect("client task finished")
            .unwrap();
    }

    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during reloads; first: {:?}",
        ok + failed,
        first_failure.lock().unwrap()
    );
    assert!(
        ok >= 100 + 25 * RELOADS as usize,
        "only {ok} requests answered"
    );
    assert!(b1.hits() + b2.hits() > 0, "configuration B never served");
    assert_eq!(
        scrape_metric(&proxy, "switchyard_config_version", &[]).await,
        (RELOADS + 1) as f64
    );
    assert_eq!(
        scrape_metric(&proxy, "switchyard_reloads_total", &[("result", "ok")]).await,
        RELOADS as f64
    );

    // The last reload (an even one) installed configuration A.
    let b_before = b1.hits() + b2.hits();
    let c = client();
    for _ in 0..20 {
        let (status, backend) = get(&c, &url).await;
        assert_eq!(status, 200);
        assert!(
            backend == "a1" || backend == "a2",
            "answered by {backend} after the last reload"
        );
    }
    assert_eq!(
        b1.hits() + b2.hits(),
        b_before,
        "configuration B still receives traffic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_is_rejected_and_old_config_keeps_serving() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&simple_config(&[&a], ""));
    let c = client();
    let url = proxy.url("main", "/");
    assert_eq!(get(&c, &url).await, (200, "a".to_string()));
    let rejected_before = scrape_metric(
        &proxy,
        "switchyard_reloads_total",
        &[("result", "rejected")],
    )
    .await;

    // Two mistakes (lines 15 and 16), and a route to `b` that must not be
    // applied.
    let bad = format!(
        r#"{}
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = [{{ address = "{}", weight = 0 }}]
balancr = "random"
"#,
        head(false),
        b.addr
    );
    proxy.write_config(&bad);
    let err = proxy
        .handle
        .reload()
        .expect_err("a broken file must be rejected");
    let ReloadError::Invalid { version, errors } = &err else {
        panic!("expected an invalid-config error, got {err}");
    };
    // One line per diagnostic, hint included (they go into log records).
    assert!(errors.iter().all(|e| !e.contains('\n')), "{errors:?}");
    let errors = errors.join("\n");
    assert_eq!(*version, 1);
    let file = proxy.config_path.display().to_string();
    assert!(
        errors.contains(&format!("{file}:15:")) && errors.contains("upstreams.u.servers[0].weight"),
        "weight error missing from:\n{errors}"
    );
    assert!(
        errors.contains(&format!("{file}:16:")) && errors.contains("upstreams.u.balancr"),
        "unknown key error missing from:\n{errors}"
    );
    assert!(
        errors.contains("did you mean `balancer`"),
        "no hint in:\n{errors}"
    );

    // The old configuration keeps answering.
    for _ in 0..5 {
        assert_eq!(get(&c, &url).await, (200, "a".to_string()));
    }
    assert_eq!(b.hits(), 0);
    assert_eq!(
        scrape_metric(
            &proxy,
            "switchyard_reloads_total",
            &[("result", "rejected")]
        )
        .await,
        rejected_before + 1.0
    );
    assert_eq!(
        scrape_metric(&proxy, "switchyard_reloads_total", &[("result", "ok")]).await,
        0.0
    );
    assert_eq!(
        scrape_metric(&proxy, "switchyard_config_version", &[]).await,
        1.0
    );
    assert_eq!(status_json(proxy.admin()).await["config_version"], 1);

    let reloads = reloads_json(proxy.admin()).await;
    let last = reloads.last().expect("the rejected reload is listed");
    assert_eq!(last["ok"], false);
    assert_eq!(last["trigger"], "api");
    assert_eq!(last["version"], 1);
    let message = last["message"].as_str().unwrap();
    assert!(
        message.contains("upstreams.u.servers[0].weight"),
        "message: {message}"
    );

    // Fixing the file makes the next reload succeed.
    proxy.write_config(&format!("{}{}", head(false), route_all(&[&b])));
    assert_eq!(proxy.handle.reload().unwrap(), 2);
    assert_eq!(get(&c, &url).await, (200, "b".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_on_the_admin_listener() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&simple_config(&[&a], ""));
    let c = client();
    let url = proxy.url("main", "/");
    let reload_url = format!("http://{}/reload", proxy.admin());
    assert_eq!(get(&c, &url).await.1, "a");

    proxy.write_config(&simple_config(&[&b], ""));
    let r = c.post(&reload_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["config_version"], 2);
    assert_eq!(get(&c, &url).await, (200, "b".to_string()));

    // A broken file: 400 with the errors, and `b` keeps answering.
    proxy.write_config(&simple_config(&[&a], "connect_timeout = \"5\""));
    let r = c.post(&reload_url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["ok"], false);
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("upstreams.u.connect_timeout"),
        "error: {error}"
    );
    assert!(error.contains("(got \"5\")"), "error: {error}");
    assert_eq!(get(&c, &url).await, (200, "b".to_string()));
    assert_eq!(status_json(proxy.admin()).await["config_version"], 2);

    let reloads = reloads_json(proxy.admin()).await;
    let triggers: Vec<(&str, bool)> = reloads
        .iter()
        .map(|r| (r["trigger"].as_str().unwrap(), r["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(triggers, [("admin", true), ("admin", false)]);

    // GET is not how one reloads.
    assert_eq!(c.get(&reload_url).send().await.unwrap().status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_is_picked_up() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&format!("{}{}", head(true), route_all(&[&a])));
    wait_admin_ready(proxy.admin()).await;
    let c = client();
    assert_eq!(
        get(&c, &proxy.url("main", "/new")).await,
        (200, "a".to_string())
    );

    // A new, more specific route to `b`.
    proxy.write_config(&format!(
        r#"{}{}
[[routes]]
name = "new"
upstream = "n"
[routes.match]
path = "/new"
[upstreams.n]
servers = ["{}"]
"#,
        head(true),
        route_all(&[&a]),
        b.addr
    ));
    let new_url = proxy.url("main", "/new");
    eventually("the new route answers", DEADLINE, async || {
        get(&c, &new_url).await == (200, "b".to_string())
    })
    .await;
    assert_eq!(
        get(&c, &proxy.url("main", "/old")).await,
        (200, "a".to_string())
    );
    let reloads = reloads_json(proxy.admin()).await;
    assert!(
        reloads
            .iter()
            .any(|r| r["trigger"] == "file" && r["ok"] == true),
        "no file-triggered reload in {reloads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_real_binary() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let bin = Binary::start(&format!("{}{}", head(false), route_all(&[&a])), 1);
    let admin = bin.admin.unwrap();
    wait_admin_ready(admin).await;
    let c = client();
    let url = format!("http://{}/", bin.listener_addr("main"));
    assert_eq!(get(&c, &url).await, (200, "a".to_string()));

    // watch_config is off: the new file only counts after SIGHUP.
    std::fs::write(
        bin.config_file(),
        format!("{}{}", head(false), route_all(&[&b])),
    )
    .unwrap();
    assert_eq!(get(&c, &url).await, (200, "a".to_string()));
    bin.signal("HUP");
    eventually("SIGHUP applied the new file", DEADLINE, async || {
        get(&c, &url).await == (200, "b".to_string())
    })
    .await;
    assert_eq!(status_json(admin).await["config_version"], 2);
    let reloads = reloads_json(admin).await;
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert_eq!(reloads[0]["trigger"], "signal");
    assert_eq!(reloads[0]["ok"], true);
    assert_eq!(
        scrape_metric_at(admin, "switchyard_config_version", &[]).await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_counters_survive_reloads() {
    let a = Backend::start("a").await;
    let server = a.addr.to_string();
    let opened = [("upstream", "u"), ("server", server.as_str())];
    let all_2xx = [("route", "all"), ("class", "2xx")];
    let proxy = Proxy::start(&format!("{}{}", head(false), route_all(&[&a])));
    let c = client();
    let url = proxy.url("main", "/");
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await, (200, "a".to_string()));
    }
    let text = reqwest::get(format!("http://{}/metrics", proxy.admin()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let opened_before = metric_in(
        &text,
        "switchyard_upstream_connections_opened_total",
        &opened,
    );
    assert!(
        opened_before >= 1.0,
        "no upstream connection counted:\n{text}"
    );
    assert_eq!(
        metric_in(&text, "switchyard_requests_total", &all_2xx),
        10.0
    );

    // Ten reloads that keep upstream `u` as it is (only a new route and a
    // route timeout change), each followed by more requests.
    for k in 0..10u64 {
        proxy.write_config(&format!(
            r#"{}
[[routes]]
name = "all"
upstream = "u"
timeout = "{}s"
[[routes]]
name = "ping"
respond = {{ status = 200, body = "pong" }}
[routes.match]
path_exact = "/ping"
[upstreams.u]
servers = ["{server}"]
"#,
            head(false),
            30 + k
        ));
        assert_eq!(proxy.handle.reload().unwrap(), k + 2);
        for _ in 0..5 {
            assert_eq!(get(&c, &url).await, (200, "a".to_string()));
        }
    }
    let opened_after = scrape_metric(
        &proxy,
        "switchyard_upstream_connections_opened_total",
        &opened,
    )
    .await;
    // New connections per snapshot would open at least ten more.
    assert!(
        opened_after <= opened_before + 1.0,
        "upstream connections opened went from {opened_before} to {opened_after} over 10 reloads"
    );
    assert_eq!(
        scrape_metric(&proxy, "switchyard_requests_total", &all_2xx).await,
        60.0
    );
    assert_eq!(
        scrape_metric(&proxy, "switchyard_upstream_requests_total", &opened).await,
        60.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_added_and_removed_by_reload() {
    let a = Backend::start("a").await;
    let proxy = Proxy::start(&format!("{}{}", head(false), route_all(&[&a])));
    let main = proxy.addr("main");
    let c = client();
    assert!(proxy.handle.listener_addr("extra").is_none());

    // Add `extra` on another port-0 listener.
    let with_extra = format!(
        "{}\n[listeners.extra]\naddress = \"127.0.0.1:0\"\n{}",
        head(false),
        route_all(&[&a])
    );
    proxy.write_config(&with_extra);
    assert_eq!(proxy.handle.reload().unwrap(), 2);
    let extra = proxy
        .handle
        .listener_addr("extra")
        .expect("the new listener is bound");
    assert_ne!(extra, main);
    assert_eq!(proxy.addr("main"), main, "main kept its socket");
    assert_eq!(
        get(&c, &format!("http://{extra}/")).await,
        (200, "a".to_string())
    );
    assert_eq!(
        get(&c, &format!("http://{main}/")).await,
        (200, "a".to_string())
    );
    let status = status_json(proxy.admin()).await;
    assert_eq!(status["listeners"].as_array().unwrap().len(), 2, "{status}");

    // Remove it again: it stops accepting, main keeps serving.
    proxy.write_config(&format!("{}{}", head(false), route_all(&[&a])));
    assert_eq!(proxy.handle.reload().unwrap(), 3);
    assert!(proxy.handle.listener_addr("extra").is_none());
    eventually(
        "the removed listener refuses connections",
        DEADLINE,
        async || tokio::net::TcpStream::connect(extra).await.is_err(),
    )
    .await;
    assert_eq!(
        get(&client(), &format!("http://{main}/")).await,
        (200, "a".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_an_unbindable_listener_is_rejected() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&format!("{}{}", head(false), route_all(&[&a])));
    let c = client();
    let url = proxy.url("main", "/");
    // The test holds this port (without SO_REUSEPORT).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap();

    proxy.write_config(&format!(
        "{}\n[listeners.busy]\naddress = \"{busy}\"\n{}",
        head(false),
        route_all(&[&b])
    ));
    let err = proxy
        .handle
        .reload()
        .expect_err("binding a port in use must fail");
    match &err {
        ReloadError::Bind { listener, addr, .. } => {
            assert_eq!(listener, "busy");
            assert_eq!(*addr, busy);
        }
        other => panic!("expected a bind error, got {other}"),
    }
    assert!(err.to_string().contains(&busy.to_string()), "{err}");

    // Nothing of the rejected file was applied.
    assert_eq!(get(&c, &url).await, (200, "a".to_string()));
    assert_eq!(b.hits(), 0);
    assert!(proxy.handle.listener_addr("busy").is_none());
    assert_eq!(
        scrape_metric(&proxy, "switchyard_config_version", &[]).await,
        1.0
    );
    assert_eq!(
        scrape_metric(
            &proxy,
            "switchyard_reloads_total",
            &[("result", "rejected")]
        )
        .await,
        1.0
    );
    let reloads = reloads_json(proxy.admin()).await;
    assert_eq!(reloads.last().unwrap()["ok"], false);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_on_their_snapshot() {
    let (old, gate) = Backend::start_gated("old").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&format!("{}{}", head(false), route_all(&[&old])));
    let url = proxy.url("main", "/slow");
    let slow = tokio::spawn({
        let url = url.clone();
        async move {
            let r = client().get(&url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    });
    eventually(
        "the slow request reached the old backend",
        DEADLINE,
        async || old.hits() == 1,
    )
    .await;

    proxy.write_config(&format!("{}{}", head(false), route_all(&[&new])));
    assert_eq!(proxy.handle.reload().unwrap(), 2);
    // New requests go to the new backend while the old one still holds one.
    let c = client();
    assert_eq!(get(&c, &url).await, (200, "new".to_string()));
    assert!(!slow.is_finished());

    gate.send(true).unwrap();
    let (status, body) = tokio::time::timeout(DEADLINE, slow)
        .await
        .expect("slow request finished")
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "old"));
    assert_eq!(old.hits(), 1);
    assert_eq!(get(&c, &url).await, (200, "new".to_string()));
}
