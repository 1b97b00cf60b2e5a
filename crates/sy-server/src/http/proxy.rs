//! The per-request pipeline: snapshot -> checks -> `route::select` ->
//! action (respond, redirect, or `upstream::pick` -> `upstream::send`) ->
//! response rewriting. Input: a parsed client request. Output: always a
//! response (errors become 4xx/5xx answers naming the failed stage).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sy_core::{ProxyError, Stage};
use sy_policy::route::RequestView;

use crate::access_log::{Counted, Observed};
use crate::body::ProxyBody;
use crate::filter::{Chain, PreflightAsk, RequestCx, TlsFacts, Verdict};
use crate::forwarded::{self as hdr, ForwardCtx};
use crate::http::serve::{ConnState, count};
use crate::live::coarse_ns;
use crate::metrics::RouteStage;
use crate::observe::Exchange;
use crate::respond;
use crate::shared::Shared;
use crate::snapshot::{ActionRt, ListenerRt, RouteRt};
use crate::upstream::attempt::{self, Plan, Template, attempt, set_host};
use crate::upstream::pick::{KeySource, available, cookie, has_healthy_server, pick, request_hash};
use crate::upstream::rt::{SplitRt, StickyRt, UpstreamRt};
use sy_policy::split::{pick_weighted, pick_weighted_where};

/// Per-connection facts every request on it shares.
pub struct ConnCtx {
    /// Process-wide state (snapshot, metrics, live state).
    pub shared: Arc<Shared>,
    /// The listener as it was when the connection was accepted; used when
    /// a reload removed it while the connection stays open.
    pub listener: Arc<ListenerRt>,
    /// The client's address: the TCP peer, or on a `proxy_protocol`
    /// listener the client its PROXY header named.
    pub peer: std::net::SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// What its TLS handshake told (SNI, ALPN); None on a plain connection.
    pub tls_facts: Option<TlsFacts>,
    /// Peer IP, rendered once for X-Forwarded-For.
    pub peer_ip: HeaderValue,
    /// Peer IP, rendered once for `Forwarded`.
    pub forwarded_node: String,
    /// Idle / in-flight tracking for timeouts and draining.
    pub state: Arc<ConnState>,
    /// The connection completes upgrades itself (a parking HTTP/1.1
    /// connection): the upstream side of a WebSocket upgrade waits here.
    pub manual_upgrade: Option<std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>>,
}

/// Serves one request. Never fails: errors become responses. The phases
/// (docs/architecture.md): checks, route selection, the request phase of
/// the route's filter chain (a filter may answer), the route's action, the
/// response phase (every answer passes it, Switchyard's own included), and
/// the log. Every branch returns through `logged`, which also counts the
/// answer on the listener, routed or not (`listener_requests_total`).
pub async fn handle(cx: Arc<ConnCtx>, req: Request<Incoming>) -> Response<ProxyBody> {
    let cx = &cx;
    let start = Instant::now();
    let mut ex = Exchange::default();
    let snap = cx.shared.snapshot.load_full();
    let lst = snap.listener(&cx.listener.cfg.name).unwrap_or(&cx.listener);
    // None unless the access log is on and samples this request.
    let obs = Observed::begin(snap.access_log.as_ref(), &req, cx.peer, start);
    if let Some(o) = &obs {
        ex.bytes_in = o.request_counter();
    }
    ex.trace = crate::trace::start(
        &cx.shared.tracer,
        &req,
        &crate::trace::Downstream {
            peer: cx.peer,
            tls: cx.tls,
            trusted: &lst.cfg.forwarded.trusted_proxies,
        },
    );
    if let Some(t) = &ex.trace {
        ex.set_trace_id(t.trace_id.to_be_bytes());
    }
    let (mut parts, body) = req.into_parts();

    let checked = check_request(&parts);
    let selected = match &checked {
        Ok(()) => lst.table.select(&RequestView {
            method: &parts.method,
            host: request_host(&parts),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
        }),
        Err(_) => None,
    };
    let served = selected.and_then(|i| lst.routes.get(i));
    let route = served.map(|s| &s.route);
    let chain = served.map_or(&lst.default_chain, |s| &s.chain);
    // Built only when there are filters: a route without pays nothing.
    let mut fcx =
        (!chain.is_empty()).then(|| request_cx(cx, lst, &parts, route, chain, &ex, start));
    let mut answer = None;
    if let Err(e) = checked {
        count(&cx.shared, &lst.cfg.name, "bad_request");
        answer = Some(respond::error(&e));
    } else if let Some(f) = &mut fcx {
        let verdict = chain.on_request(f, &mut parts).await;
        ex.request_id = f.request_id.clone();
        // A filter may have set a `tracestate`, which a new trace's
        // attempts do not pass on.
        if let Some(t) = &mut ex.trace {
            t.stale_state |= t.parent.is_none();
        }
        match verdict {
            Verdict::Continue => {}
            Verdict::Answer(r) => answer = Some(r),
            Verdict::Reject(e) => {
                count_error(cx, route.map_or("", |r| r.name.as_str()), &e);
                answer = Some(respond::error(&e));
            }
        }
    }
    let mut used = None;
    let mut resp = match (answer, route) {
        (Some(r), _) => r,
        (None, None) => {
            let e = ProxyError::new(Stage::NoRoute, "no route matches this request");
            count_error(cx, "", &e);
            respond::error(&e)
        }
        (None, Some(route)) => {
            let req = Request::from_parts(parts, body);
            // Boxed: the action's future (retries, hedging, the upstream
            // exchange) is several KiB, and `handle`'s future is moved
            // whole into hyper's connection state for every request; a
            // small one moves cheaply, one allocation costs less.
            crate::boxed::pin_box(|| action(cx, lst, route, req, &ex, &mut used)).await
        }
    };
    // The server that answered, as configured: looked up only for those
    // who read it (the filters, the access log).
    let server = used
        .zip(ex.server())
        .filter(|_| fcx.is_some() || obs.is_some())
        .and_then(|(u, i)| u.servers.get(i))
        .map(|s| s.target.authority.as_str());
    if let Some(f) = &mut fcx {
        f.upstream = used.map(|u| u.name.as_str());
        f.server = server;
        chain.on_response(f, &mut resp);
    }
    if let Some(route) = route {
        let took = start.elapsed();
        route.metrics.count(resp.status().as_u16());
        route.metrics.duration.observe(took.as_secs_f64());
        route.metrics.dash.record(resp.status().as_u16(), took);
    }
    let upstream = used.map(|u| u.name.as_str());
    logged(
        lst,
        obs,
        resp,
        &ex,
        route.map(|r| r.name.as_str()),
        upstream,
        server,
    )
}

