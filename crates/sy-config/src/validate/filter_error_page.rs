//! `error_page = { ... }`: the body of Switchyard's own error answers.

use toml::Spanned;

use super::Cx;
use super::fields::is_header_value;
use crate::diagnostic::join;
use crate::model::{ErrorPageBody, ErrorPageFilter};
use crate::raw::RawErrorPage;

pub(super) fn error_page(
    cx: &mut Cx<'_>,
    raw: &Spanned<RawErrorPage>,
    path: &str,
) -> ErrorPageFilter {
    let e = raw.get_ref();
    let p = |k: &str| join(path, k);
    let content_type = match &e.content_type {
        Some(t) => {
            if t.get_ref().trim().is_empty() || !is_header_value(t.get_ref()) {
                cx.report.error_value(
                    t.span(),
                    &p("content_type"),
                    "content type must be a non-empty header value without control characters",
                );
            }
            Some(t.get_ref().clone())
        }
        None => None,
    };
    let body = match (&e.format, &e.body) {
        (Some(f), Some(b)) => {
            cx.report
                .error(b.span(), &p("body"), "set `format` or `body`, not both")
                .hint(format!(
                    "`format = \"{}\"` writes the body itself",
                    f.get_ref()
                ));
            ErrorPageBody::Json
        }
        (Some(f), None) => {
            if f.get_ref() != "json" {
                cx.report
                    .error_value(f.span(), &p("format"), "unknown error page format")
                    .hint("the one built-in format is \"json\"; write any other as `body` with `content_type`");
            }
            ErrorPageBody::Json
        }
        (None, Some(b)) => match crate::template::parse(b.get_ref()) {
            Ok(t) => ErrorPageBody::Template(t),
            Err(message) => {
                cx.report
                    .error_value(b.span(), &p("body"), message)
                    .hint("variables: ${status}, ${reason}, ${error}, ${message}, ${request_id}, ${route}, ${host}, ${path}, ...");
                ErrorPageBody::Json
            }
        },
        (None, None) => {
            cx.report
                .error(
                    raw.span(),
                    path,
                    "an error page needs `format = \"json\"` or a `body`",
                )
                .hint("e.g. error_page = { format = \"json\" }");
            ErrorPageBody::Json
        }
    };
    if matches!(body, ErrorPageBody::Template(_)) && content_type.is_none() {
        cx.report
            .error(raw.span(), path, "a `body` needs its `content_type`")
            .hint("e.g. content_type = \"text/html; charset=utf-8\"");
    }
    ErrorPageFilter {
        content_type: content_type.unwrap_or_else(|| "application/json".to_owned()),
        body,
    }
}
