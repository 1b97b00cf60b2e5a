//! Config files for the tests: the shared preamble and one-route configs.

use std::fmt;

use super::Backend;

/// The tables every test config starts with: `[admin]`, `[runtime]` and
/// the listener `main`, all on port 0. The default is 2 workers, a 5 s
/// drain and no file watch. Renders (`{}`) as TOML that starts and ends
/// with a newline, so keys of `[listeners.main]` may follow directly.
#[derive(Debug, Clone, Copy)]
pub struct Preamble<'a> {
    pub workers: usize,
    pub drain_timeout: &'a str,
    pub watch_config: bool,
}

impl Default for Preamble<'_> {
    fn default() -> Self {
        Preamble {
            workers: 2,
            drain_timeout: "5s",
            watch_config: false,
        }
    }
}

impl fmt::Display for Preamble<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Preamble {
            workers,
            drain_timeout,
            watch_config,
        } = self;
        write!(
            f,
            r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = {workers}
drain_timeout = "{drain_timeout}"
watch_config = {watch_config}
[listeners.main]
address = "127.0.0.1:0"
"#
        )
    }
}

/// `"a:1", "b:2"` for a TOML array of servers.
pub fn servers(backends: &[&Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A minimal config: one listener on port 0, one route to upstream "u".
pub fn simple_config(backends: &[&Backend], upstream_extra: &str) -> String {
    one_upstream_config(&servers(backends), upstream_extra)
}

/// [`simple_config`] with `servers` given as the body of the TOML array
/// (for servers that are not a [`Backend`]).
pub fn one_upstream_config(servers: &str, upstream_extra: &str) -> String {
    format!(
        "{}{}",
        Preamble::default(),
        route_all(servers, "", upstream_extra)
    )
}

/// The tables after a preamble: one route "all" (+ `route_extra`, tables
/// of the route) to upstream "u" over `servers` (the body of the TOML
/// array), then `upstream_extra` (keys and tables of "u", or any tables
/// that follow). Starts and ends with a newline.
pub fn route_all(servers: &str, route_extra: &str, upstream_extra: &str) -> String {
    format!(
        r#"
[[routes]]
name = "all"
upstream = "u"
{route_extra}
[upstreams.u]
servers = [{servers}]
{upstream_extra}
"#
    )
}
