//! The validated domain model: what the rest of Switchyard consumes.
//!
//! Everything here has been checked: durations and sizes parsed, addresses
//! parsed, regexes compiled once for validation, names cross-referenced. No
//! value here can make the server panic. Field docs name the TOML key.

use serde::Serialize;

mod filters;
mod listener;
mod observe;
mod route;
mod upstream;

pub use filters::*;
pub use listener::*;
pub use observe::*;
pub use route::*;
pub use upstream::*;

/// A whole validated configuration file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// `[admin]`: the admin listener (health, metrics, reload).
    pub admin: Admin,
    /// `[runtime]`: process-wide settings.
    pub runtime: Runtime,
    /// `[listeners.NAME]`, in name order.
    pub listeners: Vec<Listener>,
    /// `[[routes]]`, in file order (file order breaks precedence ties).
    pub routes: Vec<Route>,
    /// `[upstreams.NAME]`, in name order.
    pub upstreams: Vec<Upstream>,
    /// `[access_log]`: None = no access log.
    pub access_log: Option<AccessLog>,
    /// `[tracing]`: None = no trace export (incoming `traceparent` is still
    /// passed upstream unchanged).
    pub tracing: Option<Tracing>,
    /// `[filters.NAME]`: filters defined once, used by name in the
    /// `filters` lists of listeners and routes; in name order.
    #[serde(serialize_with = "ser::named_filters")]
    pub filters: Vec<NamedFilter>,
}

impl Config {
    /// The upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

// `Serialize` (the admin API's `GET /config`) writes the model the way the
// TOML file spells it: durations as the file writes them ("5s", "1m30s"),
// enums by their configuration names, and secrets (`admin.token`, the
// values of `tracing.headers`, `sticky.secret`) as "<redacted>".

/// `serialize_with` helpers of the model's `Serialize` derives.
mod ser {
    use std::fmt::Display;
    use std::time::Duration;

    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};

    /// What a secret serializes as.
    pub(super) const REDACTED: &str = "<redacted>";

    /// A duration that serializes as the file writes it ("5s", "1m30s").
    pub(super) struct Human(pub(super) Duration);

    impl Serialize for Human {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&crate::units::format_duration(self.0))
        }
    }

    pub(super) fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        Human(*d).serialize(s)
    }

    pub(super) fn opt_duration<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => Human(*d).serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn redacted<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }

    pub(super) fn redacted_opt<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_str(REDACTED),
            None => s.serialize_none(),
        }
    }

    /// Header name -> "<redacted>".
    pub(super) fn redacted_values<S: Serializer>(
        pairs: &[(String, String)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, _) in pairs {
            m.serialize_entry(k, REDACTED)?;
        }
        m.end()
    }

    /// `[filters.NAME]` entries as an object of name -> filter.
    pub(super) fn named_filters<S: Serializer>(
        filters: &[super::NamedFilter],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(filters.len()))?;
        for f in filters {
            m.serialize_entry(&f.name, &f.filter)?;
        }
        m.end()
    }

    /// Content codings by their tokens (`"br"`).
    pub(super) fn codings<S: Serializer>(
        codings: &[sy_policy::compress::Coding],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(codings.iter().map(|c| c.token()))
    }

    /// Name/value pairs as an object, in order.
    pub(super) fn pairs<S: Serializer, V: Serialize>(
        pairs: &[(String, V)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, v) in pairs {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    /// Items by their `Display` form (CIDRs).
    pub(super) fn display_seq<S: Serializer, T: Display>(
        items: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(items.len()))?;
        for i in items {
            q.serialize_element(&format_args!("{i}"))?;
        }
        q.end()
    }

    /// Items serialized by their `Display` form (CIDRs).
    pub(super) struct Displayed<'a, T>(pub(super) &'a [T]);

    impl<T: Display> Serialize for Displayed<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            display_seq(self.0, s)
        }
    }

    /// Status ranges as the file writes them: "200-299", or "204".
    pub(super) fn status_ranges<S: Serializer>(
        ranges: &[(u16, u16)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(ranges.len()))?;
        for &(lo, hi) in ranges {
            if lo == hi {
                q.serialize_element(&format_args!("{lo}"))?;
            } else {
                q.serialize_element(&format_args!("{lo}-{hi}"))?;
            }
        }
        q.end()
    }
}
