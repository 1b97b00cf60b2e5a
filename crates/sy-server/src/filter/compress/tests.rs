#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::{Response, StatusCode};
use http_body::Body;

use super::encoder::tests::{TEXT, decode};
use super::*;

fn filter(toml_like: impl FnOnce(&mut CompressFilter)) -> Compress {
    let mut cfg = CompressFilter {
        algorithms: CompressFilter::DEFAULT_ALGORITHMS.to_vec(),
        min_size: 1024,
        content_types: CompressFilter::DEFAULT_CONTENT_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        gzip_level: 6,
        brotli_level: 4,
        zstd_level: 3,
    };
    toml_like(&mut cfg);
    Compress::new(&cfg).unwrap()
}

fn cx_for(method: Method, accept: Option<&str>, f: &Compress) -> RequestCx<'static> {
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:9".parse().unwrap(),
        method.clone(),
        http::Uri::from_static("/"),
    );
    let mut b = http::Request::builder().method(method);
    if let Some(a) = accept {
        b = b.header("accept-encoding", a);
    }
    let mut parts = b.body(()).unwrap().into_parts().0;
    let before = parts.headers.clone();
    assert!(matches!(
        f.on_request(&mut cx, &mut parts),
        Verdict::Continue
    ));
    assert_eq!(parts.headers, before, "the request goes upstream unchanged");
    cx
}

