//! `read` over real loopback sockets: it consumes exactly the header,
//! however the header is cut into segments.

use std::time::Duration;

use sy_proto::proxy_header::{Invalid, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Failure, read};

/// A connected pair: (client side, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = l.accept().await.unwrap();
    (client, server)
}

/// Sends `pieces` one by one, each its own segment, then `after`; returns
/// what `read` concluded and the bytes the server reads next.
async fn exchange(pieces: &[&[u8]], after: &[u8]) -> (Result<Source, Failure>, Vec<u8>) {
    let (mut client, mut server) = pair().await;
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let after = after.to_vec();
    let writer = tokio::spawn(async move {
        for p in pieces {
            client.write_all(&p).await.unwrap();
            // Paces the pieces into separate segments; nothing waits on it.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.write_all(&after).await.unwrap();
        client.shutdown().await.unwrap();
        // Keep the socket open until the server has read everything.
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    });
    let res = tokio::time::timeout(Duration::from_secs(10), read(&mut server))
        .await
        .expect("read concludes");
    let mut rest = Vec::new();
    if res.is_ok() {
        tokio::time::timeout(Duration::from_secs(10), server.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    }
    drop(server);
    writer.await.unwrap();
    (res.map(|h| h.source), rest)
}

fn v2_ipv4() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&[203, 0, 113, 7, 127, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb]);
    h
}

#[tokio::test]
async fn v1_in_one_segment_with_the_request_behind_it() {
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 8080 443\r\n";
    let mut all = header.to_vec();
    all.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let (res, rest) = exchange(&[&all], b"Host: a\r\n\r\n").await;
    assert_eq!(
        res.unwrap(),
        Source::Client("203.0.113.7:8080".parse().unwrap())
    );
    assert_eq!(rest, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[tokio::test]
async fn v1_cut_into_pieces() {
    let header = b"PROXY TCP6 2001:db8::7 ::1 8080 443\r\n";
    let (a, b) = header.split_at(9);
    let (b, c) = b.split_at(20);
    let (res, rest) = exchange(&[a, b, c], b"\x16\x03\x01").await;
    assert_eq!(
        res.unwrap(),
        Source::Client("[2001:db8::7]:8080".parse().unwrap())
    );
    assert_eq!(rest, b"\x16\x03\x01");
}

#[tokio::test]
async fn v2_cut_inside_the_signature_and_the_addresses() {
    let header = v2_ipv4();
    let (a, b) = header.split_at(5);
    let (b, c) = b.split_at(15);
    let (res, rest) = exchange(&[a, b, c], b"PRI * HTTP/2.0").await;
    assert_eq!(
        res.unwrap(),
        Source::Client("203.0.113.7:8080".parse().unwrap())
    );
    assert_eq!(rest, b"PRI * HTTP/2.0");
}

#[tokio::test]
async fn v2_local_keeps_the_peer() {
    let (res, rest) = exchange(&[b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"], b"GET").await;
    assert_eq!(res.unwrap(), Source::Local);
    assert_eq!(rest, b"GET");
}

#[tokio::test]
async fn no_header_is_refused_without_waiting() {
    let (res, _) = exchange(&[b"GET / HTTP/1.1\r\n"], b"").await;
    assert!(
        matches!(res, Err(Failure::Invalid(Invalid::Missing))),
        "{res:?}"
    );
    let (res, _) = exchange(&[b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"], b"").await;
    assert!(
        matches!(res, Err(Failure::Invalid(Invalid::Malformed))),
        "{res:?}"
    );
}

#[tokio::test]
async fn a_close_is_told_apart_from_a_cut_header() {
    let (res, _) = exchange(&[], b"").await;
    assert!(matches!(res, Err(Failure::Closed)), "{res:?}");
    let (res, _) = exchange(&[b"PROXY TCP4 1.2.3.4"], b"").await;
    assert!(matches!(res, Err(Failure::Truncated)), "{res:?}");
    let (res, _) = exchange(&[&v2_ipv4()[..20]], b"").await;
    assert!(matches!(res, Err(Failure::Truncated)), "{res:?}");
}
