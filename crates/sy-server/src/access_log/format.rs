//! Access-log lines: a [`Record`] as JSON or in the combined format.
//!
//! Lines are formatted on the worker that served the request, once per
//! logged request, so everything here writes bytes straight into the
//! output buffer: numbers, times, addresses and hex are pushed digit by
//! digit rather than through `core::fmt` (which cost the old writer thread
//! about 10,000 instructions a line). The output is byte-identical to the
//! `format!` forms given in each function's comment.

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::{Method, Version};

use super::{Field, Record, Slot};

/// A `Vec<u8>` as a `fmt::Write` target (the rare paths: IPv6 addresses).
struct Out<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `n` in decimal (`{n}`).
pub(super) fn push_u64(out: &mut Vec<u8>, n: u64) {
    // Small numbers (status, octets, ports, sizes, attempts) are the common
    // case: fixed-size copies the compiler inlines, no call to memcpy.
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        push_2(out, n as u32);
    } else if n < 1000 {
        push_3(out, n as u32);
    } else if n < 100_000 {
        let hi = (n / 1000) as u32;
        if hi < 10 {
            out.push(b'0' + hi as u8);
        } else {
            push_2(out, hi);
        }
        push_3(out, (n % 1000) as u32);
    } else {
        // Digits from the front of a fixed block, the block copied whole
        // and the tail cut off (one inlined copy instead of memcpy).
        let mut digits = 1;
        let mut m = n / 10;
        while m > 0 {
            digits += 1;
            m /= 10;
        }
        let mut buf = [0u8; 20];
        let mut m = n;
        for d in buf.iter_mut().take(digits).rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        put_block(out, &buf, digits);
    }
}

/// The first `len` bytes of `block`: copies the whole fixed-size block
/// (inlined, no memcpy call) and truncates back.
#[inline(always)]
fn put_block<const N: usize>(out: &mut Vec<u8>, block: &[u8; N], len: usize) {
    let at = out.len();
    out.extend_from_slice(block);
    out.truncate(at + len.min(N));
}

/// `n` in decimal, zero-padded to at least `width` digits (`{n:0width$}`).
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = 1;
    let mut m = n / 10;
    while m > 0 {
        digits += 1;
        m /= 10;
    }
    for _ in digits..width {
        out.push(b'0');
    }
    push_u64(out, n);
}

/// Two digits, `00`..`99` (`{n:02}` for n < 100).
fn push_2(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Three digits, `000`..`999` (`{n:03}` for n < 1000).
fn push_3(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]);
}

/// Each byte value in decimal: up to three digits, then the digit count.
const DECIMAL: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let n = i as u8;
        t[i] = if n < 10 {
            [b'0' + n, 0, 0, 1]
        } else if n < 100 {
            [b'0' + n / 10, b'0' + n % 10, 0, 2]
        } else {
            [b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10, 3]
        };
        i += 1;
    }
    t
};

/// An IP address as `Display` writes it.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Each octet, then a dot, from the table; the last dot is cut.
            for o in v4.octets() {
                let [a, b, c, len] = DECIMAL[usize::from(o)];
                let mut four = [a, b, c, b'.'];
                four[usize::from(len)] = b'.';
                put_block(out, &four, usize::from(len) + 1);
            }
            out.pop();
        }
        IpAddr::V6(v6) => {
            let _ = write!(Out(out), "{v6}");
        }
    }
}

/// A socket address as `Display` writes it (`1.2.3.4:5`, `[::1]:5`).
fn push_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => push_ip(out, IpAddr::V4(*v4.ip())),
        SocketAddr::V6(v6) => {
            let _ = write!(Out(out), "{v6}");
            return;
        }
    }
    out.push(b':');
    push_u64(out, u64::from(a.port()));
}

