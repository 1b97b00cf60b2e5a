//! `[filters.NAME]`, the `filters` lists of listeners and routes, and the
//! filter kinds: `request_id` and `headers` here; each further kind in a
//! file of its own (`filter_rewrite.rs`, `filter_error_page.rs`,
//! `filter_cors.rs`, `filter_ip.rs`,
//! `filter_compress.rs`).

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::Cx;
use super::fields::{is_header_value, is_token};
use crate::diagnostic::{self, choice_hint, index, join};
use crate::model::{
    Filter, FilterRef, HeaderOps, HeadersFilter, NamedFilter, RequestIdFilter, TrustIncoming,
};
use crate::raw::{
    RawFilter, RawFilterList, RawFilterRef, RawHeaderOps, RawHeaders, RawRequestId, Text,
};
use crate::template::{self, Template, Variable};

/// The kinds a filter table may hold, as the file names them.
const KINDS: &[&str] = &[
    "request_id",
    "headers",
    "rewrite",
    "error_page",
    "cors",
    "ip",
    "compress",
];

/// Headers whose meaning belongs to the connection or the framing: a rule
/// may not touch them.
const RESERVED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// The `[filters.NAME]` tables a file defines, for checking the lists
/// that name them.
pub(super) struct Defined<'r> {
    /// Every name.
    names: Vec<&'r str>,
    /// The names of `cors` filters.
    cors: Vec<&'r str>,
}

impl<'r> Defined<'r> {
    pub(super) fn new(raw: &'r BTreeMap<Text, Spanned<RawFilter>>) -> Self {
        let names = raw.keys().map(|k| k.get_ref().as_str()).collect();
        let cors = raw
            .iter()
            .filter(|(_, f)| f.get_ref().cors.is_some())
            .map(|(k, _)| k.get_ref().as_str())
            .collect();
        Defined { names, cors }
    }
}

/// `[filters.NAME]` tables, in name order.
pub(super) fn named(cx: &mut Cx<'_>, raw: &BTreeMap<Text, Spanned<RawFilter>>) -> Vec<NamedFilter> {
    raw.iter()
        .filter_map(|(name, f)| {
            let path = join("filters", name.get_ref());
            cx.name(name, &path, "filter");
            let filter = filter(cx, f.get_ref(), f.span(), &path)?;
            Some(NamedFilter {
                name: name.get_ref().clone(),
                filter,
            })
        })
        .collect()
}

/// A `filters = [...]` list of a listener or a route; `defined` are the
/// `[filters.NAME]` tables. A list holds at most one `cors`.
pub(super) fn list(
    cx: &mut Cx<'_>,
    raw: Option<&RawFilterList>,
    path: &str,
    defined: &Defined<'_>,
) -> Vec<FilterRef> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let names = defined.names.as_slice();
    let mut out = Vec::new();
    let mut cors_seen = false;
    for (i, entry) in raw.get_ref().iter().enumerate() {
        let at = index(path, i);
        let cors = match entry.get_ref() {
            RawFilterRef::Name(name) => defined.cors.contains(&name.as_str()),
            RawFilterRef::Inline(f) => f.cors.is_some(),
        };
        if cors && std::mem::replace(&mut cors_seen, true) {
            cx.report
                .error_value(entry.span(), &at, "a filters list has at most one cors filter")
                .hint("one policy decides CORS: put every allowed origin in one cors filter (a route's cors replaces its listener's)");
        }
        match entry.get_ref() {
            RawFilterRef::Name(name) => {
                if names.contains(&name.as_str()) {
                    out.push(FilterRef::Named(name.clone()));
                } else if !cx.report.was_pruned(&join("filters", name)) {
                    let hint = match choice_hint(name, names) {
                        Some(h) => h,
                        None if names.is_empty() => {
                            "define it as [filters.NAME], or write the filter in place, e.g. { headers = { ... } }".to_owned()
                        }
                        None => format!("defined filters: {}", diagnostic::list(names, "and")),
                    };
                    cx.report
                        .error_value(entry.span(), &at, format!("unknown filter `{name}`"))
                        .hint(hint);
                }
            }
            RawFilterRef::Inline(f) => {
                if let Some(f) = filter(cx, f, entry.span(), &at) {
                    out.push(FilterRef::Inline(f));
                }
            }
        }
    }
    out
}

