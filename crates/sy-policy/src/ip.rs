//! IP allow and deny rules: is a client address let in?
//!
//! [`IpRules`] holds an allow list and a deny list of IPv4 and IPv6
//! prefixes (CIDRs). The decision for an address:
//!
//! 1. **denied** when a deny entry contains it;
//! 2. else **allowed** when the allow list is empty or an allow entry
//!    contains it;
//! 3. else **denied** (not in the allow list).
//!
//! # Address forms
//!
//! Addresses are matched in their canonical form: an IPv4-mapped IPv6
//! address (`::ffff:192.0.2.7`, what a dual-stack socket or a proxy may
//! report) is the IPv4 address it carries, and an entry inside
//! `::ffff:0:0/96` (`::ffff:10.0.0.0/104`) is the IPv4 entry it names
//! (`10.0.0.0/8`). Any other IPv6 entry matches IPv6 addresses only, so
//! `::/0` means every IPv6 client and `0.0.0.0/0` every IPv4 client.
//!
//! # Cost
//!
//! Each family's entries form a multibit trie ([`IpSet`]) of 8 bits a
//! level: a lookup reads at most 4 nodes for IPv4 and 16 for IPv6 (fewer
//! in practice: a subtree holding a single entry is one compressed leaf),
//! whatever the number of entries, and allocates nothing. Building sorts
//! the entries once (100,000 entries take milliseconds).

mod trie;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use trie::Trie;

/// A set of IPv4 and IPv6 prefixes with a lookup whose time does not grow
/// with the number of prefixes.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    v4: Trie,
    v6: Trie,
    /// Entries given, before overlaps were merged away.
    given: usize,
}

impl IpSet {
    /// The set of `nets` (host bits below a prefix are ignored). Entries
    /// inside `::ffff:0:0/96` become the IPv4 entries they name.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut given = 0;
        for net in nets {
            given += 1;
            match canonical(net) {
                IpNet::V4(n) => v4.push((u128::from(u32::from(n.addr())) << 96, n.prefix_len())),
                IpNet::V6(n) => v6.push((u128::from(n.addr()), n.prefix_len())),
            }
        }
        IpSet {
            v4: Trie::new(v4),
            v6: Trie::new(v6),
            given,
        }
    }

    /// Whether an entry contains `ip` (in its canonical form).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.contains(u128::from(u32::from(a)) << 96),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// No entry at all.
    pub fn is_empty(&self) -> bool {
        self.given == 0
    }

    /// The number of entries given to [`IpSet::new`].
    pub fn len(&self) -> usize {
        self.given
    }

    /// The number of prefixes kept once those inside another were merged
    /// away.
    pub fn distinct(&self) -> usize {
        self.v4.prefixes() + self.v6.prefixes()
    }

    /// The memory the lookup structure takes, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

/// An entry inside `::ffff:0:0/96` as the IPv4 entry it names; any other
/// entry as given, host bits cleared.
fn canonical(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, n.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(IpNet::V6(n)),
            None => IpNet::V6(n),
        },
        other => other,
    }
}

/// What [`IpRules`] decided about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let in: in the allow list, or no allow list; not denied.
    Allowed,
    /// A deny entry contains the address.
    Denied,
    /// There is an allow list and no entry of it contains the address.
    NotAllowed,
}

impl Decision {
    /// Let in.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }
}

/// An allow list and a deny list (see the module documentation for the
/// decision).
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    allow: IpSet,
    deny: IpSet,
}

impl IpRules {
    /// Rules from the entries of both lists.
    pub fn new(
        allow: impl IntoIterator<Item = IpNet>,
        deny: impl IntoIterator<Item = IpNet>,
    ) -> Self {
        IpRules {
            allow: IpSet::new(allow),
            deny: IpSet::new(deny),
        }
    }

    /// The decision for `ip`.
    #[inline]
    pub fn decide(&self, ip: IpAddr) -> Decision {
        if self.deny.contains(ip) {
            Decision::Denied
        } else if self.allow.is_empty() || self.allow.contains(ip) {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }

    /// Whether `ip` is let in.
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.decide(ip).is_allowed()
    }

    /// The allow list.
    pub fn allow(&self) -> &IpSet {
        &self.allow
    }

    /// The deny list.
    pub fn deny(&self) -> &IpSet {
        &self.deny
    }
}

/// A parsed list entry: `"10.0.0.0/8"`, `"2001:db8::/32"`, or a bare
/// address meaning /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The prefix, host bits cleared.
    pub net: IpNet,
    /// The entry had bits set below its prefix length (`10.1.2.3/8`):
    /// it means `net`, which is probably not what was meant.
    pub host_bits: bool,
}

/// Parses one entry; the error says what is wrong, lower-case, without
/// quoting the entry.
pub fn parse_entry(text: &str) -> Result<Entry, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty entry".into());
    }
    if let Some((addr, len)) = text.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| address_problem(addr))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len.parse::<u8>() {
            Ok(l) if l <= max => l,
            _ if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!(
                    "prefix length /{len} is longer than the {max} bits of an {} address",
                    if max == 32 { "IPv4" } else { "IPv6" }
                ));
            }
            _ => return Err(format!("invalid prefix length `/{len}`")),
        };
        let net = match ip {
            IpAddr::V4(a) => Ipv4Net::new(a, len).map(IpNet::V4),
            IpAddr::V6(a) => Ipv6Net::new(a, len).map(IpNet::V6),
        }
        .map_err(|_| format!("invalid prefix length `/{len}`"))?;
        let trunc = net.trunc();
        return Ok(Entry {
            net: trunc,
            host_bits: trunc.addr() != net.addr(),
        });
    }
    let ip: IpAddr = text.parse().map_err(|_| address_problem(text))?;
    Ok(Entry {
        net: IpNet::from(ip),
        host_bits: false,
    })
}

/// Why `text` is not an IP address, as precisely as can be told.
fn address_problem(text: &str) -> String {
    if text.contains('-') && text.split('-').all(|p| p.trim().parse::<IpAddr>().is_ok()) {
        return "address ranges are not supported; write the range as CIDRs".into();
    }
    if let Some((host, port)) = text.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.is_empty()
        && (host.parse::<Ipv4Addr>().is_ok()
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok()))
    {
        return "an entry is an address or a CIDR, without a port".into();
    }
    if text.bytes().any(|b| b.is_ascii_alphabetic()) && !text.contains(':') {
        return "host names are not allowed; write IP addresses or CIDRs".into();
    }
    "invalid CIDR or IP address".into()
}

#[cfg(test)]
mod tests;
