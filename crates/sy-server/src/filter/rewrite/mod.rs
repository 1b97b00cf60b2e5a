//! `rewrite`: the path and query of the request sent upstream. Routing has
//! already happened (it saw the client's URL), and the access log records
//! the client's URL too; only the upstream sees the rewritten one.

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use regex::Regex;
use sy_config::model::{PathRewrite, RewriteFilter};
use sy_core::{ProxyError, Stage};
use sy_policy::rewrite::{QueryOps, replace_prefix, replace_regex};

use super::{RequestCx, Verdict};

/// A compiled `rewrite` filter.
#[derive(Debug)]
pub struct Rewrite {
    path: Option<Path>,
    query: QueryOps,
}

#[derive(Debug)]
enum Path {
    Prefix { from: String, to: String },
    Regex { re: Regex, replacement: String },
}

impl Rewrite {
    /// Compiles the validated configuration.
    pub fn new(cfg: &RewriteFilter) -> Result<Self, String> {
        let path = match &cfg.path {
            None => None,
            Some(PathRewrite::ReplacePrefix { from, to }) => Some(Path::Prefix {
                from: from.clone(),
                to: to.clone(),
            }),
            Some(PathRewrite::PathRegex {
                pattern,
                replacement,
            }) => Some(Path::Regex {
                re: Regex::new(pattern).map_err(|e| format!("rewrite path_regex: {e}"))?,
                replacement: replacement.clone(),
            }),
        };
        let q = &cfg.query;
        Ok(Rewrite {
            path,
            query: QueryOps::new(&q.remove, &q.rename, &q.set, &q.add),
        })
    }

    /// Rewrites the request's URI; a result that is not a valid request
    /// target (a regex replacement gone wrong) is refused with 400.
    pub fn on_request(&self, _cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        let path = req.uri.path();
        let new_path = match &self.path {
            None => None,
            Some(Path::Prefix { from, to }) => replace_prefix(path, from, to),
            Some(Path::Regex { re, replacement }) => replace_regex(path, re, replacement),
        };
        let new_query = if self.query.is_empty() {
            None
        } else {
            Some(self.query.apply(req.uri.query()))
        };
        if new_path.is_none() && new_query.is_none() {
            return Verdict::Continue;
        }
        let path = new_path.as_deref().unwrap_or(path);
        let query = match &new_query {
            Some(q) => q.as_deref(),
            None => req.uri.query(),
        };
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let Ok(pq) = PathAndQuery::try_from(target) else {
            return Verdict::Reject(ProxyError::new(
                Stage::BadRequest,
                "the rewritten request target is not a valid URL path",
            ));
        };
        let mut parts = std::mem::take(&mut req.uri).into_parts();
        parts.path_and_query = Some(pq);
        match Uri::from_parts(parts) {
            Ok(uri) => {
                req.uri = uri;
                Verdict::Continue
            }
            Err(_) => Verdict::Reject(ProxyError::new(
                Stage::BadRequest,
                "the rewritten request target is not a valid URL",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use sy_config::model::QueryRewrite;

    fn run(cfg: RewriteFilter, target: &str) -> Result<String, String> {
        let f = Rewrite::new(&cfg).unwrap();
        let mut req = http::Request::get(target).body(()).unwrap().into_parts().0;
        let mut cx = RequestCx::new(
            "web",
            "127.0.0.1:1".parse().unwrap(),
            http::Method::GET,
            req.uri.clone(),
        );
        match f.on_request(&mut cx, &mut req) {
            Verdict::Continue => Ok(req.uri.to_string()),
            Verdict::Reject(e) => Err(e.message),
            Verdict::Answer(_) => Err("answered".into()),
        }
    }

    #[test]
    fn prefix_regex_and_query() {
        let strip = RewriteFilter {
            path: Some(PathRewrite::ReplacePrefix {
                from: "/api".into(),
                to: String::new(),
            }),
            query: QueryRewrite::default(),
        };
        assert_eq!(run(strip.clone(), "/api/users?x=1").unwrap(), "/users?x=1");
        assert_eq!(run(strip.clone(), "/other").unwrap(), "/other");
        // An absolute-form (HTTP/2) target keeps its scheme and authority.
        assert_eq!(
            run(strip, "http://example.com/api/a").unwrap(),
            "http://example.com/a"
        );
        let regex = RewriteFilter {
            path: Some(PathRewrite::PathRegex {
                pattern: "^/users/([0-9]+)$".into(),
                replacement: "/u/$1".into(),
            }),
            query: QueryRewrite {
                remove: vec!["debug".into()],
                add: vec![("v".into(), "2".into())],
                ..QueryRewrite::default()
            },
        };
        assert_eq!(
            run(regex.clone(), "/users/7?debug=1&a=b").unwrap(),
            "/u/7?a=b&v=2"
        );
        assert_eq!(run(regex, "/users/x").unwrap(), "/users/x?v=2");
        let broken = RewriteFilter {
            path: Some(PathRewrite::PathRegex {
                pattern: "^/(.*)$".into(),
                replacement: "/$1 with space".into(),
            }),
            query: QueryRewrite::default(),
        };
        assert!(run(broken, "/x").unwrap_err().contains("not a valid"));
    }
}
