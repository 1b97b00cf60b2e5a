//! End to end: gRPC, tonic client -> proxy (h2c) -> tonic server (h2c).
//! Unary and large messages, bidirectional streaming, trailers, error
//! statuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Proxy, WAIT, hyper_header, one_upstream_config, within};
use futures_util::Stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

mod grpc {
    use super::*;
    use tonic::{Code, Status};

    /// The one message type: a sequence number and a payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Echo {
        #[prost(uint32, tag = "1")]
        pub seq: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub payload: Vec<u8>,
    }

    pub type Codec = tonic_prost::ProstCodec<Echo, Echo>;
    pub const MAX: usize = 16 << 20;
    type BoxFut<T> =
        Pin<Box<dyn std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send>>;
    type BoxStream = Pin<Box<dyn Stream<Item = Result<Echo, Status>> + Send>>;

    fn reply(m: Echo) -> Echo {
        Echo {
            seq: m.seq + 1000,
            payload: m.payload,
        }
    }

    struct Unary;
    impl tonic::server::UnaryService<Echo> for Unary {
        type Response = Echo;
        type Future = BoxFut<Echo>;
        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            Box::pin(async move {
                let seen_te = req
                    .metadata()
                    .get("te")
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default();
                let mut resp = tonic::Response::new(reply(req.into_inner()));
                resp.metadata_mut()
                    .insert("x-seen-te", seen_te.parse().unwrap());
                Ok(resp)
            })
        }
    }

    struct Fail;
    impl tonic::server::UnaryService<Echo> for Fail {
        type Response = Echo;
        type Future = BoxFut<Echo>;
        fn call(&mut self, _: tonic::Request<Echo>) -> Self::Future {
            Box::pin(async move {
                let mut md = tonic::metadata::MetadataMap::new();
                md.insert("x-reason", "test-says-no".parse().unwrap());
                Err(Status::with_metadata(
                    Code::PermissionDenied,
                    "denied by the test",
                    md,
                ))
            })
        }
    }

    /// Streams three messages, then fails: the status travels in real
    /// trailers after data, not in a trailers-only response.
    struct FailLate;
    impl tonic::server::ServerStreamingService<Echo> for FailLate {
        type Response = Echo;
        type ResponseStream = BoxStream;
        type Future = BoxFut<BoxStream>;
        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            let m = req.into_inner();
            Box::pin(async move {
                let items: Vec<Result<Echo, Status>> = vec![
                    Ok(Echo {
                        seq: 1,
                        payload: m.payload.clone(),
                    }),
                    Ok(Echo {
                        seq: 2,
                        payload: m.payload.clone(),
                    }),
                    Ok(Echo {
                        seq: 3,
                        payload: m.payload,
                    }),
                    Err(Status::data_loss("late failure")),
                ];
                Ok(tonic::Response::new(
                    Box::pin(futures_util::stream::iter(items)) as BoxStream,
                ))
            })
        }
    }

    /// Echoes each message as it arrives.
    struct Bidi;
    impl tonic::server::StreamingService<Echo> for Bidi {
        type Response = Echo;
        type ResponseStream = BoxStream;
        type Future = BoxFut<BoxStream>;
        fn call(&mut self, req: tonic::Request<tonic::Streaming<Echo>>) -> Self::Future {
            let inbound = req.into_inner();
            Box::pin(async move {
                let out = futures_util::stream::unfold(Some(inbound), |state| async move {
                    let mut s = state?;
                    match s.message().await {
                        Ok(Some(m)) => Some((Ok(reply(m)), Some(s))),
                        Ok(None) => None,
                        Err(e) => Some((Err(e), None)),
                    }
                });
                Ok(tonic::Response::new(Box::pin(out) as BoxStream))
            })
        }
    }

    /// Adds `x-custom-trailer` to the trailers of every response.
    fn add_trailer(f: hyper::body::Frame<Bytes>) -> hyper::body::Frame<Bytes> {
        match f.into_trailers() {
            Ok(mut t) => {
                t.insert(
                    "x-custom-trailer",
                    http::HeaderValue::from_static("trailer-value"),
                );
                hyper::body::Frame::trailers(t)
            }
            Err(f) => f,
        }
    }

    type RespBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Status>;

    async fn route(req: Request<Incoming>) -> Result<Response<RespBody>, std::convert::Infallible> {
        let grpc = || {
            tonic::server::Grpc::new(Codec::default())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX)
        };
        let path = req.uri().path().to_string();
        let resp = match path.as_str() {
            "/test.Echo/Unary" => grpc().unary(Unary, req).await,
            "/test.Echo/Fail" => grpc().unary(Fail, req).await,
            "/test.Echo/FailLate" => grpc().server_streaming(FailLate, req).await,
            "/test.Echo/Bidi" => grpc().streaming(Bidi, req).await,
            _ => Status::unimplemented(path).into_http(),
        };
        Ok(resp.map(|b| b.map_frame(add_trailer).boxed_unsync()))
    }

    /// A gRPC server speaking h2c, like a tonic server would.
    pub async fn server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(route))
                        .await;
                });
            }
        });
        addr
    }

    pub async fn client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(WAIT)
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        let mut g = tonic::client::Grpc::new(ch)
            .max_decoding_message_size(MAX)
            .max_encoding_message_size(MAX);
        g.ready().await.unwrap();
        g
    }

    pub fn path(m: &'static str) -> http::uri::PathAndQuery {
        http::uri::PathAndQuery::from_static(m)
    }

    /// One gRPC message frame: flag 0 (uncompressed), length, protobuf.
    pub fn frame(m: &Echo) -> Bytes {
        let body = prost::Message::encode_to_vec(m);
        let mut b = BytesMut::with_capacity(5 + body.len());
        b.put_u8(0);
        b.put_u32(body.len() as u32);
        b.put_slice(&body);
        b.freeze()
    }

    pub fn unframe(mut b: Bytes) -> Vec<Echo> {
        let mut out = Vec::new();
        while b.has_remaining() {
            assert!(b.remaining() >= 5, "truncated gRPC frame header");
            assert_eq!(b.get_u8(), 0, "compressed frame");
            let n = b.get_u32() as usize;
            out.push(<Echo as prost::Message>::decode(b.split_to(n)).unwrap());
        }
        out
    }
}

