//! Stepping the automaton over a write, skipping what cannot start a pattern.
//!
//! Every pattern is at least [`MIN_LEN`] (4) bytes long, so a match can only start where the
//! bytes that follow are those of some pattern. [`Starts`] is a bitset of the grams (4 to 8
//! bytes, hashed) at the first few offsets of every pattern, tested at every `stride`-th
//! position only (up to 16): a position whose test fails starts no pattern in the `stride`
//! positions it covers (a false positive costs a few automaton steps, never a miss). Ordinary
//! output rarely holds such a gram, so most of a write costs one table lookup per stride
//! instead of an automaton step per byte through a table of megabytes.
//!
//! After a skip, the automaton must be in the state it would have reached byte by byte, for
//! every partial match that can still complete: that state decides what the writer holds back
//! and carries matches across writes. A state is a function of the longest suffix of the input
//! that is a pattern prefix. Skipping starts only where that suffix is at most 3 bytes (tested
//! by re-running the automaton from the start state over the last 3 bytes: states and
//! prefixes correspond one to one) and stops at the first position `c` whose test passes (or
//! the first one too near the end to test); a longer suffix at `c` would start at a position
//! whose test failed, so its pattern cannot occur there, and the state at `c` is that of the 3
//! bytes before it. A partial match that cannot complete may be forgotten earlier than byte by
//! byte (a gated automaton's head whose pattern's later gram did not match): the same matches
//! are found, and the writer holds back no more than before.
//!
//! When starts are dense (output full of values' first bytes) skipping gains nothing, and the
//! four interleaved lanes of [`scan_lanes`] are faster: a block that walked more than a
//! quarter of its bytes sends the next few blocks to the lanes.

use aho_corasick::Anchored;
use aho_corasick::automaton::{Automaton, StateID};

use super::MIN_LEN;

/// Bits of the hashed-gram set: 128 KB, a few percent full with thousands of patterns.
const BITS: u32 = 20;

/// The most positions one test of the set covers (16: a hundred secrets' forms measured
/// best; 8 and 32 were slower on one log or the other), and the longest gram.
const MAX_STRIDE: usize = 16;
const MAX_GRAM: usize = 8;

/// Which grams (4 to 8 bytes) may lie near the start of a pattern (hashed).
///
/// Only every `stride`-th position is tested: a pattern of at least `stride + gram - 1` bytes
/// that starts at `s` has its gram at offset `q - s < stride` at the first tested position
/// `q >= s`, so the set holds each pattern's grams at offsets `0..stride`. The shortest
/// pattern decides both: the stride first (fewer tests), then longer grams with what is left
/// (fewer false starts: JSON secrets share `": "` with every JSON log line, not `": "sv`).
pub(crate) struct Starts {
    bits: Box<[u64; 1 << (BITS - 6)]>,
    stride: usize,
    /// The low `gram` bytes of a little-endian load.
    mask: u64,
    gram: usize,
}

impl Starts {
    /// The grams of `patterns` (each at least [`MIN_LEN`] bytes).
    pub(crate) fn new<'a>(patterns: impl Iterator<Item = &'a [u8]> + Clone) -> Starts {
        let shortest = patterns.clone().map(<[u8]>::len).min().unwrap_or(MIN_LEN);
        let shortest = shortest.max(MIN_LEN);
        let gram = (shortest.saturating_sub(MAX_STRIDE - 1)).clamp(MIN_LEN, MAX_GRAM);
        let stride = (shortest + 1 - gram).min(MAX_STRIDE);
        let mask = u64::MAX >> (8 * (8 - gram));
        let mut bits: Box<[u64; 1 << (BITS - 6)]> = vec![0u64; 1 << (BITS - 6)]
            .into_boxed_slice()
            .try_into()
            .expect("the length is the array's");
        for p in patterns {
            for j in 0..stride {
                let h = hash(load(p, j) & mask);
                bits[h >> 6] |= 1 << (h & 63);
            }
        }
        Starts {
            bits,
            stride,
            mask,
            gram,
        }
    }

    /// 1 if a pattern may hold `word`'s gram near its start.
    #[inline(always)]
    fn bit(&self, word: u64) -> u64 {
        let h = hash(word & self.mask);
        (self.bits[h >> 6] >> (h & 63)) & 1
    }

    /// The first position at or after `from` where a pattern may start, or (if none) the
    /// first position whose gram the set cannot test (too near the end), where the writer
    /// must step anyway.
    fn next(&self, hay: &[u8], from: usize) -> usize {
        // Testing fewer positions apart than the set allows is as exact; a constant stride
        // lets the compiler drop the bounds checks of the loads.
        match self.stride {
            16.. => self.next_by::<16>(hay, from),
            12..=15 => self.next_by::<12>(hay, from),
            8..=11 => self.next_by::<8>(hay, from),
            4..=7 => self.next_by::<4>(hay, from),
            2..=3 => self.next_by::<2>(hay, from),
            _ => self.next_by::<1>(hay, from),
        }
    }

    /// [`Starts::next`], testing every `S`-th position.
    fn next_by<const S: usize>(&self, hay: &[u8], from: usize) -> usize {
        // The tested position that covers starts from `from` to itself.
        let mut q = from + S - 1;
        // Four tests, one branch.
        while let Some(w) = hay.get(q..q + 3 * S + MAX_GRAM) {
            let m = self.bit(word(w, 0))
                | self.bit(word(w, S)) << 1
                | self.bit(word(w, 2 * S)) << 2
                | self.bit(word(w, 3 * S)) << 3;
            if m != 0 {
                return q + S * m.trailing_zeros() as usize + 1 - S;
            }
            q += 4 * S;
        }
        while q + self.gram <= hay.len() {
            if self.bit(load(hay, q)) != 0 {
                break;
            }
            q += S;
        }
        q + 1 - S
    }
}

