//! `[[routes]]`: match conditions, the action and per-route limits.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::fields::{host_pattern, is_header_value, is_token};
use super::{Cx, Known, route_policy};
use crate::diagnostic::{did_you_mean, index, join, list};
use crate::model::{
    Action, Match, PathMatch, Redirect, RedirectTarget, Route, Split, SplitBackend, ValueMatch,
};
use crate::raw::{RawCondition, RawMatch, RawRedirect, RawRespond, RawRoute, RawSplit, Text};

const ACTIONS: [&str; 4] = ["upstream", "respond", "redirect", "split"];
const ONE_ACTION: &str = "set exactly one of `upstream`, `respond`, `redirect` or `split`";
const PATH_KEYS: [&str; 3] = ["path", "path_exact", "path_regex"];
const REDIRECT_STATUSES: [i64; 5] = [301, 302, 303, 307, 308];

pub(super) fn validate(
    cx: &mut Cx<'_>,
    i: usize,
    raw: &Spanned<RawRoute>,
    known: &Known<'_>,
) -> Route {
    let path = index("routes", i);
    let p = |key: &str| join(&path, key);
    let r = raw.get_ref();
    let name = match &r.name {
        Some(name) => cx.name(name, &p("name"), "route"),
        None => {
            cx.missing(raw.span(), &path, "name");
            String::new()
        }
    };
    let listeners = r
        .listeners
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, text)| {
            let target = text.get_ref();
            if !known.listeners.contains(&target.as_str())
                && !cx.report.was_pruned(&join("listeners", target))
            {
                let hint = reference_hint(target, &known.listeners, "listener", "[listeners.NAME]");
                cx.report
                    .error_value(
                        text.span(),
                        &index(&p("listeners"), j),
                        format!("unknown listener `{target}`"),
                    )
                    .hint(hint);
            }
            target.clone()
        })
        .collect();
    let matcher = r
        .matcher
        .as_ref()
        .map(|m| matcher(cx, m, &p("match")))
        .unwrap_or_default();
    let action = action(cx, raw, &path, known);
    let timeout = cx.opt_duration(r.timeout.as_ref(), &p("timeout"));
    let max_request_body = r
        .max_request_body
        .as_ref()
        .map(|size| cx.size(Some(size), &p("max_request_body"), 0, (0, u64::MAX)));
    let host_rewrite = r
        .host_rewrite
        .as_ref()
        .map(|host| self::host_rewrite(cx, host, &p("host_rewrite")));
    let retry = r
        .retry
        .as_ref()
        .map(|retry| route_policy::retry(cx, retry, &p("retry")));
    let hedge = r
        .hedge
        .as_ref()
        .map(|hedge| route_policy::hedge(cx, hedge, &p("hedge")));
    let mirror = r
        .mirror
        .as_ref()
        .map(|mirror| route_policy::mirror(cx, mirror, &p("mirror"), known));
    let policies = [
        ("retry", r.retry.as_ref().map(Spanned::span)),
        ("hedge", r.hedge.as_ref().map(Spanned::span)),
        ("mirror", r.mirror.as_ref().map(Spanned::span)),
    ];
    let answers = match &action {
        Action::Respond { .. } => Some("respond"),
        Action::Redirect(_) => Some("redirect"),
        Action::Upstream(_) | Action::Split(_) => None,
    };
    if let Some(answer) = answers {
        for (key, span) in policies {
            let Some(span) = span else { continue };
            cx.report
                .error(
                    span,
                    &p(key),
                    format!("`{key}` applies to routes with `upstream` or `split` only"),
                )
                .hint(format!(
                    "this route answers with `{answer}` and never contacts an upstream; remove [routes.{key}]"
                ));
        }
    }
    let filters = super::filters::list(cx, r.filters.as_ref(), &p("filters"), &known.filters);
    Route {
        name,
        listeners,
        matcher,
        action,
        timeout,
        max_request_body,
        host_rewrite,
        retry,
        hedge,
        mirror,
        filters,
    }
}

/// A reference to an upstream: reported (with a "did you mean") when no
/// `[upstreams.NAME]` defines it.
pub(super) fn upstream_ref(cx: &mut Cx<'_>, name: &Text, path: &str, known: &Known<'_>) -> String {
    let target = name.get_ref();
    if !known.upstreams.contains(&target.as_str())
        && !cx.report.was_pruned(&join("upstreams", target))
    {
        let hint = reference_hint(target, &known.upstreams, "upstream", "[upstreams.NAME]");
        cx.report
            .error_value(name.span(), path, format!("unknown upstream `{target}`"))
            .hint(hint);
    }
    target.clone()
}

