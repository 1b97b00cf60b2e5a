//! Active health checking: one checker task per (upstream, server) per
//! process, whatever the number of workers, on the control thread's
//! runtime. Documented in docs/health.md ("Active health checks").
//!
//! A checker probes its server every `interval` (± `jitter`), feeds the
//! results to the rise/fall state machine of `sy_policy::health` and, on a
//! transition, sets or clears the server's `live::flag::DOWN` bit, which the
//! balancers read. The bit lives in the server's live state, so a reload that
//! keeps the server and its check keeps the checker (and its state); a reload
//! that changes the check restarts the checker from the current state.
//!
//! Probes: HTTP (status in `expect_status`, optional body substring), TCP
//! (the connection, with TLS when configured, succeeds) and gRPC
//! (`grpc.health.v1.Health/Check` answers `SERVING`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sy_config::model::{HealthCheck, HealthCheckKind};
use sy_policy::health::{Health, HealthMachine, Thresholds, next_delay};

use crate::body::ProxyBody;
use crate::live::{ServerKey, ServerLive, flag};

/// One checker per server (by its live-state key) and check configuration:
/// a changed check replaces the checker.
type CheckerKey = (ServerKey, sy_config::model::HealthCheck);
use crate::metrics::{Metrics, ServerOutcome, outcome};
use crate::snapshot::Snapshot;
use crate::upstream::connect::{NewConn, Target, Transport, connect};
use crate::upstream::send::classify_h1;

/// How much of a response body a check reads (for `expect_body` and gRPC).
pub const MAX_BODY: usize = 64 * 1024;

/// The `user-agent` of HTTP and gRPC checks.
pub const USER_AGENT_VALUE: &str = "switchyard-health-check";

/// The gRPC health-checking method.
pub const GRPC_HEALTH_PATH: &str = "/grpc.health.v1.Health/Check";

/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
pub const GRPC_SERVING: u64 = 1;

/// Active health checkers: one task per (upstream, server) per process,
/// whatever the number of workers. Runs on the control thread's runtime.
#[derive(Default)]
pub struct Checkers {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The control thread's runtime; None until `set_runtime`.
    handle: Option<tokio::runtime::Handle>,
    /// Metric families, cloned from the registry's.
    families: Option<Families>,
    /// Running checkers by key (server key + check fingerprint).
    tasks: HashMap<CheckerKey, Running>,
}

#[derive(Clone)]
struct Families {
    checks: Family<ServerOutcome, Counter>,
    transitions: Family<ServerOutcome, Counter>,
}

struct Running {
    abort: tokio::task::AbortHandle,
    /// False once the checker is stopped: checked (under this lock) before
    /// every state change, so an aborted checker that was mid-poll cannot
    /// mark its server down after `reconcile` returned.
    active: Arc<Mutex<bool>>,
}