/// The route's action: answer (`respond`, `redirect`) or proxy. Sets
/// `used` to the upstream whose answer is returned.
async fn action<'a>(
    cx: &ConnCtx,
    lst: &ListenerRt,
    route: &'a RouteRt,
    req: Request<Incoming>,
    ex: &Exchange,
    used: &mut Option<&'a UpstreamRt>,
) -> Response<ProxyBody> {
    match &route.action {
        ActionRt::Respond {
            status,
            body,
            content_type,
        } => respond::fixed(*status, content_type, body.clone()),
        ActionRt::Redirect { status, target } => {
            let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
            let host = request_host_of(req.uri(), req.headers());
            match respond::redirect_location(target, cx.tls, host, pq) {
                Some(location) => respond::redirect(*status, &location),
                None => {
                    let e =
                        ProxyError::new(Stage::BadRequest, "a redirect needs a valid Host header");
                    count_error(cx, &route.name, &e);
                    respond::error(&e)
                }
            }
        }
        ActionRt::Upstream(_) | ActionRt::Split(_) => {
            let Some(up) = route_upstream(&route.action, req.headers()) else {
                let e = ProxyError::new(Stage::NoHealthyServer, "split route has no upstream");
                count_error(cx, &route.name, &e);
                return respond::error(&e);
            };
            let _active = crate::metrics::GaugeGuard::new(&route.metrics.active);
            let mut answered = up;
            let fut = forward(cx, lst, route, up, req, ex, &mut answered);
            let res = match route.timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(ProxyError::new(
                        Stage::Timeout,
                        format!("route {} did not complete within {:?}", route.name, t),
                    )),
                },
                None => fut.await,
            };
            *used = Some(answered);
            match res {
                Ok(r) => r,
                Err(e) => {
                    count_error(cx, &route.name, &e);
                    respond::error(&e)
                }
            }
        }
    }
}

