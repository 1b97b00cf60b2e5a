//! The client against scripted servers on 127.0.0.1: each test's server
//! reads what the client wrote and answers with exact bytes.

use std::sync::Mutex;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A pool that keeps what it is given.
#[derive(Default)]
#[allow(clippy::vec_box)] // the pool is given boxes
struct Keep(Mutex<Vec<Box<Conn>>>);

impl ReturnConn for Keep {
    fn give_back(&self, _slot: usize, conn: Box<Conn>) {
        self.0.lock().unwrap().push(conn);
    }
}

impl Keep {
    fn take(&self) -> Option<Box<Conn>> {
        self.0.lock().unwrap().pop()
    }
}

fn returner(k: &Arc<Keep>) -> Option<Returner> {
    Some(Returner {
        pool: k.clone(),
        slot: 0,
    })
}

async fn pair() -> (Box<Conn>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    (
        Conn::new(Metered::new(Stream::Plain(c), None), OpenGuard::new(None)),
        s,
    )
}

/// Reads from the server side until `end` has been seen.
async fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(end.len()).any(|w| w == end) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "client closed; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn get(path: &str) -> Request<http_body_util::Empty<Bytes>> {
    Request::get(path)
        .header("host", "example")
        .body(http_body_util::Empty::new())
        .unwrap()
}

#[tokio::test]
async fn a_content_length_response_is_read_and_the_connection_reused() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    let server = tokio::spawn(async move {
        for body in ["hello", "again!"] {
            let req = read_until(&mut s, b"\r\n\r\n").await;
            assert!(req.starts_with(b"GET /a?b=1 HTTP/1.1\r\nhost: example\r\n"));
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-T: v\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        }
        s
    });
    let resp = conn
        .send(&mut get("/a?b=1"), returner(&keep))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-t"], "v");
    // The whole body came with the head: the connection is back already.
    let mut conn = keep.take().expect("returned before the body was read");
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    assert!(conn.reused());
    // Idle and healthy.
    tokio::task::yield_now().await;
    assert!(conn.probe());
    let resp = conn
        .send(&mut get("/a?b=1"), returner(&keep))
        .await
        .unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "again!"
    );
    let _s = server.await.unwrap();
    assert!(keep.take().is_some());
}

#[tokio::test]
async fn chunked_responses_with_trailers_arrive_whole_over_many_writes() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nx-sum: 42\r\n\r\n";
        for piece in wire.chunks(3) {
            s.write_all(piece).await.unwrap();
            s.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        let _ = s.read(&mut [0u8; 1]).await;
    });
    let resp = conn.send(&mut get("/"), returner(&keep)).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-sum"], "42");
    assert_eq!(collected.to_bytes(), "hello, world");
    assert!(keep.take().is_some(), "reusable after the last chunk");
}

#[tokio::test]
async fn streamed_request_bodies_go_out_chunked_or_by_length() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    let server = tokio::spawn(async move {
        let got = read_until(&mut s, b"0\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        got
    });
    let chunks = futures_util::stream::iter(
        ["ab", "", "cde"].map(|c| Ok::<_, io::Error>(Frame::data(Bytes::from(c)))),
    );
    let mut req = Request::post("/up")
        .header("host", "example")
        .body(StreamBody::new(chunks))
        .unwrap();
    let resp = conn.send(&mut req, returner(&keep)).await.unwrap();
    assert_eq!(resp.status(), 201);
    let got = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(
        got.contains("transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{got}"
    );

    // A known length goes out as content-length, body bytes as they are.
    let (conn, mut s) = pair().await;
    let server = tokio::spawn(async move {
        let got = read_until(&mut s, b"xyz").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        got
    });
    let mut req = Request::put("/up")
        .header("host", "example")
        .body(http_body_util::Full::new(Bytes::from("xyz")))
        .unwrap();
    conn.send(&mut req, None).await.unwrap();
    let got = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(got.ends_with("content-length: 3\r\n\r\nxyz"), "{got}");
}

#[tokio::test]
async fn an_early_answer_stops_the_upload_and_ends_the_connection() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!")
            .await
            .unwrap();
        let mut sink = [0u8; 65536];
        while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    // A body that never ends.
    let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(1);
    let body = StreamBody::new(tokio_stream_from(rx));
    let mut req = Request::post("/up")
        .header("host", "x")
        .header("content-length", "1000000")
        .body(body)
        .unwrap();
    let resp = conn.send(&mut req, returner(&keep)).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "big!");
    assert!(
        keep.take().is_none(),
        "a half-sent request leaves the connection unusable"
    );
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn interim_responses_are_skipped_and_close_delimited_bodies_read_to_the_end() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil ",
        )
        .await
        .unwrap();
        s.write_all(b"the end").await.unwrap();
    });
    let resp = conn.send(&mut get("/"), returner(&keep)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("link").is_none());
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "until the end"
    );
    assert!(keep.take().is_none());
}

#[tokio::test]
async fn garbage_and_early_close_are_errors_that_say_what_happened() {
    let (conn, mut s) = pair().await;
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await.unwrap();
    });
    match conn.send(&mut get("/"), None).await {
        Err(SendError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {:?}", other.map(|r| r.status())),
    }

    let (conn, s) = pair().await;
    drop(s);
    match conn.send(&mut get("/"), None).await {
        Err(SendError::Closed { unsent: true, .. }) => {}
        other => panic!("expected Closed, got {:?}", other.map(|r| r.status())),
    }

    // A body cut short is an error in the body, and the connection is gone.
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
            .await
            .unwrap();
    });
    let resp = conn.send(&mut get("/"), returner(&keep)).await.unwrap();
    assert!(resp.into_body().collect().await.is_err());
    assert!(keep.take().is_none());
}

#[tokio::test]
async fn a_connection_the_server_closed_fails_the_probe() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        // Then the server's keep-alive timeout fires.
    });
    let resp = conn.send(&mut get("/"), returner(&keep)).await.unwrap();
    drop(resp);
    let mut conn = keep.take().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The close arrives asynchronously; the probe must notice it.
    while conn.probe() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "probe never saw the close"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn head_responses_have_no_body_whatever_their_length_says() {
    let (conn, mut s) = pair().await;
    let keep = Arc::new(Keep::default());
    tokio::spawn(async move {
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n")
            .await
            .unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    });
    let mut req = Request::head("/")
        .header("host", "x")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = conn.send(&mut req, returner(&keep)).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "500");
    assert!(resp.body().is_end_stream());
    assert!(keep.take().is_some());
}
