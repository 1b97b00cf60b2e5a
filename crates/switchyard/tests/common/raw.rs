//! A hand-driven HTTP/1.1 client for exact bytes on the wire.

use std::net::SocketAddr;
use std::time::Duration;

/// One response read by [`RawHttp`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 100 Continue`.
    pub status_line: String,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hand-driven HTTP/1.1 client connection: writes exactly the given bytes
/// and parses responses (interim 1xx ones one at a time). Every read has a
/// 10 s deadline.
pub struct RawHttp {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

const RAW_DEADLINE: Duration = Duration::from_secs(10);

impl RawHttp {
    pub async fn connect(addr: SocketAddr) -> RawHttp {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawHttp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            // A reset after the peer's last bytes: nothing more to read.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Ok(Err(e)) => panic!("raw read failed: {e}"),
            Err(_) => panic!(
                "no complete response within {RAW_DEADLINE:?}; got so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Takes one CRLF-terminated line from the buffer, reading as needed.
    async fn line(&mut self, deadline: tokio::time::Instant) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(
                self.fill(deadline).await,
                "connection closed mid-line; got: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn exact(&mut self, n: usize, deadline: tokio::time::Instant) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(deadline).await, "connection closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    /// True when the peer has closed the connection (after any buffered
    /// bytes), waiting at most 10 s.
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + RAW_DEADLINE;
        self.buf.is_empty() && !self.fill(deadline).await
    }

    /// Reads one response: head, then the body framed by its
    /// Content-Length, chunked encoding, or the end of the connection.
    pub async fn read_response(&mut self) -> RawResponse {
        let deadline = tokio::time::Instant::now() + RAW_DEADLINE;
        while !self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                self.fill(deadline).await,
                "connection closed before a response head; got: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        let status_line = self.line(deadline).await;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line(deadline).await;
            if l.is_empty() {
                break;
            }
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = RawResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
        };
        if status < 200 || status == 204 || status == 304 {
            return resp;
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = self.line(deadline).await;
                let hex = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                if size == 0 {
                    // Trailers, up to an empty line.
                    while !self.line(deadline).await.is_empty() {}
                    break;
                }
                let data = self.exact(size, deadline).await;
                resp.body.extend_from_slice(&data);
                let crlf = self.line(deadline).await;
                assert!(crlf.is_empty(), "chunk not followed by CRLF");
            }
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().unwrap();
            resp.body = self.exact(n, deadline).await;
        } else {
            while self.fill(deadline).await {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }
}