/// "did you mean", or the list of defined names, or how to define one.
pub(super) fn reference_hint(target: &str, names: &[&str], what: &str, table: &str) -> String {
    if let Some(best) = did_you_mean(target, names.iter().copied()) {
        format!("did you mean `{best}`?")
    } else if names.is_empty() {
        format!("no {what}s are defined; add a {table} table")
    } else {
        format!("defined {what}s: {}", list(names, "and"))
    }
}

fn action(cx: &mut Cx<'_>, raw: &Spanned<RawRoute>, path: &str, known: &Known<'_>) -> Action {
    let r = raw.get_ref();
    let spans: [Option<Range<usize>>; 4] = [
        r.upstream.as_ref().map(Spanned::span),
        r.respond.as_ref().map(Spanned::span),
        r.redirect.as_ref().map(Spanned::span),
        r.split.as_ref().map(Spanned::span),
    ];
    let given: Vec<(&str, Range<usize>)> = ACTIONS
        .iter()
        .zip(spans)
        .filter_map(|(key, span)| span.map(|s| (*key, s)))
        .collect();
    let pruned = ACTIONS
        .iter()
        .any(|key| cx.report.was_pruned(&join(path, key)));
    match given.as_slice() {
        [] if !pruned => {
            cx.report
                .error(raw.span(), path, "route has no action")
                .hint(ONE_ACTION);
        }
        [_, extra @ ..] => {
            for (key, span) in extra {
                cx.report
                    .error(
                        span.clone(),
                        &join(path, key),
                        format!(
                            "a route takes only one action; `{}` is already set",
                            given[0].0
                        ),
                    )
                    .hint(ONE_ACTION);
            }
        }
        [] => {}
    }
    if let Some(name) = &r.upstream {
        return Action::Upstream(upstream_ref(cx, name, &join(path, "upstream"), known));
    }
    if let Some(respond) = &r.respond {
        return self::respond(cx, respond, &join(path, "respond"));
    }
    if let Some(redirect) = &r.redirect {
        return self::redirect(cx, redirect, &join(path, "redirect"));
    }
    if let Some(split) = &r.split {
        return Action::Split(self::split(cx, split, &join(path, "split"), known));
    }
    Action::Upstream(String::new())
}

fn split(cx: &mut Cx<'_>, raw: &Spanned<RawSplit>, path: &str, known: &Known<'_>) -> Split {
    let s = raw.get_ref();
    let list_path = join(path, "backends");
    let mut backends = Vec::new();
    match &s.backends {
        None => cx.missing(raw.span(), path, "backends"),
        Some(list) if list.get_ref().is_empty() => {
            cx.report
                .error(
                    list.span(),
                    &list_path,
                    "a split needs at least one backend",
                )
                .hint(
                    "add [[routes.split.backends]] entries with upstream = \"NAME\" and weight = N",
                );
        }
        Some(list) => {
            // (upstream, index in the file) of the entries kept so far.
            let mut seen: Vec<(String, usize)> = Vec::new();
            let mut weights_clean = true;
            for (i, entry) in list.get_ref().iter().enumerate() {
                let entry_path = index(&list_path, i);
                let b = entry.get_ref();
                let (weight, clean) = cx.clean(|cx| {
                    cx.int(
                        b.weight.as_ref(),
                        &join(&entry_path, "weight"),
                        1,
                        (0, 10_000),
                        Some("weights are relative shares; 0 sends no traffic unless forced by `header` or `cookie`"),
                    )
                });
                weights_clean &= clean;
                let Some(name) = &b.upstream else {
                    cx.missing(entry.span(), &entry_path, "upstream");
                    weights_clean = false;
                    continue;
                };
                let upstream = upstream_ref(cx, name, &join(&entry_path, "upstream"), known);
                if let Some((_, first)) = seen.iter().find(|(u, _)| *u == upstream) {
                    cx.report
                        .error_value(
                            name.span(),
                            &join(&entry_path, "upstream"),
                            format!("upstream `{upstream}` is already listed as backends[{first}]"),
                        )
                        .hint("list each upstream once; its weight sets its share");
                    weights_clean = false;
                    continue;
                }
                seen.push((upstream.clone(), i));
                backends.push(SplitBackend {
                    upstream,
                    weight: u32::try_from(weight).unwrap_or(1),
                });
            }
            if weights_clean && backends.iter().all(|b| b.weight == 0) {
                cx.report
                    .error(list.span(), &list_path, "the backends' weights add up to 0")
                    .hint("give at least one backend a weight above 0");
            }
        }
    }
    let header = s.header.as_ref().map(|text| {
        if !is_token(text.get_ref()) {
            cx.report
                .error_value(text.span(), &join(path, "header"), "invalid header name")
                .hint("header names use letters, digits and `-`, e.g. \"x-canary\"");
        }
        text.get_ref().to_ascii_lowercase()
    });
    let cookie = s.cookie.as_ref().map(|text| {
        if !is_token(text.get_ref()) {
            cx.report
                .error_value(text.span(), &join(path, "cookie"), "invalid cookie name")
                .hint("cookie names use letters, digits, `-` and `_`, e.g. \"canary\"");
        }
        text.get_ref().clone()
    });
    Split {
        backends,
        header,
        cookie,
        skip_unavailable: s.skip_unavailable.unwrap_or(true),
    }
}

