//! HTTP clients and the deadlines tests wait under.

use std::future::Future;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Incoming;

/// How long one protocol exchange may take before [`within`] fails it.
pub const WAIT: Duration = Duration::from_secs(20);

/// A plain HTTP client (HTTP/1.1 keep-alive).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// An HTTP/2 client speaking cleartext with prior knowledge (h2c).
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// Runs `f` under a deadline ([`WAIT`]) so a hung exchange fails instead of
/// hanging.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Header `name` of a reqwest response; panics when it is missing.
pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("response has no {name} header: {:?}", r.headers()))
}

/// Header `name` of a hyper response; panics when it is missing.
pub fn hyper_header<'a, B>(r: &'a Response<B>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("response has no {name} header: {:?}", r.headers()))
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a whole body.
pub async fn body_string(b: Incoming) -> String {
    String::from_utf8_lossy(&b.collect().await.unwrap().to_bytes()).into_owned()
}