/// One filter table: exactly one kind.
fn filter(cx: &mut Cx<'_>, raw: &RawFilter, span: Range<usize>, path: &str) -> Option<Filter> {
    let given: Vec<(&str, Range<usize>)> = [
        ("request_id", raw.request_id.as_ref().map(Spanned::span)),
        ("headers", raw.headers.as_ref().map(Spanned::span)),
        ("rewrite", raw.rewrite.as_ref().map(Spanned::span)),
        ("error_page", raw.error_page.as_ref().map(Spanned::span)),
        ("cors", raw.cors.as_ref().map(Spanned::span)),
        ("ip", raw.ip.as_ref().map(Spanned::span)),
        ("compress", raw.compress.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    match given.as_slice() {
        [] => {
            let pruned = KINDS.iter().any(|k| cx.report.was_pruned(&join(path, k)));
            if !pruned {
                cx.report
                    .error(span, path, "a filter needs its kind")
                    .hint(format!(
                        "write one of {}, e.g. {{ request_id = {{}} }}",
                        diagnostic::list(KINDS, "or")
                    ));
            }
            None
        }
        [(kind, _)] => {
            let at = join(path, kind);
            if let Some(r) = &raw.request_id {
                Some(Filter::RequestId(request_id(cx, r, &at)))
            } else if let Some(h) = &raw.headers {
                Some(Filter::Headers(headers(cx, h, &at)))
            } else if let Some(r) = &raw.rewrite {
                Some(Filter::Rewrite(super::filter_rewrite::rewrite(cx, r, &at)))
            } else if let Some(c) = &raw.cors {
                Some(Filter::Cors(super::filter_cors::cors(cx, c, &at)))
            } else if let Some(ip) = &raw.ip {
                Some(Filter::Ip(super::filter_ip::ip(cx, ip, &at)))
            } else if let Some(c) = &raw.compress {
                Some(Filter::Compress(super::filter_compress::compress(
                    cx, c, &at,
                )))
            } else {
                raw.error_page
                    .as_ref()
                    .map(|e| Filter::ErrorPage(super::filter_error_page::error_page(cx, e, &at)))
            }
        }
        [_, (second, second_span), ..] => {
            cx.report
                .error(second_span.clone(), &join(path, second), "a filter has exactly one kind")
                .hint("write each kind as a filter of its own, one after the other in the `filters` list");
            None
        }
    }
}

const TRUST: &[(&str, TrustIncoming)] = &[
    ("trusted", TrustIncoming::Trusted),
    ("always", TrustIncoming::Always),
    ("never", TrustIncoming::Never),
];

fn request_id(cx: &mut Cx<'_>, raw: &Spanned<RawRequestId>, path: &str) -> RequestIdFilter {
    let r = raw.get_ref();
    let header = match &r.header {
        None => "x-request-id".to_owned(),
        Some(text) => header_name(cx, text, &join(path, "header")),
    };
    let (trust_incoming, _) = cx.keyword(
        r.trust_incoming.as_ref(),
        &join(path, "trust_incoming"),
        "trust setting",
        TRUST,
        TrustIncoming::Trusted,
    );
    RequestIdFilter {
        header,
        trust_incoming,
        response: r.response.unwrap_or(true),
    }
}

/// Which way header rules go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

fn headers(cx: &mut Cx<'_>, raw: &Spanned<RawHeaders>, path: &str) -> HeadersFilter {
    let h = raw.get_ref();
    let mut side = |ops: &Option<RawHeaderOps>, key: &str, dir: Direction| {
        ops.as_ref()
            .map(|o| header_ops(cx, o, &join(path, key), dir))
            .unwrap_or_default()
    };
    let request = side(&h.request, "request", Direction::Request);
    let response = side(&h.response, "response", Direction::Response);
    let written = |o: &Option<RawHeaderOps>| {
        o.as_ref().is_some_and(|o| {
            o.set.as_ref().is_some_and(|m| !m.is_empty())
                || o.add.as_ref().is_some_and(|m| !m.is_empty())
                || o.append.as_ref().is_some_and(|m| !m.is_empty())
                || o.remove.as_ref().is_some_and(|l| !l.is_empty())
        })
    };
    if !written(&h.request)
        && !written(&h.response)
        && !cx.report.was_pruned(&join(path, "request"))
    {
        cx.report
            .error(raw.span(), path, "a headers filter needs at least one rule")
            .hint("e.g. headers = { response = { set = { x-frame-options = \"DENY\" } } }");
    }
    HeadersFilter { request, response }
}

fn header_ops(cx: &mut Cx<'_>, raw: &RawHeaderOps, path: &str, dir: Direction) -> HeaderOps {
    let mut values = |map: &Option<BTreeMap<Text, Text>>, key: &str| -> Vec<(String, Template)> {
        let at = join(path, key);
        map.iter()
            .flatten()
            .filter_map(|(name, value)| {
                let name_path = join(&at, name.get_ref());
                let name = header_name(cx, name, &name_path);
                let value = header_value(cx, value, &name_path, dir)?;
                Some((name, value))
            })
            .collect()
    };
    let set = values(&raw.set, "set");
    let add = values(&raw.add, "add");
    let append = values(&raw.append, "append");
    let remove = raw
        .remove
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, name)| header_name(cx, name, &index(&join(path, "remove"), i)))
        .collect();
    HeaderOps {
        remove,
        set,
        add,
        append,
    }
}

