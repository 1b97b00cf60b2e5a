//! The web dashboard on the admin listener: a page and its assets (embedded
//! in the binary; hand-written HTML, CSS and JS, no external fetch), and
//! `GET /api/stats`, the time series it charts (see [`crate::metrics::dashboard`]). The page
//! also reads `/status`, `/upstreams` and `/reloads`. Documented in
//! docs/dashboard.md and docs/admin-api.md.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};
use sy_config::model::{Action, RedirectTarget};

use crate::metrics::dashboard::{ListenerReading, Listing};
use crate::shared::Shared;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("assets/index.html");

/// Every file the dashboard serves, by request path.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/assets/theme.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/theme.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        path: "/assets/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// Only our own origin, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A strong validator per asset: a hash of its bytes, computed once.
fn etag(i: usize) -> &'static HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = xxhash_rust::xxh3::xxh3_64(a.body);
                HeaderValue::from_str(&format!("\"{h:016x}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    });
    &tags[i]
}

/// Whether `path` is one of the dashboard's files (the page and its
/// assets). They hold no data, so they are served without the admin token
/// (a browser cannot send one when it navigates); the page sends the token
/// with its API calls.
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// Serves the dashboard file at `path`; None when `path` is not one.
/// GET and HEAD; `If-None-Match` gets 304. Cached with `no-cache` and an
/// ETag: browsers revalidate on every load, so a new binary's assets are
/// picked up at once.
pub fn asset(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Full<Bytes>>> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    let a = &ASSETS[i];
    if method != Method::GET && method != Method::HEAD {
        let mut r = Response::new(Full::new(Bytes::from_static(b"method not allowed\n")));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    let tag = etag(i);
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == tag.as_bytes()
        });
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(a.body)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
        r
    };
    let h = r.headers_mut();
    h.insert(ETAG, tag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if a.content_type.starts_with("text/html") {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Some(r)
}

/// `GET /api/stats[?since=UNIX_MS]`: the time series of every route,
/// upstream and listener of the running configuration (JSON; see
/// docs/admin-api.md).
pub fn api_stats(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    let since = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("since="))
            .and_then(|v| v.parse::<u64>().ok())
    });
    let snap = shared.snapshot.load();
    let routes = snap
        .config
        .routes
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("target".into(), route_target(&r.action));
            (r.name.clone(), m)
        })
        .collect();
    let upstreams = snap
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), Map::new()))
        .collect();
    let listeners = snap
        .listeners
        .iter()
        .map(|l| (l.cfg.name.clone(), Map::new()))
        .collect();
    let mut v = shared.metrics.dashboard.json(
        since,
        Listing {
            routes,
            upstreams,
            listeners,
        },
    );
    if let Value::Object(m) = &mut v {
        m.insert("config_version".into(), json!(snap.version));
        m.insert(
            "uptime_seconds".into(),
            json!(shared.started.elapsed().as_secs()),
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// What a route does, for the page's subtitle.
fn route_target(a: &Action) -> Value {
    match a {
        Action::Upstream(u) => json!({"kind": "upstream", "upstreams": [u]}),
        Action::Split(s) => json!({
            "kind": "split",
            "upstreams": s.backends.iter().map(|b| b.upstream.as_str()).collect::<Vec<_>>(),
        }),
        Action::Respond { status, .. } => json!({"kind": "respond", "status": status}),
        Action::Redirect(r) => {
            let location = match &r.target {
                RedirectTarget::Location { location, .. } => location.clone(),
                RedirectTarget::Rewrite { scheme, host, port } => format!(
                    "{}://{}{}/...",
                    scheme.as_deref().unwrap_or("(same scheme)"),
                    host.as_deref().unwrap_or("(same host)"),
                    port.map(|p| format!(":{p}")).unwrap_or_default()
                ),
            };
            json!({"kind": "redirect", "status": r.status, "location": location})
        }
    }
}

/// Takes the once-a-second sample (called by the control thread's
/// sweeper): every series' point, client connections and answers per
/// listener and open upstream connections per upstream.
pub fn sample(shared: &Shared) {
    let snap = shared.snapshot.load();
    let listeners: Vec<ListenerReading<'_>> = snap
        .listeners
        .iter()
        .map(|l| ListenerReading {
            name: l.cfg.name.as_str(),
            connections: u64::try_from(l.metrics.active.get()).unwrap_or(0),
            answers: l.metrics.requests.totals(),
        })
        .collect();
    let upstreams: Vec<(&str, u64)> = snap
        .upstreams
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.live
                    .connections
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    shared.metrics.dashboard.sample(&listeners, &upstreams);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn assets_have_types_validators_and_304() {
        let h = HeaderMap::new();
        for path in ["/", "/index.html", "/assets/app.js", "/assets/app.css"] {
            let r = asset(&Method::GET, path, &h).unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(r.headers().contains_key(ETAG));
            assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
        }
        let r = asset(&Method::GET, "/", &h).unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(r.headers().contains_key(CONTENT_SECURITY_POLICY));
        let js = asset(&Method::GET, "/assets/app.js", &h).unwrap();
        assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        let mut cond = HeaderMap::new();
        cond.insert(IF_NONE_MATCH, js.headers()[ETAG].clone());
        let r = asset(&Method::GET, "/assets/app.js", &cond).unwrap();
        assert_eq!(r.status(), 304);
        let r = asset(&Method::POST, "/", &h).unwrap();
        assert_eq!(r.status(), 405);
        assert!(asset(&Method::GET, "/assets/nope.js", &h).is_none());
        assert!(is_asset("/assets/app.css") && !is_asset("/api/stats"));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        let html = std::str::from_utf8(INDEX).unwrap();
        for needle in ["/assets/app.js", "/assets/app.css", "/assets/theme.js"] {
            assert!(html.contains(needle), "{needle}");
        }
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            assert!(
                !text.contains("http://") && !text.contains("https://") || a.path.ends_with(".svg"),
                "{} refers to another origin",
                a.path
            );
        }
    }
}