/// The context a request's filters read: built once per request that has
/// filters.
fn request_cx<'a>(
    cx: &'a ConnCtx,
    lst: &'a ListenerRt,
    parts: &Parts,
    route: Option<&'a Arc<RouteRt>>,
    chain: &Chain,
    ex: &Exchange,
    start: Instant,
) -> RequestCx<'a> {
    let trusted = &lst.cfg.forwarded.trusted_proxies;
    let needs = chain.needs();
    let mut f = RequestCx::at(
        &lst.cfg.name,
        cx.peer,
        parts.method.clone(),
        needs.path.then(|| parts.uri.clone()),
        start,
    );
    f.route = route.map(|r| r.name.as_str());
    f.trusted_peer = hdr::is_trusted(cx.peer.ip(), trusted);
    f.client_ip = hdr::client_ip(&parts.headers, cx.peer.ip(), trusted);
    if f.client_ip == cx.peer.ip() {
        f.client_ip_value = Some(&cx.peer_ip);
    }
    f.tls = cx.tls_facts.as_ref();
    f.trace_id = ex.trace_id();
    if needs.host {
        f.host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
    }
    if needs.cors {
        f.origin = parts.headers.get(header::ORIGIN).cloned();
        f.preflight = PreflightAsk::of(&parts.method, &parts.headers);
    }
    f
}

/// The response, carrying the access-log record when there is one. Also
/// ends the request's SERVER span when it is traced and sampled.
#[inline]
fn logged(
    lst: &ListenerRt,
    obs: Option<Observed>,
    resp: Response<ProxyBody>,
    ex: &Exchange,
    route: Option<&str>,
    upstream: Option<&str>,
    server: Option<&str>,
) -> Response<ProxyBody> {
    lst.metrics.requests.count(resp.status().as_u16());
    crate::trace::server_end(ex.trace.as_ref(), &resp, route, ex.request_id.as_ref());
    match obs {
        None => resp,
        Some(o) => o.answered(resp, ex, route, upstream, server),
    }
}

/// Answers `e` to a request rejected before `handle` (ambiguous framing),
/// recording it in the access log like any other.
pub fn reject(cx: &ConnCtx, req: &Request<Incoming>, e: &ProxyError) -> Response<ProxyBody> {
    let resp = respond::error(e);
    cx.listener.metrics.requests.count(resp.status().as_u16());
    let snap = cx.shared.snapshot.load();
    match Observed::begin(snap.access_log.as_ref(), req, cx.peer, Instant::now()) {
        Some(o) => o.answered(resp, &Exchange::default(), None, None, None),
        None => resp,
    }
}

fn count_error(cx: &ConnCtx, route: &str, e: &ProxyError) {
    cx.shared
        .metrics
        .proxy_errors
        .get_or_create(&RouteStage {
            route: route.to_string(),
            stage: e.stage.as_str().to_string(),
        })
        .inc();
}

/// Rejects requests hyper accepts but a proxy must not forward.
fn check_request(req: &Parts) -> Result<(), ProxyError> {
    let hosts = req.headers.get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "more than one Host header",
        ));
    }
    if req.version == Version::HTTP_11 && hosts == 0 && req.uri.authority().is_none() {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "HTTP/1.1 request without Host",
        ));
    }
    if req.headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "duplicate Content-Length",
        ));
    }
    Ok(())
}

/// The host the client asked for: the URI authority (HTTP/2, absolute
/// form) or the Host header.
fn request_host(req: &Parts) -> &str {
    request_host_of(&req.uri, &req.headers)
}

fn request_host_of<'a>(uri: &'a Uri, headers: &'a http::HeaderMap) -> &'a str {
    if let Some(a) = uri.authority() {
        return a.as_str();
    }
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Idempotent methods (RFC 9110 9.2.2): safe to send twice.
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The body, whole (when it is empty or its declared length is at most
/// `limit`), or still streaming.
async fn buffer_body(
    body: Incoming,
    headers: &http::HeaderMap,
    limit: u64,
) -> Result<Result<Bytes, Incoming>, ProxyError> {
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Ok(Bytes::new()));
    }
    match content_length(headers) {
        Some(n) if n <= limit => match body.collect().await {
            Ok(c) => Ok(Ok(c.to_bytes())),
            Err(_) => Err(ProxyError::new(
                Stage::ClientAbort,
                "client request body ended early",
            )),
        },
        _ => Ok(Err(body)),
    }
}

/// Picks the upstream of a split route: a forcing header or cookie naming
/// one of its upstreams wins, else a weighted random choice.
fn split_choice(s: &SplitRt, headers: &http::HeaderMap) -> Option<usize> {
    let named = |v: &[u8]| s.backends.iter().position(|u| u.name.as_bytes() == v);
    let forced = s
        .header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| named(v.as_bytes()))
        .or_else(|| {
            s.cookie
                .as_ref()
                .and_then(|c| cookie(headers, c))
                .and_then(named)
        });
    let random = rand::random();
    let i = match forced {
        Some(i) => i,
        // A backend whose servers are all down is left out while another
        // has one; if none has, the plain weights decide (and the
        // upstream's panic mode applies).
        None if s.skip_unavailable => pick_weighted_where(&s.weights, random, |i| {
            s.backends
                .get(i)
                .is_some_and(|u| has_healthy_server(u, &[]))
        })
        .or_else(|| pick_weighted(&s.weights, random))?,
        None => pick_weighted(&s.weights, random)?,
    };
    if let Some(c) = s.counters.get(i) {
        c.inc();
    }
    Some(i)
}

