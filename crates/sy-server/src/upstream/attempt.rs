//! `upstream::attempt`: one accounted attempt on one server (circuit
//! breakers, in-flight counts, latency, passive health), and the policies
//! built from attempts: retries with backoff and a budget, hedging, and
//! mirroring.
//!
//! Input: the chosen upstream and server and a rewritten request (or a
//! [`Template`] that can produce it again). Output: the response and the
//! server that answered, or the error of the last attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use sy_config::model::{Hedge, HedgeDelay, Retry, RetryOn};
use sy_core::{ProxyError, Stage};
use sy_policy::backoff::backoff;
use sy_policy::outlier::Outcome;
use sy_policy::split::pick_weighted_where;

use crate::body::ProxyBody;
use crate::live::{ActiveGuard, coarse_ns, ns_at};
use crate::metrics::{BREAKERS, Metrics, RouteOutcome, RouteUpstreamReason};
use crate::observe::Exchange;
use crate::upstream::outlier;
use crate::upstream::pick::{has_healthy_server, pick};
use crate::upstream::rt::{MirrorRt, SplitRt, UpstreamRt};
use crate::upstream::send::send;

/// An attempt's result.
pub type AttemptResult = Result<Response<ProxyBody>, ProxyError>;

/// A rewritten request whose body was buffered, so it can be sent again.
pub struct Template {
    /// Method.
    pub method: Method,
    /// Origin-form URI.
    pub uri: Uri,
    /// Headers after rewriting (without Host).
    pub headers: HeaderMap,
    /// Host to send; None = the server's address.
    pub host: Option<HeaderValue>,
    /// The whole body.
    pub body: Bytes,
}

impl Template {
    /// The request for server `idx` of `up`.
    pub fn request(&self, up: &UpstreamRt, idx: usize) -> Request<ProxyBody> {
        let body = if self.body.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::full(self.body.clone())
        };
        let mut r = Request::new(body);
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = Version::HTTP_11;
        *r.headers_mut() = self.headers.clone();
        set_host(r.headers_mut(), self.host.as_ref(), up, idx);
        r
    }
}

/// Sets the Host header: `host`, or the address of server `idx`.
pub fn set_host(h: &mut HeaderMap, host: Option<&HeaderValue>, up: &UpstreamRt, idx: usize) {
    let v = match host {
        Some(v) => Some(v.clone()),
        None => up
            .servers
            .get(idx)
            .and_then(|s| HeaderValue::from_str(&s.target.authority).ok()),
    };
    if let Some(v) = v {
        h.insert(header::HOST, v);
    }
}

/// Decrements a breaker counter when dropped.
pub struct Slot<'a>(&'a AtomicU64);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes one unit of `counter` unless that would pass `max`; a refusal
/// counts a trip of breaker `which` (index into `BREAKERS`).
fn acquire<'a>(
    up: &'a UpstreamRt,
    counter: &'a AtomicU64,
    max: Option<u64>,
    which: usize,
) -> Result<Slot<'a>, ProxyError> {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    let slot = Slot(counter);
    match max {
        Some(max) if n > max => {
            if let Some(c) = up.metrics.trips.get(which) {
                c.inc();
            }
            let name = BREAKERS.get(which).copied().unwrap_or("breaker");
            Err(ProxyError::breaker(
                name,
                format!("upstream {} is at its {name} limit of {max}", up.name),
            ))
        }
        _ => Ok(slot),
    }
}

/// Sends `req` to server `idx` of `up`, accounting for it: the
/// `max_requests` breaker, in-flight gauges, latency (EWMA, histogram,
/// p95 window) and the outlier detector. `per_try` bounds the wait for the
/// response head.
pub async fn attempt(
    up: &UpstreamRt,
    idx: usize,
    req: Request<ProxyBody>,
    per_try: Option<Duration>,
    ex: &Exchange,
) -> AttemptResult {
    let Some(server) = up.servers.get(idx) else {
        return Err(ProxyError::new(
            Stage::NoHealthyServer,
            "balancer chose no server",
        ));
    };
    ex.attempt(idx);
    let _slot = acquire(up, &up.live.requests, up.breaker.max_requests, 2)?;
    let _active = ActiveGuard::new(&server.live, &server.metrics.active);
    server.metrics.requests.inc();
    // Trace context: a `traceparent` per attempt; a CLIENT span if sampled.
    let mut req = req;
    let span = crate::trace::attempt_start(
        ex.trace.as_ref(),
        &mut req,
        &crate::trace::UpstreamSide {
            upstream: &up.name,
            host: &server.target.host,
            authority: &server.target.authority,
            tls: up.transport.tls.is_some(),
            attempt: ex.attempts(),
        },
    );
    let sent = Instant::now();
    let timeout = per_try.map_or(up.response_timeout, |t| t.min(up.response_timeout));
    let res = send(up, server, req, timeout, ex).await;
    if let Some(span) = span {
        span.end(&res);
    }
    match &res {
        Ok(resp) => {
            let done = Instant::now();
            let rtt = done.saturating_duration_since(sent);
            let ns = rtt.as_nanos() as u64;
            ex.answered(idx, rtt);
            crate::ewma().observe(&server.live.ewma, ns, ns_at(done));
            server.metrics.latency.observe(rtt.as_secs_f64());
            up.live.latency.record(ns);
            up.metrics.dash.record(resp.status().as_u16(), rtt);
            outlier::record(up, idx, Outcome::from_status(resp.status().as_u16()));
        }
        Err(e) => {
            up.metrics.dash.record_failure();
            if let Some(o) = outlier::error_outcome(e) {
                outlier::record(up, idx, o);
            }
        }
    }
    res
}

