//! End to end: active health checks (HTTP, TCP, gRPC) mark real backends
//! down and up again, traffic avoids the down ones; the admin API shows
//! upstream state and drains / undrains servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// Deadline for a health state change (checks run every 100ms).
const CHANGE: Duration = Duration::from_secs(15);

/// Health-check keys shared by the tests: fast checks, 2 to fall, 2 to rise.
const FAST: &str = r#"interval = "100ms"
jitter = "20ms"
timeout = "1s"
unhealthy_threshold = 2
healthy_threshold = 2"#;

/// A backend whose `GET /health` answers with the status in the returned
/// cell (other paths answer like [`Backend::start`]).
async fn flippable(name: &str, status: u16) -> (Backend, Arc<AtomicU16>) {
    let cell = Arc::new(AtomicU16::new(status));
    let c = cell.clone();
    let b = Backend::start_with(
        name,
        Arc::new(move |req: &Request<Incoming>| {
            (req.uri().path() == "/health").then(|| {
                Response::builder()
                    .status(c.load(Ordering::SeqCst))
                    .body(Full::new(Bytes::from_static(b"status\n")))
                    .unwrap()
            })
        }),
    )
    .await;
    (b, cell)
}

async fn healthy_gauge(p: &Proxy, server: SocketAddr) -> f64 {
    let s = server.to_string();
    scrape_metric(
        p,
        "switchyard_upstream_server_healthy",
        &[("upstream", "u"), ("server", &s)],
    )
    .await
}

async fn wait_gauge(p: &Proxy, server: SocketAddr, want: f64, what: &str) {
    eventually(what, CHANGE, async || {
        healthy_gauge(p, server).await == want
    })
    .await;
}

/// The backend named in `x-backend` of one request.
async fn backend_of(c: &reqwest::Client, url: &str) -> String {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "request failed: {:?}", r.headers());
    header(&r, "x-backend").to_string()
}

/// `n` requests; panics unless every one reached `want`.
async fn all_go_to(c: &reqwest::Client, url: &str, n: usize, want: &str) {
    for i in 0..n {
        let got = backend_of(c, url).await;
        assert_eq!(got, want, "request {i} went to {got}");
    }
}

/// Sends requests until one reaches `want`.
async fn reaches(c: &reqwest::Client, url: &str, want: &str, what: &str) {
    eventually(what, CHANGE, async || backend_of(c, url).await == want).await;
}