impl Running {
    fn stop(&self) {
        *relock(&self.active) = false;
        self.abort.abort();
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Checkers {
    /// No checkers, no runtime yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called once by the control thread with its runtime handle and the
    /// metric families checkers count into. The caller then reconciles.
    pub fn set_runtime(&self, h: tokio::runtime::Handle, metrics: &Metrics) {
        let mut inner = relock(&self.inner);
        inner.handle = Some(h);
        inner.families = Some(Families {
            checks: metrics.health_checks.clone(),
            transitions: metrics.health_transitions.clone(),
        });
    }

    /// Starts a checker for every server of every upstream in `snap` that
    /// has a health check, keyed by the server's live-state key and the
    /// check's configuration; stops checkers no longer wanted (server
    /// removed, check changed or removed). A server left without a checker
    /// counts as healthy again (its `DOWN` flag is cleared). No-op until
    /// [`Checkers::set_runtime`] was called.
    pub fn reconcile(&self, snap: &Snapshot) {
        let mut inner = relock(&self.inner);
        let (Some(handle), Some(families)) = (inner.handle.clone(), inner.families.clone()) else {
            return;
        };
        let mut wanted: HashSet<CheckerKey> = HashSet::new();
        let mut fresh: Vec<(CheckerKey, Checker)> = Vec::new();
        for u in &snap.upstreams {
            let Some(h) = &u.health else {
                continue;
            };
            for s in &u.servers {
                let key = (s.key.clone(), h.cfg.clone());
                if !wanted.insert(key.clone()) || inner.tasks.contains_key(&key) {
                    continue;
                }
                let server = s.target.authority.clone();
                let count = |family: &Family<ServerOutcome, Counter>, o: &str| {
                    family.get_or_create(&outcome(&u.name, &server, o)).clone()
                };
                let checker = Checker {
                    upstream: u.name.clone(),
                    server: server.clone(),
                    target: s.target.clone(),
                    transport: h.transport.clone(),
                    cfg: h.cfg.clone(),
                    live: s.live.clone(),
                    healthy: s.metrics.healthy.clone(),
                    ok: count(&families.checks, "ok"),
                    fail: count(&families.checks, "fail"),
                    to_healthy: count(&families.transitions, "healthy"),
                    to_unhealthy: count(&families.transitions, "unhealthy"),
                    active: Arc::new(Mutex::new(true)),
                };
                fresh.push((key, checker));
            }
        }
        // Stop unwanted checkers first, so a replaced checker of the same
        // server cannot write after its successor started.
        inner.tasks.retain(|k, r| {
            let keep = wanted.contains(k);
            if !keep {
                r.stop();
            }
            keep
        });
        for (key, checker) in fresh {
            let active = checker.active.clone();
            let join = handle.spawn(checker.run());
            inner.tasks.insert(
                key,
                Running {
                    abort: join.abort_handle(),
                    active,
                },
            );
        }
        // Servers without a check take traffic.
        let checked: HashSet<&ServerKey> = snap
            .upstreams
            .iter()
            .filter(|u| u.health.is_some())
            .flat_map(|u| u.servers.iter().map(|s| &s.key))
            .collect();
        for u in &snap.upstreams {
            for s in &u.servers {
                if !checked.contains(&s.key) {
                    if s.live.state.set(flag::DOWN, false) {
                        tracing::info!(upstream = %u.name, server = %s.target.authority,
                            "health check removed; server counts as healthy");
                    }
                    s.metrics.healthy.set(1);
                }
            }
        }
    }

    /// How many checkers run (for tests and diagnostics).
    pub fn len(&self) -> usize {
        relock(&self.inner).tasks.len()
    }

    /// No checker runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for r in relock(&self.inner).tasks.values() {
            r.stop();
        }
    }
}

/// One server's checker: everything its task needs, detached from the
/// snapshot it was started from.
struct Checker {
    upstream: String,
    server: String,
    target: Target,
    transport: Arc<Transport>,
    cfg: HealthCheck,
    live: Arc<ServerLive>,
    healthy: Gauge,
    ok: Counter,
    fail: Counter,
    to_healthy: Counter,
    to_unhealthy: Counter,
    active: Arc<Mutex<bool>>,
}

impl Checker {
    async fn run(self) {
        let (transport, live) = (self.transport.clone(), self.live.clone());
        let cfg = &self.cfg;
        // Spread the first probes of many servers over [0, jitter].
        tokio::time::sleep(first_delay(cfg.jitter, rand::random())).await;
        let initial = if live.state.flags() & flag::DOWN != 0 {
            Health::Unhealthy
        } else {
            Health::Healthy
        };
        let mut machine = HealthMachine::new(
            Thresholds {
                healthy: cfg.healthy_threshold,
                unhealthy: cfg.unhealthy_threshold,
            },
            initial,
        );
        loop {
            let result =
                match tokio::time::timeout(cfg.timeout, probe(&cfg.kind, &self.target, &transport))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err("timeout".to_string()),
                };
            if !self.record(&mut machine, &live, result) {
                return;
            }
            tokio::time::sleep(next_delay(cfg.interval, cfg.jitter, rand::random())).await;
        }
    }

    /// Applies one probe result; false once the checker was stopped.
    fn record(
        &self,
        machine: &mut HealthMachine,
        live: &ServerLive,
        result: Result<(), String>,
    ) -> bool {
        let active = relock(&self.active);
        if !*active {
            return false;
        }
        let ok = result.is_ok();
        if ok {
            self.ok.inc();
        } else {
            self.fail.inc();
        }
        let reason = result.err().unwrap_or_else(|| "check passed".to_string());
        if !ok {
            tracing::debug!(upstream = %self.upstream, server = %self.server, %reason,
                "health check failed");
        }
        match machine.record(ok) {
            Some(Health::Unhealthy) => {
                live.state.set(flag::DOWN, true);
                self.healthy.set(0);
                self.to_unhealthy.inc();
                tracing::warn!(upstream = %self.upstream, server = %self.server, %reason,
                    "server marked unhealthy by its health check");
            }
            Some(Health::Healthy) => {
                live.state.ready_at.store(
                    crate::live::now_ns().max(1),
                    std::sync::atomic::Ordering::Relaxed,
                );
                live.state.set(flag::DOWN, false);
                self.healthy.set(1);
                self.to_healthy.inc();
                tracing::info!(upstream = %self.upstream, server = %self.server, %reason,
                    "server marked healthy by its health check");
            }
            None => {}
        }
        true
    }
}