/// Why a result is retried under `on`, or None.
pub fn retry_reason(on: &RetryOn, res: &AttemptResult) -> Option<&'static str> {
    match res {
        Ok(resp) => {
            let s = resp.status().as_u16();
            if on.gateway_error && matches!(s, 502..=504) {
                Some("gateway-error")
            } else if on.statuses.contains(&s) {
                Some("status")
            } else {
                None
            }
        }
        Err(e) => match e.stage {
            // A connect timeout never reached the server.
            Stage::Connect | Stage::Tls | Stage::ConnectTimeout if on.connect_failure => {
                Some("connect-failure")
            }
            Stage::Timeout if on.timeout => Some("timeout"),
            Stage::UpstreamProtocol if e.retry_safe && on.refused_stream => Some("refused-stream"),
            Stage::UpstreamProtocol if !e.retry_safe && on.reset => Some("reset"),
            _ => None,
        },
    }
}

/// Everything the retry and hedging loop needs.
pub struct Plan<'a, 'u> {
    /// The route's name (metric labels).
    pub route: &'a str,
    /// The upstream chosen first.
    pub up: &'u UpstreamRt,
    /// The split the upstream was chosen from, when retries may move to
    /// another of its upstreams (`skip_unavailable`).
    pub split: Option<&'u SplitRt>,
    /// Metric families.
    pub metrics: &'a Metrics,
    /// The request's consistent-hash key.
    pub hash: Option<u64>,
    /// Retry policy (None = one try).
    pub retry: Option<&'a Retry>,
    /// Hedging policy.
    pub hedge: Option<&'a Hedge>,
    /// The request.
    pub tpl: &'a Template,
    /// What the attempts did.
    pub ex: &'a Exchange,
}

impl<'u> Plan<'_, 'u> {
    fn per_try(&self) -> Option<Duration> {
        self.retry.and_then(|r| r.per_try_timeout)
    }

    /// An answer worth returning without waiting for anything else.
    fn good(&self, res: &AttemptResult) -> bool {
        match self.retry {
            Some(r) => res.is_ok() && retry_reason(&r.on, res).is_none(),
            None => res
                .as_ref()
                .is_ok_and(|r| !matches!(r.status().as_u16(), 502..=504)),
        }
    }

    /// Asks the retry budget and the `max_retries` breaker of `up` for one
    /// more attempt.
    fn extra_attempt(&self, up: &'u UpstreamRt) -> Option<Slot<'u>> {
        if !up.live.budget().try_withdraw(coarse_ns()) {
            up.metrics.budget_exhausted.inc();
            return None;
        }
        acquire(up, &up.live.retries, up.breaker.max_retries, 3).ok()
    }

    fn once(&self, up: &'u UpstreamRt, idx: usize) -> impl Future<Output = AttemptResult> + '_ {
        attempt(up, idx, self.tpl.request(up, idx), self.per_try(), self.ex)
    }

    /// Where a retry goes when `up` has no healthy server left untried:
    /// another upstream of the split that has one, by weight.
    fn other_side(&self, up: &UpstreamRt, tried: &[usize]) -> Option<&'u UpstreamRt> {
        let split = self.split?;
        if has_healthy_server(up, tried) {
            return None;
        }
        let i = pick_weighted_where(&split.weights, rand::random(), |i| {
            split
                .backends
                .get(i)
                .is_some_and(|b| !std::ptr::eq(&**b, up) && has_healthy_server(b, &[]))
        })?;
        split.backends.get(i).map(|b| &**b)
    }
}

