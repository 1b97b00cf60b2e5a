//! The per-request pipeline: snapshot -> checks -> `route::select` ->
//! action (respond, redirect, or `upstream::pick` -> `upstream::send`) ->
//! response rewriting. Input: a parsed client request. Output: always a
//! response (errors become 4xx/5xx answers naming the failed stage).

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use sy_core::{ProxyError, Stage};
use sy_policy::route::RequestView;

use crate::Shared;
use crate::body::ProxyBody;
use crate::http::headers::{self as hdr, ForwardCtx};
use crate::http::respond;
use crate::http::serve::{ConnState, count};
use crate::live::{ActiveGuard, ns_at};
use crate::metrics::RouteStage;
use crate::snapshot::{ActionRt, ListenerRt, RouteRt, UpstreamRt};
use crate::upstream::pick::{KeySource, pick};
use crate::upstream::send::send;

/// Per-connection facts every request on it shares.
pub struct ConnCtx {
    /// Process-wide state (snapshot, metrics, live state).
    pub shared: Arc<Shared>,
    /// The listener as it was when the connection was accepted; used when
    /// a reload removed it while the connection stays open.
    pub listener: Arc<ListenerRt>,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
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

/// Serves one request. Never fails: errors become responses.
pub async fn handle(cx: Arc<ConnCtx>, req: Request<Incoming>) -> Response<ProxyBody> {
    let start = Instant::now();
    let snap = cx.shared.snapshot.load_full();
    let lst = snap.listener(&cx.listener.cfg.name).unwrap_or(&cx.listener);

    if let Err(e) = check_request(&req) {
        count(&cx.shared, &lst.cfg.name, "bad_request");
        return respond::error(&e);
    }
    let selected = {
        let host = request_host(&req);
        let view = RequestView {
            method: req.method(),
            host,
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        };
        lst.table.select(&view)
    };
    let Some(route) = selected.and_then(|i| lst.routes.get(i)) else {
        let e = ProxyError::new(Stage::NoRoute, "no route matches this request");
        count_error(&cx, "", &e);
        return respond::error(&e);
    };
    let resp = match &route.action {
        ActionRt::Respond {
            status,
            body,
            content_type,
        } => respond::fixed(*status, content_type, body.clone()),
        ActionRt::Redirect {
            status,
            location,
            keep_path,
        } => {
            if *keep_path {
                let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
                let target = format!("{}{}", location.trim_end_matches('/'), pq);
                respond::redirect(*status, &target)
            } else {
                respond::redirect(*status, location)
            }
        }
        ActionRt::Upstream(up) => {
            let fut = forward(&cx, lst, route, up, req);
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
            match res {
                Ok(r) => r,
                Err(e) => {
                    count_error(&cx, &route.name, &e);
                    respond::error(&e)
                }
            }
        }
    };
    route.metrics.count(resp.status().as_u16());
    route
        .metrics
        .duration
        .observe(start.elapsed().as_secs_f64());
    resp
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
fn check_request(req: &Request<Incoming>) -> Result<(), ProxyError> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "more than one Host header",
        ));
    }
    if req.version() == Version::HTTP_11 && hosts == 0 && req.uri().authority().is_none() {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "HTTP/1.1 request without Host",
        ));
    }
    if req.headers().get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(ProxyError::new(
            Stage::BadRequest,
            "duplicate Content-Length",
        ));
    }
    Ok(())
}

/// The host the client asked for: the URI authority (HTTP/2, absolute
/// form) or the Host header.
fn request_host(req: &Request<Incoming>) -> &str {
    if let Some(a) = req.uri().authority() {
        return a.as_str();
    }
    req.headers()
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

async fn forward(
    cx: &ConnCtx,
    lst: &ListenerRt,
    route: &RouteRt,
    up: &UpstreamRt,
    mut req: Request<Incoming>,
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

    let idx = pick(
        up,
        &KeySource {
            headers: &parts.headers,
            path: parts.uri.path(),
            peer: cx.peer.ip(),
            trusted: &fwd.trusted_proxies,
        },
    )?;
    let Some(server) = up.servers.get(idx) else {
        return Err(ProxyError::new(
            Stage::NoHealthyServer,
            "balancer chose no server",
        ));
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
    let host = match send_host {
        Some(h) => h,
        None => HeaderValue::from_str(&server.target.authority)
            .map_err(|_| ProxyError::new(Stage::Connect, "invalid server address"))?,
    };
    parts.headers.insert(header::HOST, host);
    let body = match route.max_request_body {
        Some(limit) => ProxyBody::Limited {
            inner: body,
            remaining: limit,
            limit,
        },
        None => ProxyBody::Stream(body),
    };
    let upstream_req = Request::from_parts(parts, body);

    let _active = ActiveGuard::new(&server.live, &server.metrics.active);
    server.metrics.requests.inc();
    let sent = Instant::now();
    let mut resp = send(up, server, upstream_req).await?;
    let done = Instant::now();
    let rtt = done.saturating_duration_since(sent);
    crate::ewma().observe(&server.live.ewma, rtt.as_nanos() as u64, ns_at(done));
    server.metrics.latency.observe(rtt.as_secs_f64());

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
    if client_h2 {
        rparts.version = Version::HTTP_2;
    } else {
        rparts.version = Version::HTTP_11;
    }
    Ok(Response::from_parts(rparts, rbody))
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
