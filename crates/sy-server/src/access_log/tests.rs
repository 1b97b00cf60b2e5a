use super::format::{civil, clf_time};
use super::*;

/// The example record with no text.
fn blank() -> Record {
    let mut r = Record::example();
    r.text.clear();
    r.spans = [None; SLOTS];
    r
}

fn line(r: &Record, fields: &[Field], json: bool) -> String {
    let mut out = Vec::new();
    if json {
        write_json(&mut out, r, fields);
    } else {
        write_combined(&mut out, r, fields);
    }
    String::from_utf8(out).expect("lines are UTF-8")
}

#[test]
fn rfc3339_times() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),
    ];
    for (ms, want) in cases {
        let mut out = Vec::new();
        rfc3339(&mut out, ms);
        assert_eq!(String::from_utf8(out).unwrap(), want, "{ms}");
    }
    let mut out = Vec::new();
    clf_time(&mut out, 1_700_000_000_123);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "14/Nov/2023:22:13:20 +0000"
    );
}

#[test]
fn json_line_has_every_field_in_order() {
    let r = Record::example();
    let s = line(&r, &Field::ALL, true);
    assert_eq!(
        s,
        r#"{"time":"2023-11-14T22:13:20.123Z","client":"127.0.0.1:40000","method":"GET","host":"example.com","path":"/a?b=c","protocol":"HTTP/1.1","status":200,"bytes_in":0,"bytes_out":5,"duration_ms":1.234,"upstream_connect_ms":null,"ttfb_ms":0.800,"route":"all","upstream":"u","server":"127.0.0.1:8081","attempts":1,"trace_id":null,"user_agent":"curl/8.5.0","request_id":"3f2a-rid"}"#
    );
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 19);
}

#[test]
fn json_subset_and_order() {
    let r = Record::example();
    let s = line(&r, &[Field::Status, Field::Path, Field::TraceId], true);
    assert_eq!(s, r#"{"status":200,"path":"/a?b=c","trace_id":null}"#);
    let mut r = Record::example();
    r.trace_id = Some([0xab; 16]);
    r.connect_ns = Some(2_000_001);
    let s = line(&r, &[Field::TraceId, Field::UpstreamConnectMs], true);
    assert_eq!(
        s,
        format!(
            r#"{{"trace_id":"{}","upstream_connect_ms":2.000}}"#,
            "ab".repeat(16)
        )
    );
}

#[test]
fn json_escapes_anything() {
    let mut out = Vec::new();
    json_escape(
        &mut out,
        b"a\"b\\c\nd\re\tf\x00g\x1fh\x7fi\xffj\xc3\xa9k\xe2\x80",
    );
    let s = String::from_utf8(out).unwrap();
    assert_eq!(s, r#"a\"b\\c\nd\re\tf\u0000g\u001fh\u007fi\ufffdjék\ufffd"#);
    let parsed: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
    assert_eq!(parsed, "a\"b\\c\nd\re\tf\0g\x1fh\x7fi\u{fffd}jék\u{fffd}");
}

#[test]
fn json_lines_are_valid_for_hostile_input() {
    let mut r = blank();
    r.push(Slot::Host, Some(b"\"},\"x\":1,{\""));
    r.push(Slot::Path, Some(b"/\xff\xfe\x00\n\"\\"));
    r.push(Slot::UserAgent, Some("Mozilla/5.0 (\u{2028}ü)".as_bytes()));
    let s = line(&r, &Field::ALL, true);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["host"], "\"},\"x\":1,{\"");
    assert_eq!(v["path"], "/\u{fffd}\u{fffd}\0\n\"\\");
    assert_eq!(v["user_agent"], "Mozilla/5.0 (\u{2028}ü)");
    assert!(v["route"].is_null() && v["upstream"].is_null() && v["server"].is_null());
    assert!(!s.contains('\n'));
}

#[test]
fn combined_line() {
    let r = Record::example();
    let s = line(&r, &Field::ALL, false);
    assert_eq!(
        s,
        "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /a?b=c HTTP/1.1\" 200 5 \"-\" \"curl/8.5.0\" \
         host=\"example.com\" bytes_in=0 duration_ms=1.234 upstream_connect_ms=- ttfb_ms=0.800 \
         route=\"all\" upstream=\"u\" server=\"127.0.0.1:8081\" attempts=1 trace_id=- request_id=\"3f2a-rid\""
    );
    let s = line(&r, &[Field::Status, Field::Route], false);
    assert_eq!(s, "- - - [-] \"- - -\" 200 - \"-\" \"-\" route=\"all\"");
}

#[test]
fn combined_escapes() {
    let mut r = blank();
    r.push(Slot::Path, Some(b"/a b\"c\\d\ne\xc3\xa9"));
    r.push(Slot::UserAgent, Some(b"x\"y"));
    r.push(Slot::Referer, Some(b"http://r/"));
    let s = line(&r, &[Field::Path, Field::UserAgent], false);
    assert_eq!(
        s,
        "- - - [-] \"- /a b\\x22c\\x5Cd\\x0Ae\\xC3\\xA9 -\" - - \"http://r/\" \"x\\x22y\""
    );
}

#[test]
fn fields_parse_by_name() {
    for f in Field::ALL {
        assert_eq!(Field::parse(f.name()), Some(f));
    }
    assert_eq!(Field::parse("nope"), None);
    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names, sy_config::model::ACCESS_LOG_FIELDS);
}

