//! HTTP/1.1 responses read from an upstream server: the head, how the body
//! is framed (RFC 9112 §6.3), whether the connection stays open, and a
//! decoder for chunked bodies (RFC 9112 §7.1).
//!
//! The proxy's own HTTP/1.1 client (sy-server's `h1`) reads bytes off the
//! upstream socket into its buffer and asks these functions what they are.
//! They never allocate: a head is parsed by httparse into header positions
//! in a caller's [`Fields`] (inline, never zeroed: a 4 KiB array cleared on
//! every parse was 10% of the proxy's instructions), and the chunked decoder keeps a few bytes of state
//! and says, step by step, how many bytes are framing to skip and how many
//! are body data.
//!
//! Limits: at most [`MAX_HEADERS`] fields, a chunk size of at most 16 hex
//! digits, [`MAX_CHUNK_EXT`] bytes of extensions per chunk line and
//! [`MAX_TRAILERS`] bytes of trailer section. The caller bounds the head's
//! size (it holds the bytes).

#[cfg(test)]
mod tests;

use std::mem::MaybeUninit;

use smallvec::SmallVec;

/// Most header fields accepted in one response head (hyper's default is 100).
pub const MAX_HEADERS: usize = 128;
/// Most bytes of chunk extensions on one chunk-size line.
pub const MAX_CHUNK_EXT: u32 = 4096;
/// Most bytes of a chunked body's trailer section.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The positions of a head's fields: room for [`MAX_HEADERS`] inline, so
/// it never allocates, and not initialised before use.
pub type Fields = SmallVec<[Field; MAX_HEADERS]>;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding` with `chunked` last.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// Where one header field's name and value are in the parsed bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Field {
    /// Start and end of the name.
    pub name: (usize, usize),
    /// Start and end of the value (without surrounding whitespace).
    pub value: (usize, usize),
}

impl Field {
    /// The positions of `name` and `value`, sub-slices of a buffer that
    /// starts at address `base`.
    fn of(base: usize, name: &[u8], value: &[u8]) -> Field {
        let start = |s: &[u8]| s.as_ptr() as usize - base;
        Field {
            name: (start(name), start(name) + name.len()),
            value: (start(value), start(value) + value.len()),
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, up to and including the empty line.
    pub len: usize,
    /// The status code (100..=999, as httparse reads three digits).
    pub status: u16,
    /// `HTTP/1.minor`.
    pub minor: u8,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this
    /// response's body.
    pub keep_alive: bool,
}

/// Why a response cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not an HTTP/1.x status line and fields (httparse's verdict).
    Syntax,
    /// More than [`MAX_HEADERS`] fields.
    TooManyFields,
    /// `Content-Length` is not a number, or has differing values.
    ContentLength,
    /// A chunk-size line, the CRLF after chunk data, or the trailer
    /// section is malformed.
    Chunk,
    /// Chunk extensions or trailers over their limits.
    TooLarge,
}

impl Error {
    /// A short description for logs and error pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Error::Syntax => "invalid response head",
            Error::TooManyFields => "too many header fields",
            Error::ContentLength => "invalid content-length",
            Error::Chunk => "invalid chunked encoding",
            Error::TooLarge => "chunk extensions or trailers too large",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete,
/// read more. `head_request`: the request was HEAD (no body follows
/// whatever the fields say). `out` is cleared and receives the fields'
/// positions.
pub fn parse_head(buf: &[u8], head_request: bool, out: &mut Fields) -> Result<Option<Head>, Error> {
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyFields),
        Err(_) => return Err(Error::Syntax),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(Error::Syntax);
    };
    out.clear();
    let base = buf.as_ptr() as usize;
    let mut length: Option<u64> = None;
    let (mut chunked_last, mut te) = (false, false);
    let (mut close, mut keep) = (false, false);
    for h in resp.headers.iter() {
        let (name, value) = (h.name.as_bytes(), trim(h.value));
        out.push(Field::of(base, name, value));
        if name.eq_ignore_ascii_case(b"content-length") {
            for v in value.split(|&b| b == b',') {
                let n = parse_length(trim(v)).ok_or(Error::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::ContentLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            // Only the last coding of the last field counts.
            chunked_last = tokens(value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::Empty
    } else if te {
        if chunked_last {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let keep_alive = framing != Framing::Close
        // Both framings at once: the body is read as chunked (§6.3 item 3),
        // but the connection is not trusted with another request.
        && !(te && length.is_some())
        && !close
        && (minor >= 1 || keep);
    Ok(Some(Head {
        len,
        status,
        minor,
        framing,
        keep_alive,
    }))
}

/// Parses the fields of a trailer section (with its final empty line) into
/// positions in `out` (cleared first); at most 32 fields.
pub fn parse_trailers(buf: &[u8], out: &mut Fields) -> Result<(), Error> {
    let mut raw = [httparse::EMPTY_HEADER; 32];
    let n = match httparse::parse_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete((_, h))) => h.len(),
        Ok(httparse::Status::Partial) => return Err(Error::Chunk),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyFields),
        Err(_) => return Err(Error::Chunk),
    };
    let base = buf.as_ptr() as usize;
    out.clear();
    for h in raw.iter().take(n) {
        out.push(Field::of(base, h.name.as_bytes(), trim(h.value)));
    }
    Ok(())
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// What the chunked decoder found at the start of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many bytes are framing: drop them and call again.
    Skip(usize),
    /// This many bytes (at least one) are body data.
    Data(usize),
    /// Nothing can be decided from these bytes: read more and call again
    /// with them and what follows.
    NeedMore,
    /// The body ended. The first `len` bytes are the trailer section with
    /// its final empty line (just `\r\n` when there are no trailers); drop
    /// them. What follows belongs to the next response.
    End {
        /// Bytes of the trailer section.
        len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` so far).
    Size { n: u64, digits: u8 },
    /// Chunk extensions after the size, `ext` bytes so far.
    Ext { n: u64, ext: u32 },
    /// The `\n` ending a size line.
    SizeLf(u64),
    /// Chunk data still to come.
    Data(u64),
    /// The `\r` after chunk data.
    DataCr,
    /// The `\n` after chunk data.
    DataLf,
    /// The trailer section after the last chunk.
    Trailers,
    /// The body has ended.
    Done,
}

