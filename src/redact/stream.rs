//! The streaming writer: masks matches that span reads and holds back as little as possible.
//!
//! After each write the DFA's state tells how long the longest tail of the input is that could
//! still be the start of a secret (its depth); everything before that tail is final and is
//! written at once, so a prompt without a newline appears immediately. The depth is measured on
//! demand by re-running the DFA over the last few bytes (states of an Aho-Corasick DFA
//! correspond one-to-one to pattern prefixes, so the shortest suffix that reaches the current
//! state has exactly its depth); doing it per write costs O(depth·log depth), usually nothing,
//! because most writes end in the start state.
//!
//! Masked spans are written as one marker as soon as their start is final. A later match that
//! starts inside the span just written extends it silently (`cover_end`), so overlapping
//! secrets never leak a fragment between two markers.
//!
//! The scan runs four interleaved lanes over large writes: each lane after the first starts
//! `max_len` bytes early from the start state, which puts it in the exact state it would have
//! reached, and the four independent table walks hide each other's load latency (about 3x
//! the single-lane speed on this kind of CPU).
//!
//! Held-back bytes may be a secret, so every buffer here is wiped when it is released.

use std::io::{self, Write};

use aho_corasick::Anchored;
use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use zeroize::{Zeroize, Zeroizing};

use super::Redactor;

/// A masked span not yet written: bytes `[start, end)` of the input.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    /// The secret it is named after, and the length of the match that named it.
    label: u32,
    label_len: u64,
}

/// Masks everything written through it; see the module docs.
pub struct RedactWriter<'r, W: Write> {
    r: &'r Redactor,
    out: W,
    /// DFA state after `now` bytes (the start state until the first write builds the DFA).
    sid: StateID,
    now: u64,
    /// Input bytes from `pending_base` to the previous write's end, not yet written out
    /// (those before `pend_start` are already consumed by a marker).
    pending: Zeroizing<Vec<u8>>,
    pending_base: u64,
    /// Everything before this has been written (as bytes or as part of a marker).
    pend_start: u64,
    /// Masked spans after `pend_start`, sorted and disjoint.
    spans: Vec<Span>,
    /// The end of the last span written as a marker.
    cover_end: u64,
    /// The last `max_len` bytes of input, to measure the depth.
    tail: Zeroizing<Vec<u8>>,
    /// Scratch: (end offset, match state) for each match state seen in a write.
    hits: Vec<(u64, StateID)>,
    /// Scratch: the bytes written out per write, so each write is one `write_all`.
    out_buf: Zeroizing<Vec<u8>>,
}

impl<'r, W: Write> RedactWriter<'r, W> {
    pub(super) fn new(r: &'r Redactor, out: W) -> Self {
        RedactWriter {
            r,
            out,
            sid: StateID::ZERO,
            now: 0,
            pending: Zeroizing::new(Vec::new()),
            pending_base: 0,
            pend_start: 0,
            spans: Vec::new(),
            cover_end: 0,
            tail: Zeroizing::new(Vec::with_capacity(r.max_len)),
            hits: Vec::new(),
            out_buf: Zeroizing::new(Vec::new()),
        }
    }

    /// Writes out everything still held back (the stream has ended) and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(&[], self.now)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Bytes held back because they could still be the start of a secret (for tests).
    pub fn held(&self) -> usize {
        (self.now - self.pend_start) as usize
    }

    /// Records one match `[start, end)`.
    fn add(&mut self, start: u64, end: u64, label: u32, len: u64) {
        if start < self.cover_end {
            // Overlaps the span just written as a marker: mask the rest silently.
            self.cover_end = self.cover_end.max(end);
            while let Some(first) = self.spans.first().copied() {
                if first.start >= self.cover_end {
                    break;
                }
                self.cover_end = self.cover_end.max(first.end);
                self.spans.remove(0);
            }
            self.pend_start = self.pend_start.max(self.cover_end);
            return;
        }
        debug_assert!(
            start >= self.pend_start,
            "a match starts in bytes already written"
        );
        let mut span = Span {
            start,
            end,
            label,
            label_len: len,
        };
        self.spans.retain(|s| {
            let overlaps = s.start < span.end && span.start < s.end;
            if overlaps {
                if s.start < span.start || (s.start == span.start && s.label_len > span.label_len) {
                    span.label = s.label;
                    span.label_len = s.label_len;
                }
                span.start = span.start.min(s.start);
                span.end = span.end.max(s.end);
            }
            !overlaps
        });
        let at = self.spans.partition_point(|s| s.start < span.start);
        self.spans.insert(at, span);
    }

