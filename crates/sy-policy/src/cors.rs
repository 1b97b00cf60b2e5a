//! CORS, the Fetch standard's cross-origin protocol, as pure decisions:
//! which origins a policy allows, how a preflight is answered, and which
//! `Access-Control-*` headers an actual response carries. The `cors`
//! filter of the server applies them; docs/filters.md describes the rules
//! for users.
//!
//! The rules, in short:
//!
//! - `allow_origins` entries are exact origins (`https://app.example`,
//!   scheme and host lower-cased, a port only when it is not the scheme's
//!   default), wildcard hosts (`https://*.example.com`: the scheme and the
//!   port are part of the pattern, `*` stands for one or more whole labels,
//!   so it never matches `https://example.com` or
//!   `https://evil-example.com`), regexes that must match the whole origin
//!   (anchored for the user), `"null"` (the opaque origin of sandboxed
//!   frames and `file:` pages, only when listed exactly), or `"*"` alone.
//! - `"*"` answers `Access-Control-Allow-Origin: *` on every response: the
//!   answer does not depend on the origin, so no `Vary: Origin`. It cannot
//!   be combined with credentials (browsers reject `*` on credentialed
//!   requests, and echoing every origin with credentials would let any
//!   site read a user's data): [`Policy::new`] refuses it.
//! - Any other policy echoes an allowed origin and adds `Vary: Origin` to
//!   every response, since the answer depends on the origin. A refused
//!   origin gets no CORS header at all.
//! - A preflight is answered by the policy, never by the upstream: allowed
//!   (origin, method and every requested header) with `204` and the
//!   headers, refused otherwise (the caller answers `403` without CORS
//!   headers). GET, HEAD and POST always pass the method check, as they do
//!   in browsers (CORS-safelisted methods); every header the browser lists
//!   in `Access-Control-Request-Headers` must be allowed.

use regex::Regex;

/// The response headers a CORS policy decides: the filter removes them
/// from the upstream's response before adding its own, so a refused origin
/// never gets one and an allowed origin gets exactly the policy's.
pub const OWNED_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
];

/// The methods browsers send without asking (CORS-safelisted methods):
/// a preflight for them is never refused for its method.
pub const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// `allow_methods` when the configuration does not say.
pub const DEFAULT_METHODS: [&str; 3] = SAFELISTED_METHODS;

/// `Vary` of a preflight answer when the policy depends on the origin.
const VARY_PREFLIGHT: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// `Vary` of a preflight answer of an `"*"` policy.
const VARY_PREFLIGHT_ANY: &str = "Access-Control-Request-Method, Access-Control-Request-Headers";

/// One `allow_origins` entry other than `"*"`.
#[derive(Debug, Clone)]
pub enum OriginPattern {
    /// An exact origin (normalised: lower-case scheme and host, no default
    /// port), or `"null"`.
    Exact(String),
    /// `scheme://*.suffix[:port]`: any host under `suffix`, with this
    /// scheme and this port (None: the scheme's default, i.e. no port in
    /// the origin).
    Wildcard {
        /// Lower-case scheme.
        scheme: String,
        /// Lower-case domain the host must be under (without the `*.`).
        suffix: String,
        /// The port the origin must name.
        port: Option<u16>,
    },
    /// A regex the whole origin must match (compiled anchored).
    Regex(Regex),
}