#[test]
fn civil_matches_known_dates() {
    // Every day boundary for a few years round-trips through the month
    // lengths.
    let mut ms = 946_684_800_000u64; // 2000-01-01
    let mut expect = (2000i64, 1u32, 1u32);
    for _ in 0..(366 * 5) {
        let (y, m, d, ..) = civil(ms);
        assert_eq!((y, m, d), expect);
        let leap = (expect.0 % 4 == 0 && expect.0 % 100 != 0) || expect.0 % 400 == 0;
        let len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][expect.1 as usize - 1];
        expect = if expect.2 < len {
            (expect.0, expect.1, expect.2 + 1)
        } else if expect.1 < 12 {
            (expect.0, expect.1 + 1, 1)
        } else {
            (expect.0 + 1, 1, 1)
        };
        ms += 86_400_000;
    }
}

#[test]
fn fast_formatters_match_core_fmt() {
    use super::format::push_u64;
    for n in [0, 1, 9, 10, 99, 100, 4_294_967_295, u64::MAX] {
        let mut out = Vec::new();
        push_u64(&mut out, n);
        assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
    }
    let addrs: [SocketAddr; 4] = [
        "0.0.0.0:0".parse().unwrap(),
        "255.255.255.255:65535".parse().unwrap(),
        "10.20.3.4:8080".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    ];
    for a in addrs {
        let mut r = Record::example();
        r.client = a;
        let s = line(&r, &[Field::Client], true);
        assert_eq!(s, format!(r#"{{"client":"{a}"}}"#));
        let s = line(&r, &[Field::Client], false);
        assert!(s.starts_with(&format!("{} - - [", a.ip())), "{s}");
    }
    let mut r = Record::example();
    r.trace_id = Some(*b"\x00\x01\x0a\x0f\x10\xab\xff\x7f\x80\x99\x00\x00\x00\x00\x00\x01");
    r.duration_ns = 12_345_678_901;
    let s = line(&r, &[Field::TraceId, Field::DurationMs], true);
    assert_eq!(
        s,
        r#"{"trace_id":"00010a0f10abff7f8099000000000001","duration_ms":12345.678}"#
    );
    let mut out = Vec::new();
    clf_escape(&mut out, b"\x00\x7f\xff\x1f");
    assert_eq!(out, br"\x00\x7F\xFF\x1F");
}

#[test]
fn numbers_of_every_length_match_core_fmt() {
    use super::format::push_u64;
    let mut n: u64 = 1;
    for _ in 0..20 {
        for m in [
            n - 1,
            n,
            n.saturating_add(1),
            n.saturating_mul(9),
            n.saturating_mul(5).saturating_add(3),
            u64::MAX,
        ] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, m);
            assert_eq!(out, format!("x{m}").into_bytes(), "{m}");
        }
        n = n.saturating_mul(10);
    }
}

