#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

use Coding::{Br, Gzip, Zstd};

const SERVER: &[Coding] = &[Br, Zstd, Gzip];

fn pick(header: &str) -> Option<Coding> {
    negotiate([header.as_bytes()], SERVER)
}

#[test]
fn negotiation_table() {
    let cases: &[(&str, Option<Coding>)] = &[
        // Browsers.
        ("gzip, deflate, br, zstd", Some(Br)),
        ("gzip, deflate, br", Some(Br)),
        ("gzip, deflate", Some(Gzip)),
        ("zstd", Some(Zstd)),
        // Case-insensitive tokens, x-gzip, whitespace.
        ("GZIP", Some(Gzip)),
        ("x-gzip", Some(Gzip)),
        (" \tBr ;  Q=0.5 ", Some(Br)),
        // q-values decide; server order breaks ties.
        ("gzip;q=1, br;q=0.5", Some(Gzip)),
        ("gzip;q=0.8, zstd;q=0.8, br;q=0.1", Some(Zstd)),
        ("br;q=0.001", Some(Br)),
        ("gzip;q=1.0, br;q=1.000", Some(Br)),
        // q=0 excludes.
        ("br;q=0, gzip", Some(Gzip)),
        ("br;q=0.000, zstd;q=0, gzip;q=0", None),
        ("gzip;q=0.", None),
        // `*` covers what is not listed.
        ("*", Some(Br)),
        ("*;q=0.5, br;q=0.2", Some(Zstd)),
        ("*;q=0, gzip", Some(Gzip)),
        ("*;q=0", None),
        // identity preferred over the codings: no coding.
        ("gzip;q=0.5, identity", None),
        ("gzip;q=0.5, identity;q=0.5", Some(Gzip)),
        ("gzip, identity;q=0", Some(Gzip)),
        ("identity", None),
        ("*;q=0.5, identity;q=1", None),
        // Empty, unknown codings only.
        ("", None),
        ("deflate, compress", None),
        // A coding listed twice keeps its lowest q.
        ("gzip, gzip;q=0", None),
        ("br;q=0.9, br;q=0.3, gzip;q=0.5", Some(Gzip)),
        // Malformed elements are ignored, the rest counts.
        ("gzip;q=2, br", Some(Br)),
        ("br;q=abc, gzip", Some(Gzip)),
        ("br;q=0.0001, gzip", Some(Gzip)),
        ("br;q=1.5, gzip;q=0.2", Some(Gzip)),
        ("br;q, gzip", Some(Gzip)),
        ("b r, gzip", Some(Gzip)),
        ("br;;q=1, gzip;q=0.1", Some(Gzip)),
        (",,, ,gzip,", Some(Gzip)),
        ("br;q=-1", None),
        // Other parameters are ignored.
        ("br;level=5;q=0.4, gzip;q=0.3", Some(Br)),
    ];
    for (header, want) in cases {
        assert_eq!(pick(header), *want, "Accept-Encoding: {header:?}");
    }
}

#[test]
fn no_header_means_no_coding() {
    assert_eq!(negotiate(std::iter::empty(), SERVER), None);
    assert_eq!(Accepted::default().choose(SERVER), None);
}

#[test]
fn several_field_lines_form_one_list() {
    let lines: [&[u8]; 2] = [b"gzip;q=0.5", b"br;q=0.9"];
    assert_eq!(negotiate(lines, SERVER), Some(Br));
    let lines: [&[u8]; 2] = [b"br", b"br;q=0"];
    assert_eq!(negotiate(lines, SERVER), None);
}

#[test]
fn only_offered_codings_are_chosen() {
    assert_eq!(negotiate([&b"br, zstd"[..]], &[Gzip]), None);
    assert_eq!(negotiate([&b"br, gzip"[..]], &[Gzip, Br]), Some(Gzip));
    assert_eq!(negotiate([&b"*"[..]], &[Zstd]), Some(Zstd));
    assert_eq!(negotiate([&b"*"[..]], &[]), None);
}

#[test]
fn qvalues() {
    for (text, q) in [
        ("0", Some(0)),
        ("0.", Some(0)),
        ("0.5", Some(500)),
        ("0.05", Some(50)),
        ("0.123", Some(123)),
        ("1", Some(1000)),
        ("1.", Some(1000)),
        ("1.000", Some(1000)),
        ("1.001", None),
        ("0.1234", None),
        ("2", None),
        (".5", None),
        ("", None),
        ("0.5x", None),
        ("01", None),
    ] {
        assert_eq!(qvalue(text.as_bytes()), q, "{text:?}");
    }
}

