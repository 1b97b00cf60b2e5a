//! Responses Switchyard makes itself: errors, `respond` and `redirect`
//! actions.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
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
    if status == StatusCode::BAD_REQUEST {
        // After a framing error the connection's byte stream is suspect.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
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
