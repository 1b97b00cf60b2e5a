//! `error_page`: the body and content type of Switchyard's own error
//! answers (404 no route, 502, 503, a filter's 403, ...). An upstream's own
//! error answers are left as they are. `x-switchyard-error` and the status
//! are kept.
//!
//! Switchyard's answers carry their `ProxyError` as a response extension
//! (never sent), which is how this filter tells them apart and what it
//! fills the page with.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use sy_config::model::{ErrorPageBody, ErrorPageFilter};
use sy_config::template::{Part, Variable};
use sy_core::ProxyError;

use super::RequestCx;
use super::value::{ErrorFacts, render_text};
use crate::body::ProxyBody;

/// A compiled `error_page` filter.
#[derive(Debug)]
pub struct ErrorPage {
    content_type: HeaderValue,
    body: Body,
    html: bool,
}

#[derive(Debug)]
enum Body {
    Json,
    Template(Box<[Part]>),
}

impl ErrorPage {
    /// The template renders variable `v`.
    pub fn reads(&self, v: Variable) -> bool {
        match &self.body {
            Body::Json => false,
            Body::Template(parts) => super::value::reads(parts, v),
        }
    }

    /// Compiles the validated configuration.
    pub fn new(cfg: &ErrorPageFilter) -> Result<Self, String> {
        Ok(ErrorPage {
            content_type: HeaderValue::from_str(&cfg.content_type)
                .map_err(|e| format!("error_page content_type: {e}"))?,
            body: match &cfg.body {
                ErrorPageBody::Json => Body::Json,
                ErrorPageBody::Template(t) => Body::Template(t.parts.clone().into_boxed_slice()),
            },
            html: cfg.content_type.to_ascii_lowercase().contains("html"),
        })
    }

    /// Replaces the body of Switchyard's own error answers. The innermost
    /// error page of the chain (the route's, before the listener's) wins:
    /// the first to shape an answer marks it.
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut http::Response<ProxyBody>) {
        if resp.extensions().get::<Shaped>().is_some() {
            return;
        }
        let Some(error) = resp.extensions().get::<ProxyError>() else {
            return;
        };
        let facts = ErrorFacts {
            status: resp.status(),
            error,
        };
        let body = match &self.body {
            Body::Json => serde_json::json!({
                "error": error.stage.as_str(),
                "message": error.message,
                "status": facts.status.as_u16(),
                "request_id": cx.request_id.as_ref().and_then(|v| v.to_str().ok()),
            })
            .to_string(),
            Body::Template(parts) => render_text(parts, cx, Some(facts), self.html),
        };
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, self.content_type.clone());
        h.remove(CONTENT_LENGTH);
        *resp.body_mut() = ProxyBody::full(body);
        resp.extensions_mut().insert(Shaped);
    }
}

/// Marks an answer an error page already shaped.
#[derive(Debug, Clone, Copy)]
struct Shaped;

#[cfg(test)]
mod tests;
