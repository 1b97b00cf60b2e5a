//! `cors = { ... }`: allowed origins (exact, wildcard hosts, regexes, `*`),
//! methods, headers, exposed headers, credentials and the preflight max
//! age. Origins are checked by `sy_policy::cors`, which the server compiles
//! them with, so what validates here always compiles there.

use std::time::Duration;

use sy_policy::cors::{DEFAULT_METHODS, OriginPattern};
use toml::Spanned;

use super::Cx;
use super::fields::{Zero, is_token};
use crate::diagnostic::{index, join};
use crate::model::{CorsFilter, CorsOrigin};
use crate::raw::{RawCors, RawCorsOrigin, Text};

const ORIGIN_HINT: &str = "an origin is scheme://host[:port] as browsers send it, e.g. \"https://app.example.com\", \"http://localhost:3000\" or \"https://*.example.com\"";

const REGEX_HINT: &str = "the regex must match the whole Origin, e.g. '^https://[a-z0-9-]+\\.example\\.com$'; write it in single quotes ('...') so backslashes need no escaping";

pub(super) fn cors(cx: &mut Cx<'_>, raw: &Spanned<RawCors>, path: &str) -> CorsFilter {
    let r = raw.get_ref();
    let p = |key: &str| join(path, key);
    let allow_credentials = r.allow_credentials.as_ref().is_some_and(|b| *b.get_ref());
    let allow_origins = origins(cx, raw, path);
    let any = allow_origins
        .iter()
        .any(|o| matches!(o, CorsOrigin::Pattern(p) if p == "*"));
    if any
        && allow_credentials
        && let Some(c) = &r.allow_credentials
    {
        cx.report
            .error_value(
                c.span(),
                &p("allow_credentials"),
                "allow_origins = [\"*\"] cannot go with allow_credentials = true",
            )
            .hint("browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests, and echoing every origin would let any site read your users' data: list the origins (\"https://*.example.com\" and regexes work too)");
    }
    let allow_methods = match &r.allow_methods {
        None => DEFAULT_METHODS.map(str::to_owned).to_vec(),
        Some(list) => names(cx, list, &p("allow_methods"), Names::Methods),
    };
    let allow_headers = r
        .allow_headers
        .as_ref()
        .map(|l| names(cx, l, &p("allow_headers"), Names::Headers))
        .unwrap_or_default();
    let expose_headers = r
        .expose_headers
        .as_ref()
        .map(|l| names(cx, l, &p("expose_headers"), Names::Headers))
        .unwrap_or_default();
    if allow_credentials
        && expose_headers == ["*"]
        && let Some(list) = &r.expose_headers
        && let Some(star) = list.first()
    {
        cx.report
            .error_value(
                star.span(),
                &index(&p("expose_headers"), 0),
                "`*` exposes every header only on requests without credentials",
            )
            .hint("with allow_credentials = true, list the header names scripts may read");
    }
    let max_age = r.max_age.as_ref().and_then(|v| {
        let at = p("max_age");
        let (d, clean) = cx.clean(|cx| cx.duration(Some(v), &at, Duration::ZERO, Zero::Allowed));
        if clean && d.subsec_nanos() != 0 {
            cx.report
                .error_value(v.span(), &at, "max_age is sent in whole seconds")
                .hint("e.g. \"10m\" or \"600s\"");
        }
        clean.then_some(d)
    });
    CorsFilter {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age,
    }
}

/// `allow_origins` of the filter at `filter`: required, not empty, `*`
/// alone.
fn origins(cx: &mut Cx<'_>, raw: &Spanned<RawCors>, filter: &str) -> Vec<CorsOrigin> {
    let path = &join(filter, "allow_origins");
    let Some(list) = &raw.get_ref().allow_origins else {
        if !cx.report.was_pruned(path) {
            cx.report
                .error(raw.span(), filter, "a cors filter needs allow_origins")
                .hint("e.g. cors = { allow_origins = [\"https://app.example.com\"] }");
        }
        return Vec::new();
    };
    if list.get_ref().is_empty() {
        cx.report
            .error(list.span(), path, "allow_origins is empty: no origin would be allowed")
            .hint("list the origins whose pages may call this API, e.g. [\"https://app.example.com\"]");
        return Vec::new();
    }
    let mut out = Vec::new();
    let many = list.get_ref().len() > 1;
    for (i, entry) in list.get_ref().iter().enumerate() {
        let at = index(path, i);
        match entry.get_ref() {
            RawCorsOrigin::Text(t) if t == "*" => {
                if many {
                    cx.report
                        .error_value(entry.span(), &at, "`*` allows every origin and must be the only entry")
                        .hint("remove `*` to allow only the listed origins, or the others to allow every origin");
                }
                out.push(CorsOrigin::Pattern("*".to_owned()));
            }
            RawCorsOrigin::Text(t) => match OriginPattern::parse(t) {
                Ok(OriginPattern::Exact(exact)) => out.push(CorsOrigin::Pattern(exact)),
                Ok(_) => out.push(CorsOrigin::Pattern(t.to_ascii_lowercase())),
                Err(message) => {
                    cx.report
                        .error_value(entry.span(), &at, message)
                        .hint(ORIGIN_HINT);
                }
            },
            RawCorsOrigin::Table(table) => match &table.regex {
                None => cx.missing(entry.span(), &at, "regex"),
                Some(re) => match OriginPattern::regex(re.get_ref()) {
                    Ok(_) => out.push(CorsOrigin::Regex {
                        regex: re.get_ref().clone(),
                    }),
                    Err(message) => {
                        cx.report
                            .error_value(re.span(), &join(&at, "regex"), message)
                            .hint(REGEX_HINT);
                    }
                },
            },
        }
    }
    out
}

/// What a list of names holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// HTTP methods, upper-cased.
    Methods,
    /// Header names, lower-cased.
    Headers,
}

/// A list of methods or header names; `*` alone means any.
fn names(cx: &mut Cx<'_>, list: &[Text], path: &str, kind: Names) -> Vec<String> {
    let many = list.len() > 1;
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let at = index(path, i);
            let value = text.get_ref();
            if value == "*" {
                if many {
                    cx.report
                        .error_value(
                            text.span(),
                            &at,
                            "`*` allows any name and must be the only entry",
                        )
                        .hint(
                            "remove `*` to allow only the listed names, or the others to allow any",
                        );
                }
                return Some("*".to_owned());
            }
            if !is_token(value) {
                let (message, hint) = match kind {
                    Names::Methods => {
                        ("invalid HTTP method", "e.g. \"GET\", \"PUT\" or \"DELETE\"")
                    }
                    Names::Headers => (
                        "invalid header name",
                        "header names use letters, digits and `-`, e.g. \"x-api-key\"",
                    ),
                };
                cx.report.error_value(text.span(), &at, message).hint(hint);
                return None;
            }
            Some(match kind {
                Names::Methods => value.to_ascii_uppercase(),
                Names::Headers => value.to_ascii_lowercase(),
            })
        })
        .collect()
}
