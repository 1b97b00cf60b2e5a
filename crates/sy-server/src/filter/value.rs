//! Header values with `${variables}`, compiled once: a value without
//! variables is a ready `HeaderValue`; one with variables is rendered per
//! request from the [`RequestCx`].

use std::fmt::Write;
use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderValue, Uri};
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

/// What is the same for every request of one chain: the listener and the
/// route ("" for the listener's own answers, which have no route).
#[derive(Debug, Clone, Copy)]
pub struct Fixed<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The route's name; "" for the listener's own chain.
    pub route: &'a str,
}

impl Fixed<'_> {
    /// `v` is one of the chain's fixed facts.
    fn binds(v: Variable) -> bool {
        matches!(v, Variable::Listener | Variable::Route)
    }

    fn get(&self, v: Variable) -> Option<&str> {
        match v {
            Variable::Listener => Some(self.listener),
            Variable::Route => Some(self.route),
            _ => None,
        }
    }
}

impl Value {
    /// The value with the variables that are the same for every request
    /// of one chain (`${listener}`, `${route}`) filled in: a value left
    /// without variables becomes static, so nothing is rendered per
    /// request.
    pub fn bind(&self, fixed: Fixed<'_>) -> Value {
        if !self.reads_fixed() {
            return self.clone();
        }
        let Value::Dynamic(parts) = self else {
            return self.clone();
        };
        let mut bound: Vec<Part> = Vec::with_capacity(parts.len());
        for p in parts.iter() {
            let p = match p {
                Part::Var(v) => match fixed.get(*v) {
                    Some(text) => Part::Literal(text.to_owned()),
                    None => Part::Var(*v),
                },
                p => p.clone(),
            };
            match (bound.last_mut(), p) {
                (Some(Part::Literal(prev)), Part::Literal(next)) => prev.push_str(&next),
                (_, p) => bound.push(p),
            }
        }
        match &bound[..] {
            [] => Value::Static(HeaderValue::from_static("")),
            [Part::Literal(text)] => match HeaderValue::from_str(text) {
                Ok(v) => Value::Static(v),
                // A name that is no header value: rendered (and skipped)
                // per request as before.
                Err(_) => self.clone(),
            },
            _ => Value::Dynamic(bound.into_boxed_slice()),
        }
    }

    /// The value renders `${listener}` or `${route}` (see [`Value::bind`]).
    pub fn reads_fixed(&self) -> bool {
        matches!(self, Value::Dynamic(parts) if parts.iter().any(|p| matches!(p, Part::Var(v) if Fixed::binds(*v))))
    }

    /// The value renders variable `v`.
    pub fn reads(&self, v: Variable) -> bool {
        match self {
            Value::Static(_) => false,
            Value::Dynamic(parts) => reads(parts, v),
        }
    }

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
                if let [Part::Var(v)] = &parts[..]
                    && let Some(ready) = ready_value(cx, *v)
                {
                    return ready;
                }
                // The rendered text becomes the value's bytes (no copy).
                HeaderValue::from_maybe_shared(Bytes::from(render_text(parts, cx, None, false)))
                    .ok()
            }
        }
    }
}

/// Template `parts` use variable `v`.
pub fn reads(parts: &[Part], v: Variable) -> bool {
    parts.iter().any(|p| matches!(p, Part::Var(x) if *x == v))
}

/// A value that is one variable the context holds as a header value
/// already: a clone, no rendering. None when it must be rendered.
fn ready_value(cx: &RequestCx<'_>, v: Variable) -> Option<Option<HeaderValue>> {
    let empty = || HeaderValue::from_static("");
    match v {
        Variable::ClientIp => cx.client_ip_value.map(|h| Some(h.clone())),
        Variable::RequestId => Some(Some(cx.request_id.clone().unwrap_or_else(empty))),
        Variable::Host => Some(Some(cx.host.clone().unwrap_or_else(empty))),
        _ => None,
    }
}