async fn grpc_setup() -> (SocketAddr, Proxy) {
    let backend = grpc::server().await;
    let cfg = one_upstream_config(&format!("\"{backend}\""), "protocol = \"h2c\"");
    (backend, Proxy::start(&cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_large_message() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;

    let req = grpc::Echo {
        seq: 7,
        payload: b"hello grpc".to_vec(),
    };
    let resp = within(
        "unary",
        g.unary(
            tonic::Request::new(req),
            grpc::path("/test.Echo/Unary"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    // `TE: trailers` must reach the server (it is hop-by-hop otherwise).
    assert_eq!(resp.metadata().get("x-seen-te").unwrap(), "trailers");
    // tonic merges trailers into the unary response metadata.
    assert_eq!(
        resp.metadata().get("x-custom-trailer").unwrap(),
        "trailer-value"
    );
    let m = resp.into_inner();
    assert_eq!(m.seq, 1007);
    assert_eq!(m.payload, b"hello grpc");

    // ~4 MiB in one message each way.
    let big: Vec<u8> = (0..(4 << 20) + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    g.ready().await.unwrap();
    let resp = within(
        "large unary",
        g.unary(
            tonic::Request::new(grpc::Echo {
                seq: 1,
                payload: big.clone(),
            }),
            grpc::path("/test.Echo/Unary"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let m = resp.into_inner();
    assert_eq!(m.seq, 1001);
    assert_eq!(m.payload.len(), big.len());
    assert!(m.payload == big, "large payload corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bidirectional_streaming_lock_step() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<grpc::Echo>(1);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let msg = |i: u32| grpc::Echo {
        seq: i,
        payload: format!("message {i}").repeat(i as usize + 1).into_bytes(),
    };
    tx.send(msg(0)).await.unwrap();
    let resp = within(
        "bidi call",
        g.streaming(
            tonic::Request::new(outbound),
            grpc::path("/test.Echo/Bidi"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let mut inbound = resp.into_inner();
    // Lock step: message i+1 is only sent once the echo of i arrived, so
    // any buffering of a whole stream in the proxy would hang here.
    for i in 0..50u32 {
        let got = within("bidi echo", inbound.message())
            .await
            .unwrap()
            .expect("stream ended early");
        assert_eq!(got.seq, i + 1000);
        assert_eq!(got.payload, msg(i).payload);
        if i + 1 < 50 {
            tx.send(msg(i + 1)).await.unwrap();
        }
    }
    drop(tx);
    assert!(
        within("bidi end", inbound.message())
            .await
            .unwrap()
            .is_none()
    );
    let trailers = within("bidi trailers", inbound.trailers())
        .await
        .unwrap()
        .expect("trailers");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_reach_the_client_as_trailers() {
    let (_, p) = grpc_setup().await;
    // A raw HTTP/2 client to see exactly what is a header and what a trailer.
    let tcp = tokio::net::TcpStream::connect(p.addr("main"))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let call = |path: &str, m: &grpc::Echo| {
        Request::post(format!("http://{}{path}", p.addr("main")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(grpc::frame(m)))
            .unwrap()
    };
    let m = grpc::Echo {
        seq: 5,
        payload: b"raw".to_vec(),
    };

    // OK: data, then trailers with grpc-status 0 and the custom trailer.
    let r = within("raw unary", send.send_request(call("/test.Echo/Unary", &m)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hyper_header(&r, "content-type"), "application/grpc");
    assert!(
        r.headers().get("grpc-status").is_none(),
        "grpc-status must come as a trailer"
    );
    assert!(r.headers().get("x-custom-trailer").is_none());
    let collected = within("raw body", r.into_body().collect()).await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the response must end with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
    let msgs = grpc::unframe(collected.to_bytes());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].seq, 1005);

    // Non-OK after data: the status is in the trailers.
    let r = within(
        "raw fail-late",
        send.send_request(call("/test.Echo/FailLate", &m)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let collected = within("raw body", r.into_body().collect()).await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the response must end with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "15");
    // grpc-message is percent-encoded on the wire.
    assert_eq!(trailers.get("grpc-message").unwrap(), "late%20failure");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
    assert_eq!(grpc::unframe(collected.to_bytes()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_status_propagates() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;
    let m = grpc::Echo {
        seq: 1,
        payload: b"x".to_vec(),
    };

    // Trailers-only error response.
    let err = within(
        "fail",
        g.unary(
            tonic::Request::new(m.clone()),
            grpc::path("/test.Echo/Fail"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(err.message(), "denied by the test");
    assert_eq!(err.metadata().get("x-reason").unwrap(), "test-says-no");

    // Error after three messages.
    g.ready().await.unwrap();
    let resp = within(
        "fail late",
        g.server_streaming(
            tonic::Request::new(m.clone()),
            grpc::path("/test.Echo/FailLate"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let mut s = resp.into_inner();
    for i in 1..=3 {
        let got = within("stream item", s.message())
            .await
            .unwrap()
            .expect("item");
        assert_eq!(got.seq, i);
    }
    let err = within("stream end", s.message()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert_eq!(err.message(), "late failure");

    // Unknown method.
    g.ready().await.unwrap();
    let err = within(
        "unknown",
        g.unary(
            tonic::Request::new(m),
            grpc::path("/test.Echo/Nope"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}
