//! `filter`: the per-route pipeline. A listener's and a route's `filters`
//! are compiled into one [`Chain`] per (listener, route) when a snapshot is
//! built; a request runs the request phase of its chain in order (any
//! filter may answer the request itself), then the route's action, then
//! the response phase in reverse order over every answer: the upstream's,
//! Switchyard's own (404, 502, ...) and a filter's. docs/architecture.md
//! draws the phases; docs/filters.md describes each filter.
//!
//! A route without filters has an empty chain: `handle` checks
//! [`Chain::is_empty`] and builds no [`RequestCx`], so the mechanism costs
//! it nothing. Filters are an enum of concrete types, not trait objects.
//!
//! Each filter lives in a folder of its own (`filter/<kind>/`): its
//! compiled form, its request and response steps, and its tests. Filters
//! work on `http::request::Parts` and `http::Response<ProxyBody>`, so a
//! chain runs on a request built in a unit test.

pub mod compress;
mod context;
pub mod cors;
pub mod error_page;
pub mod headers;
pub mod ip;
pub mod request_id;
pub mod rewrite;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

use http::Response;
use http::request::Parts;
use sy_config::model;
use sy_config::template::Variable;
use sy_policy::ip::IpRules;

use crate::body::ProxyBody;
use crate::metrics::Metrics;

pub use context::{PreflightAsk, RequestCx, TlsFacts};
pub use value::Fixed;

/// What a filter's request step decided.
pub enum Verdict {
    /// Go on with the next filter (then the route's action).
    Continue,
    /// Answer the request with this response; later filters and the action
    /// do not run (the response phase does).
    Answer(Response<ProxyBody>),
    /// Refuse the request with Switchyard's own error answer (401, 403,
    /// 429, ...): counted in `proxy_errors_total` under the error's stage
    /// and shaped by error pages like any other.
    Reject(sy_core::ProxyError),
}

/// A compiled filter.
#[derive(Debug)]
pub enum Filter {
    /// `request_id`.
    RequestId(request_id::RequestId),
    /// `headers`.
    Headers(headers::HeaderRules),
    /// `rewrite`.
    Rewrite(rewrite::Rewrite),
    /// `error_page`.
    ErrorPage(error_page::ErrorPage),
    /// `cors`.
    Cors(cors::Cors),
    /// `ip`.
    Ip(ip::IpFilter),
    /// `compress`.
    Compress(compress::Compress),
}

/// What the filters of one snapshot share while it is compiled: the IP
/// rules of equal lists (a named filter, the same file on every route, a
/// listener's `ip` table) are built once and held once.
#[derive(Default)]
pub struct CompileCache<'c> {
    ip: HashMap<&'c model::IpFilter, Arc<IpRules>>,
}

impl<'c> CompileCache<'c> {
    /// The rules of `cfg`, built on first use.
    pub fn ip_rules(&mut self, cfg: &'c model::IpFilter) -> Arc<IpRules> {
        self.ip
            .entry(cfg)
            .or_insert_with(|| Arc::new(ip::rules(cfg)))
            .clone()
    }
}

impl Filter {
    /// Compiles a validated filter on its own.
    pub fn compile(f: &model::Filter) -> Result<Filter, String> {
        Filter::compile_in(f, &mut CompileCache::default())
    }

    /// Compiles a validated filter, sharing what `cache` already built.
    pub fn compile_in<'c>(
        f: &'c model::Filter,
        cache: &mut CompileCache<'c>,
    ) -> Result<Filter, String> {
        Ok(match f {
            model::Filter::RequestId(c) => Filter::RequestId(request_id::RequestId::new(c)?),
            model::Filter::Headers(c) => Filter::Headers(headers::HeaderRules::new(c)?),
            model::Filter::Rewrite(c) => Filter::Rewrite(rewrite::Rewrite::new(c)?),
            model::Filter::ErrorPage(c) => Filter::ErrorPage(error_page::ErrorPage::new(c)?),
            model::Filter::Cors(c) => Filter::Cors(cors::Cors::new(c)?),
            model::Filter::Ip(c) => Filter::Ip(ip::IpFilter::new(cache.ip_rules(c))),
            model::Filter::Compress(c) => Filter::Compress(compress::Compress::new(c)?),
        })
    }

    /// The filter as one chain uses it: a filter that counts per route
    /// gets its own copy with the route's metric handles, header rules that
    /// use `${listener}` or `${route}` get theirs with them filled in; the
    /// others are shared as they are.
    pub fn for_chain(self: &Arc<Self>, fixed: Fixed<'_>, metrics: &Metrics) -> Arc<Filter> {
        match &**self {
            Filter::Compress(c) => Arc::new(Filter::Compress(c.for_route(fixed.route, metrics))),
            Filter::Cors(c) => Arc::new(Filter::Cors(c.for_route(fixed.route, metrics))),
            Filter::Headers(h) if h.reads_fixed() => Arc::new(Filter::Headers(h.bind(fixed))),
            _ => self.clone(),
        }
    }

    /// The filter renders variable `v` from the request context.
    fn reads(&self, v: Variable) -> bool {
        match self {
            Filter::Headers(f) => f.reads(v),
            Filter::ErrorPage(f) => f.reads(v),
            _ => false,
        }
    }

    /// A `cors` filter: a route's replaces its listener's in the route's
    /// chain.
    pub fn is_cors(&self) -> bool {
        matches!(self, Filter::Cors(_))
    }

    fn on_request(&self, cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        match self {
            Filter::RequestId(f) => f.on_request(cx, req),
            Filter::Headers(f) => f.on_request(cx, req),
            Filter::Rewrite(f) => f.on_request(cx, req),
            Filter::ErrorPage(_) => Verdict::Continue,
            Filter::Cors(f) => f.on_request(cx, req),
            Filter::Ip(f) => f.on_request(cx, req),
            Filter::Compress(f) => f.on_request(cx, req),
        }
    }

    fn on_response(&self, cx: &RequestCx<'_>, resp: &mut Response<ProxyBody>) {
        match self {
            Filter::RequestId(f) => f.on_response(cx, resp),
            Filter::Headers(f) => f.on_response(cx, resp),
            Filter::Rewrite(_) => {}
            Filter::ErrorPage(f) => f.on_response(cx, resp),
            Filter::Cors(f) => f.on_response(cx, resp),
            Filter::Ip(f) => f.on_response(cx, resp),
            Filter::Compress(f) => f.on_response(cx, resp),
        }
    }
}

