//! Warnings about how listeners and routes fit together: a listener no
//! route serves, and a route that can never match because another one
//! comes first for every request it would take. Run only on a valid file.

use super::Cx;
use crate::diagnostic::{index, join};
use crate::model::Config;
use crate::raw::RawConfig;

pub(super) fn warn(cx: &mut Cx<'_>, raw: &RawConfig, config: &Config) {
    for (name, l) in &raw.listeners {
        let name = name.get_ref();
        if !config.routes.iter().any(|r| r.serves(name)) {
            cx.report
                .warning(
                    l.span(),
                    &join("listeners", name),
                    "no route serves this listener; every request to it gets 404",
                )
                .hint(format!(
                    "add a [[routes]] entry without `listeners`, or with listeners = [\"{name}\"]"
                ));
        }
    }
    // A route is unreachable when it is shadowed on every listener it
    // serves; the route blamed is the one on the first such listener.
    let mut blamed: Vec<Option<Option<usize>>> = vec![None; config.routes.len()];
    for l in &config.listeners {
        let serving: Vec<usize> = (0..config.routes.len())
            .filter(|&i| config.routes[i].serves(&l.name))
            .collect();
        let specs: Vec<_> = serving
            .iter()
            .map(|&i| config.routes[i].matcher.spec())
            .collect();
        for (k, by) in sy_policy::route::shadowed(&specs).into_iter().enumerate() {
            let route = serving[k];
            let by = by.map(|j| serving[j]);
            blamed[route] = match blamed[route] {
                None => Some(by),
                Some(Some(first)) if by.is_some() => Some(Some(first)),
                Some(_) => Some(None),
            };
        }
    }
    for (i, blame) in blamed.into_iter().enumerate() {
        let (Some(Some(by)), Some(entry)) = (blame, raw.routes.get(i)) else {
            continue;
        };
        let (name, by_name) = (&config.routes[i].name, &config.routes[by].name);
        let span = entry
            .get_ref()
            .name
            .as_ref()
            .map_or(entry.span(), |n| n.span());
        cx.report
            .warning(span, &index("routes", i), format!("route `{name}` can never match: route `{by_name}` takes every request it would match"))
            .hint("routes are tried by precedence, not file order (exact host, then longer path prefix, then more conditions, then file order); give this route a more specific match or remove it; see docs/configuration.md");
    }
}