#[test]
fn json_keys_are_the_field_names() {
    let r = Record::example();
    for (i, f) in Field::ALL.into_iter().enumerate() {
        assert_eq!(f as usize, i);
        let s = line(&r, &[f], true);
        assert!(s.starts_with(&format!("{{\"{}\":", f.name())), "{s}");
        let s = line(&r, &[Field::Status, f], true);
        assert!(
            s.starts_with(&format!("{{\"status\":200,\"{}\":", f.name())),
            "{s}"
        );
    }
    assert_eq!(line(&r, &[], true), "{}");
    for (v, want) in [
        (Version::HTTP_09, "HTTP/0.9"),
        (Version::HTTP_10, "HTTP/1.0"),
        (Version::HTTP_11, "HTTP/1.1"),
        (Version::HTTP_2, "HTTP/2"),
        (Version::HTTP_3, "HTTP/3"),
    ] {
        let mut r = Record::example();
        r.protocol = v;
        assert_eq!(
            line(&r, &[Field::Protocol], true),
            format!(r#"{{"protocol":"{want}"}}"#)
        );
    }
}

#[test]
fn cached_seconds_change_with_the_time() {
    // Same second, other milliseconds; the next second; back again; a
    // different day; the last four-digit year and beyond.
    let cases = [
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_999, "2023-11-14T22:13:20.999Z"),
        (1_700_000_001_000, "2023-11-14T22:13:21.000Z"),
        (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "10000-01-01T00:00:00.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ];
    for (ms, want) in cases {
        let mut out = b"x".to_vec();
        rfc3339(&mut out, ms);
        assert_eq!(String::from_utf8(out).unwrap(), format!("x{want}"), "{ms}");
    }
}

#[test]
fn word_at_a_time_escapes_match_byte_by_byte() {
    // Every byte value at every position of strings of 0 to 20 bytes,
    // against the byte-by-byte definition of the two escapes.
    fn json_slow(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\0'..='\x1f' | '\x7f' => {
                        out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    }
                    c => out.extend_from_slice(c.to_string().as_bytes()),
                }
            }
            if !chunk.invalid().is_empty() {
                out.extend_from_slice(b"\\ufffd");
            }
        }
        out
    }
    fn clf_slow(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                out.push(b);
            } else {
                out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
            }
        }
        out
    }
    for len in 0..=20usize {
        let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut out = b"x".to_vec();
        json_escape(&mut out, &base);
        assert_eq!(&out[1..], &base[..]);
        for pos in 0..len {
            for b in 0..=255u8 {
                let mut s = base.clone();
                s[pos] = b;
                let mut out = b"x".to_vec();
                json_escape(&mut out, &s);
                assert_eq!(out[1..], json_slow(&s)[..], "{s:?}");
                let mut out = b"x".to_vec();
                clf_escape(&mut out, &s);
                assert_eq!(out[1..], clf_slow(&s)[..], "{s:?}");
            }
        }
    }
}

#[test]
fn worker_caps_split_the_queue() {
    assert_eq!(worker_cap(8192, 1), 8192 * LINE_BYTES);
    assert_eq!(worker_cap(8192, 4), 8192 * LINE_BYTES / 4);
    assert_eq!(worker_cap(16, 2), MIN_CAP);
    assert_eq!(worker_cap(usize::MAX, 0), usize::MAX);
}

fn log_to(dir: &std::path::Path, format: &str, workers: usize) -> (Arc<AccessLog>, Counter) {
    let cfg = model::AccessLog {
        format: if format == "json" {
            AccessLogFormat::Json
        } else {
            AccessLogFormat::Combined
        },
        path: dir.join("access.log").to_string_lossy().into_owned(),
        fields: vec!["status".into(), "path".into(), "route".into()],
        sample: 1.0,
        queue: 16,
    };
    let dropped = Counter::default();
    let log = AccessLog::start(&cfg, workers, dropped.clone()).unwrap();
    (Arc::new(log), dropped)
}

