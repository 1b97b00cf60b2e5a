//! `rewrite = { ... }`: a path rewrite (prefix or regex) and query edits.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Cx;
use crate::diagnostic::{index, join};
use crate::model::{PathRewrite, QueryRewrite, RewriteFilter};
use crate::raw::{RawQueryOps, RawRewrite, Text};

pub(super) fn rewrite(cx: &mut Cx<'_>, raw: &Spanned<RawRewrite>, path: &str) -> RewriteFilter {
    let r = raw.get_ref();
    let p = |k: &str| join(path, k);
    let ways = [
        ("strip_prefix", r.strip_prefix.as_ref().map(Spanned::span)),
        (
            "replace_prefix",
            r.replace_prefix.as_ref().map(Spanned::span),
        ),
        ("path_regex", r.path_regex.as_ref().map(Spanned::span)),
    ];
    let given: Vec<_> = ways
        .iter()
        .filter_map(|(k, s)| s.clone().map(|s| (*k, s)))
        .collect();
    if let [(first, _), (second, span), ..] = given.as_slice() {
        cx.report
            .error(
                span.clone(),
                &p(second),
                format!("set one path rewrite; `{first}` is already set"),
            )
            .hint(
                "use one rewrite filter per path change, one after the other in the `filters` list",
            );
    }
    let path_rewrite = if let Some(prefix) = &r.strip_prefix {
        let from = prefix_text(cx, prefix, &p("strip_prefix"), false);
        Some(PathRewrite::ReplacePrefix {
            from,
            to: String::new(),
        })
    } else if let Some(rp) = &r.replace_prefix {
        let at = p("replace_prefix");
        let from = match &rp.get_ref().from {
            Some(t) => prefix_text(cx, t, &join(&at, "from"), false),
            None => {
                cx.missing(rp.span(), &at, "from");
                String::new()
            }
        };
        let to = match &rp.get_ref().to {
            Some(t) => prefix_text(cx, t, &join(&at, "to"), true),
            None => {
                cx.missing(rp.span(), &at, "to");
                String::new()
            }
        };
        Some(PathRewrite::ReplacePrefix { from, to })
    } else if let Some(re) = &r.path_regex {
        let at = p("path_regex");
        let pattern = match &re.get_ref().pattern {
            Some(t) => {
                if let Err(e) = regex::Regex::new(t.get_ref()) {
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                    cx.report
                        .error_value(
                            t.span(),
                            &join(&at, "pattern"),
                            format!("invalid regex: {first}"),
                        )
                        .hint("Rust regex syntax, e.g. \"^/users/([0-9]+)$\"");
                }
                t.get_ref().clone()
            }
            None => {
                cx.missing(re.span(), &at, "pattern");
                String::new()
            }
        };
        let replacement = match &re.get_ref().replacement {
            Some(t) => {
                if !t.get_ref().starts_with('/') {
                    cx.report
                        .error_value(t.span(), &join(&at, "replacement"), "the replacement must start with `/`")
                        .hint("the whole path is replaced, e.g. \"/u/$1\"; `$1` and `${name}` are captures");
                }
                t.get_ref().clone()
            }
            None => {
                cx.missing(re.span(), &at, "replacement");
                String::new()
            }
        };
        Some(PathRewrite::PathRegex {
            pattern,
            replacement,
        })
    } else {
        None
    };
    let query = r
        .query
        .as_ref()
        .map(|q| query_ops(cx, q.get_ref(), &p("query")))
        .unwrap_or_default();
    if path_rewrite.is_none() && query.is_empty() && given.is_empty() && r.query.is_none() {
        cx.report
            .error(
                raw.span(),
                path,
                "a rewrite filter needs something to rewrite",
            )
            .hint("set strip_prefix, replace_prefix, path_regex or query");
    }
    RewriteFilter {
        path: path_rewrite,
        query,
    }
}

/// A path prefix: starts with `/` (`to` may also be empty), no query.
fn prefix_text(cx: &mut Cx<'_>, t: &Text, path: &str, may_be_empty: bool) -> String {
    let v = t.get_ref();
    let ok = (may_be_empty && v.is_empty())
        || (v.starts_with('/')
            && !v.contains(['?', '#'])
            && !v.chars().any(|c| c.is_whitespace() || c.is_control()));
    if !ok {
        cx.report
            .error_value(
                t.span(),
                path,
                "a path prefix starts with `/` and has no `?`, `#` or spaces",
            )
            .hint("e.g. \"/api\"");
    }
    v.clone()
}

fn query_ops(cx: &mut Cx<'_>, raw: &RawQueryOps, path: &str) -> QueryRewrite {
    let mut names = |map: &Option<BTreeMap<Text, Text>>, key: &str| -> Vec<(String, String)> {
        map.iter()
            .flatten()
            .map(|(k, v)| {
                if k.get_ref().is_empty() {
                    cx.report.error_value(
                        k.span(),
                        &join(path, key),
                        "a parameter name cannot be empty",
                    );
                }
                (k.get_ref().clone(), v.get_ref().clone())
            })
            .collect()
    };
    let rename = names(&raw.rename, "rename");
    let set = names(&raw.set, "set");
    let add = names(&raw.add, "add");
    let remove = raw
        .remove
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| {
            if t.get_ref().is_empty() {
                cx.report.error_value(
                    t.span(),
                    &index(&join(path, "remove"), i),
                    "a parameter name cannot be empty",
                );
            }
            t.get_ref().clone()
        })
        .collect();
    QueryRewrite {
        remove,
        rename,
        set,
        add,
    }
}
