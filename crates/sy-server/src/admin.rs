//! The admin listener: `/healthz`, `/metrics` (Prometheus text),
//! `POST /reload`, `GET /status` (JSON) and `GET /reloads` (JSON).
//! Documented in docs/admin-api.md.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::runtime::{Control, ReloadError};

/// Serves the admin API on `sock` until the process stops.
pub async fn serve(sock: std::net::TcpListener, control: Arc<Control>) {
    let listener = match tokio::net::TcpListener::from_std(sock) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register admin listener");
            return;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let c = control.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let c = c.clone();
                async move { Ok::<_, Infallible>(route(&c, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, ct: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    text(status, "application/json", v.to_string())
}

async fn route(c: &Arc<Control>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            c.shared.metrics.encode(),
        ),
        (&Method::GET, "/status") => {
            let snap = c.shared.snapshot.load();
            let listeners: Vec<_> = c
                .listener_addrs()
                .into_iter()
                .map(|(name, addr)| json!({"name": name, "address": addr.to_string()}))
                .collect();
            json_resp(
                StatusCode::OK,
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "config_version": snap.version,
                    "uptime_seconds": c.shared.started.elapsed().as_secs(),
                    "workers": c.shared.workers,
                    "listeners": listeners,
                }),
            )
        }
        (&Method::GET, "/reloads") => {
            let list: Vec<_> = match c.shared.reloads.lock() {
                Ok(h) => h.iter().cloned().collect(),
                Err(p) => p.into_inner().iter().cloned().collect(),
            };
            let items: Vec<_> = list
                .iter()
                .map(|r| {
                    json!({"at_unix": r.at_unix, "trigger": r.trigger, "version": r.version,
                           "ok": r.ok, "message": r.message})
                })
                .collect();
            json_resp(StatusCode::OK, json!({ "reloads": items }))
        }
        (&Method::POST, "/reload") => {
            let c2 = c.clone();
            let res = tokio::task::spawn_blocking(move || c2.reload("admin")).await;
            match res {
                Ok(Ok(v)) => json_resp(StatusCode::OK, json!({"ok": true, "config_version": v})),
                Ok(Err(e @ ReloadError::NoConfigFile)) => json_resp(
                    StatusCode::CONFLICT,
                    json!({"ok": false, "error": e.to_string()}),
                ),
                Ok(Err(e)) => json_resp(
                    StatusCode::BAD_REQUEST,
                    json!({"ok": false, "error": e.to_string()}),
                ),
                Err(_) => json_resp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"ok": false, "error": "reload task failed"}),
                ),
            }
        }
        (_, "/healthz" | "/metrics" | "/status" | "/reloads" | "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /healthz, /metrics, /status, /reloads, POST /reload\n",
        ),
    }
}