/// One request through `begin` and `answered`; its response is dropped
/// unread, which ends it.
fn request(log: &Arc<AccessLog>, path: &str, answer: Option<u16>) {
    let req = Request::get(path).body(ProxyBody::Empty).unwrap();
    let client = SocketAddr::from(([127, 0, 0, 1], 1));
    let obs = Observed::begin(Some(log), &req, client, Instant::now()).unwrap();
    if let Some(status) = answer {
        let mut resp = Response::new(ProxyBody::full("hello"));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        let ex = Exchange::default();
        drop(obs.answered(resp, &ex, Some("r"), None, None));
    }
}

#[test]
fn lines_reach_the_file_and_close_flushes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (log, dropped) = log_to(dir.path(), "json", 2);
    request(&log, "/a", Some(200));
    request(&log, "/b", None);
    request(&log, "/c?x=%22", Some(503));
    log.close();
    // Closed: later lines are dropped and counted, never lost silently.
    request(&log, "/late", Some(200));
    assert_eq!(dropped.get(), 1);
    let text = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    assert_eq!(
        text,
        "{\"status\":200,\"path\":\"/a\",\"route\":\"r\"}\n\
         {\"status\":499,\"path\":\"/b\",\"route\":null}\n\
         {\"status\":503,\"path\":\"/c?x=%22\",\"route\":\"r\"}\n"
    );
}

#[test]
fn a_full_worker_buffer_drops_and_counts_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (log, dropped) = log_to(dir.path(), "combined", 1);
    // Fill the buffer faster than the writer (every 10 ms) can take it:
    // lines of ~4 KiB, 64 KiB of cap.
    let path = format!("/{}", "p".repeat(4000));
    let n = 1000;
    for _ in 0..n {
        request(&log, &path, Some(200));
    }
    log.close();
    let text = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let written = text.lines().count() as u64;
    assert!(dropped.get() > 0, "nothing dropped");
    assert_eq!(written + dropped.get(), n);
    assert!(text.lines().all(|l| l.ends_with("route=\"r\"")));
}

#[test]
fn every_ipv4_octet_formats_like_display() {
    for o in 0..=255u8 {
        for a in [
            SocketAddr::from(([o, 0, o, 255], 1)),
            SocketAddr::from(([10, o, 1, o], 65535)),
        ] {
            let mut r = Record::example();
            r.client = a;
            assert_eq!(
                line(&r, &[Field::Client], true),
                format!(r#"{{"client":"{a}"}}"#)
            );
            assert!(line(&r, &[Field::Client], false).starts_with(&format!("{} - - [", a.ip())));
        }
    }
}

#[test]
fn methods_are_quoted_like_any_text() {
    for m in [
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PURGE",
        "M-SEARCH",
    ] {
        let mut r = Record::example();
        r.method = Method::from_bytes(m.as_bytes()).unwrap();
        assert_eq!(
            line(&r, &[Field::Method], true),
            format!(r#"{{"method":"{m}"}}"#)
        );
        assert!(line(&r, &[Field::Method, Field::Path], false).contains(&format!("\"{m} /a?b=c ")));
    }
}

/// The headers the log reads, found by one pass over a short header map
/// and by look-ups in a long one, are the first value of each.
#[test]
fn logged_headers_are_the_first_of_each() {
    for extra in [0, 4, 11, 12, 13, 40] {
        let mut h = HeaderMap::new();
        h.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.append(header::USER_AGENT, HeaderValue::from_static("ua-1"));
        for i in 0..extra {
            h.append(
                http::header::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h.append(header::HOST, HeaderValue::from_static("h-1"));
        h.append(header::USER_AGENT, HeaderValue::from_static("ua-2"));
        h.append(header::HOST, HeaderValue::from_static("h-2"));
        let [host, ua, referer] = logged_headers(&h, true, true);
        assert_eq!(host, Some(&b"h-1"[..]), "{extra}");
        assert_eq!(ua, Some(&b"ua-1"[..]), "{extra}");
        assert_eq!(referer, None, "{extra}");
        h.append(header::REFERER, HeaderValue::from_static("r"));
        assert_eq!(
            logged_headers(&h, true, true)[2],
            Some(&b"r"[..]),
            "{extra}"
        );
        assert_eq!(
            logged_headers(&h, false, false)[1..],
            [None, None],
            "{extra}"
        );
    }
}