    /// Writes out everything before `safe` (absolute offset) that is not masked, and a marker
    /// for each span that starts before it. `chunk` is the input of the current write, which
    /// begins at `pending_base + pending.len()`.
    fn emit(&mut self, chunk: &[u8], safe: u64) -> io::Result<()> {
        let chunk_base = self.pending_base + self.pending.len() as u64;
        let no_marker = self.spans.first().is_none_or(|s| s.start >= safe);
        if no_marker && self.pend_start >= chunk_base {
            // The common case: nothing to mask and nothing held from before, so the bytes go
            // out straight from the caller's buffer.
            if safe > self.pend_start {
                let from = (self.pend_start - chunk_base) as usize;
                self.out
                    .write_all(&chunk[from..(safe - chunk_base) as usize])?;
                self.pend_start = safe;
            }
        } else {
            self.emit_buffered(chunk, chunk_base, safe)?;
        }
        // Keep [pend_start, now) for the next write.
        if self.pend_start >= chunk_base {
            self.pending.zeroize();
            self.pending.clear();
            let from = ((self.pend_start - chunk_base) as usize).min(chunk.len());
            self.pending.extend_from_slice(&chunk[from..]);
        } else {
            let drop = (self.pend_start - self.pending_base) as usize;
            self.pending[..drop].zeroize();
            self.pending.drain(..drop);
            self.pending.extend_from_slice(chunk);
        }
        self.pending_base = self.pend_start;
        Ok(())
    }

    /// Writes plain bytes and markers up to `safe` through `out_buf`, in one `write_all`.
    fn emit_buffered(&mut self, chunk: &[u8], chunk_base: u64, safe: u64) -> io::Result<()> {
        self.out_buf.clear();
        let copy = |out: &mut Vec<u8>, from: u64, to: u64| {
            // [from, to) lies in pending ++ chunk.
            if from >= to {
                return;
            }
            if from < chunk_base {
                let a = (from - self.pending_base) as usize;
                let b = (to.min(chunk_base) - self.pending_base) as usize;
                out.extend_from_slice(&self.pending[a..b]);
            }
            if to > chunk_base {
                let a = (from.max(chunk_base) - chunk_base) as usize;
                let b = (to - chunk_base) as usize;
                out.extend_from_slice(&chunk[a..b]);
            }
        };
        while let Some(first) = self.spans.first().copied() {
            if first.start >= safe {
                break;
            }
            copy(&mut self.out_buf, self.pend_start, first.start);
            self.out_buf
                .extend_from_slice(&self.r.markers[first.label as usize]);
            self.cover_end = first.end;
            self.pend_start = first.end;
            self.spans.remove(0);
        }
        if safe > self.pend_start {
            copy(&mut self.out_buf, self.pend_start, safe);
            self.pend_start = safe;
        }
        if !self.out_buf.is_empty() {
            self.out.write_all(&self.out_buf)?;
            self.out_buf.zeroize();
        }
        Ok(())
    }

