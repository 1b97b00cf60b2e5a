#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn spec(origins: &[&str]) -> Spec {
    Spec {
        allow_origins: origins
            .iter()
            .map(|o| match o.strip_prefix("re:") {
                Some(r) => OriginSpec::Regex(r.to_owned()),
                None if *o == "*" => OriginSpec::Any,
                None => OriginSpec::Pattern((*o).to_owned()),
            })
            .collect(),
        allow_methods: DEFAULT_METHODS.map(str::to_owned).to_vec(),
        ..Spec::default()
    }
}

fn policy(origins: &[&str]) -> Policy {
    Policy::new(&spec(origins)).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn origin_entries_parse_or_say_what_is_wrong() {
    // (entry, Ok(normalised exact) | Ok("wildcard") | Err(part of the message))
    let table: &[(&str, Result<&str, &str>)] = &[
        ("https://app.example", Ok("https://app.example")),
        ("HTTPS://App.Example", Ok("https://app.example")),
        ("http://localhost:3000", Ok("http://localhost:3000")),
        ("http://127.0.0.1:8080", Ok("http://127.0.0.1:8080")),
        ("http://[::1]:8080", Ok("http://[::1]:8080")),
        ("http://[::1]", Ok("http://[::1]")),
        ("chrome-extension://abcdef", Ok("chrome-extension://abcdef")),
        ("https://app.example:8443", Ok("https://app.example:8443")),
        ("null", Ok("null")),
        ("https://*.example.com", Ok("wildcard")),
        ("https://*.example.com:8443", Ok("wildcard")),
        ("https://*.a.example.com", Ok("wildcard")),
        ("*", Err("must be the only entry")),
        ("app.example", Err("e.g. \"https://app.example\"")),
        ("", Err("scheme://host[:port]")),
        ("https://app.example/", Err("no path")),
        ("https://app.example/api", Err("remove `/api`")),
        ("https://app.example?x", Err("no path")),
        ("https://user@app.example", Err("no user name")),
        (
            "https://app.example:443",
            Err("write \"https://app.example\""),
        ),
        ("http://app.example:80", Err("default port")),
        ("https://app.example:0", Err("invalid port")),
        ("https://app.example:99999", Err("invalid port")),
        ("https://app.example:", Err("invalid port")),
        ("https://app.example:x", Err("invalid port")),
        ("https://", Err("needs a host")),
        ("https://a..example", Err("empty label")),
        ("https://app example", Err("invalid character")),
        ("1https://app.example", Err("invalid scheme")),
        ("https://*.com", Err("every site under `.com`")),
        ("https://*", Err("whole first label")),
        ("https://a.*.example.com", Err("whole first label")),
        ("https://*app.example.com", Err("whole first label")),
        ("https://*.*.example.com", Err("whole first label")),
        ("https://*.0.0.1", Err("not part of an IP address")),
        ("http://[::1", Err("closing `]`")),
        ("http://[zz]", Err("invalid IPv6")),
    ];
    for (entry, want) in table {
        let got = OriginPattern::parse(entry);
        match (want, &got) {
            (Ok("wildcard"), Ok(OriginPattern::Wildcard { .. })) => {}
            (Ok(exact), Ok(OriginPattern::Exact(e))) => assert_eq!(e, exact, "{entry}"),
            (Err(part), Err(message)) => {
                assert!(
                    message.contains(part),
                    "{entry}: {message:?} lacks {part:?}"
                );
            }
            _ => panic!("{entry}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn regex_entries_compile_anchored_or_explain() {
    assert!(OriginPattern::regex("^https://[a-z]+\\.example\\.com$").is_ok());
    let e = OriginPattern::regex("https://(a").unwrap_err();
    assert_eq!(e, "invalid regex: unclosed group");
}

#[test]
fn origins_match_exactly_what_they_say() {
    let p = policy(&[
        "https://app.example",
        "http://localhost:3000",
        "https://*.example.com",
        "http://*.dev.example:8080",
        "re:https://[a-z]+\\.partner\\.net",
        "re:https://x\\.test|https://y\\.test",
    ]);
    let table: &[(&str, bool)] = &[
        // Exact: scheme, host and port all count; case does not.
        ("https://app.example", true),
        ("HTTPS://APP.EXAMPLE", true),
        ("http://app.example", false),
        ("https://app.example:8443", false),
        ("https://app.example.evil", false),
        ("https://evilapp.example", false),
        ("https://app.example/", false),
        ("http://localhost:3000", true),
        ("http://localhost:3001", false),
        ("http://localhost", false),
        // Wildcards: one or more labels, never the apex, never a look-alike.
        ("https://a.example.com", true),
        ("https://a.b.example.com", true),
        ("https://A.Example.COM", true),
        ("https://example.com", false),
        ("https://.example.com", false),
        ("https://a..example.com", false),
        ("https://evil-example.com", false),
        ("https://evilexample.com", false),
        ("https://a.example.com.evil.net", false),
        ("https://example.com.a.example.net", false),
        ("http://a.example.com", false),
        ("https://a.example.com:8443", false),
        ("https://a b.example.com", false),
        ("https://a/b.example.com", false),
        // A wildcard with a port: that port only.
        ("http://a.dev.example:8080", true),
        ("http://a.dev.example", false),
        ("http://a.dev.example:8081", false),
        // Regexes: the whole origin (anchored for the user).
        ("https://abc.partner.net", true),
        ("https://abc.partner.net.evil", false),
        ("https://a1.partner.net", false),
        ("evil https://abc.partner.net", false),
        ("https://x.test", true),
        ("https://y.test", true),
        ("https://x.test.evil", false),
        ("https://evil.y.test", false),
        // The opaque origin matches no pattern unless listed.
        ("null", false),
        ("", false),
    ];
    for (origin, want) in table {
        assert_eq!(p.allows_origin(origin), *want, "{origin}");
    }
}

#[test]
fn null_is_allowed_only_when_listed() {
    assert!(policy(&["null"]).allows_origin("null"));
    assert!(!policy(&["re:.*"]).allows_origin("null"));
    assert!(policy(&["re:.*"]).allows_origin("https://anything"));
    // An empty (or unreadable) origin: only "*".
    assert!(!policy(&["re:.*"]).allows_origin(""));
    assert!(!policy(&["re:(https://a)?"]).allows_origin(""));
    assert!(policy(&["*"]).allows_origin(""));
    // "*" answers `*`, which browsers accept for the opaque origin too.
    assert!(policy(&["*"]).allows_origin("null"));
}

#[test]
fn policies_that_cannot_work_are_refused() {
    let with = |origins: &[&str], f: &dyn Fn(&mut Spec)| {
        let mut s = spec(origins);
        f(&mut s);
        Policy::new(&s).map(|_| ()).unwrap_err()
    };
    let e = with(&["*"], &|s| s.allow_credentials = true);
    assert!(e.contains("allow_credentials"), "{e}");
    let e = with(&["*", "https://a.example"], &|_| ());
    assert!(e.contains("only entry"), "{e}");
    let e = with(&[], &|_| ());
    assert!(e.contains("empty"), "{e}");
    let e = with(&["https://a.example"], &|s| {
        s.expose_headers = strings(&["*"]);
        s.allow_credentials = true;
    });
    assert!(e.contains("expose_headers"), "{e}");
    let e = with(&["https://a.example"], &|s| {
        s.allow_headers = strings(&["*", "x-a"]);
    });
    assert!(e.contains("only entry"), "{e}");
    let e = with(&["https://a.example/"], &|_| ());
    assert!(e.contains("no path"), "{e}");
}

/// The header fields of a preflight answer as `name: value` lines, or the
/// refusal.
fn preflight(p: &Policy, origin: &str, method: &str, headers: &str) -> Result<Vec<String>, String> {
    p.preflight(origin, method, headers)
        .map(|a| a.headers().map(|(n, v)| format!("{n}: {v}")).collect())
        .map_err(|r| r.to_string())
}

#[test]
fn preflights_are_answered_with_exact_headers() {
    let mut s = spec(&["https://app.example"]);
    s.allow_methods = strings(&["GET", "POST", "PUT", "DELETE"]);
    s.allow_headers = strings(&["Content-Type", "X-Api-Key"]);
    s.allow_credentials = true;
    s.max_age_secs = Some(600);
    let p = Policy::new(&s).unwrap();
    let allowed = Ok(vec![
        "access-control-allow-origin: https://app.example".to_owned(),
        "access-control-allow-credentials: true".to_owned(),
        "access-control-allow-methods: GET, POST, PUT, DELETE".to_owned(),
        "access-control-allow-headers: content-type, x-api-key".to_owned(),
        "access-control-max-age: 600".to_owned(),
        "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
    ]);
    let table: &[(&str, &str, &str, Result<(), &str>)] = &[
        ("https://app.example", "PUT", "x-api-key", Ok(())),
        (
            "https://app.example",
            "PUT",
            "content-type,x-api-key",
            Ok(()),
        ),
        (
            "https://app.example",
            "PUT",
            " X-API-KEY , Content-Type ",
            Ok(()),
        ),
        ("https://app.example", "DELETE", "", Ok(())),
        ("https://app.example", "PUT", ",,", Ok(())),
        // GET, HEAD and POST pass whatever the list says (as in browsers).
        ("https://app.example", "HEAD", "", Ok(())),
        // Methods are case-sensitive, as browsers compare them.
        (
            "https://app.example",
            "put",
            "",
            Err("method put not allowed"),
        ),
        (
            "https://app.example",
            "PATCH",
            "",
            Err("method PATCH not allowed"),
        ),
        (
            "https://app.example",
            "PUT",
            "x-api-key, x-debug",
            Err("request header x-debug not allowed"),
        ),
        (
            "https://app.example",
            "PUT",
            "authorization",
            Err("request header authorization not allowed"),
        ),
        (
            "https://evil.example",
            "PUT",
            "x-api-key",
            Err("origin not allowed"),
        ),
        ("null", "GET", "", Err("origin not allowed")),
    ];
    for (origin, method, headers, want) in table {
        let got = preflight(&p, origin, method, headers);
        match want {
            Ok(()) => assert_eq!(got, allowed, "{origin} {method} {headers:?}"),
            Err(e) => assert_eq!(got, Err((*e).to_owned()), "{origin} {method} {headers:?}"),
        }
    }
}

#[test]
fn preflight_wildcards_echo_what_was_asked() {
    let mut s = spec(&["https://*.example.com"]);
    s.allow_methods = strings(&["*"]);
    s.allow_headers = strings(&["*"]);
    s.allow_credentials = true;
    let p = Policy::new(&s).unwrap();
    assert_eq!(
        preflight(&p, "https://a.example.com", "PATCH", "authorization, x-b"),
        Ok(vec![
            "access-control-allow-origin: https://a.example.com".to_owned(),
            "access-control-allow-credentials: true".to_owned(),
            "access-control-allow-methods: PATCH".to_owned(),
            "access-control-allow-headers: authorization, x-b".to_owned(),
            "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
                .to_owned(),
        ])
    );
    // An empty (or unreadable) method is never echoed.
    assert_eq!(
        preflight(&p, "https://a.example.com", "", ""),
        Err("method  not allowed".to_owned())
    );
    // No headers asked: no Allow-Headers.
    assert_eq!(
        preflight(&p, "https://a.example.com", "GET", "").map(|h| h.len()),
        Ok(4)
    );
}

#[test]
fn any_origin_answers_a_literal_star_and_no_vary_origin() {
    let mut s = spec(&["*"]);
    s.allow_headers = strings(&["x-a"]);
    s.expose_headers = strings(&["X-Total"]);
    let p = Policy::new(&s).unwrap();
    assert_eq!(
        preflight(&p, "https://anyone.example", "POST", "x-a"),
        Ok(vec![
            "access-control-allow-origin: *".to_owned(),
            "access-control-allow-methods: GET, HEAD, POST".to_owned(),
            "access-control-allow-headers: x-a".to_owned(),
            "vary: Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
        ])
    );
    for origin in [Some("https://anyone.example"), Some("null"), None] {
        let a = p.actual(origin);
        assert_eq!(
            a.headers().collect::<Vec<_>>(),
            [
                ("access-control-allow-origin", "*"),
                ("access-control-expose-headers", "x-total"),
            ],
            "{origin:?}"
        );
        assert!(!a.vary_origin);
    }
    assert_eq!(p.actual(None).outcome, Outcome::NotCors);
    assert_eq!(p.actual(Some("null")).outcome, Outcome::Allowed);
    assert_eq!(
        p.preflight_vary(),
        "Access-Control-Request-Method, Access-Control-Request-Headers"
    );
}

#[test]
fn actual_requests_get_headers_only_for_an_allowed_origin() {
    let mut s = spec(&["https://app.example", "https://*.example.com"]);
    s.expose_headers = strings(&["X-Request-Id", "X-Total"]);
    s.allow_credentials = true;
    let p = Policy::new(&s).unwrap();
    type Row<'a> = (Option<&'a str>, Outcome, &'a [(&'a str, &'a str)]);
    let table: &[Row<'_>] = &[
        (
            Some("https://app.example"),
            Outcome::Allowed,
            &[
                ("access-control-allow-origin", "https://app.example"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-request-id, x-total"),
            ],
        ),
        (
            // The origin is echoed as the browser sent it.
            Some("https://b.example.com"),
            Outcome::Allowed,
            &[
                ("access-control-allow-origin", "https://b.example.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-request-id, x-total"),
            ],
        ),
        (Some("https://evil-example.com"), Outcome::Denied, &[]),
        (Some("null"), Outcome::Denied, &[]),
        (None, Outcome::NotCors, &[]),
    ];
    for (origin, outcome, headers) in table {
        let a = p.actual(*origin);
        assert_eq!(a.outcome, *outcome, "{origin:?}");
        assert_eq!(a.headers().collect::<Vec<_>>(), *headers, "{origin:?}");
        // Every answer of an origin-dependent policy varies by Origin.
        assert!(a.vary_origin, "{origin:?}");
    }
}

#[test]
fn credentials_are_sent_only_when_configured() {
    let p = policy(&["https://app.example"]);
    let a = p.actual(Some("https://app.example"));
    assert_eq!(
        a.headers().collect::<Vec<_>>(),
        [("access-control-allow-origin", "https://app.example")]
    );
    let pre = p.preflight("https://app.example", "GET", "").unwrap();
    assert!(!pre.allow_credentials);
    assert_eq!(pre.max_age, None);
}

#[test]
fn empty_method_list_sends_no_allow_methods() {
    let mut s = spec(&["https://app.example"]);
    s.allow_methods.clear();
    let p = Policy::new(&s).unwrap();
    let names: Vec<&str> = p
        .preflight("https://app.example", "POST", "")
        .unwrap()
        .headers()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["access-control-allow-origin", "vary"]);
    assert_eq!(
        p.preflight("https://app.example", "PUT", ""),
        Err(Refusal::Method("PUT"))
    );
}

#[test]
fn preflights_are_recognised() {
    assert!(is_preflight("OPTIONS", true, true));
    assert!(!is_preflight("OPTIONS", false, true));
    assert!(!is_preflight("OPTIONS", true, false));
    assert!(!is_preflight("GET", true, true));
    assert!(!is_preflight("options", true, true));
}

#[test]
fn owned_headers_cover_every_header_the_policy_sends() {
    let mut s = spec(&["https://app.example"]);
    s.allow_headers = strings(&["x-a"]);
    s.expose_headers = strings(&["x-b"]);
    s.allow_credentials = true;
    s.max_age_secs = Some(5);
    let p = Policy::new(&s).unwrap();
    let pre = p.preflight("https://app.example", "GET", "x-a").unwrap();
    let act = p.actual(Some("https://app.example"));
    for (name, _) in pre.headers().chain(act.headers()) {
        assert!(name == "vary" || OWNED_HEADERS.contains(&name), "{name}");
    }
}