/// A header name a rule may touch, lower-cased.
fn header_name(cx: &mut Cx<'_>, text: &Text, path: &str) -> String {
    let name = text.get_ref().to_ascii_lowercase();
    if !is_token(&name) {
        cx.report
            .error_value(text.span(), path, "invalid header name")
            .hint("header names use letters, digits and `-`, e.g. \"x-frame-options\"");
    } else if RESERVED.contains(&name.as_str()) {
        cx.report
            .error_value(
                text.span(),
                path,
                format!(
                    "`{name}` belongs to the connection and the framing; rules cannot change it"
                ),
            )
            .hint("Switchyard sets these headers itself");
    } else if name == "host" {
        cx.report
            .error_value(
                text.span(),
                path,
                "the Host header is not changed by header rules",
            )
            .hint("use the route's `host_rewrite` to send another Host upstream");
    }
    name
}

/// A header value template; `${upstream}` and `${server}` are known only
/// once the server answered.
fn header_value(cx: &mut Cx<'_>, text: &Text, path: &str, dir: Direction) -> Option<Template> {
    let value = text.get_ref();
    if !is_header_value(value) {
        cx.report
            .error_value(
                text.span(),
                path,
                "header values cannot hold control characters",
            )
            .hint("remove line breaks and other control characters");
        return None;
    }
    let template = match template::parse(value) {
        Ok(t) => t,
        Err(message) => {
            cx.report
                .error_value(text.span(), path, message)
                .hint("variables: ${client_ip}, ${request_id}, ${route}, ${upstream}, ${server}, ${trace_id}, ${tls_sni}, ${listener}, ${host}, ${method}, ${path}, ${consumer}");
            return None;
        }
    };
    if let Some(v) = template.variables().find(|v| v.error_page_only()) {
        cx.report
            .error_value(
                text.span(),
                path,
                format!("`${{{}}}` is known only in an error page", v.name()),
            )
            .hint("use it in an `error_page` body");
        return None;
    }
    if dir == Direction::Request
        && let Some(v) = template
            .variables()
            .find(|v| matches!(v, Variable::Upstream | Variable::Server))
    {
        cx.report
            .error_value(
                text.span(),
                path,
                format!("`${{{}}}` is not known yet when the request is sent", v.name()),
            )
            .hint("the upstream and server are chosen after the request filters; use them in response rules");
        return None;
    }
    Some(template)
}
