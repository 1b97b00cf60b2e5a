//! Header value templates: text with `${variable}` parts, filled in per
//! request by the server (`headers` filter rules).
//!
//! `$$` writes a literal `$`. Variables are a fixed set (see [`Variable`]);
//! an unknown one is an error with a "did you mean".

use serde::Serialize;

/// A value as written in the file, split into literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text as written (for `GET /config` and messages).
    pub text: String,
    /// Literal text and variables, in order; adjacent literals merged.
    pub parts: Vec<Part>,
}

impl Template {
    /// Whether the value is the same for every request.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The variables the template uses.
    pub fn variables(&self) -> impl Iterator<Item = Variable> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Literal(_) => None,
        })
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text sent as is.
    Literal(String),
    /// A value of the request.
    Var(Variable),
}

/// What a `${...}` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    /// `client_ip`: the client's address (the trusted X-Forwarded-For
    /// client when the peer is a trusted proxy).
    ClientIp,
    /// `request_id`: the request id (see the `request_id` filter); empty
    /// when no such filter runs before.
    RequestId,
    /// `listener`: the listener's name.
    Listener,
    /// `route`: the route's name.
    Route,
    /// `upstream`: the upstream that answered (response rules only).
    Upstream,
    /// `server`: the server that answered (response rules only).
    Server,
    /// `trace_id`: the W3C trace id, when tracing gave the request one.
    TraceId,
    /// `tls_sni`: the server name the client asked for in its TLS hello.
    TlsSni,
    /// `host`: the request's host (Host or `:authority`).
    Host,
    /// `method`: the request method.
    Method,
    /// `path`: the request path (without the query).
    Path,
    /// `consumer`: the API consumer the gateway identified (empty until the
    /// gateway's authentication filters set it).
    Consumer,
    /// `status`: the status of Switchyard's error answer (error pages only).
    Status,
    /// `reason`: its reason phrase, e.g. "Bad Gateway" (error pages only).
    Reason,
    /// `error`: the failed stage, as in `x-switchyard-error` (error pages
    /// only).
    Error,
    /// `message`: the cause, one line (error pages only).
    Message,
}

/// Every variable, by its name in the file.
pub const VARIABLES: &[(&str, Variable)] = &[
    ("client_ip", Variable::ClientIp),
    ("request_id", Variable::RequestId),
    ("listener", Variable::Listener),
    ("route", Variable::Route),
    ("upstream", Variable::Upstream),
    ("server", Variable::Server),
    ("trace_id", Variable::TraceId),
    ("tls_sni", Variable::TlsSni),
    ("host", Variable::Host),
    ("method", Variable::Method),
    ("path", Variable::Path),
    ("consumer", Variable::Consumer),
    ("status", Variable::Status),
    ("reason", Variable::Reason),
    ("error", Variable::Error),
    ("message", Variable::Message),
];

impl Variable {
    /// Known only in an error page (about Switchyard's own error answer).
    pub fn error_page_only(self) -> bool {
        matches!(
            self,
            Variable::Status | Variable::Reason | Variable::Error | Variable::Message
        )
    }

    /// The name written in `${...}`.
    pub fn name(self) -> &'static str {
        VARIABLES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Parses `text`; the error says what is wrong (for a diagnostic).
pub fn parse(text: &str) -> Result<Template, String> {
    let mut parts: Vec<Part> = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(more) = after.strip_prefix('$') {
            literal.push('$');
            rest = more;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            return Err(
                "a `$` starts a variable, written `${name}`; write `$$` for a literal `$`".into(),
            );
        };
        let Some(end) = body.find('}') else {
            return Err("`${` is not closed by `}`".into());
        };
        let name = &body[..end];
        let Some((_, var)) = VARIABLES.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
            let hint = crate::diagnostic::choice_hint(name, &names).unwrap_or_default();
            return Err(format!("unknown variable `${{{name}}}`; {hint}"));
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Var(*var));
        rest = &body[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template {
        text: text.to_owned(),
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_variables_and_escapes() {
        let t = parse("id=${request_id}; from $${client_ip} at ${client_ip}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("id=".into()),
                Part::Var(Variable::RequestId),
                Part::Literal("; from ${client_ip} at ".into()),
                Part::Var(Variable::ClientIp),
            ]
        );
        assert!(!t.is_literal());
        assert!(parse("max-age=63072000").unwrap().is_literal());
        assert_eq!(parse("").unwrap().parts, vec![]);
        assert_eq!(parse("$$").unwrap().parts, vec![Part::Literal("$".into())]);
    }

    #[test]
    fn mistakes_are_explained() {
        assert_eq!(
            parse("${clientip}").unwrap_err(),
            "unknown variable `${clientip}`; did you mean `client_ip`?"
        );
        assert!(parse("$host").unwrap_err().contains("written `${name}`"));
        assert!(parse("${host").unwrap_err().contains("not closed"));
        for (name, v) in VARIABLES {
            assert_eq!(v.name(), *name);
            assert_eq!(
                parse(&format!("${{{name}}}")).unwrap().parts,
                vec![Part::Var(*v)]
            );
        }
    }
}