/// The eight bytes of `w` at `at`, little-endian.
#[inline(always)]
fn word(w: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(w[at..at + 8].try_into().expect("8 bytes"))
}

/// Up to eight bytes of `hay` from `at`, little-endian (zeroes past the end).
#[inline(always)]
fn load(hay: &[u8], at: usize) -> u64 {
    match hay.get(at..at + 8) {
        Some(word) => u64::from_le_bytes(word.try_into().expect("8 bytes")),
        None => {
            let mut word = [0u8; 8];
            let rest = &hay[at.min(hay.len())..];
            word[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(word)
        }
    }
}

/// Multiplicative hash of a gram to `BITS` bits.
#[inline(always)]
fn hash(gram: u64) -> usize {
    (gram.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS)) as usize
}

/// Runs the automaton over `hay` from `sid`, ignoring matches.
pub(crate) fn run<A: Automaton>(a: &A, mut sid: StateID, hay: &[u8]) -> StateID {
    for &b in hay {
        sid = a.next_state(Anchored::No, sid, b);
    }
    sid
}

/// Bytes scanned one way or the other (see the module docs).
const BLOCK: usize = 1 << 16;

/// Blocks sent to the lanes after one where skipping did not pay.
const LANE_BLOCKS: usize = 4;

/// Runs the automaton over `hay` (visible offset `base`) from `sid`, recording each match
/// state with the visible offset just past it; returns the state at the end. `warm` is the
/// longest pattern of `a` (how far back a lane starts).
pub(crate) fn scan<A: Automaton>(
    a: &A,
    starts: &Starts,
    mut sid: StateID,
    hay: &[u8],
    base: u64,
    warm: usize,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    let mut lanes = 0;
    let mut at = 0;
    while at < hay.len() {
        let end = (at + BLOCK).min(hay.len());
        let block = &hay[at..end];
        let offset = base + at as u64;
        if lanes > 0 {
            lanes -= 1;
            sid = scan_lanes::<4, A>(a, sid, block, offset, warm, hits);
        } else {
            let walked;
            (sid, walked) = scan_skip(a, starts, sid, block, offset, hits);
            if walked > block.len() / 4 {
                lanes = LANE_BLOCKS;
            }
        }
        at = end;
    }
    sid
}

/// Steps the automaton only from where a pattern may start (see the module docs). Returns
/// the state at the end and the number of bytes stepped.
fn scan_skip<A: Automaton>(
    a: &A,
    starts: &Starts,
    mut sid: StateID,
    hay: &[u8],
    base: u64,
    hits: &mut Vec<(u64, StateID)>,
) -> (StateID, usize) {
    let start = a.start_state(Anchored::No).expect("unanchored automaton");
    let mut walked = 0;
    let mut i = 0;
    while i < hay.len() {
        sid = a.next_state(Anchored::No, sid, hay[i]);
        walked += 1;
        i += 1;
        if a.is_special(sid) && a.is_match(sid) {
            hits.push((base + i as u64, sid));
        }
        // Every fourth byte: is the partial match short enough to skip from here?
        if i % 4 != 0 || i < 3 || run(a, start, &hay[i - 3..i]) != sid {
            continue;
        }
        let c = starts.next(hay, i - 3);
        if c >= i + 4 {
            sid = run(a, start, &hay[c - 3..c]);
            walked += 3;
            i = c;
        }
    }
    (sid, walked)
}

/// Runs the automaton over `hay` from `sid`, recording each match state with the visible
/// offset just past it.
fn scan_serial<A: Automaton>(
    a: &A,
    mut sid: StateID,
    hay: &[u8],
    base: u64,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    for (i, &b) in hay.iter().enumerate() {
        sid = a.next_state(Anchored::No, sid, b);
        if a.is_special(sid) && a.is_match(sid) {
            hits.push((base + i as u64 + 1, sid));
        }
    }
    sid
}

