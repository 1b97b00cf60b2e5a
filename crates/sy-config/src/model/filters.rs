//! The request pipeline's filters: `[filters.NAME]` and the `filters`
//! lists of listeners and routes (docs/filters.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use sy_policy::compress::Coding;

use super::ser;

/// A `[filters.NAME]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedFilter {
    /// The table name.
    pub name: String,
    /// What it does.
    pub filter: Filter,
}

/// One entry of a `filters` list of a listener or a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FilterRef {
    /// `"NAME"`: the `[filters.NAME]` entry (it exists).
    Named(String),
    /// `{ KIND = { ... } }`: a filter written in place.
    Inline(Filter),
}

/// A filter: one step of the request pipeline (docs/filters.md). In the
/// file, a table with one key, the kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// `request_id = { ... }`: a request id, generated when missing.
    RequestId(RequestIdFilter),
    /// `headers = { request = { ... }, response = { ... } }`: header rules.
    Headers(HeadersFilter),
    /// `rewrite = { ... }`: the path and query sent upstream.
    Rewrite(RewriteFilter),
    /// `error_page = { ... }`: the body of Switchyard's own error answers.
    ErrorPage(ErrorPageFilter),
    /// `cors = { allow_origins = [...], ... }`: cross-origin requests.
    Cors(CorsFilter),
    /// `ip = { allow = [...], deny = [...] }`: IP allow and deny lists
    /// checked on the client address (403).
    Ip(IpFilter),
    /// `compress = { ... }`: compression of responses.
    Compress(CompressFilter),
}

impl Filter {
    /// The kind, as the file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Filter::RequestId(_) => "request_id",
            Filter::Headers(_) => "headers",
            Filter::Rewrite(_) => "rewrite",
            Filter::ErrorPage(_) => "error_page",
            Filter::Cors(_) => "cors",
            Filter::Ip(_) => "ip",
            Filter::Compress(_) => "compress",
        }
    }
}

/// `rewrite = { ... }`: the path (one way) and the query sent upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RewriteFilter {
    /// `strip_prefix`, `replace_prefix` or `path_regex`; None = path kept.
    #[serde(flatten)]
    pub path: Option<PathRewrite>,
    /// `query = { ... }`: parameter edits (none by default).
    #[serde(skip_serializing_if = "QueryRewrite::is_empty")]
    pub query: QueryRewrite,
}

/// How a `rewrite` filter changes the path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRewrite {
    /// `strip_prefix = "/api"` or `replace_prefix = { from, to }`: a path
    /// prefix (matched as a route's `path`) replaced; strip = to "".
    ReplacePrefix {
        /// `from`: starts with `/`.
        from: String,
        /// `to`: empty or starts with `/`.
        to: String,
    },
    /// `path_regex = { pattern, replacement }`: the first match replaced;
    /// `$1` / `${name}` are captures.
    PathRegex {
        /// `pattern` (Rust regex syntax; it compiles).
        pattern: String,
        /// `replacement`.
        replacement: String,
    },
}

/// `query = { ... }` of a `rewrite` filter, applied in this order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueryRewrite {
    /// `remove = ["name"]`.
    pub remove: Vec<String>,
    /// `rename = { old = "new" }`.
    #[serde(serialize_with = "ser::pairs")]
    pub rename: Vec<(String, String)>,
    /// `set = { name = "value" }`: replace every parameter of the name.
    #[serde(serialize_with = "ser::pairs")]
    pub set: Vec<(String, String)>,
    /// `add = { name = "value" }`: one more parameter.
    #[serde(serialize_with = "ser::pairs")]
    pub add: Vec<(String, String)>,
}

impl QueryRewrite {
    /// No edit at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }
}

/// `error_page = { ... }`: what Switchyard's own errors look like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorPageFilter {
    /// `content_type`: of the body. Default "application/json" with
    /// `format = "json"`.
    pub content_type: String,
    /// The body: `format = "json"` or a `body` template.
    pub body: ErrorPageBody,
}

/// The body of an error page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPageBody {
    /// `format = "json"`: `{"error": STAGE, "message": ..., "status": N,
    /// "request_id": ID or null}`.
    Json,
    /// `body = "..."`: a template with `${status}`, `${reason}`,
    /// `${error}`, `${message}` and the header variables.
    Template(crate::template::Template),
}

