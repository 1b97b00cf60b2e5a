#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::sync::Arc;

use sy_config::model::{CorsOrigin, Filter as FilterCfg, HeaderOps, HeadersFilter};

use crate::filter::{Chain, Filter};

fn cfg(origins: &[&str]) -> CorsFilter {
    CorsFilter {
        allow_origins: origins
            .iter()
            .map(|o| CorsOrigin::Pattern((*o).to_owned()))
            .collect(),
        allow_methods: vec!["GET".into(), "PUT".into()],
        allow_headers: vec!["x-api-key".into()],
        expose_headers: vec!["x-total".into()],
        allow_credentials: true,
        max_age: Some(std::time::Duration::from_secs(600)),
    }
}

/// A request and its context as `handle` builds them.
fn request(method: &str, headers: &[(&str, &str)]) -> (RequestCx<'static>, Parts) {
    let mut b = http::Request::builder().method(method).uri("/api");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let parts = b.body(()).unwrap().into_parts().0;
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:9".parse().unwrap(),
        parts.method.clone(),
        parts.uri.clone(),
    );
    cx.origin = parts.headers.get(header::ORIGIN).cloned();
    cx.preflight = PreflightAsk::of(&parts.method, &parts.headers);
    (cx, parts)
}

fn names(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn an_allowed_preflight_is_answered_204_and_counted() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let m = f.counters.clone();
    let (mut cx, mut req) = request(
        "OPTIONS",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-api-key"),
        ],
    );
    let Verdict::Answer(mut r) = f.on_request(&mut cx, &mut req) else {
        panic!("not answered");
    };
    assert_eq!(r.status(), 204);
    // The response phase, which every answer passes, sets the headers.
    f.on_response(&cx, &mut r);
    assert_eq!(
        names(r.headers()),
        [
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "x-api-key"),
            ("access-control-max-age", "600"),
            (
                "vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(
        (m.preflight.get(), m.denied.get(), m.allowed.get()),
        (1, 0, 0)
    );
}

#[test]
fn a_refused_preflight_is_a_403_without_cors_headers() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let m = f.counters.clone();
    for (origin, method, asked, why) in [
        ("https://evil.example", "PUT", "", "origin not allowed"),
        (
            "https://app.example",
            "PATCH",
            "",
            "method PATCH not allowed",
        ),
        (
            "https://app.example",
            "PUT",
            "x-api-key, x-other",
            "request header x-other not allowed",
        ),
    ] {
        let (mut cx, mut req) = request(
            "OPTIONS",
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", asked),
            ],
        );
        let Verdict::Reject(e) = f.on_request(&mut cx, &mut req) else {
            panic!("{origin} {method} {asked}: not refused");
        };
        assert_eq!(e.status(), 403);
        assert_eq!(e.message, format!("CORS preflight refused: {why}"));
        // Switchyard's 403 passes the response phase: it varies like any
        // preflight answer, and gets no CORS header.
        let mut r = crate::respond::error(&e);
        f.on_response(&cx, &mut r);
        assert_eq!(
            r.headers()["vary"],
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );
        assert!(
            !r.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{:?}",
            r.headers()
        );
    }
    assert_eq!((m.preflight.get(), m.denied.get()), (0, 3));
}

#[test]
fn options_that_are_not_preflights_go_on() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let m = f.counters.clone();
    for headers in [
        &[("origin", "https://app.example")][..],
        &[("access-control-request-method", "PUT")][..],
        &[][..],
    ] {
        let (mut cx, mut req) = request("OPTIONS", headers);
        assert!(matches!(f.on_request(&mut cx, &mut req), Verdict::Continue));
    }
    let (mut cx, mut req) = request(
        "GET",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    );
    assert!(matches!(f.on_request(&mut cx, &mut req), Verdict::Continue));
    assert_eq!(m.preflight.get() + m.denied.get(), 0);
}

/// A response with `headers`.
fn response(headers: &[(&str, &str)]) -> Response<ProxyBody> {
    let mut b = Response::builder();
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(ProxyBody::Empty).unwrap()
}