fn respond(cx: &mut Cx<'_>, raw: &Spanned<RawRespond>, path: &str) -> Action {
    let r = raw.get_ref();
    let status = cx.int(
        r.status.as_ref(),
        &join(path, "status"),
        200,
        (100, 599),
        None,
    );
    let content_type = match &r.content_type {
        None => "text/plain; charset=utf-8".to_owned(),
        Some(text) => {
            if text.get_ref().trim().is_empty() || !is_header_value(text.get_ref()) {
                cx.report.error_value(
                    text.span(),
                    &join(path, "content_type"),
                    "content type must be a non-empty header value without control characters",
                );
            }
            text.get_ref().clone()
        }
    };
    Action::Respond {
        status: u16::try_from(status).unwrap_or(200),
        body: r.body.clone().unwrap_or_default(),
        content_type,
    }
}

fn redirect(cx: &mut Cx<'_>, raw: &Spanned<RawRedirect>, path: &str) -> Action {
    let r = raw.get_ref();
    let mut status = 302;
    if let Some(code) = &r.status {
        if REDIRECT_STATUSES.contains(code.get_ref()) {
            status = *code.get_ref();
        } else {
            cx.report
                .error_value(code.span(), &join(path, "status"), "redirect status must be 301, 302, 303, 307 or 308")
                .hint("301/308 are permanent, 302/303/307 temporary; 307/308 keep the method and body");
        }
    }
    let rewrite = r.scheme.is_some() || r.host.is_some() || r.port.is_some();
    let target = match &r.location {
        Some(text) if rewrite => {
            cx.report
                .error_value(
                    text.span(),
                    &join(path, "location"),
                    "set `location`, or `scheme` / `host` / `port`, not both",
                )
                .hint("`location` is a fixed target; `scheme`, `host` and `port` change the request's own URL");
            RedirectTarget::Location {
                location: text.get_ref().clone(),
                keep_path: false,
            }
        }
        Some(text) => RedirectTarget::Location {
            location: location(cx, text, &join(path, "location")),
            keep_path: r.keep_path.unwrap_or(false),
        },
        None if rewrite => {
            if r.keep_path.is_some() {
                cx.report
                    .error(
                        raw.span(),
                        &join(path, "keep_path"),
                        "`keep_path` goes with `location`",
                    )
                    .hint("a `scheme` / `host` / `port` redirect always keeps the path and query");
            }
            rewrite_target(cx, r, path)
        }
        None => {
            cx.report
                .error(raw.span(), path, "a redirect needs `location`, or `scheme`, `host` or `port`")
                .hint("e.g. redirect = { scheme = \"https\" } sends http://HOST/PATH to https://HOST/PATH");
            RedirectTarget::Location {
                location: String::new(),
                keep_path: false,
            }
        }
    };
    Action::Redirect(Redirect {
        status: u16::try_from(status).unwrap_or(302),
        target,
    })
}

