#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_valid_version_00() {
    let p = parse_traceparent(TP.as_bytes()).unwrap();
    assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(p.span_id, 0x00f067aa0ba902b7);
    assert_eq!(p.flags, 1);
    assert!(p.sampled());
    let p = parse_traceparent(TP.replace("-01", "-00").as_bytes()).unwrap();
    assert!(!p.sampled());
    // Unknown flag bits are read, the sampled bit is bit 0.
    let p = parse_traceparent(TP.replace("-01", "-02").as_bytes()).unwrap();
    assert!(!p.sampled());
}

#[test]
fn rejects_invalid() {
    let bad = [
        // version ff is invalid
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        // all-zero trace id / parent id
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".to_string(),
        // upper-case hex
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01".to_string(),
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        // version 00 with anything after it
        format!("{TP}-extra"),
        format!("{TP}0"),
        // too short, wrong separators, non-hex
        TP[..54].to_string(),
        TP.replace('-', "_"),
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x".to_string(),
        String::new(),
        // future version: more data must follow a '-'
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x".to_string(),
    ];
    for b in &bad {
        assert_eq!(parse_traceparent(b.as_bytes()), None, "{b:?}");
    }
}

#[test]
fn accepts_future_versions() {
    let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
    let p = parse_traceparent(v.as_bytes()).unwrap();
    assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert!(p.sampled());
    // Exactly 55 characters in a future version is fine too.
    let v = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert!(parse_traceparent(v.as_bytes()).is_some());
}

#[test]
fn formats_and_round_trips() {
    let out = format_traceparent(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true);
    assert_eq!(std::str::from_utf8(&out).unwrap(), TP);
    let out = format_traceparent(1, 2, false);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "00-00000000000000000000000000000001-0000000000000002-00"
    );
    for _ in 0..100 {
        let (t, s) = (new_trace_id(), new_span_id());
        let p = parse_traceparent(&format_traceparent(t, s, true)).unwrap();
        assert_eq!((p.trace_id, p.span_id, p.flags), (t, s, 1));
    }
    assert_eq!(
        trace_id_hex(0x4bf92f3577b34da6a3ce929d0e0e4736),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn duplicate_traceparent_is_invalid() {
    let mut h = HeaderMap::new();
    h.append(&TRACEPARENT, HeaderValue::from_static(TP));
    assert!(incoming_parent(&h).is_some());
    h.append(&TRACEPARENT, HeaderValue::from_static(TP));
    assert!(incoming_parent(&h).is_none());
}

#[test]
fn ratio_sampling() {
    assert!(!ratio_sampled(u128::MAX, ratio_bound(0.0)));
    assert!(!ratio_sampled(0, ratio_bound(0.0)));
    assert!(ratio_sampled(u128::MAX, ratio_bound(1.0)));
    assert!(ratio_sampled(0, ratio_bound(1.0)));
    // Low half of the id decides: ids below the line are sampled.
    let half = ratio_bound(0.5);
    assert!(ratio_sampled(
        0x0000_0000_0000_0000_3fff_ffff_ffff_ffff,
        half
    ));
    assert!(!ratio_sampled(
        0xffff_ffff_ffff_ffff_8000_0000_0000_0000,
        half
    ));
    let n = 20_000;
    let hits = (0..n)
        .filter(|_| ratio_sampled(new_trace_id(), ratio_bound(0.1)))
        .count();
    assert!((1_400..2_600).contains(&hits), "{hits} of {n} at 10%");
}

#[test]
fn host_port_split() {
    assert_eq!(
        split_host_port("example.com:8080"),
        ("example.com", Some(8080))
    );
    assert_eq!(split_host_port("example.com"), ("example.com", None));
    assert_eq!(split_host_port("[::1]:443"), ("::1", Some(443)));
    assert_eq!(split_host_port("[::1]"), ("::1", None));
    assert_eq!(split_host_port("::1"), ("::1", None));
}

#[test]
fn injects_without_tracing_nothing() {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(&TRACEPARENT, HeaderValue::from_static(TP));
    req.headers_mut()
        .insert(&TRACESTATE, HeaderValue::from_static("a=b"));
    let to = UpstreamSide {
        upstream: "u",
        host: "127.0.0.1",
        authority: "127.0.0.1:80",
        tls: false,
        attempt: 1,
    };
    assert!(attempt_start(None, &mut req, &to).is_none());
    assert_eq!(req.headers()[&TRACEPARENT], TP);
    assert_eq!(req.headers()[&TRACESTATE], "a=b");
}

#[test]
fn injects_unsampled_context() {
    let to = UpstreamSide {
        upstream: "u",
        host: "127.0.0.1",
        authority: "127.0.0.1:80",
        tls: false,
        attempt: 1,
    };
    // Continued: same trace, new parent id, tracestate kept.
    let ctx = TraceCtx {
        trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
        span_id: 7,
        parent: Some(0x00f067aa0ba902b7),
        sampled: false,
        stale_state: false,
        rec: None,
    };
    let mut req = Request::new(());
    req.headers_mut()
        .insert(&TRACEPARENT, HeaderValue::from_static(TP));
    req.headers_mut()
        .insert(&TRACESTATE, HeaderValue::from_static("a=b"));
    assert!(attempt_start(Some(&ctx), &mut req, &to).is_none());
    let p = parse_traceparent(req.headers()[&TRACEPARENT].as_bytes()).unwrap();
    assert_eq!(p.trace_id, ctx.trace_id);
    assert_ne!(p.span_id, 0x00f067aa0ba902b7);
    assert_eq!(p.flags, 0);
    assert_eq!(req.headers()[&TRACESTATE], "a=b");
    // New trace: a stale tracestate is not passed on.
    let ctx = TraceCtx {
        parent: None,
        stale_state: true,
        ..ctx
    };
    let mut req = Request::new(());
    req.headers_mut()
        .insert(&TRACESTATE, HeaderValue::from_static("a=b"));
    assert!(attempt_start(Some(&ctx), &mut req, &to).is_none());
    assert!(req.headers().get(&TRACESTATE).is_none());
    assert!(req.headers().get(&TRACEPARENT).is_some());
}

/// One pass over a short header map and look-ups in a long one agree.
#[test]
fn finds_trace_headers_in_short_and_long_maps() {
    for extra in [0, 5, 11, 12, 13, 30] {
        let mut h = HeaderMap::new();
        for i in 0..extra {
            h.append(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(trace_headers(&h), (false, false), "{extra}");
        h.append(&TRACESTATE, HeaderValue::from_static("a=b"));
        assert_eq!(trace_headers(&h), (false, true), "{extra}");
        h.append(&TRACEPARENT, HeaderValue::from_static(TP));
        assert_eq!(trace_headers(&h), (true, true), "{extra}");
        h.remove(&TRACESTATE);
        assert_eq!(trace_headers(&h), (true, false), "{extra}");
    }
}

#[test]
fn ids_are_non_zero_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        assert!(seen.insert(new_trace_id()));
        assert_ne!(new_span_id(), 0);
    }
    assert_eq!(trace_id_hex(0xff), format!("{:032x}", 0xff));
}
