#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use http_body_util::BodyExt;
use sy_core::Stage;

fn cx() -> RequestCx<'static> {
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:1".parse().unwrap(),
        http::Method::GET,
        http::Uri::from_static("/a"),
    );
    cx.route = Some("api");
    cx.request_id = Some(HeaderValue::from_static("rid-9"));
    cx
}

async fn body(resp: http::Response<ProxyBody>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test]
async fn switchyards_own_errors_get_the_page() {
    let json = ErrorPage::new(&ErrorPageFilter {
        content_type: "application/json".into(),
        body: ErrorPageBody::Json,
    })
    .unwrap();
    let mut resp = crate::respond::error(&ProxyError::new(
        Stage::NoHealthyServer,
        "upstream api has no server available",
    ));
    json.on_response(&cx(), &mut resp);
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-switchyard-error"], "no-healthy-server");
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body(resp).await).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"error": "no-healthy-server", "message": "upstream api has no server available", "status": 503, "request_id": "rid-9"})
    );
}

#[tokio::test]
async fn templates_escape_values_in_html_and_upstream_errors_are_left_alone() {
    let html = ErrorPage::new(&ErrorPageFilter {
        content_type: "text/html; charset=utf-8".into(),
        body: ErrorPageBody::Template(
            sy_config::template::parse(
                "<h1>${status} ${reason}</h1><p>${message}</p><p>${route}</p>",
            )
            .unwrap(),
        ),
    })
    .unwrap();
    let mut resp = crate::respond::error(&ProxyError::forbidden("<script>x</script>"));
    html.on_response(&cx(), &mut resp);
    assert_eq!(
        body(resp).await,
        "<h1>403 Forbidden</h1><p>&lt;script&gt;x&lt;/script&gt;</p><p>api</p>"
    );
    // An upstream's own 502 is not Switchyard's answer: untouched.
    let mut upstream = http::Response::builder()
        .status(502)
        .body(ProxyBody::full("from the backend"))
        .unwrap();
    html.on_response(&cx(), &mut upstream);
    assert_eq!(body(upstream).await, "from the backend");
}