impl OriginPattern {
    /// Parses a string entry of `allow_origins` (not `"*"`): an exact
    /// origin, `"null"`, or a wildcard host. The error says what is wrong
    /// and how to write it.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        if text == "null" {
            return Ok(OriginPattern::Exact("null".to_owned()));
        }
        if text == "*" {
            return Err("`*` allows every origin and must be the only entry".to_owned());
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "an origin is scheme://host[:port], e.g. \"https://{}\"",
                if text.is_empty() || text.contains(['/', ':']) {
                    "app.example.com"
                } else {
                    text
                }
            ));
        };
        let scheme = check_scheme(scheme)?;
        if let Some(i) = rest.find(['/', '?', '#']) {
            return Err(format!(
                "an origin has no path: browsers send scheme://host[:port] only; remove `{}`",
                &rest[i..]
            ));
        }
        if rest.contains('@') {
            return Err("an origin has no user name or password".to_owned());
        }
        let (host, port) = split_port(rest)?;
        let port = match port {
            None => None,
            Some(p) => {
                let n = parse_port(p)
                    .ok_or_else(|| format!("invalid port `{p}`: use a number from 1 to 65535"))?;
                if default_port(&scheme) == Some(n) {
                    return Err(format!(
                        "browsers leave the default port out of an origin: write \"{scheme}://{}\"",
                        host.to_ascii_lowercase()
                    ));
                }
                Some(n)
            }
        };
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(WILDCARD_PLACE.to_owned());
            }
            let suffix = check_host(suffix)?;
            if !suffix.contains('.') {
                return Err(format!(
                    "`*.{suffix}` would allow every site under `.{suffix}`; name a domain, as in \"{scheme}://*.example.{suffix}\", or use a regex"
                ));
            }
            let numeric = suffix
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
            if numeric || suffix.starts_with('[') {
                return Err(
                    "a wildcard stands for DNS labels, not part of an IP address".to_owned(),
                );
            }
            return Ok(OriginPattern::Wildcard {
                scheme,
                suffix,
                port,
            });
        }
        if host.contains('*') {
            return Err(WILDCARD_PLACE.to_owned());
        }
        let host = check_host(host)?;
        Ok(OriginPattern::Exact(match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }))
    }

    /// Compiles a `{ regex = "..." }` entry: the regex must match the whole
    /// origin (it is anchored here, `^` and `$` are allowed but not
    /// needed). It never matches `"null"`.
    pub fn regex(pattern: &str) -> Result<OriginPattern, String> {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map(OriginPattern::Regex)
            .map_err(|e| format!("invalid regex: {}", regex_reason(&e.to_string())))
    }

    /// Whether this entry allows `origin`, the request's `Origin` value.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Exact(exact) => origin.eq_ignore_ascii_case(exact),
            // `null` is allowed only by an exact "null" entry.
            _ if origin == "null" => false,
            OriginPattern::Regex(re) => re.is_match(origin),
            OriginPattern::Wildcard {
                scheme,
                suffix,
                port,
            } => {
                let Some((s, rest)) = origin.split_once("://") else {
                    return false;
                };
                let Ok((host, p)) = split_port(rest) else {
                    return false;
                };
                let port_ok = match (p, port) {
                    (None, None) => true,
                    (Some(p), Some(want)) => parse_port(p) == Some(*want),
                    _ => false,
                };
                s.eq_ignore_ascii_case(scheme) && port_ok && under(host, suffix)
            }
        }
    }
}

const WILDCARD_PLACE: &str =
    "a wildcard must be the whole first label of the host, as in \"https://*.example.com\"";

/// Whether `host` is one or more DNS labels followed by `.suffix`
/// (ASCII case-insensitive).
fn under(host: &str, suffix: &str) -> bool {
    let Some(cut) = host.len().checked_sub(suffix.len() + 1) else {
        return false;
    };
    let (Some(labels), Some(tail)) = (host.get(..cut), host.get(cut..)) else {
        return false;
    };
    tail.as_bytes().first() == Some(&b'.')
        && tail
            .get(1..)
            .is_some_and(|t| t.eq_ignore_ascii_case(suffix))
        && !labels.is_empty()
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A URL scheme (RFC 3986: a letter, then letters, digits, `+`, `-`,
/// `.`), lower-cased.
fn check_scheme(scheme: &str) -> Result<String, String> {
    let ok = scheme
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if ok {
        Ok(scheme.to_ascii_lowercase())
    } else {
        Err(format!("invalid scheme `{scheme}`, e.g. `https`"))
    }
}

/// A host: a DNS name, an IPv4 address or a bracketed IPv6 address,
/// lower-cased.
fn check_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("an origin needs a host".to_owned());
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(host.to_ascii_lowercase()),
            Err(_) => Err(format!("invalid IPv6 address `{inner}`")),
        };
    }
    crate::syntax::dns_name(host)
}

