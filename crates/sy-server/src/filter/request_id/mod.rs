//! `request_id`: every request carries an id, in a header of the request
//! sent upstream and, by default, of the response. An incoming id is kept
//! from whom `trust_incoming` says; otherwise (or when it is missing or
//! malformed) a new random UUID (version 4) replaces it. The id is in the
//! [`RequestCx`] for later filters, the access log and the trace.

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use sy_config::model::{RequestIdFilter, TrustIncoming};

use super::{RequestCx, Verdict};
use crate::body::ProxyBody;

/// Longest incoming id kept; a longer one is replaced.
const MAX_INCOMING: usize = 200;

/// A compiled `request_id` filter.
#[derive(Debug)]
pub struct RequestId {
    header: HeaderName,
    trust: TrustIncoming,
    response: bool,
}

impl RequestId {
    /// Compiles the validated configuration.
    pub fn new(cfg: &RequestIdFilter) -> Result<Self, String> {
        Ok(RequestId {
            header: HeaderName::from_bytes(cfg.header.as_bytes())
                .map_err(|e| format!("request_id header: {e}"))?,
            trust: cfg.trust_incoming,
            response: cfg.response,
        })
    }

    /// Keeps or makes the id, and puts it on the request.
    pub fn on_request(&self, cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        let keep = match self.trust {
            TrustIncoming::Always => true,
            TrustIncoming::Trusted => cx.trusted_peer,
            TrustIncoming::Never => false,
        };
        let incoming = req
            .headers
            .get(&self.header)
            .filter(|v| keep && acceptable(v))
            .cloned();
        let id = incoming.unwrap_or_else(new_id);
        req.headers.insert(self.header.clone(), id.clone());
        cx.request_id = Some(id);
        Verdict::Continue
    }

    /// Returns the id to the client.
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut http::Response<ProxyBody>) {
        if let (true, Some(id)) = (self.response, &cx.request_id) {
            resp.headers_mut().insert(self.header.clone(), id.clone());
        }
    }
}

/// An incoming id worth keeping: visible ASCII, not too long.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_INCOMING && b.iter().all(|c| c.is_ascii_graphic())
}

/// A random UUID, version 4 (RFC 9562), lower-case and hyphenated.
pub fn new_id() -> HeaderValue {
    let mut b: [u8; 16] = rand::random::<u128>().to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = [0u8; 36];
    let mut j = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s[j] = b'-';
            j += 1;
        }
        for nibble in [byte >> 4, byte & 0x0f] {
            s[j] = b"0123456789abcdef"[usize::from(nibble)];
            j += 1;
        }
    }
    // Hex digits and hyphens only: always a valid header value.
    HeaderValue::from_bytes(&s).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests;