/// [`scan_serial`] in `N` interleaved lanes when `hay` is large enough: each lane after the
/// first starts `max_len` bytes early from the start state, which puts it in the exact state
/// it would have reached, and the independent table walks hide each other's load latency.
// `i` indexes every lane at once, which an iterator over one lane cannot express.
#[allow(clippy::needless_range_loop)]
fn scan_lanes<const N: usize, A: Automaton>(
    a: &A,
    sid: StateID,
    hay: &[u8],
    base: u64,
    max_len: usize,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    let q = hay.len() / N;
    if q < 4 * max_len.max(64) {
        return scan_serial(a, sid, hay, base, hits);
    }
    let start = a.start_state(Anchored::No).expect("unanchored automaton");
    let mut s = [start; N];
    s[0] = sid;
    for (k, state) in s.iter_mut().enumerate().skip(1) {
        *state = run(a, start, &hay[k * q - max_len..k * q]);
    }
    let lanes: [&[u8]; N] = std::array::from_fn(|k| &hay[k * q..(k + 1) * q]);
    for i in 0..q {
        let mut special = false;
        for k in 0..N {
            s[k] = a.next_state(Anchored::No, s[k], lanes[k][i]);
            special |= a.is_special(s[k]);
        }
        if special {
            for (lane, &st) in s.iter().enumerate() {
                if a.is_special(st) && a.is_match(st) {
                    hits.push((base + (lane * q + i) as u64 + 1, st));
                }
            }
        }
    }
    scan_serial(a, s[N - 1], &hay[N * q..], base + (N * q) as u64, hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::dfa::DFA;
    use aho_corasick::nfa::contiguous;

    /// Pseudo-random bytes from a small alphabet, so heads, false heads and partial matches
    /// are everywhere.
    fn noise(seed: u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    /// The patterns each hit reports (a skip may reach a different state with the same
    /// matches, see the module docs).
    fn outputs<A: Automaton>(a: &A, hits: &[(u64, StateID)]) -> Vec<(u64, Vec<usize>)> {
        let mut out: Vec<(u64, Vec<usize>)> = hits
            .iter()
            .map(|&(end, sid)| {
                let ids = (0..a.match_len(sid)).map(|i| a.match_pattern(sid, i).as_usize());
                (end, ids.collect())
            })
            .collect();
        for (_, ids) in &mut out {
            ids.sort_unstable();
        }
        out.sort_unstable();
        out
    }

    fn check<A: Automaton>(a: &A, starts: &Starts, hay: &[u8]) {
        let start = a.start_state(Anchored::No).unwrap();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        // From the start state, and from a state deep into a pattern.
        for sid in [start, run(a, start, b"abcab")] {
            want.clear();
            got.clear();
            let serial = scan_serial(a, sid, hay, 7, &mut want);
            let want = outputs(a, &want);
            let (skipped, _) = scan_skip(a, starts, sid, hay, 7, &mut got);
            assert_eq!(skipped, serial);
            assert_eq!(outputs(a, &got), want);
            got.clear();
            assert_eq!(scan(a, starts, sid, hay, 7, 12, &mut got), serial);
            assert_eq!(outputs(a, &got), want);
        }
    }

    fn check_all(patterns: &[&[u8]], stride: usize, gram: usize) {
        let starts = Starts::new(patterns.iter().copied());
        assert_eq!((starts.stride, starts.gram), (stride, gram));
        let dfa = DFA::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(patterns)
            .unwrap();
        let nfa = contiguous::NFA::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(patterns)
            .unwrap();
        for (seed, alphabet) in [
            (1, b"abcxy".as_slice()),
            (2, b"abcdefghijklmnopqrstuvwxyz .-"),
            (3, b"ab"),
            (4, b"xy a"),
        ] {
            for len in [0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 64, 1000, 3 * BLOCK + 5] {
                let hay = noise(seed * 1000 + len as u64, len, alphabet);
                check(&dfa, &starts, &hay);
                check(&nfa, &starts, &hay);
            }
        }
    }

    #[test]
    fn skipping_finds_every_match_and_ends_in_the_same_state() {
        let short: &[&[u8]] = &[
            b"abcabcab",
            b"bcab",
            b"cabx",
            b"abcd",
            b"xxxxyyyy",
            b"aaaa",
            b"abca",
        ];
        check_all(short, 1, 4);
        let six: &[&[u8]] = &[b"abcabc", b"bcabxyz", b"xxyyxxy", b"a a ab"];
        check_all(six, 3, 4);
        let long: &[&[u8]] = &[
            b"abcabcabcab",
            b"bcabcabcabca",
            b"xxyyxxyyxxyy",
            b"abababababababababab",
            b"cabcabxabcabca",
            b"a ab ab ab ab",
        ];
        check_all(long, 8, 4);
        let longer: &[&[u8]] = &[
            b"abcabcabcabcabca",
            b"bcabcabcabcabxab",
            b"xxyyxxyyxxyyxxyy",
            b"abababababababababab",
            b"cabcabxabcabcaabcab",
            b"a ab ab ab ab ab ab",
        ];
        check_all(longer, 13, 4);
        let longest: &[&[u8]] = &[
            b"abcabcabcabcabcabcabcabca",
            b"bcabcabcabcabxabbcabcabcabcabxab",
            b"xxyyxxyyxxyyxxyyxxyyxxyyxxyy",
            b"ab ab ab ab ab ab ab ab ab ab",
        ];
        check_all(longest, 16, 8);
    }
}