/// A `location`: an absolute `http`/`https` URL with a host, or an
/// absolute path. Nothing is substituted in it.
fn location(cx: &mut Cx<'_>, text: &Text, path: &str) -> String {
    let value = text.get_ref();
    let problem = if value.trim().is_empty() || !is_header_value(value) {
        Some((
            "location must be a non-empty URL without control characters",
            "e.g. \"https://example.com/new\" or \"/new-path\"",
        ))
    } else if value.contains("$") {
        Some((
            "location is sent as written; variables such as `$host` are not expanded",
            "to keep the request's host, path and query and change the scheme, write redirect = { scheme = \"https\" } (and `port` if needed)",
        ))
    } else if value.starts_with('/') && !value.starts_with("//") {
        value
            .parse::<http::Uri>()
            .err()
            .map(|_| ("location is not a valid path", "e.g. \"/new-path\""))
    } else {
        match value.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some_and(|h| !h.is_empty()) =>
            {
                None
            }
            _ => Some((
                "location must be an absolute http(s) URL or a path starting with `/`",
                "e.g. \"https://example.com/new\" or \"/new-path\"",
            )),
        }
    };
    if let Some((message, hint)) = problem {
        cx.report.error_value(text.span(), path, message).hint(hint);
    }
    value.clone()
}

/// `scheme`, `host` and `port` of a redirect that rewrites the request's URL.
fn rewrite_target(cx: &mut Cx<'_>, r: &RawRedirect, path: &str) -> RedirectTarget {
    let scheme = r.scheme.as_ref().map(|text| {
        let value = text.get_ref().to_ascii_lowercase();
        if value != "http" && value != "https" {
            cx.report
                .error_value(
                    text.span(),
                    &join(path, "scheme"),
                    "scheme must be \"http\" or \"https\"",
                )
                .hint("write the scheme alone, without \"://\"");
        }
        value
    });
    let host = r
        .host
        .as_ref()
        .map(|text| match super::fields::host_name(text.get_ref()) {
            Ok(h) => h,
            Err(message) => {
                cx.report
                    .error_value(text.span(), &join(path, "host"), message)
                    .hint("a host name such as \"www.example.com\"; set the port with `port`");
                text.get_ref().clone()
            }
        });
    let port = cx
        .opt_int(r.port.as_ref(), &join(path, "port"), (1, 65_535), None)
        .and_then(|p| u16::try_from(p).ok());
    RedirectTarget::Rewrite { scheme, host, port }
}

pub(super) fn host_rewrite(cx: &mut Cx<'_>, host: &Text, path: &str) -> String {
    let value = host.get_ref();
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c));
    if !ok {
        cx.report
            .error_value(
                host.span(),
                path,
                "invalid host; expected a host name with an optional port",
            )
            .hint("e.g. \"api.internal\" or \"api.internal:8080\"");
    }
    value.clone()
}

fn matcher(cx: &mut Cx<'_>, m: &RawMatch, path: &str) -> Match {
    let p = |key: &str| join(path, key);
    let hosts = m
        .hosts
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| match host_pattern(text.get_ref()) {
            Ok(host) => Some(host),
            Err(message) => {
                cx.report
                    .error_value(text.span(), &index(&p("hosts"), i), message)
                    .hint("use an exact name such as \"api.example.com\" or a wildcard such as \"*.example.com\"");
                None
            }
        })
        .collect();
    let methods = m
        .methods
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, text)| {
            if !is_token(text.get_ref()) {
                cx.report
                    .error_value(text.span(), &index(&p("methods"), i), "invalid HTTP method")
                    .hint("e.g. \"GET\", \"POST\" or \"DELETE\"");
            }
            text.get_ref().to_ascii_uppercase()
        })
        .collect();
    Match {
        hosts,
        path: path_match(cx, m, path),
        methods,
        headers: conditions(cx, m.headers.as_ref(), &p("headers"), true),
        query: conditions(cx, m.query.as_ref(), &p("query"), false),
    }
}