/// `host[:port]` -> (host, port text); IPv6 hosts are bracketed.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("an IPv6 address needs its closing `]`".to_owned());
        };
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{rest}` after the host")),
        };
    }
    Ok(match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

/// A port number, 1..=65535, digits only.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n != 0)
}

/// The port an origin of `scheme` leaves out.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// The part of a `regex` syntax error that explains it (its errors span
/// several lines: the pattern, a caret, then "error: ...").
pub fn regex_reason(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or("invalid pattern")
        .to_lowercase()
}

/// A list that is either explicit or `"*"` (anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// `"*"`: anything the request asks for (echoed back).
    Any,
    /// These (methods as written, header names lower-case).
    Only(Vec<String>),
}

/// One `allow_origins` entry as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginSpec {
    /// `"*"`.
    Any,
    /// An exact origin, `"null"` or a wildcard host.
    Pattern(String),
    /// `{ regex = "..." }`.
    Regex(String),
}

/// A CORS policy as configured (validated by the configuration crate).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// `allow_origins`.
    pub allow_origins: Vec<OriginSpec>,
    /// `allow_methods`; `["*"]` = any method.
    pub allow_methods: Vec<String>,
    /// `allow_headers`; `["*"]` = any header.
    pub allow_headers: Vec<String>,
    /// `expose_headers`.
    pub expose_headers: Vec<String>,
    /// `allow_credentials`.
    pub allow_credentials: bool,
    /// `max_age` in whole seconds; None = no `Access-Control-Max-Age`.
    pub max_age_secs: Option<u64>,
}

/// A compiled CORS policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `"*"`: every origin, answered with a literal `*`.
    any_origin: bool,
    origins: Vec<OriginPattern>,
    methods: Allow,
    headers: Allow,
    credentials: bool,
    /// `allow_methods` joined, as sent; None when empty or `*`.
    methods_text: Option<String>,
    /// `allow_headers` joined, as sent; None when empty or `*`.
    headers_text: Option<String>,
    /// `expose_headers` joined; None when empty.
    expose_text: Option<String>,
    /// `max_age` in seconds, as sent.
    max_age_text: Option<String>,
}

/// Why a preflight was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'r> {
    /// The origin is not allowed.
    Origin,
    /// The method asked for is not allowed.
    Method(&'r str),
    /// A header asked for is not allowed (the first one).
    Header(&'r str),
}

impl std::fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Origin => f.write_str("origin not allowed"),
            Refusal::Method(m) => write!(f, "method {m} not allowed"),
            Refusal::Header(h) => write!(f, "request header {h} not allowed"),
        }
    }
}

/// The answer to an allowed preflight: its headers (status 204).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight<'r> {
    /// `Access-Control-Allow-Origin`: `*` or the origin.
    pub allow_origin: &'r str,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Allow-Methods`; None when `allow_methods` is empty.
    pub allow_methods: Option<&'r str>,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: Option<&'r str>,
    /// `Access-Control-Max-Age`.
    pub max_age: Option<&'r str>,
    /// `Vary`.
    pub vary: &'static str,
}

impl<'r> Preflight<'r> {
    /// The header fields, in the order they are sent.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'r str)> + use<'r> {
        [
            Some(("access-control-allow-origin", self.allow_origin)),
            self.allow_credentials
                .then_some(("access-control-allow-credentials", "true")),
            self.allow_methods
                .map(|m| ("access-control-allow-methods", m)),
            self.allow_headers
                .map(|h| ("access-control-allow-headers", h)),
            self.max_age.map(|m| ("access-control-max-age", m)),
            Some(("vary", self.vary)),
        ]
        .into_iter()
        .flatten()
    }
}