/// Sends the request to server `first` of `plan.up`, hedging and retrying
/// as the plan says. Returns the result, the upstream and the server it
/// came from: a retry of a split route moves to another of its upstreams
/// when this one has no healthy server left untried.
pub async fn run<'u>(plan: &Plan<'_, 'u>, first: usize) -> (AttemptResult, &'u UpstreamRt, usize) {
    let mut up = plan.up;
    let mut tried: Vec<usize> = Vec::with_capacity(2);
    let mut idx = first;
    let mut n = 1u32;
    let mut _retry_slot: Option<Slot<'u>> = None;
    loop {
        let (res, used) = match plan.hedge {
            Some(h) if n == 1 => hedged(plan, idx, h, &mut tried).await,
            _ => (plan.once(up, idx).await, idx),
        };
        tried.push(used);
        let Some(r) = plan.retry else {
            return (res, up, used);
        };
        let Some(reason) = retry_reason(&r.on, &res) else {
            return (res, up, used);
        };
        if n >= r.attempts {
            return (res, up, used);
        }
        let next = plan.other_side(up, &tried).unwrap_or(up);
        let Some(slot) = plan.extra_attempt(next) else {
            return (res, up, used);
        };
        _retry_slot = Some(slot);
        if !std::ptr::eq(next, up) {
            up = next;
            tried.clear();
        }
        plan.metrics
            .retries
            .get_or_create(&RouteUpstreamReason {
                route: plan.route.to_owned(),
                upstream: up.name.clone(),
                reason: reason.to_string(),
            })
            .inc();
        drop(res);
        tokio::time::sleep(backoff(n, r.backoff_base, r.backoff_max, rand::random())).await;
        idx = match pick(up, plan.hash, &tried) {
            Ok(i) => i,
            Err(e) => return (Err(e), up, used),
        };
        n += 1;
    }
}

/// The hedging delay for `up`.
fn hedge_delay(up: &UpstreamRt, h: &Hedge) -> Duration {
    match h.delay {
        HedgeDelay::Fixed(d) => d,
        HedgeDelay::P95 { fallback } => up
            .live
            .latency
            .quantile(0.95, 20)
            .map_or(fallback, Duration::from_nanos),
    }
}

fn count_hedge(plan: &Plan<'_, '_>, outcome: &str) {
    plan.metrics
        .hedges
        .get_or_create(&RouteOutcome {
            route: plan.route.to_owned(),
            outcome: outcome.to_string(),
        })
        .inc();
}

/// One attempt on `first`; if it has not answered after the hedging delay,
/// a second on another server. The first good answer wins and the other
/// attempt is cancelled (dropped). The server not used goes to `tried`.
async fn hedged(
    plan: &Plan<'_, '_>,
    first: usize,
    h: &Hedge,
    tried: &mut Vec<usize>,
) -> (AttemptResult, usize) {
    let a = plan.once(plan.up, first);
    tokio::pin!(a);
    tokio::select! {
        biased;
        r = &mut a => return (r, first),
        () = tokio::time::sleep(hedge_delay(plan.up, h)) => {}
    }
    let second = match pick(plan.up, plan.hash, &[first]) {
        Ok(i) if i != first => i,
        _ => return (a.await, first),
    };
    let Some(_slot) = plan.extra_attempt(plan.up) else {
        return (a.await, first);
    };
    count_hedge(plan, "sent");
    let b = plan.once(plan.up, second);
    tokio::pin!(b);
    tokio::select! {
        r = &mut a => {
            if plan.good(&r) {
                tried.push(second);
                return (r, first);
            }
            drop(r);
            tried.push(first);
            let r2 = b.await;
            if plan.good(&r2) {
                count_hedge(plan, "won");
            }
            (r2, second)
        }
        r = &mut b => {
            if plan.good(&r) {
                count_hedge(plan, "won");
                tried.push(first);
                return (r, second);
            }
            drop(r);
            tried.push(second);
            (a.await, first)
        }
    }
}

/// Sends a copy of the request to the mirror upstream in the background.
/// The primary never waits for it; a full mirror drops the copy.
pub fn mirror(m: &MirrorRt, tpl: &Template, hash: Option<u64>) {
    let [sent, ok, failed, dropped, _skipped] = &m.counters;
    if m.in_flight.fetch_add(1, Ordering::Relaxed) >= m.max_in_flight {
        m.in_flight.fetch_sub(1, Ordering::Relaxed);
        dropped.inc();
        return;
    }
    sent.inc();
    let up = m.upstream.clone();
    let in_flight = m.in_flight.clone();
    let (ok, failed) = (ok.clone(), failed.clone());
    let Ok(idx) = pick(&up, hash, &[]) else {
        in_flight.fetch_sub(1, Ordering::Relaxed);
        failed.inc();
        return;
    };
    let req = tpl.request(&up, idx);
    tokio::spawn(async move {
        let _guard = InFlight(in_flight);
        // The whole exchange, body included, is bounded.
        let limit = up.response_timeout;
        let exchange = async {
            let resp = attempt(&up, idx, req, None, &Exchange::default())
                .await
                .ok()?;
            resp.into_body().collect().await.ok().map(|_| ())
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Some(())) => ok.inc(),
            _ => failed.inc(),
        }
    });
}

struct InFlight(Arc<std::sync::atomic::AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
