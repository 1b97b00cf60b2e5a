//! The `cors` filter in a file: what a valid one turns into (defaults,
//! normalised origins and names) and how each mistake is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sy_config::model::{CorsFilter, CorsOrigin, Filter, FilterRef};

mod support;

use support::{parse_err, parse_ok};

fn only_cors(config: &sy_config::Config) -> &CorsFilter {
    match &config.filters[0].filter {
        Filter::Cors(c) => c,
        other => panic!("not a cors filter: {other:?}"),
    }
}

#[test]
fn defaults_and_normalisation() {
    let config = parse_ok(
        r#"
        [filters.api-cors.cors]
        allow_origins = ["HTTPS://App.Example", "http://localhost:3000", "https://*.Example.com", { regex = '^https://[a-z]+\.partner\.net$' }, "null"]
        "#,
    );
    let c = only_cors(&config);
    assert_eq!(
        c.allow_origins,
        [
            CorsOrigin::Pattern("https://app.example".into()),
            CorsOrigin::Pattern("http://localhost:3000".into()),
            CorsOrigin::Pattern("https://*.example.com".into()),
            CorsOrigin::Regex {
                regex: r"^https://[a-z]+\.partner\.net$".into()
            },
            CorsOrigin::Pattern("null".into()),
        ]
    );
    assert_eq!(c.allow_methods, ["GET", "HEAD", "POST"]);
    assert!(c.allow_headers.is_empty() && c.expose_headers.is_empty());
    assert!(!c.allow_credentials);
    assert_eq!(c.max_age, None);
    // What the server compiles it with.
    let policy = sy_policy::cors::Policy::new(&c.spec()).unwrap();
    assert!(policy.allows_origin("https://a.example.com"));
    assert!(policy.allows_origin("https://abc.partner.net"));
    assert!(!policy.allows_origin("https://evil-example.com"));
}

#[test]
fn every_key() {
    let config = parse_ok(
        r#"
        [listeners.web]
        address = "127.0.0.1:8080"
        filters = [{ cors = { allow_origins = ["*"], allow_headers = ["*"], expose_headers = ["*"] } }]
        [[routes]]
        name = "api"
        respond = { body = "ok" }
        filters = [{ cors = { allow_origins = ["https://app.example"], allow_methods = ["get", "put", "DELETE"], allow_headers = ["Content-Type", "X-Api-Key"], expose_headers = ["X-Total"], allow_credentials = true, max_age = "10m" } }]
        "#,
    );
    let FilterRef::Inline(Filter::Cors(listener)) = &config.listeners[0].filters[0] else {
        panic!("{:?}", config.listeners[0].filters);
    };
    assert_eq!(listener.allow_origins, [CorsOrigin::Pattern("*".into())]);
    assert_eq!(listener.allow_headers, ["*"]);
    assert_eq!(listener.expose_headers, ["*"]);
    let FilterRef::Inline(Filter::Cors(route)) = &config.routes[0].filters[0] else {
        panic!("{:?}", config.routes[0].filters);
    };
    assert_eq!(route.allow_methods, ["GET", "PUT", "DELETE"]);
    assert_eq!(route.allow_headers, ["content-type", "x-api-key"]);
    assert_eq!(route.expose_headers, ["x-total"]);
    assert!(route.allow_credentials);
    assert_eq!(route.max_age, Some(Duration::from_secs(600)));
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let cases: &[(&str, &str)] = &[
        (
            "cors = {}",
            "filters.c.cors: a cors filter needs allow_origins",
        ),
        ("cors = { allow_origins = [] }", "allow_origins is empty"),
        (
            r#"cors = { allow_origins = ["*"], allow_credentials = true }"#,
            "filters.c.cors.allow_credentials: allow_origins = [\"*\"] cannot go with allow_credentials = true",
        ),
        (
            r#"cors = { allow_origins = ["*", "https://a.example"] }"#,
            "filters.c.cors.allow_origins[0]: `*` allows every origin and must be the only entry",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example/"] }"#,
            "filters.c.cors.allow_origins[0]: an origin has no path",
        ),
        (
            r#"cors = { allow_origins = ["a.example"] }"#,
            "an origin is scheme://host[:port], e.g. \"https://a.example\"",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example:443"] }"#,
            "browsers leave the default port out of an origin",
        ),
        (
            r#"cors = { allow_origins = ["https://*.com"] }"#,
            "would allow every site under `.com`",
        ),
        (
            r#"cors = { allow_origins = ["https://api.*.example.com"] }"#,
            "a wildcard must be the whole first label",
        ),
        (
            r#"cors = { allow_origins = [{ regex = 'https://(a' }] }"#,
            "filters.c.cors.allow_origins[0].regex: invalid regex: unclosed group",
        ),
        (
            r#"cors = { allow_origins = [{}] }"#,
            "filters.c.cors.allow_origins[0]: missing required key `regex`",
        ),
        (
            r#"cors = { allow_origins = [{ regexp = 'x' }] }"#,
            "unknown key `regexp`",
        ),
        (
            r#"cors = { allow_origins = [5] }"#,
            "expected an origin such as \"https://app.example\" or a table { regex = \"...\" }",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], allow_methods = ["GET", "*"] }"#,
            "filters.c.cors.allow_methods[1]: `*` allows any name and must be the only entry",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], allow_methods = ["GE T"] }"#,
            "filters.c.cors.allow_methods[0]: invalid HTTP method",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], allow_headers = ["x api"] }"#,
            "filters.c.cors.allow_headers[0]: invalid header name",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], expose_headers = ["*"], allow_credentials = true }"#,
            "filters.c.cors.expose_headers[0]: `*` exposes every header only on requests without credentials",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], max_age = "2d" }"#,
            "filters.c.cors.max_age: max_age must be at most 1d",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], max_age = "1500ms" }"#,
            "filters.c.cors.max_age: max_age is sent in whole seconds",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], max_age = "soon" }"#,
            "filters.c.cors.max_age",
        ),
        (
            r#"cors = { allow_origins = ["https://a.example"], allow_credential = true }"#,
            "did you mean `allow_credentials`?",
        ),
    ];
    for (filter, want) in cases {
        let err = parse_err(&format!("[filters.c]\n{filter}\n"));
        assert!(err.contains(want), "{filter}\nwant: {want}\ngot:\n{err}");
    }
}

#[test]
fn a_list_holds_one_cors_and_a_route_may_replace_its_listeners() {
    let err = parse_err(
        r#"
        [filters.a.cors]
        allow_origins = ["https://a.example"]
        [filters.b]
        cors = { allow_origins = ["https://b.example"] }
        [listeners.web]
        address = "127.0.0.1:8080"
        filters = ["a", { cors = { allow_origins = ["*"] } }]
        [[routes]]
        name = "r"
        respond = { body = "ok" }
        filters = ["a", "b"]
        "#,
    );
    assert!(
        err.contains("listeners.web.filters[1]: a filters list has at most one cors filter"),
        "{err}"
    );
    assert!(
        err.contains("routes[0].filters[1]: a filters list has at most one cors filter"),
        "{err}"
    );
    // One in the listener's list and one in the route's is fine.
    parse_ok(
        r#"
        [filters.a.cors]
        allow_origins = ["https://a.example"]
        [listeners.web]
        address = "127.0.0.1:8080"
        filters = ["a"]
        [[routes]]
        name = "r"
        respond = { body = "ok" }
        filters = [{ cors = { allow_origins = ["https://b.example"] } }]
        "#,
    );
}