/// Appends `ip` as text: IPv4 without the formatting machinery (the common
/// case, once per request for `${client_ip}`).
fn push_ip(ip: IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
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
    fn text(h: &Option<HeaderValue>) -> &str {
        h.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("")
    }
    match v {
        Variable::ClientIp => push_ip(cx.client_ip, out),
        Variable::RequestId => out.push_str(text(&cx.request_id)),
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
        Variable::Host => out.push_str(text(&cx.host)),
        Variable::Method => out.push_str(cx.method.as_str()),
        Variable::Path => out.push_str(cx.uri.as_ref().map_or("", Uri::path)),
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

    #[test]
    fn single_variables_and_addresses() {
        let peer = "192.0.2.7:5000".parse().unwrap_or_else(|_| unreachable!());
        let mut cx = RequestCx::new("web", peer, http::Method::GET, http::Uri::from_static("/"));
        let v = |cx: &RequestCx<'_>, text: &str| {
            Value::new(&sy_config::template::parse(text).unwrap_or_else(|e| unreachable!("{e}")))
                .and_then(|v| v.render(cx))
        };
        // Rendered, then taken from the connection's ready value.
        assert_eq!(
            v(&cx, "${client_ip}"),
            Some(HeaderValue::from_static("192.0.2.7"))
        );
        // A sentinel unlike the rendered text: the ready value is used.
        let ready = HeaderValue::from_static("ready");
        cx.client_ip_value = Some(&ready);
        assert_eq!(v(&cx, "${client_ip}"), Some(ready.clone()));
        // Missing facts are empty values, not skipped rules.
        assert_eq!(v(&cx, "${request_id}"), Some(HeaderValue::from_static("")));
        assert_eq!(v(&cx, "${host}"), Some(HeaderValue::from_static("")));
        cx.host = Some(HeaderValue::from_static("a.example"));
        assert_eq!(
            v(&cx, "${host}"),
            Some(HeaderValue::from_static("a.example"))
        );
        for (ip, text) in [
            ("0.0.0.0", "0.0.0.0"),
            ("9.10.99.100", "9.10.99.100"),
            ("255.254.101.1", "255.254.101.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ] {
            let mut out = String::new();
            push_ip(ip.parse().unwrap_or_else(|_| unreachable!()), &mut out);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn route_bound_at_compile_time() {
        let t = |text: &str| {
            Value::new(&sy_config::template::parse(text).unwrap_or_else(|e| unreachable!("{e}")))
                .unwrap_or_else(|| unreachable!())
        };
        let peer = "192.0.2.7:5000".parse().unwrap_or_else(|_| unreachable!());
        let mut cx = RequestCx::new("web", peer, http::Method::GET, http::Uri::from_static("/p"));
        cx.route = Some("ignored-once-bound");
        // Only `${route}`: static once bound.
        let fixed = |route| Fixed {
            listener: "web",
            route,
        };
        let v = t("r=${route}").bind(fixed("api"));
        assert!(matches!(v, Value::Static(_)));
        assert_eq!(v.render(&cx), Some(HeaderValue::from_static("r=api")));
        // With other variables: still rendered, the route part fixed.
        let v = t("${route}/${method}").bind(fixed("api"));
        assert!(matches!(v, Value::Dynamic(_)));
        assert_eq!(v.render(&cx), Some(HeaderValue::from_static("api/GET")));
        // The listener's own answers: no route.
        assert_eq!(
            t("[${route}]").bind(fixed("")).render(&cx),
            Some(HeaderValue::from_static("[]"))
        );
        // The listener too; a literal `$${route}` stays text.
        let v = t("${listener}:${route}:$${route}").bind(fixed("api"));
        assert!(matches!(v, Value::Static(_)));
        assert_eq!(
            v.render(&cx),
            Some(HeaderValue::from_static("web:api:${route}"))
        );
        // Values without them are left as they are.
        assert!(!t("${method}").reads_fixed());
        assert!(t("a${route}").reads_fixed() && t("${listener}").reads_fixed());
    }
}
