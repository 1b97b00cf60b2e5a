//! `cors`: the Fetch standard's CORS protocol at the edge. A preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//! answered here, `204` with the policy's headers or `403` without any,
//! and never reaches the upstream. Every answer that passes the filter,
//! the upstream's and Switchyard's own, loses the `Access-Control-*`
//! headers it had and gets the policy's for an allowed origin, plus
//! `Vary: Origin` merged into its `Vary`. Decisions use the request as
//! received (`RequestCx::origin`, `RequestCx::preflight`), whatever
//! filters before this one changed. The decisions are `sy_policy::cors`;
//! this file applies them.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use sy_config::model::CorsFilter;
use sy_core::ProxyError;
use sy_policy::cors::{Outcome, Policy, Preflight, Refusal};

use super::{PreflightAsk, RequestCx, Verdict};
use crate::body::ProxyBody;
use crate::metrics::{Metrics, RouteOutcome};

/// `switchyard_cors_requests_total` handles of one route, resolved when
/// the snapshot is built ([`Cors::for_route`]); unregistered (never
/// exported) until then.
#[derive(Debug, Default, Clone)]
pub struct CorsCounters {
    /// Preflights answered `204`.
    pub preflight: Counter,
    /// Actual requests from an allowed origin (CORS headers added).
    pub allowed: Counter,
    /// Preflights refused (`403`) and actual requests from an origin that
    /// is not allowed (no CORS header).
    pub denied: Counter,
}

impl CorsCounters {
    /// The `cors_requests_total` handles of `route` ("" for answers no
    /// route gave).
    fn of(m: &Metrics, route: &str) -> Self {
        let c = |outcome: &str| {
            m.cors_requests.get_or_create_owned(&RouteOutcome {
                route: route.to_string(),
                outcome: outcome.to_string(),
            })
        };
        CorsCounters {
            preflight: c("preflight"),
            allowed: c("allowed"),
            denied: c("denied"),
        }
    }
}

/// A compiled `cors` filter, as one route uses it.
#[derive(Debug)]
pub struct Cors {
    /// The policy, shared by the routes that use the filter.
    policy: Arc<Policy>,
    /// `Access-Control-Expose-Headers`, when the policy has any.
    expose: Option<HeaderValue>,
    /// The route's counters.
    counters: CorsCounters,
}

const STAR: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");

impl Cors {
    /// Compiles the validated configuration.
    pub fn new(cfg: &CorsFilter) -> Result<Self, String> {
        let policy = Policy::new(&cfg.spec())?;
        let expose = policy
            .expose_headers()
            .map(|e| HeaderValue::from_str(e).map_err(|e| format!("expose_headers: {e}")))
            .transpose()?;
        Ok(Cors {
            policy: Arc::new(policy),
            expose,
            counters: CorsCounters::default(),
        })
    }

    /// The filter as route `route` uses it ("" for answers no route gave):
    /// the same policy, the route's counters.
    pub fn for_route(&self, route: &str, metrics: &Metrics) -> Cors {
        Cors {
            policy: self.policy.clone(),
            expose: self.expose.clone(),
            counters: CorsCounters::of(metrics, route),
        }
    }

    /// The policy's answer to the preflight `ask` of this request.
    fn decide<'r>(
        &'r self,
        cx: &'r RequestCx<'_>,
        ask: &'r PreflightAsk,
    ) -> Result<Preflight<'r>, Refusal<'r>> {
        // An Origin or a method that is not text is allowed by no list.
        let origin = cx
            .origin
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let method = ask.method.to_str().unwrap_or("");
        let asked = ask
            .headers
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.policy.preflight(origin, method, asked)
    }

    /// Answers a preflight: `204`, or `403` (Switchyard's error answer,
    /// stage `forbidden`). Anything else goes on. The answer's headers
    /// (the policy's, or only `Vary` for a refusal) are set by
    /// [`Cors::on_response`], which every answer passes.
    pub fn on_request(&self, cx: &mut RequestCx<'_>, _req: &mut Parts) -> Verdict {
        let m = &self.counters;
        let Some(ask) = &cx.preflight else {
            return Verdict::Continue;
        };
        match self.decide(cx, ask) {
            Ok(_) => {
                m.preflight.inc();
                let mut r = Response::new(ProxyBody::Empty);
                *r.status_mut() = StatusCode::NO_CONTENT;
                Verdict::Answer(r)
            }
            Err(why) => {
                m.denied.inc();
                Verdict::Reject(ProxyError::forbidden(format!(
                    "CORS preflight refused: {why}"
                )))
            }
        }
    }

    /// Replaces the response's CORS headers by the policy's for this
    /// request; adds `Vary: Origin` when the policy depends on the origin.
    /// Every answer passing the filter gets this, a preflight's included
    /// (whoever answered it), so a filter written after this one cannot
    /// leave other CORS headers behind. Preflights were counted in the
    /// request phase.
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut Response<ProxyBody>) {
        let m = &self.counters;
        let h = resp.headers_mut();
        strip_owned(h);
        if let Some(ask) = &cx.preflight {
            match self.decide(cx, ask) {
                Ok(answer) => set_preflight(h, &answer),
                // Refused: no CORS header, but the answer varies the same.
                Err(_) => vary_preflight(h, self.policy.preflight_vary()),
            }
            return;
        }
        // An Origin that is not text is allowed by no list ("" never is).
        let origin = cx.origin.as_ref().map(|v| v.to_str().unwrap_or(""));
        let answer = self.policy.actual(origin);
        match answer.outcome {
            Outcome::Allowed => {
                m.allowed.inc();
            }
            Outcome::Denied => {
                m.denied.inc();
            }
            Outcome::NotCors => {}
        }
        if let Some(o) = answer.allow_origin {
            let value = match (&cx.origin, o) {
                (_, "*") => Some(STAR),
                // The origin echoed as the client sent it.
                (Some(sent), _) => Some(sent.clone()),
                (None, _) => None,
            };
            if let Some(v) = value {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                if answer.allow_credentials {
                    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
                }
                if let (Some(_), Some(e)) = (answer.expose_headers, &self.expose) {
                    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
                }
            }
        }
        if answer.vary_origin {
            super::add_vary(h, "Origin");
        }
    }
}

/// The headers a `cors` filter owns (`sy_policy::cors::OWNED_HEADERS`).
const OWNED: [HeaderName; 6] = [
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
];

/// Removes the upstream's own `Access-Control-*` headers: one pass over
/// the names (each a standard header, so a comparison is an enum
/// compare), a removal only when one is present (most responses have none).
fn strip_owned(h: &mut http::HeaderMap) {
    if !h.keys().any(|k| OWNED.contains(k)) {
        return;
    }
    for name in OWNED {
        h.remove(name);
    }
}

/// Sets the headers of an allowed preflight's answer; its `Vary` tokens
/// are merged into the response's.
fn set_preflight(h: &mut http::HeaderMap, answer: &Preflight<'_>) {
    for (name, value) in answer.headers() {
        if name != "vary"
            && let Ok(v) = HeaderValue::from_str(value)
        {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    vary_preflight(h, answer.vary);
}

/// Merges the `Vary` of a preflight answer into the response's.
fn vary_preflight(h: &mut http::HeaderMap, tokens: &'static str) {
    for token in tokens.split(", ") {
        super::add_vary(h, token);
    }
}

#[cfg(test)]
mod tests;
