//! The patterns behind a DFA of their heads ([`super::Engine::Gated`]).
//!
//! A hundred secrets with every form make some 260 000 trie states, mostly the long forms of
//! keys and documents: too many for a DFA. The head DFA finds the first `k` bytes of a
//! pattern; what follows is checked against the patterns that begin with that head, kept
//! sorted in one byte string. Those that share the bytes read so far are a contiguous range
//! of the sorted list, so a walk is a range that each byte narrows (two binary searches),
//! and a pattern exactly as long as what was read sorts first in its range: a match.
//!
//! This replaced a full Aho-Corasick NFA for the walks. For a hundred mixed secrets its build
//! (a noncontiguous NFA converted to a contiguous one) took the build's peak heap to 18 MB
//! (11 MB without it) and most of the 30 ms the automaton took to build; the sorted patterns
//! are their own bytes. A walk
//! from a head only reports patterns that start there: the NFA also reported patterns ending
//! there that start later, which their own heads report anyway.

use zeroize::Zeroizing;

/// The full patterns behind a DFA of their heads.
pub(crate) struct Gate {
    /// For each head-DFA pattern: the full pattern it is, if no longer than `k`, and the
    /// longer patterns that begin with it.
    pub(crate) heads: Vec<Head>,
    pub(crate) k: usize,
    /// The patterns longer than `k`, sorted: their bytes end to end, where each ends, and
    /// the secret each belongs to.
    bytes: Zeroizing<Vec<u8>>,
    ends: Vec<u32>,
    labels: Vec<u32>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Head {
    /// (label, length) of the pattern that is this head.
    pub(crate) complete: Option<(u32, u32)>,
    /// The range of sorted patterns that begin with this head, if any.
    pub(crate) longer: Option<Walk>,
}

/// Patterns `lo..hi` of the sorted list, all beginning with the `depth` bytes read so far
/// (and all longer than that).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    lo: u32,
    hi: u32,
    depth: u32,
}

impl Gate {
    /// The gate for `patterns` (labels alongside), and the heads for the DFA, in the order
    /// of `heads`.
    pub(crate) fn new(
        patterns: &[Zeroizing<Vec<u8>>],
        labels: &[u32],
        k: usize,
    ) -> (Gate, Vec<Vec<u8>>) {
        let mut order: Vec<usize> = (0..patterns.len()).collect();
        order.sort_unstable_by(|&a, &b| patterns[a].cmp(&patterns[b]));
        let mut gate = Gate {
            heads: Vec::new(),
            k,
            bytes: Zeroizing::new(Vec::new()),
            ends: Vec::new(),
            labels: Vec::new(),
        };
        // Sorted, patterns with one head are adjacent (a head alone first).
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for &id in &order {
            let p = &patterns[id];
            let head = &p[..p.len().min(k)];
            if keys.last().is_none_or(|last| last.as_slice() != head) {
                keys.push(head.to_vec());
                gate.heads.push(Head::default());
            }
            let at = gate.heads.len() - 1;
            if p.len() <= k {
                gate.heads[at].complete = Some((labels[id], p.len() as u32));
                continue;
            }
            let index = gate.ends.len() as u32;
            gate.bytes.extend_from_slice(p);
            gate.ends.push(gate.bytes.len() as u32);
            gate.labels.push(labels[id]);
            let walk = gate.heads[at].longer.get_or_insert(Walk {
                lo: index,
                hi: index,
                depth: k as u32,
            });
            walk.hi = index + 1;
        }
        gate.bytes.shrink_to_fit();
        (gate, keys)
    }

    /// Heap bytes.
    pub(crate) fn memory_usage(&self) -> usize {
        self.bytes.capacity()
            + 4 * (self.ends.capacity() + self.labels.capacity())
            + self.heads.capacity() * std::mem::size_of::<Head>()
    }

    /// Sorted pattern `i`.
    fn pattern(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Continues `walk` over `hay`, whose first byte is at visible offset `base`, from a
    /// head that started at `start`; records each pattern it completes as (start, end,
    /// label, length). Returns the walk if it is still alive at the end of `hay`.
    pub(crate) fn walk(
        &self,
        mut walk: Walk,
        start: u64,
        hay: &[u8],
        found: &mut Vec<(u64, u64, u32, u64)>,
    ) -> Option<Walk> {
        for &b in hay {
            let d = walk.depth as usize;
            let range = walk.lo..walk.hi;
            // Every pattern in the range is longer than `d`, sorted by its byte `d`.
            let lo = walk.lo + partition(range.clone(), |i| self.pattern(i)[d] < b);
            let hi = walk.lo + partition(range, |i| self.pattern(i)[d] <= b);
            walk = Walk {
                lo,
                hi,
                depth: walk.depth + 1,
            };
            // A pattern as long as what was read sorts first: a match.
            while walk.lo < walk.hi && self.pattern(walk.lo).len() == d + 1 {
                let len = (d + 1) as u64;
                found.push((start, start + len, self.labels[walk.lo as usize], len));
                walk.lo += 1;
            }
            if walk.lo == walk.hi {
                return None;
            }
        }
        Some(walk)
    }
}

/// How many of the indices in `range` satisfy `pred` (which holds on a prefix of them).
fn partition(range: std::ops::Range<u32>, pred: impl Fn(u32) -> bool) -> u32 {
    let (mut lo, mut hi) = (range.start, range.end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo - range.start
}