async fn upstreams(p: &Proxy) -> serde_json::Value {
    let (status, body) = admin_get(p.admin(), "/upstreams").await;
    assert_eq!(status, 200, "GET /upstreams: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `/upstreams` entry of server `addr` in upstream "u".
fn server_entry(v: &serde_json::Value, addr: SocketAddr) -> serde_json::Value {
    let u = &v["upstreams"][0];
    assert_eq!(u["name"], "u", "{v}");
    u["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("no server {addr} in {v}"))
        .clone()
}

async fn admin_post(p: &Proxy, path: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("http://{}{path}", p.admin()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_marks_a_failing_server_down_and_back_up() {
    let good = Backend::start("good").await;
    let (flaky, status) = flippable("flaky", 503).await;
    let p = Proxy::start(&simple_config(
        &[&good, &flaky],
        &format!("[upstreams.u.health_check]\ntype = \"http\"\npath = \"/health\"\n{FAST}\n"),
    ));
    wait_admin_ready(p.admin()).await;
    // One checker per server per process, whatever the number of workers.
    assert_eq!(p.handle.control().checkers.len(), 2);

    wait_gauge(&p, flaky.addr, 0.0, "flaky marked unhealthy").await;
    let flaky_label = flaky.addr.to_string();
    let labels = |o: &'static str| {
        [
            ("upstream", "u"),
            ("server", flaky_label.as_str()),
            ("outcome", o),
        ]
    };
    assert!(scrape_metric(&p, "switchyard_health_checks_total", &labels("fail")).await >= 2.0);
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_health_transitions_total",
            &labels("unhealthy")
        )
        .await,
        1.0
    );
    assert_eq!(healthy_gauge(&p, good.addr).await, 1.0);

    let c = client();
    let url = p.url("main", "/");
    all_go_to(&c, &url, 20, "good").await;

    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, flaky.addr)["health"], "unhealthy", "{v}");
    assert_eq!(server_entry(&v, good.addr)["health"], "healthy", "{v}");
    assert_eq!(v["upstreams"][0]["health_check"]["type"], "http", "{v}");
    assert_eq!(v["upstreams"][0]["health_check"]["interval_ms"], 100, "{v}");

    // Recovers once /health answers 200 again.
    status.store(200, Ordering::SeqCst);
    wait_gauge(&p, flaky.addr, 1.0, "flaky marked healthy again").await;
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_health_transitions_total",
            &labels("healthy")
        )
        .await,
        1.0
    );
    reaches(&c, &url, "flaky", "traffic reaches flaky again").await;
    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, flaky.addr)["health"], "healthy", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_expect_status_and_body() {
    // 418 passes only because expect_status lists it; the body must
    // contain "status".
    let (a, status) = flippable("a", 418).await;
    let p = Proxy::start(&simple_config(
        &[&a],
        &format!(
            "[upstreams.u.health_check]\npath = \"/health\"\nexpect_status = [418, \"200-204\"]\n\
             expect_body = \"status\"\n{FAST}\n"
        ),
    ));
    wait_admin_ready(p.admin()).await;
    let label = a.addr.to_string();
    let ok = [
        ("upstream", "u"),
        ("server", label.as_str()),
        ("outcome", "ok"),
    ];
    eventually("checks pass", CHANGE, async || {
        scrape_metric(&p, "switchyard_health_checks_total", &ok).await >= 2.0
    })
    .await;
    assert_eq!(healthy_gauge(&p, a.addr).await, 1.0);
    // 500 is in no accepted range.
    status.store(500, Ordering::SeqCst);
    wait_gauge(&p, a.addr, 0.0, "a marked unhealthy on 500").await;
    status.store(201, Ordering::SeqCst);
    wait_gauge(&p, a.addr, 1.0, "a healthy again on 201").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_marks_a_closed_port_down() {
    let good = Backend::start("good").await;
    let closed = refused_addr();
    let p = Proxy::start(&one_upstream_config(
        &format!("\"{}\", \"{closed}\"", good.addr),
        &format!("[upstreams.u.health_check]\ntype = \"tcp\"\n{FAST}\n"),
    ));
    wait_admin_ready(p.admin()).await;
    wait_gauge(&p, closed, 0.0, "closed port marked unhealthy").await;
    assert_eq!(healthy_gauge(&p, good.addr).await, 1.0);
    let c = client();
    all_go_to(&c, &p.url("main", "/"), 20, "good").await;
    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, closed)["health"], "unhealthy", "{v}");
    assert_eq!(v["upstreams"][0]["health_check"]["type"], "tcp", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_check_on_reload_makes_the_server_healthy() {
    let good = Backend::start("good").await;
    let (flaky, _status) = flippable("flaky", 503).await;
    let checked = simple_config(
        &[&good, &flaky],
        &format!("[upstreams.u.health_check]\npath = \"/health\"\n{FAST}\n"),
    );
    let p = Proxy::start(&checked);
    wait_admin_ready(p.admin()).await;
    wait_gauge(&p, flaky.addr, 0.0, "flaky marked unhealthy").await;
    p.write_config(&simple_config(&[&good, &flaky], ""));
    p.handle.reload().unwrap();
    assert_eq!(p.handle.control().checkers.len(), 0);
    assert_eq!(healthy_gauge(&p, flaky.addr).await, 1.0);
    let c = client();
    reaches(&c, &p.url("main", "/"), "flaky", "traffic reaches flaky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_upstreams_and_drain() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = Proxy::start(&simple_config(
        &[&a, &b],
        &format!("[upstreams.u.health_check]\n{FAST}\n"),
    ));
    wait_admin_ready(p.admin()).await;
    let c = client();
    let url = p.url("main", "/");
    reaches(&c, &url, "a", "traffic reaches a").await;
    reaches(&c, &url, "b", "traffic reaches b").await;

    let v = upstreams(&p).await;
    let u = &v["upstreams"][0];
    assert_eq!(u["balancer"], "round_robin", "{v}");
    assert_eq!(u["panic"], false, "{v}");
    assert!(u["circuit_breaker"]["max_requests"].is_null(), "{v}");
    assert!(u["retry_budget"]["ratio"].is_number(), "{v}");
    for addr in [a.addr, b.addr] {
        let s = server_entry(&v, addr);
        assert_eq!(s["health"], "healthy", "{v}");
        assert_eq!(s["draining"], false, "{v}");
        assert_eq!(s["ejected"], false, "{v}");
        assert_eq!(s["slow_start_factor"], 1.0, "{v}");
    }

    // The address segment may be percent-encoded.
    let enc = b.addr.to_string().replace(':', "%3A");
    let (status, body) = admin_post(&p, &format!("/upstreams/u/servers/{enc}/drain")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["draining"], true);
    assert_eq!(body["server"], b.addr.to_string());
    // Draining is immediate: no new request reaches b.
    all_go_to(&c, &url, 20, "a").await;
    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, b.addr)["draining"], true, "{v}");
    let bl = b.addr.to_string();
    assert_eq!(
        scrape_metric(
            &p,
            "switchyard_upstream_server_draining",
            &[("upstream", "u"), ("server", &bl)]
        )
        .await,
        1.0
    );

    let (status, body) = admin_post(&p, &format!("/upstreams/u/servers/{}/undrain", b.addr)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draining"], false);
    reaches(&c, &url, "b", "traffic reaches b after undrain").await;
    let v = upstreams(&p).await;
    assert_eq!(server_entry(&v, b.addr)["draining"], false, "{v}");

    // Errors.
    let (status, body) = admin_post(&p, "/upstreams/nope/servers/1.2.3.4:5/drain").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no upstream nope");
    let (status, body) = admin_post(&p, "/upstreams/u/servers/1.2.3.4:5/drain").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no server 1.2.3.4:5 in upstream u");
    let (status, _) = admin_get(p.admin(), &format!("/upstreams/u/servers/{}/drain", a.addr)).await;
    assert_eq!(status, 405);
    let r = client()
        .post(format!("http://{}/upstreams", p.admin()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

mod grpc_health {
    use super::*;
    use std::pin::Pin;
    use tonic::Status;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HealthCheckRequest {
        #[prost(string, tag = "1")]
        pub service: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HealthCheckResponse {
        #[prost(int32, tag = "1")]
        pub status: i32,
    }

    type Codec = tonic_prost::ProstCodec<HealthCheckResponse, HealthCheckRequest>;
    type BoxFut<T> =
        Pin<Box<dyn std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send>>;

    /// What the server answers and what it was asked.
    #[derive(Default)]
    pub struct State {
        pub status: AtomicI32,
        pub seen_service: std::sync::Mutex<String>,
    }

    struct Check(Arc<State>);
    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future = BoxFut<HealthCheckResponse>;
        fn call(&mut self, req: tonic::Request<HealthCheckRequest>) -> Self::Future {
            let st = self.0.clone();
            Box::pin(async move {
                *st.seen_service.lock().unwrap() = req.into_inner().service;
                Ok(tonic::Response::new(HealthCheckResponse {
                    status: st.status.load(Ordering::SeqCst),
                }))
            })
        }
    }

    /// A grpc.health.v1 server over h2c.
    pub async fn server(state: Arc<State>) -> SocketAddr {
        use http_body_util::BodyExt;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let resp = if path == "/grpc.health.v1.Health/Check" {
                                tonic::server::Grpc::new(Codec::default())
                                    .unary(Check(st), req)
                                    .await
                            } else {
                                Status::unimplemented(path).into_http()
                            };
                            Ok::<_, std::convert::Infallible>(resp.map(|b| b.boxed_unsync()))
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        addr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_check_follows_the_serving_status() {
    let state = Arc::new(grpc_health::State::default());
    state.status.store(1, Ordering::SeqCst); // SERVING
    let addr = grpc_health::server(state.clone()).await;
    let p = Proxy::start(&one_upstream_config(
        &format!("\"{addr}\""),
        &format!(
            "protocol = \"h2c\"\n[upstreams.u.health_check]\ntype = \"grpc\"\n\
             service = \"test.Svc\"\n{FAST}\n"
        ),
    ));
    wait_admin_ready(p.admin()).await;
    let label = addr.to_string();
    let ok = [
        ("upstream", "u"),
        ("server", label.as_str()),
        ("outcome", "ok"),
    ];
    eventually("gRPC checks pass", CHANGE, async || {
        scrape_metric(&p, "switchyard_health_checks_total", &ok).await >= 2.0
    })
    .await;
    assert_eq!(*state.seen_service.lock().unwrap(), "test.Svc");
    assert_eq!(healthy_gauge(&p, addr).await, 1.0);

    state.status.store(2, Ordering::SeqCst); // NOT_SERVING
    wait_gauge(&p, addr, 0.0, "NOT_SERVING marks the server unhealthy").await;
    state.status.store(1, Ordering::SeqCst);
    wait_gauge(&p, addr, 1.0, "SERVING marks it healthy again").await;
}