/// What an actual (not preflight) request's origin comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request has no `Origin`: not a CORS request.
    NotCors,
    /// The origin is allowed: CORS headers are added.
    Allowed,
    /// The origin is not allowed: no CORS header.
    Denied,
}

/// The CORS headers of a response to an actual request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actual<'r> {
    /// What the origin came to.
    pub outcome: Outcome,
    /// `Access-Control-Allow-Origin`; None = no CORS header at all.
    pub allow_origin: Option<&'r str>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Option<&'r str>,
    /// `Origin` belongs in the response's `Vary` (merged with what is
    /// there, see [`crate::vary::add`]).
    pub vary_origin: bool,
}

impl<'r> Actual<'r> {
    /// The `Access-Control-*` fields, in the order they are sent (`Vary`
    /// is merged separately).
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'r str)> + use<'r> {
        let allowed = self.allow_origin.is_some();
        [
            self.allow_origin
                .map(|o| ("access-control-allow-origin", o)),
            (allowed && self.allow_credentials)
                .then_some(("access-control-allow-credentials", "true")),
            self.expose_headers
                .filter(|_| allowed)
                .map(|e| ("access-control-expose-headers", e)),
        ]
        .into_iter()
        .flatten()
    }
}

impl Policy {
    /// Compiles a policy. Errors are what validation reports first; a
    /// validated configuration always compiles.
    pub fn new(spec: &Spec) -> Result<Policy, String> {
        let any_origin = spec.allow_origins.contains(&OriginSpec::Any);
        if spec.allow_origins.is_empty() {
            return Err("allow_origins is empty: no origin would be allowed".to_owned());
        }
        if any_origin && spec.allow_origins.len() > 1 {
            return Err("`*` allows every origin and must be the only entry".to_owned());
        }
        if any_origin && spec.allow_credentials {
            return Err(
                "allow_origins = [\"*\"] cannot go with allow_credentials = true".to_owned(),
            );
        }
        let origins = spec
            .allow_origins
            .iter()
            .filter_map(|o| match o {
                OriginSpec::Any => None,
                OriginSpec::Pattern(p) => Some(OriginPattern::parse(p)),
                OriginSpec::Regex(r) => Some(OriginPattern::regex(r)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list = |names: &[String], lower: bool| -> Result<Allow, String> {
            if names.iter().any(|n| n == "*") {
                if names.len() > 1 {
                    return Err("`*` allows everything and must be the only entry".to_owned());
                }
                return Ok(Allow::Any);
            }
            Ok(Allow::Only(
                names
                    .iter()
                    .map(|n| {
                        if lower {
                            n.to_ascii_lowercase()
                        } else {
                            n.clone()
                        }
                    })
                    .collect(),
            ))
        };
        let methods = list(&spec.allow_methods, false)?;
        let headers = list(&spec.allow_headers, true)?;
        let expose = list(&spec.expose_headers, true)?;
        if expose == Allow::Any && spec.allow_credentials {
            return Err(
                "expose_headers = [\"*\"] means the header named `*` on credentialed requests"
                    .to_owned(),
            );
        }
        let joined = |a: &Allow| match a {
            Allow::Any => None,
            Allow::Only(v) if v.is_empty() => None,
            Allow::Only(v) => Some(v.join(", ")),
        };
        Ok(Policy {
            any_origin,
            origins,
            methods_text: joined(&methods),
            headers_text: joined(&headers),
            expose_text: match &expose {
                Allow::Any => Some("*".to_owned()),
                other => joined(other),
            },
            max_age_text: spec.max_age_secs.map(|s| s.to_string()),
            methods,
            headers,
            credentials: spec.allow_credentials,
        })
    }

    /// The policy is `"*"`: its answers do not depend on the origin.
    pub fn any_origin(&self) -> bool {
        self.any_origin
    }

    /// `Access-Control-Expose-Headers` of an allowed actual request; None
    /// when `expose_headers` is empty.
    pub fn expose_headers(&self) -> Option<&str> {
        self.expose_text.as_deref()
    }

    /// Whether `origin` (the request's `Origin` value) is allowed. An empty
    /// origin (or one that is not text, which callers pass as "") is
    /// allowed by `"*"` only.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.any_origin || (!origin.is_empty() && self.origins.iter().any(|p| p.matches(origin)))
    }

    /// The answer to a preflight from `origin` asking for `method` and the
    /// comma-separated `request_headers` (`Access-Control-Request-Headers`,
    /// empty when absent). Refused when the origin, the method (other than
    /// GET, HEAD and POST) or one of the headers is not allowed.
    pub fn preflight<'r>(
        &'r self,
        origin: &'r str,
        method: &'r str,
        request_headers: &'r str,
    ) -> Result<Preflight<'r>, Refusal<'r>> {
        if !self.allows_origin(origin) {
            return Err(Refusal::Origin);
        }
        let method_ok = SAFELISTED_METHODS.contains(&method)
            || match &self.methods {
                Allow::Any => !method.is_empty(),
                Allow::Only(m) => m.iter().any(|m| m == method),
            };
        if !method_ok {
            return Err(Refusal::Method(method));
        }
        let asked = request_headers
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty());
        if let Allow::Only(allowed) = &self.headers {
            for h in asked {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(h)) {
                    return Err(Refusal::Header(h));
                }
            }
        }
        let request_headers = request_headers.trim();
        Ok(Preflight {
            allow_origin: if self.any_origin { "*" } else { origin },
            allow_credentials: self.credentials,
            allow_methods: match self.methods {
                Allow::Any => Some(method),
                Allow::Only(_) => self.methods_text.as_deref(),
            },
            allow_headers: match self.headers {
                Allow::Any => Some(request_headers).filter(|h| !h.is_empty()),
                Allow::Only(_) => self.headers_text.as_deref(),
            },
            max_age: self.max_age_text.as_deref(),
            vary: if self.any_origin {
                VARY_PREFLIGHT_ANY
            } else {
                VARY_PREFLIGHT
            },
        })
    }

    /// The `Vary` a refused preflight answer carries (the same as an
    /// allowed one's: the answer depends on the same request headers).
    pub fn preflight_vary(&self) -> &'static str {
        if self.any_origin {
            VARY_PREFLIGHT_ANY
        } else {
            VARY_PREFLIGHT
        }
    }

    /// The CORS headers of the response to an actual request whose
    /// `Origin` is `origin` (None: no `Origin`, or one that is not text).
    pub fn actual<'r>(&'r self, origin: Option<&'r str>) -> Actual<'r> {
        let outcome = match origin {
            None => Outcome::NotCors,
            Some(o) if self.allows_origin(o) => Outcome::Allowed,
            Some(_) => Outcome::Denied,
        };
        if self.any_origin {
            // The same answer for every request, with an Origin or not.
            return Actual {
                outcome,
                allow_origin: Some("*"),
                allow_credentials: false,
                expose_headers: self.expose_text.as_deref(),
                vary_origin: false,
            };
        }
        let allowed = outcome == Outcome::Allowed;
        Actual {
            outcome,
            allow_origin: origin.filter(|_| allowed),
            allow_credentials: allowed && self.credentials,
            expose_headers: self.expose_text.as_deref().filter(|_| allowed),
            vary_origin: true,
        }
    }
}

/// A request is a CORS preflight: `OPTIONS` with an `Origin` and an
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &str, has_origin: bool, has_request_method: bool) -> bool {
    method == "OPTIONS" && has_origin && has_request_method
}

#[cfg(test)]
mod tests;
