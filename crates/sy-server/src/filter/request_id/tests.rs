#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn filter(trust: TrustIncoming) -> RequestId {
    RequestId::new(&RequestIdFilter {
        header: "x-request-id".into(),
        trust_incoming: trust,
        response: true,
    })
    .unwrap()
}

fn request(id: Option<&str>) -> Parts {
    let mut b = http::Request::get("/x");
    if let Some(id) = id {
        b = b.header("x-request-id", id);
    }
    b.body(()).unwrap().into_parts().0
}

fn cx(trusted: bool) -> RequestCx<'static> {
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:1".parse().unwrap(),
        http::Method::GET,
        http::Uri::from_static("/x"),
    );
    cx.trusted_peer = trusted;
    cx
}

#[test]
fn a_missing_id_is_made_and_returned() {
    let f = filter(TrustIncoming::Trusted);
    let (mut cx, mut req) = (cx(false), request(None));
    assert!(matches!(f.on_request(&mut cx, &mut req), Verdict::Continue));
    let id = req.headers["x-request-id"].clone();
    assert_eq!(cx.request_id.as_ref(), Some(&id));
    let s = id.to_str().unwrap();
    assert_eq!(s.len(), 36);
    assert_eq!(&s[14..15], "4", "version 4: {s}");
    let mut resp = http::Response::new(ProxyBody::Empty);
    f.on_response(&cx, &mut resp);
    assert_eq!(resp.headers()["x-request-id"], id);
}

#[test]
fn an_incoming_id_is_kept_only_from_whom_trust_says() {
    let kept = |trust, trusted, incoming: &str| {
        let (mut cx, mut req) = (cx(trusted), request(Some(incoming)));
        filter(trust).on_request(&mut cx, &mut req);
        req.headers["x-request-id"] == incoming
    };
    assert!(kept(TrustIncoming::Trusted, true, "abc-123"));
    assert!(!kept(TrustIncoming::Trusted, false, "abc-123"));
    assert!(kept(TrustIncoming::Always, false, "abc-123"));
    assert!(!kept(TrustIncoming::Never, true, "abc-123"));
    // Malformed or oversized ids are replaced even from trusted peers.
    assert!(!kept(TrustIncoming::Always, true, "has space"));
    assert!(!kept(TrustIncoming::Always, true, &"x".repeat(201)));
}

#[test]
fn ids_differ() {
    let a = new_id();
    let b = new_id();
    assert_ne!(a, b);
}