fn pat(s: &str) -> TypePattern {
    TypePattern::parse(s).unwrap()
}

#[test]
fn type_patterns() {
    let cases: &[(&str, &str, bool)] = &[
        ("text/*", "text/html", true),
        ("text/*", "TEXT/HTML; charset=utf-8", true),
        ("text/*", "text/", false),
        ("text/*", "textual/html", false),
        ("application/json", "application/json", true),
        ("application/json", "application/json ; charset=utf-8", true),
        ("application/json", "application/jsonx", false),
        ("application/json", "application/problem+json", false),
        ("application/*+json", "application/problem+json", true),
        ("application/*+json", "application/vnd.api+JSON", true),
        ("application/*+json", "application/+json", false),
        ("application/*+json", "application/json", false),
        ("image/svg+xml", "image/svg+xml", true),
        ("image/svg+xml", "image/png", false),
        ("text/html", "", false),
        ("text/html", "garbage", false),
        ("text/html", " text/html ", true),
    ];
    for (p, ct, want) in cases {
        assert_eq!(pat(p).matches(ct.as_bytes()), *want, "{p} vs {ct:?}");
    }
}

#[test]
fn bad_type_patterns() {
    for bad in [
        "text",
        "*/*",
        "*/html",
        "text/*html",
        "te xt/html",
        "text/ht*ml",
        "",
        "/",
        "text/",
        "text/*+",
        "text/*+a*",
    ] {
        assert!(TypePattern::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(pat(" Text/HTML ").to_string(), "text/html");
    assert_eq!(pat("application/*+json").to_string(), "application/*+json");
    assert_eq!(pat("text/*").to_string(), "text/*");
}

fn facts(status: u16, ct: &'static str, length: Option<u64>) -> Facts<'static> {
    Facts {
        status,
        content_type: Some(ct.as_bytes()),
        length,
        ..Facts::default()
    }
}

#[test]
fn eligibility_table() {
    let types = [pat("text/*"), pat("application/json")];
    let rules = Rules {
        min_size: 1024,
        types: &types,
    };
    let ok = facts(200, "text/html", Some(5000));
    let c = Some(Gzip);
    let cases: Vec<(&str, Facts<'_>, Option<Coding>, Decision)> = vec![
        ("plain 200", ok, c, Decision::Compress(Gzip)),
        (
            "unknown length",
            facts(200, "text/html", None),
            c,
            Decision::Compress(Gzip),
        ),
        (
            "exactly min_size",
            facts(200, "text/html", Some(1024)),
            c,
            Decision::Compress(Gzip),
        ),
        (
            "201",
            facts(201, "application/json", Some(2000)),
            c,
            Decision::Compress(Gzip),
        ),
        ("client accepts none", ok, None, Decision::Vary),
        ("HEAD", Facts { head: true, ..ok }, c, Decision::Vary),
        (
            "HEAD, client accepts none",
            Facts { head: true, ..ok },
            None,
            Decision::Vary,
        ),
        (
            "too small",
            facts(200, "text/html", Some(1023)),
            c,
            Decision::Leave,
        ),
        (
            "empty",
            facts(200, "text/html", Some(0)),
            c,
            Decision::Leave,
        ),
        (
            "type not listed",
            facts(200, "image/png", Some(5000)),
            c,
            Decision::Leave,
        ),
        (
            "no type",
            Facts {
                content_type: None,
                ..ok
            },
            c,
            Decision::Leave,
        ),
        (
            "already encoded",
            Facts {
                encoded: true,
                ..ok
            },
            c,
            Decision::Leave,
        ),
        (
            "no-transform",
            Facts {
                no_transform: true,
                ..ok
            },
            c,
            Decision::Leave,
        ),
        ("204", facts(204, "text/html", None), c, Decision::Leave),
        ("205", facts(205, "text/html", None), c, Decision::Leave),
        (
            "206",
            facts(206, "text/html", Some(5000)),
            c,
            Decision::Leave,
        ),
        ("304", facts(304, "text/html", None), c, Decision::Leave),
        (
            "404",
            facts(404, "text/html", Some(5000)),
            c,
            Decision::Leave,
        ),
        (
            "500",
            facts(500, "text/html", Some(5000)),
            c,
            Decision::Leave,
        ),
        ("101", facts(101, "text/html", None), c, Decision::Leave),
    ];
    for (name, f, chosen, want) in cases {
        assert_eq!(decide(&f, &rules, chosen), want, "{name}");
    }
    let zero = Rules {
        min_size: 0,
        types: &types,
    };
    assert_eq!(
        decide(&facts(200, "text/html", Some(1)), &zero, c),
        Decision::Compress(Gzip)
    );
    assert_eq!(
        decide(&facts(200, "text/html", Some(0)), &zero, c),
        Decision::Leave
    );
}

#[test]
fn encoded_and_no_transform() {
    let enc = |v: &[&str]| is_encoded(v.iter().map(|s| s.as_bytes()));
    assert!(!enc(&[]));
    assert!(!enc(&["identity"]));
    assert!(!enc(&["Identity, "]));
    assert!(enc(&["gzip"]));
    assert!(enc(&["identity", "br"]));
    assert!(enc(&["custom"]));
    let nt = |v: &[&str]| has_no_transform(v.iter().map(|s| s.as_bytes()));
    assert!(nt(&["no-transform"]));
    assert!(nt(&["public, max-age=60, No-Transform"]));
    assert!(nt(&["max-age=60", "no-transform"]));
    assert!(!nt(&["no-store, max-age=0"]));
    assert!(!nt(&["no-transformation"]));
    assert!(!nt(&[]));
}

#[test]
fn etags_are_weakened() {
    let r = |s: &str| EtagChange::Replace(s.as_bytes().to_vec());
    assert_eq!(weaken_etag(b"\"abc\""), r("W/\"abc\""));
    assert_eq!(weaken_etag(b"\"\""), r("W/\"\""));
    assert_eq!(weaken_etag(b" \"v1\" "), r("W/\"v1\""));
    assert_eq!(weaken_etag(b"W/\"abc\""), EtagChange::Keep);
    assert_eq!(weaken_etag(b"abc"), EtagChange::Remove);
    assert_eq!(weaken_etag(b"\"a\"b\""), EtagChange::Remove);
    assert_eq!(weaken_etag(b"w/\"abc\""), EtagChange::Remove);
    assert_eq!(weaken_etag(b"\""), EtagChange::Remove);
    assert_eq!(weaken_etag(b""), EtagChange::Remove);
}

proptest! {
    /// Any bytes: no panic, the choice is offered, acceptable (q > 0) and
    /// has the highest q of the offered codings.
    #[test]
    fn negotiation_never_picks_an_excluded_coding(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3),
        offer in proptest::sample::subsequence(Coding::ALL.to_vec(), 0..=3),
    ) {
        let acc = Accepted::parse(lines.iter().map(Vec::as_slice));
        if let Some(c) = acc.choose(&offer) {
            prop_assert!(offer.contains(&c));
            prop_assert!(acc.quality(c) > 0);
            prop_assert!(acc.quality(c) >= acc.identity().unwrap_or(0));
            for o in &offer {
                prop_assert!(acc.quality(*o) <= acc.quality(c));
            }
        }
    }

    /// Lists built from the grammar: the choice matches a direct reading
    /// of the q-values.
    #[test]
    fn negotiation_follows_the_qvalues(
        entries in proptest::collection::vec(
            (prop_oneof![Just("gzip"), Just("br"), Just("zstd"), Just("*"), Just("identity"), Just("deflate")],
             0u16..=1000),
            0..6),
    ) {
        let header = entries
            .iter()
            .map(|(c, q)| format!("{c};q={}.{:03}", q / 1000, q % 1000))
            .collect::<Vec<_>>()
            .join(", ");
        let acc = Accepted::parse([header.as_bytes()]);
        let q_of = |name: &str| entries.iter().filter(|(c, _)| *c == name).map(|(_, q)| *q).min();
        let star = q_of("*");
        for c in Coding::ALL {
            prop_assert_eq!(acc.quality(c), q_of(c.token()).or(star).unwrap_or(0));
        }
        prop_assert_eq!(acc.identity(), q_of("identity").or(star));
        if let Some(c) = acc.choose(SERVER) {
            prop_assert!(acc.quality(c) > 0);
        }
    }

    /// Patterns and ETags on any input: no panic.
    #[test]
    fn header_helpers_never_panic(s in "\\PC{0,30}", b in proptest::collection::vec(any::<u8>(), 0..30)) {
        if let Ok(p) = TypePattern::parse(&s) {
            let _ = p.matches(&b);
            prop_assert!(TypePattern::parse(&p.to_string()).is_ok());
        }
        let _ = weaken_etag(&b);
        let _ = is_encoded([b.as_slice()]);
        let _ = has_no_transform([b.as_slice()]);
    }
}