/// The delay before a checker's first probe: uniform in `[0, jitter]`.
pub fn first_delay(jitter: Duration, random: u64) -> Duration {
    let span = jitter.as_nanos().saturating_add(1);
    let n = u128::from(random) % span;
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Runs one probe (without the overall deadline); `Err(reason)` on failure.
async fn probe(
    kind: &HealthCheckKind,
    target: &Target,
    transport: &Transport,
) -> Result<(), String> {
    let conn = connect(target, transport, None, None)
        .await
        .map_err(|e| e.message)?;
    match kind {
        HealthCheckKind::Tcp => Ok(()),
        HealthCheckKind::Http {
            method,
            path,
            host,
            expect_status,
            expect_body,
        } => {
            let host = host.as_deref().unwrap_or(&target.authority);
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("invalid method {method}"))?;
            let req = |absolute: bool| -> Result<Request<ProxyBody>, String> {
                let uri = if absolute {
                    format!("{}://{host}{path}", scheme(transport))
                } else {
                    path.clone()
                };
                let mut b = Request::builder()
                    .method(method.clone())
                    .uri(uri)
                    .header(USER_AGENT, USER_AGENT_VALUE);
                if !absolute {
                    b = b.header(HOST, host).header(CONNECTION, "close");
                }
                b.body(ProxyBody::Empty)
                    .map_err(|e| format!("invalid check request: {e}"))
            };
            let want = expect_body.as_deref();
            match conn {
                NewConn::H1(c) => {
                    let mut r = req(false)?;
                    let resp = c
                        .send(&mut r, None)
                        .await
                        .map_err(|e| format!("request failed: {}", classify_h1(e).message))?;
                    check_response(resp, expect_status, want).await
                }
                NewConn::H2(mut s) => {
                    let r = req(true)?;
                    s.ready()
                        .await
                        .map_err(|e| format!("connection closed: {e}"))?;
                    let resp = s
                        .send_request(r)
                        .await
                        .map_err(|e| format!("request failed: {e}"))?;
                    check_response(resp, expect_status, want).await
                }
            }
        }
        HealthCheckKind::Grpc { service } => {
            let NewConn::H2(mut s) = conn else {
                return Err("gRPC check needs HTTP/2".to_string());
            };
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!(
                    "{}://{}{GRPC_HEALTH_PATH}",
                    scheme(transport),
                    target.authority
                ))
                .header(CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .header(USER_AGENT, USER_AGENT_VALUE)
                .body(ProxyBody::full(grpc_request(service)))
                .map_err(|e| format!("invalid check request: {e}"))?;
            s.ready()
                .await
                .map_err(|e| format!("connection closed: {e}"))?;
            let resp = s
                .send_request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if resp.status() != StatusCode::OK {
                return Err(format!("status {}", resp.status().as_u16()));
            }
            // A trailers-only answer carries grpc-status in the headers.
            let head_status = grpc_status(resp.headers());
            let (body, trailers) = read_bounded(resp, MAX_BODY).await?;
            let code = head_status.or_else(|| trailers.as_ref().and_then(grpc_status));
            match code.as_deref() {
                Some("0") => {}
                Some(c) => return Err(format!("grpc-status {c}")),
                None => return Err("no grpc-status".to_string()),
            }
            match grpc_response_status(&body) {
                Ok(GRPC_SERVING) => Ok(()),
                Ok(s) => Err(format!("not serving (status {s})")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

fn scheme(t: &Transport) -> &'static str {
    if t.tls.is_some() { "https" } else { "http" }
}

fn grpc_status(h: &http::HeaderMap) -> Option<String> {
    h.get("grpc-status")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
}

/// Judges an HTTP check's answer: its status against `expect_status`,
/// then, when `want_body` is set, up to `MAX_BODY` bytes of its body.
async fn check_response<B>(
    resp: Response<B>,
    expect_status: &[(u16, u16)],
    want_body: Option<&str>,
) -> Result<(), String>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let status = resp.status().as_u16();
    if !status_matches(expect_status, status) {
        return Err(format!("status {status}"));
    }
    if let Some(want) = want_body {
        let (body, _) = read_bounded(resp, MAX_BODY).await?;
        if !contains(&body, want.as_bytes()) {
            return Err("body mismatch".to_string());
        }
    }
    Ok(())
}

/// Reads up to `limit` bytes of the body (the rest is not read) and the
/// trailers if the body ended within the limit.
async fn read_bounded<B>(
    resp: Response<B>,
    limit: usize,
) -> Result<(Vec<u8>, Option<http::HeaderMap>), String>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let mut trailers = None;
    while out.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| format!("body failed: {e}"))?;
        match frame.into_data() {
            Ok(data) => {
                let take = data.len().min(limit - out.len());
                out.extend_from_slice(&data[..take]);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok((out, trailers))
}

/// `haystack` contains `needle` (an empty needle always matches).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `status` falls in one of the inclusive `ranges` (none = 200-399).
pub fn status_matches(ranges: &[(u16, u16)], status: u16) -> bool {
    if ranges.is_empty() {
        return (200..=399).contains(&status);
    }
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

/// A gRPC frame (uncompressed) holding `HealthCheckRequest { service }`.
pub fn grpc_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        msg.push(0x0A); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Why a gRPC health response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcDecodeError {
    /// Fewer than 5 bytes, or fewer than the frame header announces.
    Truncated,
    /// The message is compressed (the check asks for none).
    Compressed,
    /// The protobuf message is malformed.
    Malformed,
}

impl std::fmt::Display for GrpcDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GrpcDecodeError::Truncated => "truncated gRPC response",
            GrpcDecodeError::Compressed => "compressed gRPC response",
            GrpcDecodeError::Malformed => "malformed gRPC response",
        })
    }
}