    /// How many trailing input bytes could still be the start of a match.
    fn depth(&self, dfa: &DFA) -> usize {
        let start = dfa.start_state(Anchored::No).expect("unanchored DFA");
        if self.sid == start {
            return 0;
        }
        let n = self.tail.len();
        let reaches = |k: usize| run(dfa, start, &self.tail[n - k..]) == self.sid;
        // Exponential then binary search for the shortest suffix that reaches `sid`.
        let (mut lo, mut hi) = (0, 1);
        while hi < n && !reaches(hi) {
            lo = hi;
            hi *= 2;
        }
        if hi >= n {
            hi = n;
            if !reaches(n) {
                // Cannot happen for an Aho-Corasick DFA; hold everything we have to be safe.
                debug_assert!(false, "no suffix of the tail reaches the current state");
                return n;
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reaches(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

impl<W: Write> Write for RedactWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(dfa) = self.r.dfa() else {
            self.out.write_all(buf)?;
            return Ok(buf.len());
        };
        if buf.is_empty() {
            return Ok(0);
        }
        if self.now == 0 {
            self.sid = dfa.start_state(Anchored::No).expect("unanchored DFA");
        }
        let base = self.now;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        self.sid = scan(dfa, self.sid, buf, base, self.r.max_len, &mut hits);
        self.now += buf.len() as u64;

        let max = self.r.max_len;
        if buf.len() >= max {
            self.tail.zeroize();
            self.tail.clear();
            self.tail.extend_from_slice(&buf[buf.len() - max..]);
        } else {
            self.tail.extend_from_slice(buf);
            if self.tail.len() > max {
                let excess = self.tail.len() - max;
                self.tail[..excess].zeroize();
                self.tail.drain(..excess);
            }
        }

        hits.sort_unstable_by_key(|h| h.0);
        for &(end, sid) in &hits {
            for i in 0..dfa.match_len(sid) {
                let pid = dfa.match_pattern(sid, i);
                let len = dfa.pattern_len(pid) as u64;
                self.add(end - len, end, self.r.labels[pid.as_usize()], len);
            }
        }
        self.hits = hits;
        let safe = self.now - self.depth(dfa) as u64;
        self.emit(buf, safe)?;
        Ok(buf.len())
    }

    /// Flushes the inner writer. Bytes that could still be the start of a secret stay held
    /// until more input or [`RedactWriter::finish`] decides them.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Runs the DFA over `hay` from `sid`, ignoring matches.
fn run(dfa: &DFA, mut sid: StateID, hay: &[u8]) -> StateID {
    for &b in hay {
        sid = dfa.next_state(Anchored::No, sid, b);
    }
    sid
}

/// Runs the DFA over `hay` from `sid`, recording each match state with the absolute offset
/// just past it.
fn scan_serial(
    dfa: &DFA,
    mut sid: StateID,
    hay: &[u8],
    base: u64,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    for (i, &b) in hay.iter().enumerate() {
        sid = dfa.next_state(Anchored::No, sid, b);
        if dfa.is_special(sid) && dfa.is_match(sid) {
            hits.push((base + i as u64 + 1, sid));
        }
    }
    sid
}

/// Like [`scan_serial`], in interleaved lanes when `hay` is large enough.
fn scan(
    dfa: &DFA,
    sid: StateID,
    hay: &[u8],
    base: u64,
    max_len: usize,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    // Four lanes measured best on this 2-core Xeon (two: 0.6 GB/s, four: 1.1, six and eight:
    // no better, under the same load).
    scan_lanes::<4>(dfa, sid, hay, base, max_len, hits)
}

/// [`scan_serial`] in `N` interleaved lanes when `hay` is large enough.
// `i` indexes every lane at once, which an iterator over one lane cannot express.
#[allow(clippy::needless_range_loop)]
fn scan_lanes<const N: usize>(
    dfa: &DFA,
    sid: StateID,
    hay: &[u8],
    base: u64,
    max_len: usize,
    hits: &mut Vec<(u64, StateID)>,
) -> StateID {
    let q = hay.len() / N;
    if q < 4 * max_len.max(64) {
        return scan_serial(dfa, sid, hay, base, hits);
    }
    let start = dfa.start_state(Anchored::No).expect("unanchored DFA");
    let mut s = [start; N];
    s[0] = sid;
    for (k, state) in s.iter_mut().enumerate().skip(1) {
        *state = run(dfa, start, &hay[k * q - max_len..k * q]);
    }
    let lanes: [&[u8]; N] = std::array::from_fn(|k| &hay[k * q..(k + 1) * q]);
    for i in 0..q {
        let mut special = false;
        for k in 0..N {
            s[k] = dfa.next_state(Anchored::No, s[k], lanes[k][i]);
            special |= dfa.is_special(s[k]);
        }
        if special {
            for (lane, &st) in s.iter().enumerate() {
                if dfa.is_special(st) && dfa.is_match(st) {
                    hits.push((base + (lane * q + i) as u64 + 1, st));
                }
            }
        }
    }
    scan_serial(dfa, s[N - 1], &hay[N * q..], base + (N * q) as u64, hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[(&str, &[u8])]) -> Redactor {
        Redactor::new(secrets.iter().copied()).0
    }

    #[test]
    fn text_that_cannot_start_a_secret_is_written_at_once() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        let mut w = r.writer(Vec::new());
        w.write_all(b"Ready on :8080").unwrap();
        assert_eq!(w.out, b"Ready on :8080");
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn only_a_possible_secret_start_is_held_back() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        let mut w = r.writer(Vec::new());
        w.write_all(b"login with s3cr").unwrap();
        assert_eq!(w.out, b"login with ");
        assert_eq!(w.held(), 4);
        w.write_all(b"3t-token now").unwrap();
        assert_eq!(w.out, b"login with [masked:TOKEN] now");
        w.write_all(b" s3c").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(
            out, b"login with [masked:TOKEN] now s3c",
            "held bytes are flushed at the end"
        );
    }

    #[test]
    fn a_secret_fed_one_byte_at_a_time_is_masked() {
        let r = redactor(&[("A", b"abcdef"), ("B", b"cdefgh")]);
        let mut w = r.writer(Vec::new());
        for b in b"..abcdefgh.." {
            w.write_all(&[*b]).unwrap();
        }
        assert_eq!(w.finish().unwrap(), b"..[masked:A]..");
    }

    #[test]
    fn lanes_find_matches_at_lane_boundaries() {
        let secret = b"boundary-secret";
        let r = redactor(&[("S", secret)]);
        for len in [4096usize, 4099, 10_000] {
            for pos in [
                0,
                len / 4 - 7,
                len / 4,
                len / 2 - 3,
                3 * len / 4 - 1,
                len - secret.len(),
            ] {
                let mut input = vec![b'.'; len];
                input[pos..pos + secret.len()].copy_from_slice(secret);
                let out = r.redact(&input);
                assert_eq!(
                    out.len(),
                    len - secret.len() + b"[masked:S]".len(),
                    "{len}/{pos}"
                );
                assert!(
                    !out.windows(secret.len()).any(|w| w == secret),
                    "{len}/{pos}"
                );
            }
        }
    }
}
