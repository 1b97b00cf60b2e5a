//! End to end: how each balancer spreads real requests over three real
//! backends through the proxy (counted by the `x-backend` response header).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

/// One listener, one catch-all route to upstream "u"; `servers` is the TOML
/// array body, `extra` more keys of `[upstreams.u]` (and sub-tables after).
fn config(workers: usize, servers: &str, extra: &str, listener_extra: &str) -> String {
    format!(
        r#"{}{listener_extra}
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = [{servers}]
{extra}
"#,
        Preamble {
            workers,
            ..Preamble::default()
        }
    )
}

async fn start3() -> (Backend, Backend, Backend) {
    (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    )
}

async fn backend_of(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200, "request failed: {:?}", resp.headers());
    resp.headers()
        .get("x-backend")
        .expect("response has x-backend")
        .to_str()
        .unwrap()
        .to_string()
}

async fn get_backend(c: &reqwest::Client, url: &str) -> String {
    backend_of(c.get(url).send().await.unwrap()).await
}

/// `n` sequential requests; the backend of each, in order.
async fn sequence(c: &reqwest::Client, url: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_backend(c, url).await);
    }
    out
}

fn tally(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// `tasks` clients (separate connections) sending `each` requests apiece,
/// concurrently; the total per backend.
async fn concurrent_tally(url: &str, tasks: usize, each: usize) -> HashMap<String, usize> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let url = url.to_string();
        handles.push(tokio::spawn(async move {
            let c = client();
            sequence(&c, &url, each).await
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    tally(&all)
}

fn count(t: &HashMap<String, usize>, name: &str) -> usize {
    t.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_rotates_through_every_server_in_turn() {
    let (a, b, c) = start3().await;
    let proxy = Proxy::start(&config(
        1,
        &servers(&[&a, &b, &c]),
        r#"balancer = "round_robin""#,
        "",
    ));
    let url = proxy.url("main", "/");
    let seq = sequence(&client(), &url, 300).await;
    let t = tally(&seq);
    assert_eq!(
        (count(&t, "a"), count(&t, "b"), count(&t, "c")),
        (100, 100, 100),
        "{t:?}"
    );
    // Strict rotation: every three consecutive answers come from three
    // different servers, in the same order every time.
    for w in seq.chunks(3) {
        assert_eq!(w, &seq[..3], "rotation broke: {seq:?}");
    }
    let mut first: Vec<&String> = seq[..3].iter().collect();
    first.sort();
    assert_eq!(first, ["a", "b", "c"]);
    assert_eq!((a.hits(), b.hits(), c.hits()), (100, 100, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_splits_exactly_across_workers_and_connections() {
    // The turn counter belongs to the upstream (one per snapshot, shared by
    // all workers), so even concurrent connections landing on different
    // workers split exactly evenly in total.
    let (a, b, c) = start3().await;
    let proxy = Proxy::start(&simple_config(&[&a, &b, &c], r#"balancer = "round_robin""#));
    let t = concurrent_tally(&proxy.url("main", "/"), 4, 75).await;
    assert_eq!(
        (count(&t, "a"), count(&t, "b"), count(&t, "c")),
        (100, 100, 100),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_gives_5_1_1_in_every_cycle() {
    let (a, b, c) = start3().await;
    let srv = format!(
        r#"{{ address = "{}", weight = 5 }}, {{ address = "{}", weight = 1 }}, {{ address = "{}", weight = 1 }}"#,
        a.addr, b.addr, c.addr
    );
    let proxy = Proxy::start(&config(1, &srv, r#"balancer = "weighted_round_robin""#, ""));
    let seq = sequence(&client(), &proxy.url("main", "/"), 70).await;
    for (i, cycle) in seq.chunks(7).enumerate() {
        let t = tally(cycle);
        assert_eq!(
            (count(&t, "a"), count(&t, "b"), count(&t, "c")),
            (5, 1, 1),
            "cycle {i} is {cycle:?}"
        );
    }
    // Smooth, as nginx: the light servers are interleaved, not bunched.
    for cycle in seq.chunks(7) {
        assert_eq!(cycle, ["a", "a", "b", "a", "c", "a", "a"], "{seq:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_server_with_requests_in_flight() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (slow, gate) = Backend::start_gated("slow").await;
    let proxy = Proxy::start(&simple_config(
        &[&a, &b, &slow],
        r#"balancer = "least_connections""#,
    ));
    let url = proxy.url("main", "/");

    // Send requests one by one in the background until one is stuck on the
    // slow server (idle servers tie, and ties are broken at random).
    let mut stuck = None;
    for _ in 0..60 {
        let c = client();
        let u = url.clone();
        let h = tokio::spawn(async move { c.get(&u).send().await.unwrap().status() });
        eventually(
            "background request answered or held",
            Duration::from_secs(10),
            async || slow.hits() > 0 || h.is_finished(),
        )
        .await;
        if slow.hits() > 0 {
            stuck = Some(h);
            break;
        }
        assert_eq!(h.await.unwrap(), 200);
    }
    let stuck = stuck.expect("no request reached the slow server in 60 tries");
    assert_eq!(slow.hits(), 1);

    // With one request in flight on "slow" and none on the others, every
    // new request goes elsewhere.
    let seq = sequence(&client(), &url, 90).await;
    let t = tally(&seq);
    assert_eq!(count(&t, "slow"), 0, "{t:?}");
    assert_eq!(slow.hits(), 1);
    assert_eq!(count(&t, "a") + count(&t, "b"), 90);
    assert!(
        count(&t, "a") > 0 && count(&t, "b") > 0,
        "idle servers must share: {t:?}"
    );

    gate.send(true).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("held request finishes once released")
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_gives_every_server_a_fair_share() {
    let (a, b, c) = start3().await;
    let proxy = Proxy::start(&simple_config(&[&a, &b, &c], r#"balancer = "random""#));
    let t = concurrent_tally(&proxy.url("main", "/"), 4, 750).await;
    // Expected 1000 each, standard deviation about 26.
    for name in ["a", "b", "c"] {
        let n = count(&t, name);
        assert!((800..=1200).contains(&n), "{name} got {n}: {t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_honours_weights() {
    let (a, b, c) = start3().await;
    let srv = format!(
        r#"{{ address = "{}", weight = 2 }}, "{}", "{}""#,
        a.addr, b.addr, c.addr
    );
    let proxy = Proxy::start(&config(2, &srv, r#"balancer = "random""#, ""));
    let t = concurrent_tally(&proxy.url("main", "/"), 4, 500).await;
    // Expected 1000 / 500 / 500, standard deviation about 22-25.
    let (na, nb, nc) = (count(&t, "a"), count(&t, "b"), count(&t, "c"));
    assert!((850..=1150).contains(&na), "{t:?}");
    assert!((350..=650).contains(&nb), "{t:?}");
    assert!((350..=650).contains(&nc), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_sends_clearly_less_to_a_slow_server() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let slow = Backend::start_delayed("slow", Duration::from_millis(250)).await;
    let proxy = Proxy::start(&simple_config(&[&a, &b, &slow], r#"balancer = "p2c_ewma""#));
    let seq = sequence(&client(), &proxy.url("main", "/"), 300).await;
    let t = tally(&seq);
    let (na, nb, ns) = (count(&t, "a"), count(&t, "b"), count(&t, "slow"));
    assert_eq!(na + nb + ns, 300);
    // Once its latency is known, the slow server loses every comparison.
    assert!(ns <= 30, "slow server got {ns} of 300: {t:?}");
    assert!(na > 3 * ns && nb > 3 * ns, "{t:?}");
}

fn hash_extra(key: &str, algorithm: &str) -> String {
    format!(
        r#"balancer = "consistent_hash"
[upstreams.u.hash]
key = "{key}"
algorithm = "{algorithm}"
"#
    )
}

async fn header_hash_is_sticky_and_spreads(algorithm: &str) {
    let (a, b, c) = start3().await;
    let proxy = Proxy::start(&simple_config(
        &[&a, &b, &c],
        &hash_extra("header:x-user", algorithm),
    ));
    let url = proxy.url("main", "/");
    let cl = client();
    let user_get = async |user: &str| {
        backend_of(cl.get(&url).header("x-user", user).send().await.unwrap()).await
    };

    let first = user_get("alice").await;
    for i in 0..50 {
        assert_eq!(
            user_get("alice").await,
            first,
            "request {i} of alice moved ({algorithm})"
        );
    }

    let mut owner = HashMap::new();
    for i in 0..60 {
        let user = format!("user-{i}");
        owner.insert(user.clone(), user_get(&user).await);
    }
    let spread = tally(&owner.values().cloned().collect::<Vec<_>>());
    for name in ["a", "b", "c"] {
        assert!(
            count(&spread, name) > 0,
            "{name} owns no user ({algorithm}): {spread:?}"
        );
    }
    // Each user still lands where it did.
    for (user, backend) in &owner {
        assert_eq!(&user_get(user).await, backend, "{user} moved ({algorithm})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_maglev_on_a_header() {
    header_hash_is_sticky_and_spreads("maglev").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_ring_on_a_header() {
    header_hash_is_sticky_and_spreads("ring").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_client_ip_uses_x_forwarded_for_only_from_trusted_peers() {
    let (a, b, c) = start3().await;
    // Two listeners on the same routes: "trusting" believes 127.0.0.1's
    // X-Forwarded-For, "plain" trusts nobody.
    let toml = config(
        2,
        &servers(&[&a, &b, &c]),
        &hash_extra("client_ip", "maglev"),
        r#"[listeners.main.forwarded]
trusted_proxies = ["127.0.0.1/32"]
[listeners.plain]
address = "127.0.0.1:0"
"#,
    );
    let proxy = Proxy::start(&toml);
    let cl = client();
    let via = async |listener: &str, xff: &str| {
        let url = proxy.url(listener, "/");
        backend_of(
            cl.get(&url)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap(),
        )
        .await
    };

    let first = via("main", "203.0.113.7").await;
    for i in 0..50 {
        assert_eq!(via("main", "203.0.113.7").await, first, "request {i} moved");
    }
    let mut owners = Vec::new();
    for i in 1..=60 {
        owners.push(via("main", &format!("198.51.100.{i}")).await);
    }
    let spread = tally(&owners);
    for name in ["a", "b", "c"] {
        assert!(
            count(&spread, name) > 0,
            "{name} owns no client: {spread:?}"
        );
    }

    // From an untrusted peer the header is ignored: every "client" is
    // 127.0.0.1 and lands on one server.
    let mut plain = Vec::new();
    for i in 1..=60 {
        plain.push(via("plain", &format!("198.51.100.{i}")).await);
    }
    let plain = tally(&plain);
    assert_eq!(
        plain.len(),
        1,
        "untrusted X-Forwarded-For was used for hashing: {plain:?}"
    );
}