/// The upstream a route sends this request to.
pub fn route_upstream<'a>(
    action: &'a ActionRt,
    headers: &http::HeaderMap,
) -> Option<&'a UpstreamRt> {
    match action {
        ActionRt::Upstream(u) => Some(u),
        ActionRt::Split(s) => split_choice(s, headers)
            .and_then(|i| s.backends.get(i))
            .map(|u| &**u),
        _ => None,
    }
}

/// Sends the request to `up` and sets `answered` to the upstream whose
/// answer (or error) is returned: retries of a split route may move to
/// another of its upstreams.
async fn forward<'a>(
    cx: &ConnCtx,
    lst: &ListenerRt,
    route: &'a RouteRt,
    up: &'a UpstreamRt,
    mut req: Request<Incoming>,
    ex: &Exchange,
    answered: &mut &'a UpstreamRt,
) -> Result<Response<ProxyBody>, ProxyError> {
    if let Some(limit) = route.max_request_body
        && content_length(req.headers()).is_some_and(|n| n > limit)
    {
        return Err(ProxyError::new(
            Stage::BodyTooLarge,
            format!("request body exceeds the route's limit of {limit} bytes"),
        ));
    }
    let client_upgrade = if is_upgrade(&req) {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let fwd = &lst.cfg.forwarded;

    let hash = request_hash(
        up,
        &KeySource {
            headers: &parts.headers,
            path: parts.uri.path(),
            peer: cx.peer.ip(),
            trusted: &fwd.trusted_proxies,
        },
    );
    // A sticky cookie naming an available server pins the request to it.
    let pinned = up.sticky.as_ref().and_then(|st| {
        let v = cookie(&parts.headers, &st.cookie)?;
        up.servers
            .iter()
            .position(|s| s.sticky_value.as_bytes() == v)
    });
    let idx = match pinned {
        Some(i) if available(up, i) => i,
        _ => pick(up, hash, &[])?,
    };

    let client_h2 = parts.version == Version::HTTP_2;
    let orig_host: Option<HeaderValue> = match parts.headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    hdr::strip_hop_by_hop(&mut parts.headers, client_upgrade.is_some());
    // We answer `Expect: 100-continue` ourselves: hyper sends the 100 when
    // the body is first read, i.e. once the upstream is ready for it.
    parts.headers.remove(header::EXPECT);
    let trusted = hdr::is_trusted(cx.peer.ip(), &fwd.trusted_proxies);
    hdr::add_forwarded(
        &mut parts.headers,
        &ForwardCtx {
            peer_ip: &cx.peer_ip,
            forwarded_node: &cx.forwarded_node,
            trusted,
            proto: if cx.tls { "https" } else { "http" },
            host: orig_host.as_ref(),
        },
        fwd.x_forwarded,
        fwd.rfc7239,
    );
    let via = if client_h2 { &lst.via_h2 } else { &lst.via_h1 };
    if fwd.via {
        hdr::add_via(&mut parts.headers, via);
    }
    let send_host = route.host_rewrite.clone().or(orig_host);
    // Requests leave in HTTP/1.1 form (origin-form URI, Host header);
    // `upstream::send` rewrites them when the connection it gets is HTTP/2.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(pq);
    }
    parts.version = Version::HTTP_11;

    if up.budgeted {
        up.live.budget().deposit(coarse_ns());
    }
    let plain = client_upgrade.is_some()
        || (route.retry.is_none() && route.hedge.is_none() && route.mirror.is_none());
    let (res, used) = if plain {
        let req = streaming_request(parts, body, route, send_host.as_ref(), up, idx, ex);
        (attempt(up, idx, req, None, ex).await, idx)
    } else {
        let safe = idempotent(&parts.method);
        let retry = route.retry.as_ref().filter(|r| safe || r.non_idempotent);
        let hedge = route.hedge.as_ref().filter(|_| safe);
        let mirror = route
            .mirror
            .as_ref()
            .filter(|m| m.fraction >= 1.0 || rand::random::<f64>() < m.fraction);
        let limit = [
            retry.map_or(0, |r| r.buffer),
            hedge.map_or(0, |_| HEDGE_BUFFER),
            mirror.map_or(0, |m| m.max_body),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let buffered = if limit > 0 {
            buffer_body(body, &parts.headers, limit).await?
        } else {
            Err(body)
        };
        match buffered {
            Ok(bytes) => {
                if let Some(n) = &ex.bytes_in {
                    n.store(bytes.len() as u64, Ordering::Relaxed);
                }
                let tpl = Template {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    host: send_host,
                    body: bytes,
                };
                if let Some(m) = mirror {
                    if tpl.body.len() as u64 <= m.max_body {
                        attempt::mirror(m, &tpl, hash);
                    } else {
                        m.counters[4].inc();
                    }
                }
                let split = match &route.action {
                    ActionRt::Split(s) if s.skip_unavailable => Some(s),
                    _ => None,
                };
                let plan = Plan {
                    route: &route.name,
                    up,
                    split,
                    metrics: &cx.shared.metrics,
                    hash,
                    retry,
                    hedge,
                    tpl: &tpl,
                    ex,
                };
                let (res, from, used) = attempt::run(&plan, idx).await;
                *answered = from;
                (res, used)
            }
            Err(body) => {
                if let Some(m) = mirror {
                    m.counters[4].inc();
                }
                let req = streaming_request(parts, body, route, send_host.as_ref(), up, idx, ex);
                (attempt(up, idx, req, None, ex).await, idx)
            }
        }
    };
    // A retry may have moved to another upstream of the split: its sticky
    // cookie, if any, is about that one.
    let pinned = pinned.filter(|_| std::ptr::eq(up, *answered));
    let up = *answered;
    let mut resp = res?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_upgrade
    {
        let upstream_side = hyper::upgrade::on(&mut resp);
        match &cx.manual_upgrade {
            // The connection hands its socket to `serve`, which tunnels.
            Some(slot) => {
                drop(client_side);
                if let Ok(mut s) = slot.lock() {
                    *s = Some(upstream_side);
                }
            }
            None => {
                tokio::spawn(tunnel(client_side, upstream_side));
            }
        }
        let (mut rparts, _) = resp.into_parts();
        hdr::strip_hop_by_hop(&mut rparts.headers, true);
        return Ok(Response::from_parts(rparts, ProxyBody::Empty));
    }
    let (mut rparts, rbody) = resp.into_parts();
    hdr::strip_hop_by_hop(&mut rparts.headers, false);
    if fwd.via {
        hdr::add_via(&mut rparts.headers, via);
    }
    if let Some(st) = &up.sticky {
        set_sticky(up, st, pinned, used, &mut rparts.headers);
    }
    if client_h2 {
        rparts.version = Version::HTTP_2;
    } else {
        rparts.version = Version::HTTP_11;
    }
    Ok(Response::from_parts(rparts, rbody))
}

/// Largest body kept for a hedged request.
const HEDGE_BUFFER: u64 = 64 * 1024;

/// The upstream request with the client's body streaming through.
fn streaming_request(
    mut parts: http::request::Parts,
    body: Incoming,
    route: &RouteRt,
    host: Option<&HeaderValue>,
    up: &UpstreamRt,
    idx: usize,
    ex: &Exchange,
) -> Request<ProxyBody> {
    set_host(&mut parts.headers, host, up, idx);
    let body = match route.max_request_body {
        Some(limit) => ProxyBody::Limited {
            inner: body,
            remaining: limit,
            limit,
        },
        None => ProxyBody::Stream(body),
    };
    let body = match &ex.bytes_in {
        // The access log records this request: count what the client sends.
        Some(count) => ProxyBody::Boxed(Box::pin(Counted {
            inner: body,
            count: count.clone(),
        })),
        None => body,
    };
    Request::from_parts(parts, body)
}

/// Sets (or keeps) the sticky cookie after server `used` answered.
fn set_sticky(
    up: &UpstreamRt,
    st: &StickyRt,
    pinned: Option<usize>,
    used: usize,
    headers: &mut http::HeaderMap,
) {
    let [hit, assigned, moved] = &up.metrics.sticky;
    if pinned == Some(used) {
        hit.inc();
        return;
    }
    if pinned.is_some() {
        moved.inc();
    } else {
        assigned.inc();
    }
    let Some(server) = up.servers.get(used) else {
        return;
    };
    let v = format!("{}={}{}", st.cookie, server.sticky_value, st.attributes);
    if let Ok(v) = HeaderValue::from_str(&v) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Copies bytes both ways between an upgraded client connection and the
/// upgraded upstream connection until either side closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(c), Ok(u)) = tokio::join!(client, upstream) else {
        return;
    };
    let mut c = hyper_util::rt::TokioIo::new(c);
    let mut u = hyper_util::rt::TokioIo::new(u);
    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
}