fn path_match(cx: &mut Cx<'_>, m: &RawMatch, path: &str) -> Option<PathMatch> {
    let given: Vec<(&str, &Text)> = PATH_KEYS
        .iter()
        .zip([&m.path, &m.path_exact, &m.path_regex])
        .filter_map(|(key, value)| value.as_ref().map(|v| (*key, v)))
        .collect();
    for (key, value) in given.iter().skip(1) {
        cx.report
            .error(
                value.span(),
                &join(path, key),
                format!(
                    "at most one path condition is allowed; `{}` is already set",
                    given[0].0
                ),
            )
            .hint("use one of `path` (prefix), `path_exact` or `path_regex`");
    }
    let (key, value) = *given.first()?;
    let text = value.get_ref().clone();
    let key_path = join(path, key);
    if key == "path_regex" {
        check_regex(cx, value, &key_path);
        return Some(PathMatch::Regex(text));
    }
    if !text.starts_with('/') {
        cx.report
            .error_value(value.span(), &key_path, "path must start with `/`")
            .hint(format!("write \"/{}\"", text.trim_start_matches('/')));
    } else if text.contains(['?', '#']) || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        cx.report
            .error_value(
                value.span(),
                &key_path,
                "path cannot contain `?`, `#`, spaces or control characters",
            )
            .hint("match query parameters with [routes.match] query");
    }
    Some(if key == "path" {
        PathMatch::Prefix(text)
    } else {
        PathMatch::Exact(text)
    })
}

fn check_regex(cx: &mut Cx<'_>, value: &Text, path: &str) {
    if let Err(e) = regex::Regex::new(value.get_ref()) {
        let text = e.to_string();
        // regex's syntax errors span several lines (pattern, caret, then
        // "error: ..."); the last part is the one that explains.
        let reason = text
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .or_else(|| text.lines().next())
            .unwrap_or("invalid pattern");
        cx.report
            .error_value(value.span(), path, format!("invalid regex: {}", reason.to_lowercase()))
            .hint("patterns use Rust `regex` syntax; write them in single quotes ('...') so backslashes need no escaping");
    }
}

fn conditions(
    cx: &mut Cx<'_>,
    raw: Option<&BTreeMap<Text, Spanned<RawCondition>>>,
    path: &str,
    headers: bool,
) -> Vec<(String, ValueMatch)> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (key, condition) in raw.into_iter().flatten() {
        let entry_path = join(path, key.get_ref());
        let name = if headers {
            if !is_token(key.get_ref()) {
                cx.report
                    .error_value(key.span(), &entry_path, "invalid header name")
                    .hint("header names use letters, digits and `-`");
            }
            key.get_ref().to_ascii_lowercase()
        } else {
            if key.get_ref().is_empty() {
                cx.report.error(
                    key.span(),
                    &entry_path,
                    "query parameter name cannot be empty",
                );
            }
            key.get_ref().clone()
        };
        if seen.contains(&name) {
            cx.report.error(
                key.span(),
                &entry_path,
                format!("`{name}` is listed twice (header names ignore case)"),
            );
            continue;
        }
        seen.push(name.clone());
        if let Some(value) = condition_value(cx, condition, &entry_path, headers) {
            out.push((name, value));
        }
    }
    out
}

fn condition_value(
    cx: &mut Cx<'_>,
    raw: &Spanned<RawCondition>,
    path: &str,
    headers: bool,
) -> Option<ValueMatch> {
    match raw.get_ref() {
        RawCondition::Exact(value) => {
            if headers && !is_header_value(value) {
                cx.report.error_value(
                    raw.span(),
                    path,
                    "header values cannot contain control characters",
                );
            }
            Some(ValueMatch::Exact(value.clone()))
        }
        RawCondition::Table(table) => match (&table.present, &table.regex) {
            (Some(_), Some(regex)) => {
                cx.report
                    .error(
                        regex.span(),
                        &join(path, "regex"),
                        "use either `present` or `regex`, not both",
                    )
                    .hint("a regex match already implies presence");
                None
            }
            (Some(present), None) if !*present.get_ref() => {
                cx.report
                    .error_value(
                        present.span(),
                        &join(path, "present"),
                        "`present = false` is not supported",
                    )
                    .hint("use present = true to require it, or remove the condition");
                None
            }
            (Some(_), None) => Some(ValueMatch::Present),
            (None, Some(regex)) => {
                check_regex(cx, regex, &join(path, "regex"));
                Some(ValueMatch::Regex(regex.get_ref().clone()))
            }
            (None, None) => {
                let pruned = ["present", "regex"]
                    .iter()
                    .any(|k| cx.report.was_pruned(&join(path, k)));
                if !pruned {
                    cx.report
                        .error(raw.span(), path, "empty condition")
                        .hint("use a string for an exact match, { present = true } or { regex = \"...\" }");
                }
                None
            }
        },
    }
}