/// The filters of one (listener, route): the listener's, then the route's.
#[derive(Debug, Default, Clone)]
pub struct Chain {
    filters: Box<[Arc<Filter>]>,
    needs: Needs,
}

/// The facts of a request that a chain's filters read, beyond those every
/// request context has: the rest are not worked out for its requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Needs {
    /// The request target as received (`${path}`): a copy of the URI.
    pub path: bool,
    /// The host asked for (`${host}`).
    pub host: bool,
    /// `Origin` and what a preflight asks (a `cors` filter).
    pub cors: bool,
}

impl Chain {
    /// A chain of `filters`, in request order, counting nowhere.
    pub fn new(filters: Vec<Arc<Filter>>) -> Self {
        let reads = |v| filters.iter().any(|f| f.reads(v));
        let needs = Needs {
            path: reads(Variable::Path),
            host: reads(Variable::Host),
            cors: filters.iter().any(|f| f.is_cors()),
        };
        Chain {
            filters: filters.into_boxed_slice(),
            needs,
        }
    }

    /// The chain of one listener and route (route "" for the listener's
    /// own answers): `filters` (the listener's, then the route's), each as
    /// the chain uses it ([`Filter::for_chain`]), and the chain's shared
    /// counters (series only for the kinds it has).
    pub fn for_route(filters: Vec<Arc<Filter>>, fixed: Fixed<'_>, metrics: &Metrics) -> Self {
        Chain::new(
            filters
                .iter()
                .map(|f| f.for_chain(fixed, metrics))
                .collect(),
        )
    }

    /// What the chain's filters read of a request (the request context
    /// leaves out the rest).
    #[inline]
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// No filter: the request path skips the pipeline.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Runs the request phase in order; stops at the first filter that
    /// answers. Async so that filters which wait (a key fetch, a shared
    /// counter, a cache lookup) fit the same chain.
    pub async fn on_request(&self, cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        for f in self.filters.iter() {
            match f.on_request(cx, req) {
                Verdict::Continue => {}
                answer => return answer,
            }
        }
        Verdict::Continue
    }

    /// Runs the response phase of every filter, last to first, over any
    /// answer (the upstream's, Switchyard's own, a filter's).
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut Response<ProxyBody>) {
        for f in self.filters.iter().rev() {
            f.on_response(cx, resp);
        }
    }
}

/// Adds `token` (a request field the response depends on) to the
/// response's `Vary`: the existing lines merged into one with it, unless it
/// is listed already or `Vary: *` (`sy_policy::vary`).
pub(crate) fn add_vary(h: &mut http::HeaderMap, token: &'static str) {
    if !h.contains_key(http::header::VARY) {
        h.insert(http::header::VARY, http::HeaderValue::from_static(token));
        return;
    }
    let lines = h.get_all(http::header::VARY).iter().map(|v| v.as_bytes());
    if let Some(merged) = sy_policy::vary::add(lines, token)
        && let Ok(v) = http::HeaderValue::from_bytes(&merged)
    {
        h.insert(http::header::VARY, v);
    }
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Continue => f.write_str("Continue"),
            Verdict::Answer(r) => write!(f, "Answer({})", r.status()),
            Verdict::Reject(e) => write!(f, "Reject({e})"),
        }
    }
}

#[cfg(test)]
mod tests;
