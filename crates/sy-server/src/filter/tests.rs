#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use sy_config::model::{HeaderOps, HeadersFilter};
use sy_config::template::parse;

/// A `headers` filter that appends `value` to `x-order` both ways.
fn append(value: &str) -> Arc<Filter> {
    let ops = HeaderOps {
        append: vec![("x-order".into(), parse(value).unwrap())],
        ..HeaderOps::default()
    };
    Arc::new(
        Filter::compile(&model::Filter::Headers(HeadersFilter {
            request: ops.clone(),
            response: ops,
        }))
        .unwrap(),
    )
}

#[tokio::test]
async fn requests_run_in_order_and_responses_in_reverse() {
    let chain = Chain::new(vec![append("first"), append("second")]);
    let mut req = http::Request::get("/").body(()).unwrap().into_parts().0;
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:9".parse().unwrap(),
        http::Method::GET,
        http::Uri::from_static("/"),
    );
    assert!(matches!(
        chain.on_request(&mut cx, &mut req).await,
        Verdict::Continue
    ));
    let order = |h: &http::HeaderMap| {
        h.get_all("x-order")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&req.headers), ["first", "second"]);
    let mut resp = Response::new(ProxyBody::Empty);
    chain.on_response(&cx, &mut resp);
    assert_eq!(order(resp.headers()), ["second", "first"]);
}

#[test]
fn an_empty_chain_is_empty() {
    assert!(Chain::default().is_empty());
    assert!(!Chain::new(vec![append("x")]).is_empty());
}

#[test]
fn a_chain_needs_only_what_its_filters_read() {
    let needs = |values: &[&str]| {
        let n = Chain::new(values.iter().map(|v| append(v)).collect()).needs();
        (n.path, n.host, n.cors)
    };
    assert_eq!(needs(&["x", "${method}"]), (false, false, false));
    assert_eq!(needs(&["${path}"]), (true, false, false));
    assert_eq!(needs(&["x", "${host}"]), (false, true, false));
    let cors = Arc::new(
        Filter::compile(&model::Filter::Cors(model::CorsFilter {
            allow_origins: vec![model::CorsOrigin::Pattern("*".into())],
            allow_methods: vec!["GET".into()],
            allow_headers: vec![],
            expose_headers: vec![],
            allow_credentials: false,
            max_age: None,
        }))
        .unwrap(),
    );
    let n = Chain::new(vec![append("${host}${path}"), cors]).needs();
    assert!(n.path && n.host && n.cors);
}
