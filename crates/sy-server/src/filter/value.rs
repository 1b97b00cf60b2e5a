//! Header values with `${variables}`, compiled once: a value without
//! variables is a ready `HeaderValue`; one with variables is rendered per
//! request from the [`RequestCx`].

use std::fmt::Write;

use http::HeaderValue;
use sy_config::template::{Part, Template, Variable};

use super::RequestCx;

/// A compiled header value.
#[derive(Debug, Clone)]
pub enum Value {
    /// The same for every request.
    Static(HeaderValue),
    /// Rendered per request.
    Dynamic(Box<[Part]>),
}

impl Value {
    /// Compiles `t`; None when its literal text is not a valid header value
    /// (validation rejects that before).
    pub fn new(t: &Template) -> Option<Self> {
        if t.is_literal() {
            return HeaderValue::from_str(&t.text.replace("$$", "$"))
                .ok()
                .map(Value::Static);
        }
        Some(Value::Dynamic(t.parts.clone().into_boxed_slice()))
    }

    /// The value for this request; None when the rendered text is not a
    /// valid header value (a variable holding a control character), so the
    /// rule is skipped rather than sending a broken header.
    pub fn render(&self, cx: &RequestCx<'_>) -> Option<HeaderValue> {
        match self {
            Value::Static(v) => Some(v.clone()),
            Value::Dynamic(parts) => {
                HeaderValue::from_str(&render_text(parts, cx, None, false)).ok()
            }
        }
    }
}

/// Switchyard's own error answer, for an error page's variables.
#[derive(Debug, Clone, Copy)]
pub struct ErrorFacts<'a> {
    /// The answer's status.
    pub status: http::StatusCode,
    /// The error.
    pub error: &'a sy_core::ProxyError,
}

/// Renders template `parts`; with `html`, variable values are escaped for
/// HTML text (the literal text is the operator's own).
pub fn render_text(
    parts: &[Part],
    cx: &RequestCx<'_>,
    err: Option<ErrorFacts<'_>>,
    html: bool,
) -> String {
    let mut out = String::with_capacity(128);
    let mut value = String::new();
    for p in parts {
        match p {
            Part::Literal(s) => out.push_str(s),
            Part::Var(v) => {
                value.clear();
                variable(cx, *v, err, &mut value);
                if html {
                    escape_html(&value, &mut out);
                } else {
                    out.push_str(&value);
                }
            }
        }
    }
    out
}

fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Appends the value of `v` (empty when the request has none).
fn variable(cx: &RequestCx<'_>, v: Variable, err: Option<ErrorFacts<'_>>, out: &mut String) {
    let text =
        |h: &Option<HeaderValue>| h.as_ref().and_then(|h| h.to_str().ok()).map(str::to_owned);
    match v {
        Variable::ClientIp => {
            let _ = write!(out, "{}", cx.client_ip);
        }
        Variable::RequestId => out.push_str(&text(&cx.request_id).unwrap_or_default()),
        Variable::Listener => out.push_str(cx.listener),
        Variable::Route => out.push_str(cx.route.unwrap_or("")),
        Variable::Upstream => out.push_str(cx.upstream.unwrap_or("")),
        Variable::Server => out.push_str(cx.server.unwrap_or("")),
        Variable::TraceId => {
            if let Some(id) = cx.trace_id {
                for b in id {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
        Variable::TlsSni => out.push_str(cx.tls.and_then(|t| t.sni.as_deref()).unwrap_or("")),
        Variable::Host => out.push_str(&text(&cx.host).unwrap_or_default()),
        Variable::Method => out.push_str(cx.method.as_str()),
        Variable::Path => out.push_str(cx.uri.path()),
        Variable::Consumer => out.push_str(cx.consumer.as_deref().unwrap_or("")),
        Variable::Status => {
            if let Some(e) = err {
                let _ = write!(out, "{}", e.status.as_u16());
            }
        }
        Variable::Reason => {
            if let Some(e) = err {
                out.push_str(e.status.canonical_reason().unwrap_or(""));
            }
        }
        Variable::Error => {
            if let Some(e) = err {
                out.push_str(e.error.stage.as_str());
            }
        }
        Variable::Message => {
            if let Some(e) = err {
                out.push_str(&e.error.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_rendered_values() {
        let peer = "10.1.2.3:5000".parse().unwrap_or_else(|_| unreachable!());
        let mut cx = RequestCx::new(
            "web",
            peer,
            http::Method::GET,
            http::Uri::from_static("/a/b?q"),
        );
        cx.route = Some("api");
        cx.request_id = Some(HeaderValue::from_static("rid-1"));
        cx.trace_id = Some([0xab; 16]);
        let v = |text: &str| {
            Value::new(&sy_config::template::parse(text).unwrap_or_else(|e| unreachable!("{e}")))
                .and_then(|v| v.render(&cx))
        };
        assert_eq!(v("DENY"), Some(HeaderValue::from_static("DENY")));
        assert_eq!(v("$$5"), Some(HeaderValue::from_static("$5")));
        assert_eq!(
            v("${client_ip} ${route} ${request_id} ${path} ${method} ${listener}"),
            Some(HeaderValue::from_static("10.1.2.3 api rid-1 /a/b GET web"))
        );
        assert_eq!(
            v("${trace_id}"),
            Some(HeaderValue::from_static("abababababababababababababababab"))
        );
        // Unknown facts render empty.
        assert_eq!(
            v("[${upstream}][${tls_sni}][${consumer}]"),
            Some(HeaderValue::from_static("[][][]"))
        );
    }
}