/// Decodes a chunked body incrementally: see [`Step`].
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub const fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { n: 0, digits: 0 },
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Looks at `buf` (the unread bytes of the body, from where the last
    /// step left off) and says what its first bytes are.
    pub fn step(&mut self, buf: &[u8]) -> Result<Step, Error> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                State::Data(rem) => {
                    if i > 0 {
                        return Ok(Step::Skip(i));
                    }
                    let take = rem.min(buf.len() as u64);
                    self.state = if take == rem {
                        State::DataCr
                    } else {
                        State::Data(rem - take)
                    };
                    // `take` is at most buf.len().
                    return Ok(Step::Data(take as usize));
                }
                State::Trailers => {
                    if i > 0 {
                        return Ok(Step::Skip(i));
                    }
                    return self.trailers(buf);
                }
                State::Done => break,
                State::Size { n, digits } => match hex(b) {
                    Some(d) if digits < 16 => State::Size {
                        n: (n << 4) | u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(Error::Chunk),
                    None if digits == 0 => return Err(Error::Chunk),
                    None => match b {
                        b'\r' => State::SizeLf(n),
                        b';' | b' ' | b'\t' => State::Ext { n, ext: 1 },
                        _ => return Err(Error::Chunk),
                    },
                },
                State::Ext { n, ext } => match b {
                    b'\r' => State::SizeLf(n),
                    b'\n' => return Err(Error::Chunk),
                    _ if ext >= MAX_CHUNK_EXT => return Err(Error::TooLarge),
                    _ => State::Ext { n, ext: ext + 1 },
                },
                State::SizeLf(n) => match b {
                    b'\n' if n == 0 => State::Trailers,
                    b'\n' => State::Data(n),
                    _ => return Err(Error::Chunk),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(Error::Chunk),
                },
                State::DataLf => match b {
                    b'\n' => State::Size { n: 0, digits: 0 },
                    _ => return Err(Error::Chunk),
                },
            };
            i += 1;
        }
        if self.state == State::Done {
            return Ok(Step::End { len: 0 });
        }
        Ok(if i > 0 { Step::Skip(i) } else { Step::NeedMore })
    }

    fn trailers(&mut self, buf: &[u8]) -> Result<Step, Error> {
        let end = if buf.starts_with(b"\r\n") {
            Some(2)
        } else {
            memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4)
        };
        match end {
            Some(len) if len <= MAX_TRAILERS => {
                self.state = State::Done;
                Ok(Step::End { len })
            }
            Some(_) => Err(Error::TooLarge),
            None if buf.len() >= MAX_TRAILERS => Err(Error::TooLarge),
            // A lone "\r" may be the start of the final "\r\n".
            None => Ok(Step::NeedMore),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
