//! Response compression decisions, without IO: which content coding a
//! client accepts (`Accept-Encoding` with q-values, RFC 9110 12.5.3),
//! whether a response may be compressed at all, and the header rewrites
//! compression implies (`Vary`, a weakened `ETag`).
//!
//! The server reads the headers, calls these functions and applies what
//! they return; every input here is untrusted bytes from a peer, so no
//! function panics or allocates more than its input.

use crate::syntax::{is_tchar, is_token};

/// A content coding Switchyard can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli (RFC 7932), token `br`.
    Br,
    /// Zstandard (RFC 8878), token `zstd`.
    Zstd,
    /// gzip (RFC 1952), token `gzip` (`x-gzip` accepted from clients).
    Gzip,
}

impl Coding {
    /// Every coding, in index order (see [`Coding::index`]).
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token as written in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// A stable index 0..3, for per-coding arrays.
    pub fn index(self) -> usize {
        match self {
            Coding::Br => 0,
            Coding::Zstd => 1,
            Coding::Gzip => 2,
        }
    }

    /// The coding a token of `Accept-Encoding` names, case-insensitively.
    /// `x-gzip` is gzip (RFC 9110 8.4.1.3).
    pub fn from_token(token: &[u8]) -> Option<Coding> {
        let is = |name: &str| token.eq_ignore_ascii_case(name.as_bytes());
        if is("br") {
            Some(Coding::Br)
        } else if is("zstd") {
            Some(Coding::Zstd)
        } else if is("gzip") || is("x-gzip") {
            Some(Coding::Gzip)
        } else {
            None
        }
    }
}

/// A quality value in thousandths: 0 (not acceptable) to 1000.
pub type Quality = u16;

/// What a request's `Accept-Encoding` says, reduced to the codings
/// Switchyard knows: the explicit q of each, of `identity` and of `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    /// The header was present (an absent header makes no coding chosen:
    /// clients that can decode say so).
    present: bool,
    /// Explicit q per coding, by [`Coding::index`].
    codings: [Option<Quality>; 3],
    identity: Option<Quality>,
    star: Option<Quality>,
}

impl Accepted {
    /// Parses every `Accept-Encoding` field line of a request. Tokens are
    /// case-insensitive; an element whose coding is not a token or whose
    /// `q` is not a valid qvalue is ignored, as are parameters other than
    /// `q`. A coding listed twice keeps its lowest q, so a `q=0` anywhere
    /// always excludes it.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Accepted {
        let mut acc = Accepted::default();
        for value in values {
            acc.present = true;
            for element in value.split(|&b| b == b',') {
                let Some((coding, q)) = element_of(element) else {
                    continue;
                };
                let slot = if coding == b"*" {
                    &mut acc.star
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut acc.identity
                } else if let Some(c) = Coding::from_token(coding) {
                    &mut acc.codings[c.index()]
                } else {
                    continue;
                };
                *slot = Some(slot.map_or(q, |old| old.min(q)));
            }
        }
        acc
    }

    /// The effective q of `coding`: its own, else that of `*`, else 0.
    pub fn quality(&self, coding: Coding) -> Quality {
        self.codings[coding.index()].or(self.star).unwrap_or(0)
    }

    /// The q the client gave `identity` (no coding), itself or through
    /// `*`. None when it said nothing: identity is then acceptable, but
    /// not preferred to a coding the client lists.
    pub fn identity(&self) -> Option<Quality> {
        self.identity.or(self.star)
    }

    /// The coding to send, among `offer` (the server's preference order):
    /// the highest q above 0, ties going to the earlier in `offer`; None
    /// when the header was absent, no offered coding is acceptable, or the
    /// client prefers no coding (identity given a higher q).
    pub fn choose(&self, offer: &[Coding]) -> Option<Coding> {
        if !self.present {
            return None;
        }
        let mut best: Option<(Coding, Quality)> = None;
        for &c in offer {
            let q = self.quality(c);
            if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((c, q));
            }
        }
        best.filter(|&(_, q)| q >= self.identity().unwrap_or(0))
            .map(|(c, _)| c)
    }
}

/// `Accept-Encoding` values to a choice in one step ([`Accepted::parse`]
/// then [`Accepted::choose`]).
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    offer: &[Coding],
) -> Option<Coding> {
    Accepted::parse(values).choose(offer)
}