fn response(status: u16, headers: &[(&str, &str)], body: ProxyBody) -> Response<ProxyBody> {
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

fn all(resp: &Response<ProxyBody>, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The response after the filter, with its body read whole.
fn filtered(
    f: &Compress,
    method: Method,
    accept: Option<&str>,
    mut resp: Response<ProxyBody>,
) -> (Response<ProxyBody>, Vec<u8>) {
    let cx = cx_for(method, accept, f);
    f.on_response(&cx, &mut resp);
    let mut body = std::mem::replace(resp.body_mut(), ProxyBody::Empty);
    let mut out = Vec::new();
    let mut task = Context::from_waker(Waker::noop());
    loop {
        match Pin::new(&mut body).poll_frame(&mut task) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(d) = frame.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Poll::Ready(None) => break,
            other => panic!("{other:?}"),
        }
    }
    (resp, out)
}

fn big() -> Vec<u8> {
    TEXT.repeat(40)
}

#[test]
fn a_compressible_response_is_compressed_and_its_headers_follow() {
    let f = filter(|_| {});
    let body = big();
    let resp = response(
        200,
        &[
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", &body.len().to_string()),
            ("accept-ranges", "bytes"),
            ("etag", "\"v1\""),
            ("vary", "Origin"),
            ("content-md5", "xxx"),
            ("digest", "sha-256=xxx"),
        ],
        ProxyBody::full(body.clone()),
    );
    let (resp, sent) = filtered(&f, Method::GET, Some("gzip, br;q=0.9"), resp);
    assert_eq!(all(&resp, "content-encoding"), ["gzip"]);
    assert_eq!(all(&resp, "vary"), ["Origin, Accept-Encoding"]);
    assert_eq!(all(&resp, "etag"), ["W/\"v1\""]);
    for gone in ["content-length", "accept-ranges", "content-md5", "digest"] {
        assert!(all(&resp, gone).is_empty(), "{gone} kept");
    }
    assert_eq!(decode(Coding::Gzip, &sent), body);
    assert!(sent.len() < body.len() / 4);
}

#[test]
fn each_coding_is_chosen_and_decodes() {
    for (accept, coding) in [
        ("br", Coding::Br),
        ("zstd", Coding::Zstd),
        ("gzip", Coding::Gzip),
        ("gzip, deflate, br, zstd", Coding::Zstd),
        ("*", Coding::Zstd),
        ("gzip, br", Coding::Br),
    ] {
        let f = filter(|_| {});
        let body = big();
        let resp = response(
            200,
            &[("content-type", "application/json")],
            ProxyBody::full(body.clone()),
        );
        let (resp, sent) = filtered(&f, Method::GET, Some(accept), resp);
        assert_eq!(all(&resp, "content-encoding"), [coding.token()], "{accept}");
        assert_eq!(decode(coding, &sent), body, "{accept}");
    }
}

/// A response the filter must not compress.
struct Left {
    what: &'static str,
    method: Method,
    accept: Option<&'static str>,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    /// `Vary: Accept-Encoding` is added: a client accepting a coding
    /// would get another representation.
    vary: bool,
}

fn left(
    what: &'static str,
    accept: Option<&'static str>,
    status: u16,
    extra: &[(&'static str, &'static str)],
    vary: bool,
) -> Left {
    let mut headers = vec![("content-type", "text/html")];
    headers.extend_from_slice(extra);
    Left {
        what,
        method: Method::GET,
        accept,
        status,
        headers,
        vary,
    }
}

#[test]
fn responses_that_are_left_alone() {
    let f = filter(|_| {});
    let len: &'static str = big().len().to_string().leak();
    let g = Some("gzip");
    let cases = vec![
        left("no Accept-Encoding", None, 200, &[], true),
        left("q=0", Some("gzip;q=0, br;q=0, zstd;q=0"), 200, &[], true),
        left("only unknown codings", Some("deflate"), 200, &[], true),
        Left {
            method: Method::HEAD,
            ..left("HEAD", g, 200, &[("content-length", len)], true)
        },
        left("206", g, 206, &[("content-range", "bytes 0-9/100")], false),
        left("304", g, 304, &[], false),
        left("404", g, 404, &[], false),
        left(
            "already encoded",
            g,
            200,
            &[("content-encoding", "br")],
            false,
        ),
        left(
            "no-transform",
            g,
            200,
            &[("cache-control", "public, no-transform")],
            false,
        ),
        Left {
            headers: vec![("content-type", "image/png")],
            ..left("type not listed", g, 200, &[], false)
        },
        Left {
            headers: vec![],
            ..left("no type", g, 200, &[], false)
        },
        left("small", g, 200, &[("content-length", "1000")], false),
    ];
    for c in cases {
        let resp = response(c.status, &c.headers, ProxyBody::full(big()));
        let (resp, sent) = filtered(&f, c.method, c.accept, resp);
        let what = c.what;
        assert_eq!(sent, big(), "{what}: body changed");
        let want: &[&str] = if c.vary { &["Accept-Encoding"] } else { &[] };
        assert_eq!(all(&resp, "vary"), want, "{what}: Vary");
        for (k, v) in &c.headers {
            assert_eq!(all(&resp, k), [*v], "{what}: {k} changed");
        }
        if !c.headers.iter().any(|(k, _)| *k == "content-encoding") {
            assert!(
                all(&resp, "content-encoding").is_empty(),
                "{what}: compressed"
            );
        }
    }
}

#[test]
fn a_small_fixed_body_is_left_alone_and_an_identity_coding_is_replaced() {
    let f = filter(|_| {});
    let resp = response(
        200,
        &[("content-type", "text/plain")],
        ProxyBody::full("tiny"),
    );
    let (resp, sent) = filtered(&f, Method::GET, Some("gzip"), resp);
    assert!(all(&resp, "content-encoding").is_empty());
    assert_eq!(sent, b"tiny");
    let resp = response(200, &[("content-type", "text/plain")], ProxyBody::Empty);
    let (resp, _) = filtered(&f, Method::GET, Some("gzip"), resp);
    assert!(all(&resp, "content-encoding").is_empty());

    let resp = response(
        200,
        &[
            ("content-type", "text/plain"),
            ("content-encoding", "identity"),
        ],
        ProxyBody::full(big()),
    );
    let (resp, sent) = filtered(&f, Method::GET, Some("zstd"), resp);
    assert_eq!(all(&resp, "content-encoding"), ["zstd"]);
    assert_eq!(decode(Coding::Zstd, &sent), big());
}

#[test]
fn settings_are_followed() {
    // Offer order breaks ties; a coding not offered is never used.
    let f = filter(|c| c.algorithms = vec![Coding::Gzip, Coding::Zstd]);
    let resp = response(200, &[("content-type", "text/css")], ProxyBody::full(big()));
    let (resp, _) = filtered(&f, Method::GET, Some("br, zstd, gzip"), resp);
    assert_eq!(all(&resp, "content-encoding"), ["gzip"]);
    let resp = response(200, &[("content-type", "text/css")], ProxyBody::full(big()));
    let (resp, _) = filtered(&f, Method::GET, Some("br"), resp);
    assert!(all(&resp, "content-encoding").is_empty());
    assert_eq!(all(&resp, "vary"), ["Accept-Encoding"]);
    // Own types and size.
    let f = filter(|c| {
        c.content_types = vec!["application/*+json".into()];
        c.min_size = 0;
    });
    let resp = response(
        200,
        &[("content-type", "application/problem+json")],
        ProxyBody::full("{}"),
    );
    let (resp, sent) = filtered(&f, Method::GET, Some("gzip"), resp);
    assert_eq!(all(&resp, "content-encoding"), ["gzip"]);
    assert_eq!(decode(Coding::Gzip, &sent), b"{}");
    let resp = response(
        200,
        &[("content-type", "text/html")],
        ProxyBody::full(big()),
    );
    let (resp, _) = filtered(&f, Method::GET, Some("gzip"), resp);
    assert!(all(&resp, "content-encoding").is_empty());
}

#[test]
fn vary_and_etag_edge_cases() {
    let f = filter(|_| {});
    type Fields = &'static [(&'static str, &'static str)];
    let cases: &[(Fields, &[&str], &[&str])] = &[
        // (headers, Vary after, ETag after)
        (&[("etag", "W/\"w\"")], &["Accept-Encoding"], &["W/\"w\""]),
        (&[("etag", "unquoted")], &["Accept-Encoding"], &[]),
        (
            &[("etag", "\"a\""), ("etag", "\"b\"")],
            &["Accept-Encoding"],
            &[],
        ),
        (&[("vary", "*")], &["*"], &[]),
        (&[("vary", "accept-encoding")], &["accept-encoding"], &[]),
        (
            &[("vary", "Origin"), ("vary", "Cookie")],
            &["Origin, Cookie, Accept-Encoding"],
            &[],
        ),
    ];
    for (headers, vary, etag) in cases {
        let mut h = vec![("content-type", "text/html")];
        h.extend_from_slice(headers);
        let resp = response(200, &h, ProxyBody::full(big()));
        let (resp, _) = filtered(&f, Method::GET, Some("gzip"), resp);
        assert_eq!(all(&resp, "content-encoding"), ["gzip"]);
        assert_eq!(all(&resp, "vary"), *vary, "{headers:?}");
        assert_eq!(all(&resp, "etag"), *etag, "{headers:?}");
    }
}

#[test]
fn two_compress_filters_compress_once() {
    let outer = Arc::new(crate::filter::Filter::Compress(filter(|c| {
        c.algorithms = vec![Coding::Gzip]
    })));
    let inner = Arc::new(crate::filter::Filter::Compress(filter(|c| {
        c.algorithms = vec![Coding::Br]
    })));
    let chain = crate::filter::Chain::new(vec![outer, inner]);
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:9".parse().unwrap(),
        Method::GET,
        http::Uri::from_static("/"),
    );
    let mut parts = http::Request::get("/")
        .header("accept-encoding", "gzip, br")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let verdict = futures_util::FutureExt::now_or_never(chain.on_request(&mut cx, &mut parts));
    assert!(matches!(verdict, Some(Verdict::Continue)));
    let mut resp = response(
        200,
        &[("content-type", "text/html")],
        ProxyBody::full(big()),
    );
    chain.on_response(&cx, &mut resp);
    // The route's (inner) filter runs first on the response.
    assert_eq!(all(&resp, "content-encoding"), ["br"]);
    assert_eq!(all(&resp, "vary"), ["Accept-Encoding"]);
}