/// `cors = { ... }`: the CORS protocol of the Fetch standard, answered at
/// the edge (docs/filters.md#cors).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorsFilter {
    /// `allow_origins`: exact origins (normalised: lower-case, no default
    /// port), `"null"`, wildcard hosts (`"https://*.example.com"`),
    /// `{ regex = "..." }` entries, or `"*"` alone. Required.
    pub allow_origins: Vec<CorsOrigin>,
    /// `allow_methods`: upper-case; `["*"]` = any. Default GET, HEAD, POST.
    pub allow_methods: Vec<String>,
    /// `allow_headers`: request header names a preflight may ask for,
    /// lower-case; `["*"]` = any. Default none.
    pub allow_headers: Vec<String>,
    /// `expose_headers`: response header names scripts may read,
    /// lower-case. Default none.
    pub expose_headers: Vec<String>,
    /// `allow_credentials`: cookies and HTTP authentication may be sent and
    /// the response read. Default false.
    pub allow_credentials: bool,
    /// `max_age`: how long browsers may cache a preflight's answer (sent
    /// in whole seconds). None = no `Access-Control-Max-Age`.
    #[serde(serialize_with = "ser::opt_duration")]
    pub max_age: Option<Duration>,
}

impl CorsFilter {
    /// The policy in the form `sy_policy::cors` compiles.
    pub fn spec(&self) -> sy_policy::cors::Spec {
        use sy_policy::cors::{OriginSpec, Spec};
        Spec {
            allow_origins: self
                .allow_origins
                .iter()
                .map(|o| match o {
                    CorsOrigin::Pattern(p) if p == "*" => OriginSpec::Any,
                    CorsOrigin::Pattern(p) => OriginSpec::Pattern(p.clone()),
                    CorsOrigin::Regex { regex } => OriginSpec::Regex(regex.clone()),
                })
                .collect(),
            allow_methods: self.allow_methods.clone(),
            allow_headers: self.allow_headers.clone(),
            expose_headers: self.expose_headers.clone(),
            allow_credentials: self.allow_credentials,
            max_age_secs: self.max_age.map(|d| d.as_secs()),
        }
    }
}

/// One `allow_origins` entry of a `cors` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CorsOrigin {
    /// `"*"`, `"null"`, an exact origin or a wildcard host.
    Pattern(String),
    /// `{ regex = "..." }`: the whole origin must match.
    Regex {
        /// The pattern as written (matched anchored).
        regex: String,
    },
}

/// `request_id = { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestIdFilter {
    /// `header`: the header carrying the id (lower-cased). Default
    /// "x-request-id".
    pub header: String,
    /// `trust_incoming`: whose incoming id is kept: "trusted" (default:
    /// peers in the listener's `forwarded.trusted_proxies`), "always" or
    /// "never". Otherwise a new id replaces it.
    pub trust_incoming: TrustIncoming,
    /// `response`: also send the id back on the response. Default true.
    pub response: bool,
}

/// `trust_incoming` of a `request_id` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustIncoming {
    /// Keep an id from any client.
    Always,
    /// Keep an id only from the listener's trusted proxies.
    Trusted,
    /// Always make a new id.
    Never,
}

/// `headers = { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadersFilter {
    /// `request`: rules for the request sent upstream.
    pub request: HeaderOps,
    /// `response`: rules for the response sent to the client.
    pub response: HeaderOps,
}

/// The rules of one direction, applied in this order: `remove`, `set`,
/// `add`, `append`. Header names are lower-cased.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HeaderOps {
    /// `remove = ["name", ...]`: remove every field of these names.
    pub remove: Vec<String>,
    /// `set = { name = "value" }`: replace every field of the name by one.
    #[serde(serialize_with = "ser::pairs")]
    pub set: Vec<(String, crate::template::Template)>,
    /// `add = { name = "value" }`: add the field only when the name is absent.
    #[serde(serialize_with = "ser::pairs")]
    pub add: Vec<(String, crate::template::Template)>,
    /// `append = { name = "value" }`: add one more field line.
    #[serde(serialize_with = "ser::pairs")]
    pub append: Vec<(String, crate::template::Template)>,
}

impl HeaderOps {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.append.is_empty()
    }
}

