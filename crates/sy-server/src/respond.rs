//! Responses Switchyard makes itself: errors, `respond` and `redirect`
//! actions.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use sy_config::model::RedirectTarget;
use sy_core::{BREAKER_HEADER, ERROR_HEADER, ProxyError};

use crate::body::ProxyBody;

/// An error answer: status from the failed stage, the stage in the
/// `x-switchyard-error` header, and a one-line body naming the cause.
pub fn error(e: &ProxyError) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        e
    );
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(ERROR_HEADER, HeaderValue::from_static(e.stage.as_str()));
    if let Some(b) = e.breaker {
        h.insert(BREAKER_HEADER, HeaderValue::from_static(b));
    }
    // The headers a filter's answer carries (WWW-Authenticate, Retry-After).
    for (name, value) in &e.headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    }
    if status == StatusCode::BAD_REQUEST {
        // After a framing error the connection's byte stream is suspect.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // Never sent: tells the response filters (error pages) that this is
    // Switchyard's own answer, and about what.
    r.extensions_mut().insert(e.clone());
    r
}

/// A fixed answer.
pub fn fixed(
    status: StatusCode,
    content_type: &HeaderValue,
    body: bytes::Bytes,
) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Full(Some(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.clone());
    r
}

/// A redirect to `location`.
pub fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Empty);
    *r.status_mut() = status;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    r
}

/// Where a `redirect` action sends this request; None when the request's
/// host is missing or malformed (the caller answers 400).
///
/// `https`: the request came over TLS. `host`: its Host header or
/// `:authority`. `path_and_query`: the request target in origin form.
pub fn redirect_location(
    target: &RedirectTarget,
    https: bool,
    host: &str,
    path_and_query: &str,
) -> Option<String> {
    match target {
        RedirectTarget::Location {
            location,
            keep_path: false,
        } => Some(location.clone()),
        RedirectTarget::Location {
            location,
            keep_path: true,
        } => Some(format!(
            "{}{}",
            location.trim_end_matches('/'),
            path_and_query
        )),
        RedirectTarget::Rewrite {
            scheme,
            host: to,
            port,
        } => {
            let asked = if https { "https" } else { "http" };
            let scheme = scheme.as_deref().unwrap_or(asked);
            if host.is_empty() || host.contains('@') {
                return None;
            }
            let authority: http::uri::Authority = host.parse().ok()?;
            let name = to
                .as_deref()
                .unwrap_or(authority.host())
                .to_ascii_lowercase();
            // Another scheme means another port, unless one is configured.
            let port = match port {
                Some(p) => Some(*p),
                None if scheme == asked => authority.port_u16(),
                None => None,
            };
            let default = if scheme == "https" { 443 } else { 80 };
            let pq = if path_and_query.is_empty() {
                "/"
            } else {
                path_and_query
            };
            Some(match port.filter(|&p| p != default) {
                Some(p) => format!("{scheme}://{name}:{p}{pq}"),
                None => format!("{scheme}://{name}{pq}"),
            })
        }
    }
}

/// The `Date` a response without one gets (RFC 9110 6.6.1: an origin
/// server with a clock must send it; Switchyard's own answers and origins
/// that leave it out). hyper's own date, which Switchyard turns off, read
/// the clock several times a request; this one reads the coarse real-time
/// clock once and formats once a second per thread.
pub fn http_date() -> HeaderValue {
    use std::cell::RefCell;
    thread_local! {
        static DATE: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let secs = unix_secs();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            d.1 = HeaderValue::from_str(&httpdate::fmt_http_date(t))
                .unwrap_or(HeaderValue::from_static(""));
            d.0 = secs;
        }
        d.1.clone()
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn unix_secs() -> u64 {
    rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec as u64
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_an_http_date_of_now() {
        let v = http_date();
        let t = httpdate::parse_http_date(v.to_str().unwrap()).unwrap();
        let now = std::time::SystemTime::now();
        let off = now
            .duration_since(t)
            .unwrap_or_else(|e| e.duration())
            .as_secs();
        assert!(off <= 2, "{v:?} is {off} s from now");
    }

    fn rewrite(scheme: Option<&str>, host: Option<&str>, port: Option<u16>) -> RedirectTarget {
        RedirectTarget::Rewrite {
            scheme: scheme.map(str::to_owned),
            host: host.map(str::to_owned),
            port,
        }
    }

    #[test]
    fn redirect_targets() {
        let fixed = |location: &str, keep_path| RedirectTarget::Location {
            location: location.to_owned(),
            keep_path,
        };
        // (target, tls, host, path and query, expected)
        let cases = [
            (
                fixed("https://example.com/new", false),
                false,
                "a.test",
                "/x?y=1",
                Some("https://example.com/new"),
            ),
            (
                fixed("https://example.com/", true),
                false,
                "a.test",
                "/x?y=1",
                Some("https://example.com/x?y=1"),
            ),
            (
                rewrite(Some("https"), None, None),
                false,
                "example.com",
                "/p?q=1",
                Some("https://example.com/p?q=1"),
            ),
            (
                rewrite(Some("https"), None, None),
                false,
                "example.com:8080",
                "/p",
                Some("https://example.com/p"),
            ),
            (
                rewrite(Some("https"), None, Some(8443)),
                false,
                "example.com:8080",
                "/p",
                Some("https://example.com:8443/p"),
            ),
            (
                rewrite(Some("https"), None, Some(443)),
                false,
                "example.com:8080",
                "/p",
                Some("https://example.com/p"),
            ),
            (
                rewrite(Some("https"), None, None),
                false,
                "[::1]:8080",
                "/",
                Some("https://[::1]/"),
            ),
            (
                rewrite(None, Some("www.example.com"), None),
                true,
                "example.com:8443",
                "/a",
                Some("https://www.example.com:8443/a"),
            ),
            (
                rewrite(None, None, Some(9000)),
                false,
                "example.com",
                "/a",
                Some("http://example.com:9000/a"),
            ),
            (
                rewrite(Some("http"), None, None),
                true,
                "Example.COM",
                "",
                Some("http://example.com/"),
            ),
            (rewrite(Some("https"), None, None), false, "", "/", None),
            (
                rewrite(Some("https"), None, None),
                false,
                "evil@example.com",
                "/",
                None,
            ),
            (
                rewrite(Some("https"), None, None),
                false,
                "bad host",
                "/",
                None,
            ),
        ];
        for (target, tls, host, pq, expected) in cases {
            assert_eq!(
                redirect_location(&target, tls, host, pq).as_deref(),
                expected,
                "{target:?} {host} {pq}"
            );
        }
    }
}