#[test]
fn counters_are_per_route_and_coding() {
    let metrics = Metrics::new();
    let f = filter(|c| c.algorithms = vec![Coding::Zstd, Coding::Gzip]).for_route("api", &metrics);
    let body = big();
    let resp = response(
        200,
        &[("content-type", "text/html")],
        ProxyBody::full(body.clone()),
    );
    let (_, sent) = filtered(&f, Method::GET, Some("gzip"), resp);
    let text = metrics.encode(crate::metrics::format::Format::Prometheus);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"))
            .rsplit_once(' ')
            .unwrap()
            .1
            .to_owned()
    };
    assert_eq!(
        line("switchyard_compressed_responses_total{route=\"api\",encoding=\"gzip\"}"),
        "1"
    );
    assert_eq!(
        line("switchyard_compressed_responses_total{route=\"api\",encoding=\"zstd\"}"),
        "0"
    );
    assert_eq!(
        line(
            "switchyard_compression_bytes_total{route=\"api\",encoding=\"gzip\",direction=\"in\"}"
        ),
        body.len().to_string()
    );
    assert_eq!(
        line(
            "switchyard_compression_bytes_total{route=\"api\",encoding=\"gzip\",direction=\"out\"}"
        ),
        sent.len().to_string()
    );
    assert!(
        !text.contains("encoding=\"br\""),
        "br is not offered:\n{text}"
    );
}