/// Civil date and time (UTC) of a Unix time in ms: (year, month, day,
/// hour, minute, second, millisecond).
pub(super) fn civil(unix_ms: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = unix_ms / 1000;
    let ms = (unix_ms % 1000) as u32;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    );
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hh, mm, ss, ms)
}

/// A year as `{y:04}` (years before 0 cannot come from a `u64` Unix time).
fn push_year(out: &mut Vec<u8>, y: i64) {
    push_padded(out, y.unsigned_abs(), 4);
}

/// `2025-01-31T23:59:59.`: an RFC 3339 time up to the milliseconds.
type SecondText = [u8; 20];

thread_local! {
    /// The last second [`rfc3339`] formatted on this thread (Unix seconds,
    /// text): lines come in bursts within one second, and only the
    /// milliseconds change.
    static LAST_SECOND: Cell<(u64, SecondText)> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// The text of second `secs` (RFC 3339, UTC, up to the `.`), for a year
/// of four digits (`secs` before year 10000).
fn second_text(secs: u64) -> SecondText {
    let (y, mo, d, h, mi, s, _) = civil(secs.saturating_mul(1000));
    let y = y.clamp(0, 9999) as u32;
    let dig = |n: u32| b'0' + (n % 10) as u8;
    [
        dig(y / 1000),
        dig(y / 100),
        dig(y / 10),
        dig(y),
        b'-',
        dig(mo / 10),
        dig(mo),
        b'-',
        dig(d / 10),
        dig(d),
        b'T',
        dig(h / 10),
        dig(h),
        b':',
        dig(mi / 10),
        dig(mi),
        b':',
        dig(s / 10),
        dig(s),
        b'.',
    ]
}

/// RFC 3339, UTC, milliseconds: `2025-01-31T23:59:59.123Z`.
pub fn rfc3339(out: &mut Vec<u8>, unix_ms: u64) {
    let secs = unix_ms / 1000;
    if secs >= 253_402_300_800 {
        // Year 10000 or later: more than four digits, not cached. The
        // text after the year does not depend on it.
        push_year(out, civil(unix_ms).0);
        out.extend_from_slice(&second_text(secs)[4..]);
    } else {
        let (last, text) = LAST_SECOND.get();
        let text = if last == secs {
            text
        } else {
            let text = second_text(secs);
            LAST_SECOND.set((secs, text));
            text
        };
        out.extend_from_slice(&text);
    }
    push_3(out, (unix_ms % 1000) as u32);
    out.push(b'Z');
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Common log format time: `31/Jan/2025:23:59:59 +0000`.
pub(super) fn clf_time(out: &mut Vec<u8>, unix_ms: u64) {
    let (y, mo, d, h, mi, s, _) = civil(unix_ms);
    let mon = MONTHS.get(mo as usize - 1).copied().unwrap_or("Jan");
    push_2(out, d);
    out.push(b'/');
    out.extend_from_slice(mon.as_bytes());
    out.push(b'/');
    push_year(out, y);
    out.push(b':');
    push_2(out, h);
    out.push(b':');
    push_2(out, mi);
    out.push(b':');
    push_2(out, s);
    out.extend_from_slice(b" +0000");
}

/// Printable ASCII other than `"` and `\`: copied as is by both escapes.
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether all eight bytes of `w` are [`plain`] (word-at-a-time tests;
/// each is exact about whether any byte matches).
#[inline(always)]
fn plain_word(w: u64) -> bool {
    // A byte below 0x20.
    let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
    // A byte 0x7f or above (a carry only leaves a byte that is itself one).
    let high = w | w.wrapping_add(ONES);
    // A `"` or a `\` (a zero byte once xored).
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (ctrl | high | quote | backslash) & HIGH == 0
}

/// Copies `bytes` when every byte is [`plain`] (the usual host, path,
/// user agent...) and says so; writes nothing otherwise. Eight bytes at a
/// time, in fixed-size copies: no byte loop, no call to memcpy.
#[inline(always)]
fn copy_plain(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let at = out.len();
    let n = bytes.len();
    if n < 8 {
        // Read as overlapping pieces (a byte loop here becomes a memcpy
        // call), tested as one word padded with a plain byte.
        let word4 = |i: usize| {
            bytes
                .get(i..i + 4)
                .and_then(|t| <[u8; 4]>::try_from(t).ok())
                .unwrap_or_default()
        };
        if n >= 4 {
            let (lo, hi) = (word4(0), word4(n - 4));
            let w = u64::from(u32::from_le_bytes(lo)) | u64::from(u32::from_le_bytes(hi)) << 32;
            if !plain_word(w) {
                return false;
            }
            out.extend_from_slice(&lo);
            out.truncate(at + n - 4);
            out.extend_from_slice(&hi);
            return true;
        }
        let Some(&first) = bytes.first() else {
            return true;
        };
        // 1 to 3 bytes: the first, middle and last cover them all.
        let mid = bytes.get(n / 2).copied().unwrap_or(first);
        let last = bytes.get(n - 1).copied().unwrap_or(first);
        let w = [first, mid, last, b'a', b'a', b'a', b'a', b'a'];
        if !plain_word(u64::from_le_bytes(w)) {
            return false;
        }
        put_block(out, &w, n);
        return true;
    }
    let mut words = bytes.chunks_exact(8);
    for c in &mut words {
        let w = <[u8; 8]>::try_from(c).unwrap_or_default();
        if !plain_word(u64::from_le_bytes(w)) {
            out.truncate(at);
            return false;
        }
        out.extend_from_slice(&w);
    }
    if !words.remainder().is_empty() {
        // The last eight bytes, overlapping the words already copied.
        let w = bytes
            .get(n - 8..)
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .unwrap_or_default();
        if !plain_word(u64::from_le_bytes(w)) {
            out.truncate(at);
            return false;
        }
        out.truncate(at + n - 8);
        out.extend_from_slice(&w);
    }
    true
}

/// `bytes` as the inside of a JSON string: valid UTF-8 for any input
/// (invalid sequences become U+FFFD), quotes, backslashes and control
/// characters escaped.
#[inline]
pub fn json_escape(out: &mut Vec<u8>, bytes: &[u8]) {
    // Nearly every host, path and user agent is plain ASCII: copied
    // inline; anything else takes the slow path, out of line.
    if !copy_plain(out, bytes) {
        json_escape_slow(out, bytes);
    }
}

#[cold]
#[inline(never)]
fn json_escape_slow(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        let s = chunk.valid().as_bytes();
        let mut from = 0;
        for (i, &b) in s.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f | 0x7f => b"",
                _ => continue,
            };
            out.extend_from_slice(s.get(from..i).unwrap_or_default());
            if esc.is_empty() {
                // \u00XX (control characters only, so at most 0x7f).
                out.extend_from_slice(b"\\u00");
                out.push(HEX_LOWER[usize::from(b >> 4)]);
                out.push(HEX_LOWER[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(esc);
            }
            from = i + 1;
        }
        out.extend_from_slice(s.get(from..).unwrap_or_default());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// `bytes` for a quoted combined-format field: printable ASCII except `"`
/// and `\` as is, every other byte as `\xHH` (nginx's escaping).
pub fn clf_escape(out: &mut Vec<u8>, bytes: &[u8]) {
    if copy_plain(out, bytes) {
        return;
    }
    for &b in bytes {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
        }
    }
}

/// The protocol as a JSON string, padded to 10 bytes, and its length.
fn protocol_quoted(v: Version) -> (&'static [u8; 10], usize) {
    match v {
        Version::HTTP_09 => (b"\"HTTP/0.9\"", 10),
        Version::HTTP_10 => (b"\"HTTP/1.0\"", 10),
        Version::HTTP_11 => (b"\"HTTP/1.1\"", 10),
        Version::HTTP_2 => (b"\"HTTP/2\"  ", 8),
        Version::HTTP_3 => (b"\"HTTP/3\"  ", 8),
        _ => (b"\"HTTP\"    ", 6),
    }
}

/// A standard method as a JSON string, padded to 10 bytes, and its
/// length; None for an extension method (escaped like any text).
fn method_quoted(m: &Method) -> Option<(&'static [u8; 10], usize)> {
    Some(match *m {
        Method::GET => (b"\"GET\"     ", 5),
        Method::POST => (b"\"POST\"    ", 6),
        Method::HEAD => (b"\"HEAD\"    ", 6),
        Method::PUT => (b"\"PUT\"     ", 5),
        Method::DELETE => (b"\"DELETE\"  ", 8),
        Method::OPTIONS => (b"\"OPTIONS\" ", 9),
        Method::PATCH => (b"\"PATCH\"   ", 7),
        Method::CONNECT => (b"\"CONNECT\" ", 9),
        Method::TRACE => (b"\"TRACE\"   ", 7),
        _ => return None,
    })
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// Milliseconds with microsecond precision: `12.345`.
fn millis(out: &mut Vec<u8>, ns: u64) {
    push_u64(out, ns / 1_000_000);
    out.push(b'.');
    push_3(out, (ns / 1000 % 1000) as u32);
}

/// A text value: quoted and escaped, or `null` (JSON) / `-` (combined)
/// when absent.
#[inline(always)]
fn quoted(out: &mut Vec<u8>, json: bool, v: Option<&[u8]>) {
    match v {
        Some(v) => {
            out.push(b'"');
            if json {
                json_escape(out, v);
            } else {
                clf_escape(out, v);
            }
            out.push(b'"');
        }
        None => out.extend_from_slice(if json { b"null" } else { b"-" }),
    }
}

/// A field's value: JSON (strings quoted and escaped, null when absent)
/// or combined `key=value` style (strings quoted and `\x` escaped, `-`
/// when absent).
#[inline(always)]
fn value(out: &mut Vec<u8>, r: &Record, f: Field, json: bool) {
    match f {
        Field::Time => {
            out.push(b'"');
            rfc3339(out, r.unix_ms);
            out.push(b'"');
        }
        Field::Client => {
            out.push(b'"');
            push_addr(out, r.client);
            out.push(b'"');
        }
        Field::Method => match method_quoted(&r.method).filter(|_| json) {
            Some((q, len)) => put_block(out, q, len),
            None => quoted(out, json, Some(r.method.as_str().as_bytes())),
        },
        Field::Host => quoted(out, json, r.get(Slot::Host)),
        Field::Path => quoted(out, json, r.get(Slot::Path)),
        Field::Protocol if json => {
            let (q, len) = protocol_quoted(r.protocol);
            put_block(out, q, len);
        }
        Field::Protocol => quoted(out, json, Some(protocol(r.protocol).as_bytes())),
        Field::Status => push_u64(out, u64::from(r.status)),
        Field::BytesIn => push_u64(out, r.bytes_in),
        Field::BytesOut => push_u64(out, r.bytes_out),
        Field::DurationMs => millis(out, r.duration_ns),
        Field::UpstreamConnectMs | Field::TtfbMs => {
            let v = if f == Field::TtfbMs {
                r.ttfb_ns
            } else {
                r.connect_ns
            };
            match v {
                Some(ns) => millis(out, ns),
                None => out.extend_from_slice(if json { b"null" } else { b"-" }),
            }
        }
        Field::Route => quoted(out, json, r.get(Slot::Route)),
        Field::Upstream => quoted(out, json, r.get(Slot::Upstream)),
        Field::Server => quoted(out, json, r.get(Slot::Server)),
        Field::Attempts => push_u64(out, u64::from(r.attempts)),
        Field::TraceId => match r.trace_id {
            Some(id) => {
                let mut q = [b'"'; 34];
                for (pair, b) in q[1..33].chunks_exact_mut(2).zip(id) {
                    pair.copy_from_slice(&crate::trace::HEX_PAIRS[usize::from(b)]);
                }
                out.extend_from_slice(&q);
            }
            None => out.extend_from_slice(if json { b"null" } else { b"-" }),
        },
        Field::UserAgent => quoted(out, json, r.get(Slot::UserAgent)),
        Field::RequestId => quoted(out, json, r.get(Slot::RequestId)),
    }
}

/// `,"name":` for each field (index: `Field as usize`), padded to 24
/// bytes, and its length.
const JSON_KEYS: [([u8; 24], usize); Field::ALL.len()] = {
    let mut keys = [([0u8; 24], 0usize); Field::ALL.len()];
    let mut i = 0;
    while i < keys.len() {
        let name = Field::ALL[i].name().as_bytes();
        let mut key = [0u8; 24];
        key[0] = b',';
        key[1] = b'"';
        let mut j = 0;
        while j < name.len() {
            key[2 + j] = name[j];
            j += 1;
        }
        key[2 + j] = b'"';
        key[3 + j] = b':';
        keys[i] = (key, name.len() + 4);
        i += 1;
    }
    keys
};

/// One JSON object (no newline) with `fields` in order.
pub fn write_json(out: &mut Vec<u8>, r: &Record, fields: &[Field]) {
    if fields.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    let start = out.len();
    for &f in fields {
        if let Some((key, len)) = JSON_KEYS.get(f as usize) {
            put_block(out, key, *len);
        }
        value(out, r, f, true);
    }
    // The first key's comma becomes the object's brace.
    if let Some(c) = out.get_mut(start) {
        *c = b'{';
    }
    out.push(b'}');
}

/// One combined-format line (no newline):
/// `IP - - [TIME] "METHOD PATH PROTOCOL" STATUS BYTES_OUT "REFERER" "USER_AGENT"`,
/// then ` key=value` for each other field of `fields`, in order. Prefix
/// fields left out of `fields` are written as `-`.
pub fn write_combined(out: &mut Vec<u8>, r: &Record, fields: &[Field]) {
    let has = |f: Field| fields.contains(&f);
    let dash = |out: &mut Vec<u8>| out.push(b'-');
    if has(Field::Client) {
        push_ip(out, r.client.ip());
    } else {
        dash(out);
    }
    out.extend_from_slice(b" - - [");
    if has(Field::Time) {
        clf_time(out, r.unix_ms);
    } else {
        dash(out);
    }
    out.extend_from_slice(b"] \"");
    if has(Field::Method) {
        clf_escape(out, r.method.as_str().as_bytes());
    } else {
        dash(out);
    }
    out.push(b' ');
    match r.get(Slot::Path).filter(|_| has(Field::Path)) {
        Some(p) => clf_escape(out, p),
        None => dash(out),
    }
    out.push(b' ');
    if has(Field::Protocol) {
        out.extend_from_slice(protocol(r.protocol).as_bytes());
    } else {
        dash(out);
    }
    out.extend_from_slice(b"\" ");
    if has(Field::Status) {
        push_u64(out, u64::from(r.status));
    } else {
        dash(out);
    }
    out.push(b' ');
    if has(Field::BytesOut) {
        push_u64(out, r.bytes_out);
    } else {
        dash(out);
    }
    for (slot, on) in [
        (Slot::Referer, true),
        (Slot::UserAgent, has(Field::UserAgent)),
    ] {
        out.extend_from_slice(b" \"");
        match r.get(slot).filter(|_| on) {
            Some(v) => clf_escape(out, v),
            None => dash(out),
        }
        out.push(b'"');
    }
    for &f in fields {
        if f.in_combined_prefix() {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(f.name().as_bytes());
        out.push(b'=');
        value(out, r, f, false);
    }
}