/// The `status` of the `HealthCheckResponse` in the first gRPC frame of
/// `body` (0 = UNKNOWN when absent, 1 = SERVING, 2 = NOT_SERVING, 3 =
/// SERVICE_UNKNOWN).
pub fn grpc_response_status(body: &[u8]) -> Result<u64, GrpcDecodeError> {
    if body.len() < 5 {
        return Err(GrpcDecodeError::Truncated);
    }
    if body[0] != 0 {
        return Err(GrpcDecodeError::Compressed);
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5usize.saturating_add(len))
        .ok_or(GrpcDecodeError::Truncated)?;
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let tag = get_varint(msg, &mut pos).ok_or(GrpcDecodeError::Malformed)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = get_varint(msg, &mut pos).ok_or(GrpcDecodeError::Malformed)?;
                if field == 1 {
                    status = v;
                }
            }
            1 => pos = pos.checked_add(8).ok_or(GrpcDecodeError::Malformed)?,
            2 => {
                let l = get_varint(msg, &mut pos).ok_or(GrpcDecodeError::Malformed)?;
                let l = usize::try_from(l).map_err(|_| GrpcDecodeError::Malformed)?;
                pos = pos.checked_add(l).ok_or(GrpcDecodeError::Malformed)?;
            }
            5 => pos = pos.checked_add(4).ok_or(GrpcDecodeError::Malformed)?,
            _ => return Err(GrpcDecodeError::Malformed),
        }
        if pos > msg.len() {
            return Err(GrpcDecodeError::Malformed);
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_request_without_service_is_an_empty_message() {
        assert_eq!(&grpc_request("")[..], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn grpc_request_with_service() {
        let f = grpc_request("pkg.Svc");
        assert_eq!(&f[..5], &[0, 0, 0, 0, 9]);
        assert_eq!(&f[5..7], &[0x0A, 7]);
        assert_eq!(&f[7..], b"pkg.Svc");
    }

    #[test]
    fn grpc_request_long_service_uses_a_multibyte_varint() {
        let name = "s".repeat(300);
        let f = grpc_request(&name);
        // 300 = 0b10_0101100 -> 0xAC 0x02
        assert_eq!(&f[5..8], &[0x0A, 0xAC, 0x02]);
        assert_eq!(f.len(), 5 + 3 + 300);
        assert_eq!(u32::from_be_bytes([f[1], f[2], f[3], f[4]]), 303);
    }

    #[test]
    fn grpc_response_statuses() {
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        // Absent field: UNKNOWN.
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields before and after are skipped.
        let msg = [
            0x12, 2, b'h', b'i', 0x08, 1, 0x18, 0x96, 0x01, 0x25, 1, 2, 3, 4,
        ];
        let mut body = vec![0, 0, 0, 0, msg.len() as u8];
        body.extend_from_slice(&msg);
        assert_eq!(grpc_response_status(&body), Ok(1));
        // Trailing bytes after the first frame are ignored.
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 1, 9, 9]), Ok(1));
    }

    #[test]
    fn grpc_response_errors() {
        assert_eq!(
            grpc_response_status(&[0, 0, 0]),
            Err(GrpcDecodeError::Truncated)
        );
        assert_eq!(
            grpc_response_status(&[0, 0, 0, 0, 3, 0x08, 1]),
            Err(GrpcDecodeError::Truncated)
        );
        assert_eq!(
            grpc_response_status(&[1, 0, 0, 0, 2, 0x08, 1]),
            Err(GrpcDecodeError::Compressed)
        );
        assert_eq!(
            grpc_response_status(&[0, 0, 0, 0, 1, 0x08]),
            Err(GrpcDecodeError::Malformed)
        );
        assert_eq!(
            grpc_response_status(&[0, 0, 0, 0, 2, 0x12, 5]),
            Err(GrpcDecodeError::Malformed)
        );
        assert_eq!(
            grpc_response_status(&[0, 0, 0, 0, 1, 0x0F]),
            Err(GrpcDecodeError::Malformed)
        );
        assert_eq!(
            grpc_response_status(&[
                0, 0, 0, 0, 11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]),
            Err(GrpcDecodeError::Malformed)
        );
    }

    #[test]
    fn grpc_round_trip_of_varints() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
    }

    #[test]
    fn status_ranges() {
        assert!(status_matches(&[], 200));
        assert!(status_matches(&[], 399));
        assert!(!status_matches(&[], 404));
        assert!(!status_matches(&[], 199));
        let r = [(200, 200), (204, 204), (300, 302)];
        assert!(status_matches(&r, 200));
        assert!(status_matches(&r, 204));
        assert!(status_matches(&r, 301));
        assert!(!status_matches(&r, 201));
        assert!(!status_matches(&r, 503));
    }

    #[test]
    fn body_substring() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(contains(b"abc", b""));
        assert!(!contains(b"ab", b"abc"));
        assert!(!contains(b"status: degraded", b"ok"));
    }

    #[test]
    fn first_delay_within_jitter() {
        let j = Duration::from_millis(100);
        assert_eq!(first_delay(j, 0), Duration::ZERO);
        assert_eq!(first_delay(Duration::ZERO, u64::MAX), Duration::ZERO);
        for r in [1, 12345, u64::MAX / 3, u64::MAX] {
            assert!(first_delay(j, r) <= j);
        }
    }
}
