//! `compress`: responses compressed with gzip, brotli or zstd, the coding
//! chosen from the request's `Accept-Encoding` (q-values, then the
//! configured order). The request phase only reads `Accept-Encoding` (the
//! request goes upstream unchanged: a response the upstream already
//! encoded passes as it is); the response phase decides
//! (`sy_policy::compress::decide`), rewrites the headers and wraps the
//! body in a streaming encoder ([`Encoded`]).

mod encoder;

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response};
use http_body::Body;
use prometheus_client::metrics::counter::Counter;
use sy_config::model::CompressFilter;
use sy_policy::compress::{
    self as policy, Accepted, Coding, Decision, EtagChange, Facts, Rules, TypePattern,
};

use super::{RequestCx, Verdict};
use crate::body::ProxyBody;
use crate::metrics::{Metrics, RouteEncoding, RouteEncodingDirection};

pub use encoder::{ByteCounters, Encoded, Encoder, Levels};

/// Fields that describe the uncompressed bytes and become wrong once they
/// are encoded.
static STALE: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::ACCEPT_RANGES,
    HeaderName::from_static("content-md5"),
    HeaderName::from_static("digest"),
    HeaderName::from_static("content-digest"),
    HeaderName::from_static("repr-digest"),
];

/// A compiled `compress` filter.
#[derive(Debug)]
pub struct Compress {
    settings: Arc<Settings>,
    /// Per coding, by `Coding::index`: unregistered until the filter is
    /// bound to a route ([`Compress::for_route`]).
    counters: [Counters; 3],
}

/// The configuration, shared by the filter's copies of every route.
#[derive(Debug)]
struct Settings {
    offer: Box<[Coding]>,
    min_size: u64,
    types: Box<[TypePattern]>,
    levels: Levels,
}

/// The metric handles of one coding on one route.
#[derive(Debug, Clone, Default)]
struct Counters {
    responses: Counter,
    bytes: ByteCounters,
}

impl Compress {
    /// Compiles the validated configuration.
    pub fn new(cfg: &CompressFilter) -> Result<Self, String> {
        let types = cfg
            .content_types
            .iter()
            .map(|t| TypePattern::parse(t).map_err(|e| format!("content type {t}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Compress {
            settings: Arc::new(Settings {
                offer: cfg.algorithms.as_slice().into(),
                min_size: cfg.min_size,
                types,
                levels: Levels {
                    gzip: cfg.gzip_level,
                    brotli: cfg.brotli_level,
                    zstd: cfg.zstd_level,
                },
            }),
            counters: Default::default(),
        })
    }

    /// This filter with the metric handles of `route`, resolved now so
    /// that a response only increments them. Series exist only for the
    /// codings it offers.
    pub fn for_route(&self, route: &str, metrics: &Metrics) -> Compress {
        let mut counters: [Counters; 3] = Default::default();
        for c in self.settings.offer.iter() {
            let encoding = c.token().to_owned();
            let bytes = |direction: &str| {
                metrics
                    .compression_bytes
                    .get_or_create_owned(&RouteEncodingDirection {
                        route: route.to_owned(),
                        encoding: encoding.clone(),
                        direction: direction.to_owned(),
                    })
            };
            // One statement per handle of a family (see ServerMetrics::new).
            let bytes_in = bytes("in");
            let bytes_out = bytes("out");
            let responses = metrics.compressed.get_or_create_owned(&RouteEncoding {
                route: route.to_owned(),
                encoding: encoding.clone(),
            });
            counters[c.index()] = Counters {
                responses,
                bytes: ByteCounters {
                    bytes_in,
                    bytes_out,
                },
            };
        }
        Compress {
            settings: self.settings.clone(),
            counters,
        }
    }

    /// Reads what the client accepts; the request is not changed.
    pub fn on_request(&self, cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        cx.accept_encoding = Some(Accepted::parse(
            req.headers
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .map(HeaderValue::as_bytes),
        ));
        Verdict::Continue
    }

    /// Compresses the response when it may be and the client accepts an
    /// offered coding; adds `Vary: Accept-Encoding` to every response that
    /// could have been compressed.
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut Response<ProxyBody>) {
        let s = &*self.settings;
        let head = cx.method == Method::HEAD;
        let h = resp.headers();
        let status = resp.status().as_u16();
        let declared = content_length(h);
        // The cheap refusals first (`decide` would say Leave): most
        // responses that are not compressed stop here, before the header
        // lookups below.
        if !(200..300).contains(&status)
            || matches!(status, 204..=206)
            || declared.is_some_and(|n| n == 0 || n < s.min_size)
        {
            return;
        }
        let facts = Facts {
            status,
            head,
            encoded: policy::is_encoded(values(h, &header::CONTENT_ENCODING)),
            no_transform: policy::has_no_transform(values(h, &header::CACHE_CONTROL)),
            content_type: h.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
            // A HEAD response's Content-Length is the GET's; its own body
            // is empty.
            length: match declared {
                Some(n) => Some(n),
                None if head => None,
                None if resp.body().is_end_stream() => Some(0),
                None => resp.body().size_hint().exact(),
            },
        };
        let rules = Rules {
            min_size: s.min_size,
            types: &s.types,
        };
        let chosen = cx.accept_encoding.and_then(|a| a.choose(&s.offer));
        let coding = match policy::decide(&facts, &rules, chosen) {
            Decision::Leave => return,
            Decision::Vary => {
                super::add_vary(resp.headers_mut(), "Accept-Encoding");
                return;
            }
            Decision::Compress(c) => c,
        };
        let enc = match Encoder::new(coding, &s.levels) {
            Ok(e) => e,
            Err(e) => {
                // Only an allocation failure inside zstd gets here.
                tracing::warn!(route = cx.route.unwrap_or(""), error = %e, "cannot start a {} encoder; response sent uncompressed", coding.token());
                super::add_vary(resp.headers_mut(), "Accept-Encoding");
                return;
            }
        };
        let counters = &self.counters[coding.index()];
        counters.responses.inc();
        let h = resp.headers_mut();
        for name in STALE.iter() {
            h.remove(name);
        }
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        super::add_vary(h, "Accept-Encoding");
        weaken_etag(h);
        let body = std::mem::replace(resp.body_mut(), ProxyBody::Empty);
        *resp.body_mut() =
            ProxyBody::Boxed(Box::pin(Encoded::new(body, enc, counters.bytes.clone())));
    }
}

fn values<'a>(h: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    h.get_all(name).iter().map(HeaderValue::as_bytes)
}

/// The declared length; None when absent, repeated or not a number.
fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut all = h.get_all(header::CONTENT_LENGTH).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    v.to_str().ok()?.trim().parse().ok()
}

/// A strong `ETag` becomes weak: the compressed bytes differ from the
/// ones it names (RFC 9110 8.8.3).
fn weaken_etag(h: &mut HeaderMap) {
    let mut all = h.get_all(header::ETAG).iter();
    let change = match (all.next(), all.next()) {
        (None, _) => return,
        (Some(v), None) => policy::weaken_etag(v.as_bytes()),
        // Several ETags are no validator at all.
        (Some(_), Some(_)) => EtagChange::Remove,
    };
    match change {
        EtagChange::Keep => {}
        EtagChange::Replace(weak) => match HeaderValue::from_bytes(&weak) {
            Ok(v) => {
                h.insert(header::ETAG, v);
            }
            Err(_) => {
                h.remove(header::ETAG);
            }
        },
        EtagChange::Remove => {
            h.remove(header::ETAG);
        }
    }
}

#[cfg(test)]
mod tests;
