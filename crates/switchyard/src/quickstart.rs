//! `switchyard run` without a file: two in-process demo upstreams that
//! answer with their own name, a proxy on 127.0.0.1:8080 balancing round
//! robin over them, and the admin API on 127.0.0.1:9901.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The quickstart configuration, with the demo upstreams' ports filled in.
pub fn config_text(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"# Switchyard quickstart (generated)
[admin]
address = "127.0.0.1:9901"

[runtime]
workers = 1
watch_config = false

[listeners.quickstart]
address = "127.0.0.1:8080"

[[routes]]
name = "demo"
upstream = "demo"

[upstreams.demo]
balancer = "round_robin"
servers = ["{a}", "{b}"]
"#
    )
}

async fn demo_upstream(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body =
                            format!("hello from {name} (you asked for {})\n", req.uri().path());
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        r.headers_mut().insert(
                            "x-demo-upstream",
                            hyper::header::HeaderValue::from_static(name),
                        );
                        Ok::<_, Infallible>(r)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Starts the demo upstreams on their own thread, then the proxy.
pub fn run() -> ExitCode {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let a = demo_upstream("demo-a").await;
            let b = demo_upstream("demo-b").await;
            let _ = tx.send(a.and_then(|a| b.map(|b| (a, b))));
            std::future::pending::<()>().await;
        });
    });
    let (a, b) = match rx.recv() {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            eprintln!("error: cannot start the demo upstreams: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("error: the demo upstream thread died");
            return ExitCode::FAILURE;
        }
    };
    let text = config_text(a, b);
    let cfg = match sy_config::parse(&text, "<quickstart>", std::path::Path::new(".")) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("internal error: the quickstart config is invalid:\n{d}");
            return ExitCode::FAILURE;
        }
    };
    crate::init_logging(&cfg.runtime);
    tracing::info!("quickstart: two demo upstreams at {a} and {b}, balanced round robin");
    tracing::info!(
        "try:  curl -s http://127.0.0.1:8080/   (repeat: the answer alternates demo-a / demo-b)"
    );
    tracing::info!(
        "      curl -s http://127.0.0.1:9901/metrics   curl -s http://127.0.0.1:9901/healthz"
    );
    tracing::info!("Ctrl-C stops; `switchyard run -c FILE` runs your own config (see examples/)");
    crate::serve(cfg, None)
}