/// One list element: `coding *( OWS ";" OWS param )`; None when empty or
/// malformed.
fn element_of(element: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = element.split(|&b| b == b';');
    let coding = trim(parts.next()?);
    if coding.is_empty() || !(coding == b"*" || coding.iter().all(|&b| is_tchar(b))) {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = split_once(trim(param), b'=')?;
        if trim(name).eq_ignore_ascii_case(b"q") {
            q = qvalue(trim(value))?;
        }
    }
    Some((coding, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn qvalue(v: &[u8]) -> Option<Quality> {
    let (int, frac) = match split_once(v, b'.') {
        Some((i, f)) => (i, f),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Quality = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Quality::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a response may be compressed: its facts as the headers tell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The status code.
    pub status: u16,
    /// The request was HEAD: there is no body to compress.
    pub head: bool,
    /// A `Content-Encoding` other than `identity` is present.
    pub encoded: bool,
    /// `Cache-Control` has `no-transform`.
    pub no_transform: bool,
    /// The `Content-Type` value, if any.
    pub content_type: Option<&'a [u8]>,
    /// The body length, when known (`Content-Length` or a fixed body).
    pub length: Option<u64>,
}

/// The settings the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Smallest known length compressed; a body of unknown length is.
    pub min_size: u64,
    /// The media types compressed.
    pub types: &'a [TypePattern],
}

/// What to do to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not a candidate: leave it as it is.
    Leave,
    /// A candidate this request does not get compressed (the client
    /// accepts no offered coding, or it is HEAD): add `Vary:
    /// Accept-Encoding` so that a cache keeps it apart from a compressed
    /// copy.
    Vary,
    /// Compress with this coding (and add `Vary`).
    Compress(Coding),
}

/// The decision for a response with `facts`, under `rules`, when the
/// client's accepted coding is `chosen`. Only 2xx responses with a body
/// (not 204, 205, 206), not already encoded, without `no-transform`, of a
/// listed type and at least `min_size` long are candidates.
pub fn decide(facts: &Facts<'_>, rules: &Rules<'_>, chosen: Option<Coding>) -> Decision {
    let candidate = (200..300).contains(&facts.status)
        && !matches!(facts.status, 204..=206)
        && !facts.encoded
        && !facts.no_transform
        && facts.length.is_none_or(|n| n > 0 && n >= rules.min_size)
        && facts
            .content_type
            .is_some_and(|t| rules.types.iter().any(|p| p.matches(t)));
    match chosen {
        _ if !candidate => Decision::Leave,
        Some(c) if !facts.head => Decision::Compress(c),
        _ => Decision::Vary,
    }
}

/// A `Content-Encoding` names a coding other than `identity`.
pub fn is_encoded<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|v| {
        v.split(|&b| b == b',')
            .map(trim)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
    })
}

/// `Cache-Control` has the `no-transform` directive. A quoted value
/// holding a comma may make this say yes wrongly, which only leaves the
/// response uncompressed.
pub fn has_no_transform<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|v| {
        v.split(|&b| b == b',').any(|d| {
            let name = split_once(d, b'=').map_or(d, |(n, _)| n);
            trim(name).eq_ignore_ascii_case(b"no-transform")
        })
    })
}

/// A media type pattern of `content_types`: `type/subtype`, `type/*` or
/// `type/*+suffix` (e.g. `application/*+json`), lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern {
    kind: String,
    sub: SubPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SubPattern {
    Exact(String),
    Any,
    /// `*+json`: the suffix with its `+`.
    Suffix(String),
}

impl TypePattern {
    /// Parses a pattern; the error says what is wrong.
    pub fn parse(text: &str) -> Result<TypePattern, String> {
        let lower = text.trim().to_ascii_lowercase();
        let Some((kind, sub)) = lower.split_once('/') else {
            return Err("a media type is written type/subtype".to_owned());
        };
        if kind == "*" {
            return Err("the type cannot be `*`: list the types to compress".to_owned());
        }
        if !is_token(kind) {
            return Err(format!("`{kind}` is not a valid type name"));
        }
        let sub = if sub == "*" {
            SubPattern::Any
        } else if let Some(suffix) = sub.strip_prefix("*+") {
            if !is_token(suffix) || suffix.contains('*') {
                return Err(format!("`{suffix}` is not a valid structured suffix"));
            }
            SubPattern::Suffix(format!("+{suffix}"))
        } else if is_token(sub) && !sub.contains('*') {
            SubPattern::Exact(sub.to_owned())
        } else {
            return Err(format!(
                "`{sub}` is not a valid subtype (a `*` stands alone or as `*+suffix`)"
            ));
        };
        Ok(TypePattern {
            kind: kind.to_owned(),
            sub,
        })
    }

    /// Whether a `Content-Type` value (parameters allowed) matches,
    /// case-insensitively.
    pub fn matches(&self, content_type: &[u8]) -> bool {
        let media = content_type
            .split(|&b| b == b';')
            .next()
            .map(trim)
            .unwrap_or_default();
        let Some((kind, sub)) = split_once(media, b'/') else {
            return false;
        };
        let sub = trim(sub);
        if !trim(kind).eq_ignore_ascii_case(self.kind.as_bytes()) || sub.is_empty() {
            return false;
        }
        match &self.sub {
            SubPattern::Any => true,
            SubPattern::Exact(s) => sub.eq_ignore_ascii_case(s.as_bytes()),
            SubPattern::Suffix(s) => {
                sub.len() > s.len() && sub[sub.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

impl std::fmt::Display for TypePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sub {
            SubPattern::Exact(s) => write!(f, "{}/{s}", self.kind),
            SubPattern::Any => write!(f, "{}/*", self.kind),
            SubPattern::Suffix(s) => write!(f, "{}/*{s}", self.kind),
        }
    }
}

/// What compression does to an `ETag` (RFC 9110 8.8.3: a strong validator
/// names the exact bytes, which a coding changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagChange {
    /// Already weak: keep it.
    Keep,
    /// Strong: replace it by this weak one (`W/` in front).
    Replace(Vec<u8>),
    /// Not a valid entity tag: remove it rather than pass a validator that
    /// would claim byte equality.
    Remove,
}

/// The change one `ETag` value needs when the body is compressed.
pub fn weaken_etag(value: &[u8]) -> EtagChange {
    let v = trim(value);
    let quoted = |t: &[u8]| {
        t.len() >= 2
            && t.first() == Some(&b'"')
            && t.last() == Some(&b'"')
            && !t[1..t.len() - 1].contains(&b'"')
    };
    if v.len() >= 2 && v[..2].eq(b"W/") && quoted(&v[2..]) {
        EtagChange::Keep
    } else if quoted(v) {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(v);
        EtagChange::Replace(weak)
    } else {
        EtagChange::Remove
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests;
