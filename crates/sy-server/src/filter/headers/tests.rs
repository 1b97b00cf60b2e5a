#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use sy_config::template::parse;

fn ops(
    remove: &[&str],
    set: &[(&str, &str)],
    add: &[(&str, &str)],
    append: &[(&str, &str)],
) -> HeaderOps {
    let pairs = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(n, v)| ((*n).to_owned(), parse(v).unwrap()))
            .collect()
    };
    HeaderOps {
        remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        set: pairs(set),
        add: pairs(add),
        append: pairs(append),
    }
}

fn cx() -> RequestCx<'static> {
    let mut cx = RequestCx::new(
        "web",
        "192.0.2.7:4000".parse().unwrap(),
        http::Method::POST,
        http::Uri::from_static("/orders"),
    );
    cx.route = Some("api");
    cx
}

#[test]
fn request_rules_run_remove_set_add_append() {
    let rules = HeaderRules::new(&HeadersFilter {
        request: ops(
            &["x-debug"],
            &[("x-client", "${client_ip}"), ("x-env", "prod")],
            &[("x-tenant", "default"), ("x-present", "not used")],
            &[("x-via", "edge-${route}")],
        ),
        response: HeaderOps::default(),
    })
    .unwrap();
    let mut req = http::Request::post("/orders")
        .header("x-debug", "1")
        .header("x-debug", "2")
        .header("x-env", "dev")
        .header("x-env", "test")
        .header("x-present", "kept")
        .header("x-via", "client")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let mut cx = cx();
    assert!(matches!(
        rules.on_request(&mut cx, &mut req),
        Verdict::Continue
    ));
    let h = &req.headers;
    assert!(!h.contains_key("x-debug"));
    assert_eq!(h.get_all("x-env").iter().collect::<Vec<_>>(), ["prod"]);
    assert_eq!(h["x-client"], "192.0.2.7");
    assert_eq!(h["x-tenant"], "default");
    assert_eq!(h["x-present"], "kept");
    assert_eq!(
        h.get_all("x-via").iter().collect::<Vec<_>>(),
        ["client", "edge-api"]
    );
}

#[test]
fn response_rules_see_the_upstream_that_answered() {
    let rules = HeaderRules::new(&HeadersFilter {
        request: HeaderOps::default(),
        response: ops(
            &["server"],
            &[
                ("x-frame-options", "DENY"),
                ("x-served-by", "${upstream}/${server}"),
            ],
            &[],
            &[],
        ),
    })
    .unwrap();
    let mut resp = http::Response::builder()
        .header("server", "nginx/1.22")
        .body(ProxyBody::Empty)
        .unwrap();
    let mut cx = cx();
    cx.upstream = Some("orders");
    cx.server = Some("10.0.0.5:8080");
    rules.on_response(&cx, &mut resp);
    assert!(!resp.headers().contains_key("server"));
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["x-served-by"], "orders/10.0.0.5:8080");
}
