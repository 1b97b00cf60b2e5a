//! A filter chain on a request built in memory, timed without sockets: the
//! request and response phases of the issue's filter set (request id, two
//! header rules, CORS; the IP list is `sy-policy`'s `ip 100k` bench) and of
//! header rules alone.
//!
//!   cargo bench -p sy-server --bench filters
//!
//! Wall time on the machine that runs it: compare a change against its
//! parent on the same machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response, Uri};
use sy_server::body::ProxyBody;
use sy_server::filter::{Chain, Filter, RequestCx, Verdict};

/// The chain's filters are never pending: one poll runs them.
fn ready<T>(f: impl Future<Output = T>) -> T {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a filter of this bench waited"),
    }
}

/// The filters `[filters.NAME]` of `toml` defines, in name order.
fn filters(toml: &str) -> Vec<Arc<Filter>> {
    let config = sy_config::parse(toml, "bench.toml", std::path::Path::new(".")).unwrap();
    config
        .filters
        .iter()
        .map(|f| Arc::new(Filter::compile(&f.filter).unwrap()))
        .collect()
}

const SET: &str = r#"
[filters.a-request-id]
request_id = {}
[filters.b-rules]
headers = { request = { set = { x-client-ip = "${client_ip}" } }, response = { set = { x-served-by = "${method} ${host}" } } }
[filters.c-cors]
cors = { allow_origins = ["https://app.example"], allow_credentials = true, expose_headers = ["x-request-id"] }
"#;

fn run(c: &mut Criterion, name: &str, chain: &Chain, origin: Option<&str>) {
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut req = Request::get("/api/orders?id=7")
                .header("host", "shop.example")
                .header("user-agent", "bench");
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            let (mut parts, ()) = req.body(()).unwrap().into_parts();
            let mut cx = RequestCx::new(
                "web",
                "192.0.2.7:5000".parse().unwrap(),
                Method::GET,
                Uri::from_static("/api/orders?id=7"),
            );
            cx.host = parts.headers.get("host").cloned();
            cx.origin = parts.headers.get("origin").cloned();
            assert!(matches!(
                ready(chain.on_request(&mut cx, &mut parts)),
                Verdict::Continue
            ));
            let mut resp = Response::new(ProxyBody::Empty);
            chain.on_response(&cx, &mut resp);
            black_box(resp)
        });
    });
}

fn chains(c: &mut Criterion) {
    let set = Chain::new(filters(SET));
    run(c, "filters/request id + rules + cors", &set, None);
    run(
        c,
        "filters/request id + rules + cors, with Origin",
        &set,
        Some("https://app.example"),
    );
    let rules = Chain::new(filters(SET).into_iter().skip(1).take(1).collect());
    run(c, "filters/header rules", &rules, None);
    run(
        c,
        "filters/none (the request and response alone)",
        &Chain::default(),
        None,
    );
}

criterion_group!(benches, chains);
criterion_main!(benches);
