//! The lookup structure of one address family: a multibit trie over the
//! address bits, 8 bits a level, with compressed single-entry leaves.
//!
//! Keys are left-aligned in a `u128` (an IPv4 address in the top 32 bits),
//! so one implementation serves both families.
//!
//! An inner node covers the 256 values of the next byte with two bitmaps:
//! `full` marks the values every address below which is in the set (an
//! entry ending at this level, expanded: a /10 sets 64 bits of a node at
//! depth 8), `child` the values with a subtree. Children of a node are
//! stored side by side, so the child of value `c` is at `base` plus the
//! number of child bits below `c` (`rank` holds that count for each
//! 64-bit word). A subtree holding a single entry is a leaf that compares
//! the entry's bits directly, which keeps long lone prefixes (an IPv6
//! /128) from needing a node per byte.
//!
//! Only the union matters, so an entry inside another is dropped before
//! the build; then no value is both `full` and `child`.

/// The set of prefixes of one family.
#[derive(Debug, Clone)]
pub(super) struct Trie {
    /// `nodes[0]` is the root; every child's index is larger than its
    /// parent's.
    nodes: Box<[Node]>,
    /// Prefixes kept after merging.
    prefixes: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Inner(Inner),
    /// A subtree with one entry: its bits (left-aligned) and length.
    Leaf {
        bits: u128,
        len: u8,
    },
}

#[derive(Debug, Clone, Default)]
struct Inner {
    full: [u64; 4],
    child: [u64; 4],
    /// Index of the first child.
    base: u32,
    /// Child bits in the words before each word.
    rank: [u8; 4],
}

/// The mask of the top `len` bits.
#[inline]
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The byte of `key` at bit offset `off` (0 = the top byte).
#[inline]
fn chunk(key: u128, off: u8) -> usize {
    // `off` is at most 120: the shift is at least 0.
    ((key >> (120 - u32::from(off))) & 0xff) as usize
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: Box::new([Node::Inner(Inner::default())]),
            prefixes: 0,
        }
    }
}

impl Trie {
    /// The set of `(bits, len)` prefixes, keys left-aligned, `len` at most
    /// 128; bits below `len` are ignored.
    pub(super) fn new(mut prefixes: Vec<(u128, u8)>) -> Self {
        for p in &mut prefixes {
            p.1 = p.1.min(128);
            p.0 &= mask(p.1);
        }
        prefixes.sort_unstable();
        // Sorted by address then length, an entry inside any kept one is
        // inside the last kept one (prefix ranges nest or are disjoint).
        let mut kept: Vec<(u128, u8)> = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            if let Some(&(bits, len)) = kept.last()
                && len <= p.1
                && (p.0 ^ bits) & mask(len) == 0
            {
                continue;
            }
            kept.push(p);
        }
        let mut nodes = vec![Node::Inner(Inner::default())];
        fill(&mut nodes, 0, &kept, 0);
        Trie {
            nodes: nodes.into_boxed_slice(),
            prefixes: kept.len(),
        }
    }

    /// Whether a prefix contains `key`. At most 16 nodes are read (4 for
    /// an IPv4 key, whose low 96 bits are zero and never reached).
    #[inline]
    pub(super) fn contains(&self, key: u128) -> bool {
        let mut i = 0;
        let mut off = 0u8;
        loop {
            match self.nodes.get(i) {
                Some(Node::Inner(n)) => {
                    let c = chunk(key, off);
                    let (w, b) = (c >> 6, c & 63);
                    if (n.full[w] >> b) & 1 == 1 {
                        return true;
                    }
                    if (n.child[w] >> b) & 1 == 0 || off == 120 {
                        return false;
                    }
                    let below = (n.child[w] & ((1u64 << b) - 1)).count_ones() as usize;
                    i = n.base as usize + usize::from(n.rank[w]) + below;
                    off += 8;
                }
                Some(Node::Leaf { bits, len }) => return (key ^ bits) & mask(*len) == 0,
                None => return false,
            }
        }
    }

    /// Prefixes kept after merging.
    pub(super) fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// Bytes the nodes take.
    pub(super) fn memory_bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>()
    }
}

/// Builds the node at `at` from `prefixes` (sorted, none inside another,
/// all sharing their first `off` bits), which sit below it.
fn fill(nodes: &mut Vec<Node>, at: usize, prefixes: &[(u128, u8)], off: u8) {
    let mut node = Inner::default();
    // (value of this level's byte, range of `prefixes` below it).
    let mut groups: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (i, &(bits, len)) in prefixes.iter().enumerate() {
        let c = chunk(bits, off);
        if len <= off + 8 {
            // Ends at this level: every value it covers is full. The bits
            // below `len` are zero, so `c` is the first of them.
            let span = 1usize << (off + 8 - len);
            for v in c..(c + span).min(256) {
                node.full[v >> 6] |= 1 << (v & 63);
            }
        } else {
            match groups.last_mut() {
                Some((value, range)) if *value == c => range.end = i + 1,
                _ => groups.push((c, i..i + 1)),
            }
        }
    }
    for &(c, _) in &groups {
        node.child[c >> 6] |= 1 << (c & 63);
    }
    let mut total = 0u32;
    for (w, word) in node.child.iter().enumerate() {
        // At most 192 bits come before the last word: fits a u8.
        node.rank[w] = u8::try_from(total).unwrap_or(u8::MAX);
        total += word.count_ones();
    }
    let base = nodes.len();
    node.base = u32::try_from(base).unwrap_or(u32::MAX);
    nodes[at] = Node::Inner(node);
    nodes.extend(groups.iter().map(|_| Node::Inner(Inner::default())));
    for (k, (_, range)) in groups.into_iter().enumerate() {
        let below = &prefixes[range];
        if let [(bits, len)] = below {
            nodes[base + k] = Node::Leaf {
                bits: *bits,
                len: *len,
            };
        } else {
            fill(nodes, base + k, below, off + 8);
        }
    }
}