#[test]
fn responses_get_the_policys_headers_and_lose_the_upstreams() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let m = f.counters.clone();
    let upstream = [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "DELETE"),
        ("access-control-max-age", "99999"),
        ("vary", "Accept-Encoding"),
        ("x-other", "kept"),
    ];
    // Allowed: the origin echoed, credentials, exposed headers, Vary merged.
    let (cx, _) = request("GET", &[("origin", "https://app.example")]);
    let mut r = response(&upstream);
    f.on_response(&cx, &mut r);
    let mut got = names(r.headers());
    got.sort();
    assert_eq!(
        got,
        [
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-expose-headers", "x-total"),
            ("vary", "Accept-Encoding, Origin"),
            ("x-other", "kept"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // Denied: no CORS header at all (the upstream's are gone too).
    let (cx, _) = request("GET", &[("origin", "https://evil.example")]);
    let mut r = response(&upstream);
    f.on_response(&cx, &mut r);
    let mut got = names(r.headers());
    got.sort();
    assert_eq!(
        got,
        [("vary", "Accept-Encoding, Origin"), ("x-other", "kept")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // No Origin: not a CORS request, but the answer still varies by it.
    let (cx, _) = request("GET", &[]);
    let mut r = response(&[("vary", "origin")]);
    f.on_response(&cx, &mut r);
    assert_eq!(
        names(r.headers()),
        [("vary".to_owned(), "origin".to_owned())]
    );
    assert_eq!((m.allowed.get(), m.denied.get()), (1, 1));
}

#[test]
fn vary_is_added_once_and_never_to_vary_star() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let (cx, _) = request("GET", &[("origin", "https://app.example")]);
    for (before, after) in [
        (&[][..], &["Origin"][..]),
        (&["*"][..], &["*"][..]),
        (
            &["Accept", "Accept-Language"][..],
            &["Accept, Accept-Language, Origin"][..],
        ),
        (&["Accept, Origin"][..], &["Accept, Origin"][..]),
    ] {
        let headers: Vec<(&str, &str)> = before.iter().map(|v| ("vary", *v)).collect();
        let mut r = response(&headers);
        f.on_response(&cx, &mut r);
        let got: Vec<&str> = r
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, after, "{before:?}");
    }
}

#[test]
fn any_origin_sends_a_star_to_everyone_and_no_vary() {
    let mut c = cfg(&["*"]);
    c.allow_credentials = false;
    let f = Cors::new(&c).unwrap();
    let m = f.counters.clone();
    for origin in [Some("https://anyone.example"), None] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let (cx, _) = request("GET", &headers);
        let mut r = response(&[]);
        f.on_response(&cx, &mut r);
        let mut got = names(r.headers());
        got.sort();
        assert_eq!(
            got,
            [
                ("access-control-allow-origin", "*"),
                ("access-control-expose-headers", "x-total"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
            "{origin:?}"
        );
    }
    assert_eq!(m.allowed.get(), 1);
}

/// A `headers` filter that sets `name: value` on responses.
fn response_header_rule(name: &str, value: &str) -> Arc<Filter> {
    Arc::new(
        Filter::compile(&FilterCfg::Headers(HeadersFilter {
            request: HeaderOps::default(),
            response: HeaderOps {
                set: vec![(name.into(), sy_config::template::parse(value).unwrap())],
                ..HeaderOps::default()
            },
        }))
        .unwrap(),
    )
}

#[tokio::test]
async fn the_filter_written_first_has_the_last_word_on_responses() {
    let cors = Arc::new(Filter::Cors(
        Cors::new(&cfg(&["https://app.example"])).unwrap(),
    ));
    // A header rule that sets Access-Control-Allow-Origin itself.
    let rule = response_header_rule("access-control-allow-origin", "https://rule.example");
    let (mut cx, mut req) = request("GET", &[("origin", "https://app.example")]);

    // [cors, headers]: headers runs first on the response, cors last:
    // cors replaces what the rule set.
    let chain = Chain::new(vec![cors.clone(), rule.clone()]);
    assert!(matches!(
        chain.on_request(&mut cx, &mut req).await,
        Verdict::Continue
    ));
    let mut r = response(&[]);
    chain.on_response(&cx, &mut r);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    // A preflight: cors answers it, and still has the last word.
    let (mut pcx, mut preq) = request(
        "OPTIONS",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    );
    let Verdict::Answer(mut r) = chain.on_request(&mut pcx, &mut preq).await else {
        panic!("the preflight was not answered");
    };
    chain.on_response(&pcx, &mut r);
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    // [headers, cors]: cors runs first, the rule last and wins.
    let chain = Chain::new(vec![rule, cors]);
    let mut r = response(&[]);
    chain.on_response(&cx, &mut r);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://rule.example"
    );
    let Verdict::Answer(mut r) = chain.on_request(&mut pcx, &mut preq).await else {
        panic!("the preflight was not answered");
    };
    chain.on_response(&pcx, &mut r);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://rule.example"
    );
}

#[test]
fn a_preflight_someone_else_answered_gets_the_policys_headers() {
    let f = Cors::new(&cfg(&["https://app.example"])).unwrap();
    let m = f.counters.clone();
    for (origin, allowed) in [
        ("https://app.example", true),
        ("https://evil.example", false),
    ] {
        let (cx, _) = request(
            "OPTIONS",
            &[("origin", origin), ("access-control-request-method", "GET")],
        );
        // E.g. a rate limit's 429 carrying a rule's CORS header.
        let mut r = response(&[("access-control-allow-origin", "*"), ("vary", "Accept")]);
        f.on_response(&cx, &mut r);
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            allowed.then_some(origin),
        );
        assert_eq!(
            r.headers()["vary"],
            "Accept, Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );
    }
    // Counted in the request phase only.
    assert_eq!(m.preflight.get() + m.denied.get() + m.allowed.get(), 0);
}

#[test]
fn owned_headers_are_the_policys() {
    let names: Vec<&str> = super::OWNED.iter().map(|h| h.as_str()).collect();
    assert_eq!(names, sy_policy::cors::OWNED_HEADERS);
}
