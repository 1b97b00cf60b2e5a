//! The `compress` filter: `compress = { algorithms, min_size,
//! content_types, gzip_level, brotli_level, zstd_level }`.

use sy_policy::compress::{Coding, TypePattern};
use toml::Spanned;

use super::Cx;
use crate::diagnostic::{choice_hint, index, join};
use crate::model::CompressFilter;
use crate::raw::{Int, RawCompress, Text};

/// The largest `min_size`: larger would mean "never", which is no filter.
const MAX_MIN_SIZE: u64 = 1 << 30;

pub(super) fn compress(cx: &mut Cx<'_>, raw: &Spanned<RawCompress>, path: &str) -> CompressFilter {
    let c = raw.get_ref();
    let p = |key: &str| join(path, key);
    let algorithms = algorithms(cx, c.algorithms.as_ref(), &p("algorithms"));
    let min_size = cx.size(
        c.min_size.as_ref(),
        &p("min_size"),
        CompressFilter::DEFAULT_MIN_SIZE,
        (0, MAX_MIN_SIZE),
    );
    let content_types = content_types(cx, c.content_types.as_ref(), &p("content_types"));
    let mut level = |value: Option<&Int>, key: &str, default: i64, range: (i64, i64), hint| {
        let n = cx.int(value, &p(key), default, range, Some(hint));
        u32::try_from(n).unwrap_or(0)
    };
    let gzip_level = level(
        c.gzip_level.as_ref(),
        "gzip_level",
        CompressFilter::DEFAULT_GZIP_LEVEL.into(),
        (1, 9),
        "1 is the fastest, 9 the smallest; the default 6 is zlib's own",
    );
    let brotli_level = level(
        c.brotli_level.as_ref(),
        "brotli_level",
        CompressFilter::DEFAULT_BROTLI_LEVEL.into(),
        (0, 11),
        "0 is the fastest, 11 the smallest; the default is 4",
    );
    let zstd_level = level(
        c.zstd_level.as_ref(),
        "zstd_level",
        CompressFilter::DEFAULT_ZSTD_LEVEL.into(),
        (1, 19),
        "1 is the fastest, 19 the smallest; the default 3 is zstd's own",
    );
    if let Some(level) = &c.brotli_level
        && (10..=11).contains(level.get_ref())
    {
        cx.report
            .warning(
                level.span(),
                &p("brotli_level"),
                "brotli levels 10 and 11 compress about a hundred times slower than level 4",
            )
            .hint("they suit files compressed once ahead of time, not every response; 4 to 6 suit a proxy");
    }
    for (value, key, coding) in [
        (&c.gzip_level, "gzip_level", Coding::Gzip),
        (&c.brotli_level, "brotli_level", Coding::Br),
        (&c.zstd_level, "zstd_level", Coding::Zstd),
    ] {
        if let Some(v) = value
            && c.algorithms.is_some()
            && !algorithms.is_empty()
            && !algorithms.contains(&coding)
        {
            let name = coding.token();
            cx.report
                .warning(
                    v.span(),
                    &p(key),
                    format!("{key} is set but `{name}` is not in `algorithms`"),
                )
                .hint(format!("add \"{name}\" to `algorithms`, or remove {key}"));
        }
    }
    CompressFilter {
        algorithms,
        min_size,
        content_types,
        gzip_level,
        brotli_level,
        zstd_level: i32::try_from(zstd_level).unwrap_or(3),
    }
}

fn algorithms(cx: &mut Cx<'_>, raw: Option<&Spanned<Vec<Text>>>, path: &str) -> Vec<Coding> {
    let Some(list) = raw else {
        return CompressFilter::DEFAULT_ALGORITHMS.to_vec();
    };
    let mut out = Vec::new();
    let mut clean = true;
    for (i, text) in list.get_ref().iter().enumerate() {
        let at = index(path, i);
        let name = text.get_ref().to_ascii_lowercase();
        // Configured by the exact token (not `x-gzip`, which only clients
        // may send).
        let Some(coding) = Coding::ALL.into_iter().find(|c| c.token() == name) else {
            clean = false;
            let hint = match name.as_str() {
                "brotli" => Some(
                    "did you mean `br`? algorithms are named as in Content-Encoding".to_owned(),
                ),
                "zstandard" => Some(
                    "did you mean `zstd`? algorithms are named as in Content-Encoding".to_owned(),
                ),
                "x-gzip" => Some("did you mean `gzip`?".to_owned()),
                "deflate" | "compress" => Some(format!(
                    "`{name}` is not offered: every client that accepts it accepts gzip; write \"gzip\""
                )),
                _ => choice_hint(&name, &["zstd", "br", "gzip"]),
            };
            cx.report
                .error_value(text.span(), &at, "unknown compression algorithm")
                .maybe_hint(hint);
            continue;
        };
        if out.contains(&coding) {
            cx.report
                .error_value(text.span(), &at, format!("`{name}` is listed twice"));
            continue;
        }
        out.push(coding);
    }
    if out.is_empty() && clean {
        cx.report
            .error(list.span(), path, "a compress filter needs at least one algorithm")
            .hint("e.g. algorithms = [\"zstd\", \"br\", \"gzip\"], or remove the key for that default");
    }
    out
}

fn content_types(cx: &mut Cx<'_>, raw: Option<&Spanned<Vec<Text>>>, path: &str) -> Vec<String> {
    let Some(list) = raw else {
        return CompressFilter::DEFAULT_CONTENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
    };
    let mut out: Vec<String> = Vec::new();
    let mut clean = true;
    for (i, text) in list.get_ref().iter().enumerate() {
        let at = index(path, i);
        match TypePattern::parse(text.get_ref()) {
            Ok(p) => {
                let p = p.to_string();
                if out.contains(&p) {
                    cx.report
                        .error_value(text.span(), &at, format!("`{p}` is listed twice"));
                } else {
                    out.push(p);
                }
            }
            Err(message) => {
                clean = false;
                cx.report
                    .error_value(text.span(), &at, message)
                    .hint("e.g. \"text/*\", \"application/json\" or \"application/*+json\"");
            }
        }
    }
    if out.is_empty() && clean {
        cx.report
            .error(
                list.span(),
                path,
                "nothing would be compressed: `content_types` is empty",
            )
            .hint("list media types such as \"text/*\", or remove the key for the default list");
    }
    out
}