/// `ip = { ... }` (a filter: a refused request gets 403) and
/// `[listeners.NAME.ip]` (checked on the TCP peer right after accept: a
/// refused connection is closed). A client inside a `deny` entry is
/// refused; otherwise, when the allow list has entries, only a client
/// inside one of them is let in. `sy_policy::ip` decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpFilter {
    /// `allow` and `allow_files`. Never empty when either key is given.
    pub allow: IpList,
    /// `deny` and `deny_files`.
    pub deny: IpList,
}

/// The entries of one list of an [`IpFilter`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IpList {
    /// `allow` / `deny`: entries written in place: CIDRs, or addresses
    /// meaning /32 or /128; host bits below the prefix cleared.
    pub entries: Vec<IpNet>,
    /// `allow_files` / `deny_files`: files of entries, one a line, read
    /// when the configuration is loaded and at every reload.
    pub files: Vec<IpListFile>,
}

/// One file of an [`IpList`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpListFile {
    /// The path, resolved against the configuration file's directory.
    pub path: PathBuf,
    /// Its entries in file order, host bits cleared. Shared by every use
    /// of the same file in one configuration, so a large list is held once.
    pub entries: Arc<[IpNet]>,
}

impl IpList {
    /// Every entry: the inline ones, then each file's.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.entries
            .iter()
            .chain(self.files.iter().flat_map(|f| f.entries.iter()))
            .copied()
    }

    /// The number of entries, inline and in files.
    pub fn len(&self) -> usize {
        self.entries.len() + self.files.iter().map(|f| f.entries.len()).sum::<usize>()
    }

    /// No entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `compress = { ... }`: responses compressed with the best coding the
/// client accepts (docs/filters.md#compress).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressFilter {
    /// `algorithms`: the codings offered, in the server's order of
    /// preference when the client's q-values tie. Default `["zstd", "br",
    /// "gzip"]`: zstd compresses as well as brotli at level 4 for a third of
    /// the CPU (BENCHMARKS.md).
    #[serde(serialize_with = "ser::codings")]
    pub algorithms: Vec<Coding>,
    /// `min_size`: a body whose length is known and smaller is sent as it
    /// is (a body of unknown length is compressed). Default 1 KiB.
    pub min_size: u64,
    /// `content_types`: the media types compressed, as `type/subtype`,
    /// `type/*` or `type/*+suffix`, lower-cased. Default
    /// [`CompressFilter::DEFAULT_CONTENT_TYPES`].
    pub content_types: Vec<String>,
    /// `gzip_level`: 1 (fastest) to 9 (smallest). Default 6.
    pub gzip_level: u32,
    /// `brotli_level`: 0 (fastest) to 11 (smallest). Default 4.
    pub brotli_level: u32,
    /// `zstd_level`: 1 (fastest) to 19 (smallest). Default 3.
    pub zstd_level: i32,
}

impl CompressFilter {
    /// The default `algorithms`.
    pub const DEFAULT_ALGORITHMS: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];
    /// The default `min_size`.
    pub const DEFAULT_MIN_SIZE: u64 = 1024;
    /// The default `content_types`: text, and the textual formats that are
    /// not `text/*` (JSON, JavaScript, XML and their `+json`/`+xml`
    /// relatives, WebAssembly, SVG, icons, uncompressed fonts). Images,
    /// video, archives and WOFF fonts are compressed already.
    pub const DEFAULT_CONTENT_TYPES: [&str; 14] = [
        "text/*",
        "application/json",
        "application/*+json",
        "application/x-ndjson",
        "application/javascript",
        "application/xml",
        "application/*+xml",
        "application/wasm",
        "application/x-yaml",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
    ];
    /// The default `gzip_level`.
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    /// The default `brotli_level`.
    pub const DEFAULT_BROTLI_LEVEL: u32 = 4;
    /// The default `zstd_level`.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
}

impl Serialize for IpFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let lists = [
            ("allow", "allow_files", &self.allow),
            ("deny", "deny_files", &self.deny),
        ];
        for (key, files_key, list) in lists {
            if !list.entries.is_empty() {
                m.serialize_entry(key, &ser::Displayed(&list.entries))?;
            }
            if !list.files.is_empty() {
                let paths: Vec<_> = list.files.iter().map(|f| &f.path).collect();
                m.serialize_entry(files_key, &paths)?;
            }
        }
        m.end()
    }
}
