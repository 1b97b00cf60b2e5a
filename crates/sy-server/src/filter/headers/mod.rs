//! `headers`: rules that remove, set, add and append header fields of the
//! request sent upstream and of the response sent to the client, in that
//! order. Values may use `${variables}` (see `filter::value`).

use http::HeaderMap;
use http::header::HeaderName;
use http::request::Parts;
use sy_config::model::{HeaderOps, HeadersFilter};
use sy_config::template::Variable;

use super::value::{Fixed, Value};
use super::{RequestCx, Verdict};
use crate::body::ProxyBody;

/// A compiled `headers` filter.
#[derive(Debug)]
pub struct HeaderRules {
    request: Ops,
    response: Ops,
}

/// The compiled rules of one direction.
#[derive(Debug, Default)]
struct Ops {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, Value)]>,
    add: Box<[(HeaderName, Value)]>,
    append: Box<[(HeaderName, Value)]>,
}

impl HeaderRules {
    /// Compiles the validated configuration.
    pub fn new(cfg: &HeadersFilter) -> Result<Self, String> {
        Ok(HeaderRules {
            request: Ops::new(&cfg.request)?,
            response: Ops::new(&cfg.response)?,
        })
    }

    /// Some rule's value renders `${listener}` or `${route}`.
    pub fn reads_fixed(&self) -> bool {
        self.request
            .values()
            .chain(self.response.values())
            .any(Value::reads_fixed)
    }

    /// The rules of one chain, its fixed facts filled in (see
    /// [`Value::bind`]).
    pub fn bind(&self, fixed: Fixed<'_>) -> HeaderRules {
        HeaderRules {
            request: self.request.bind(fixed),
            response: self.response.bind(fixed),
        }
    }

    /// Some rule's value renders variable `v`.
    pub fn reads(&self, v: Variable) -> bool {
        self.request.reads(v) || self.response.reads(v)
    }

    /// Applies the request rules.
    pub fn on_request(&self, cx: &mut RequestCx<'_>, req: &mut Parts) -> Verdict {
        self.request.apply(cx, &mut req.headers);
        Verdict::Continue
    }

    /// Applies the response rules.
    pub fn on_response(&self, cx: &RequestCx<'_>, resp: &mut http::Response<ProxyBody>) {
        self.response.apply(cx, resp.headers_mut());
    }
}

impl Ops {
    fn values(&self) -> impl Iterator<Item = &Value> {
        [&self.set, &self.add, &self.append]
            .into_iter()
            .flat_map(|l| l.iter())
            .map(|(_, v)| v)
    }

    fn reads(&self, v: Variable) -> bool {
        self.values().any(|x| x.reads(v))
    }

    fn bind(&self, fixed: Fixed<'_>) -> Ops {
        let bind = |l: &[(HeaderName, Value)]| -> Box<[(HeaderName, Value)]> {
            l.iter().map(|(n, v)| (n.clone(), v.bind(fixed))).collect()
        };
        Ops {
            remove: self.remove.clone(),
            set: bind(&self.set),
            add: bind(&self.add),
            append: bind(&self.append),
        }
    }

    fn new(cfg: &HeaderOps) -> Result<Self, String> {
        let name =
            |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n}: {e}"));
        let pairs = |list: &[(String, sy_config::template::Template)]| {
            list.iter()
                .map(|(n, t)| {
                    let v = Value::new(t).ok_or_else(|| format!("header {n}: invalid value"))?;
                    Ok((name(n)?, v))
                })
                .collect::<Result<Box<[_]>, String>>()
        };
        Ok(Ops {
            remove: cfg
                .remove
                .iter()
                .map(|n| name(n))
                .collect::<Result<_, _>>()?,
            set: pairs(&cfg.set)?,
            add: pairs(&cfg.add)?,
            append: pairs(&cfg.append)?,
        })
    }

    fn apply(&self, cx: &RequestCx<'_>, h: &mut HeaderMap) {
        for name in self.remove.iter() {
            h.remove(name);
        }
        for (name, v) in self.set.iter() {
            if let Some(v) = v.render(cx) {
                h.insert(name.clone(), v);
            }
        }
        for (name, v) in self.add.iter() {
            if !h.contains_key(name)
                && let Some(v) = v.render(cx)
            {
                h.insert(name.clone(), v);
            }
        }
        for (name, v) in self.append.iter() {
            if let Some(v) = v.render(cx) {
                h.append(name.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests;
