//! The streaming writer: masks matches that span reads and holds back as little as possible.
//!
//! After each write the automaton's state tells how long the longest tail of the input is that
//! could still be the start of a secret (its depth); everything before that tail is final and
//! is written at once, so a prompt without a newline appears immediately. The depth is measured
//! on demand by re-running the automaton over the last few bytes (states of an Aho-Corasick
//! automaton correspond one-to-one to pattern prefixes, so the shortest suffix that reaches the
//! current state has exactly its depth); doing it per write costs O(depth·log depth), usually
//! nothing, because most writes end in the start state. A held tail shorter than [`MIN_LEN`]
//! is written anyway after [`IDLE_RELEASE`] without input ([`StreamWriter::idle`]); matching
//! goes on from the same state, so the rest of a value that arrives later is still masked.
//!
//! Masked spans are written as one marker as soon as their start is final. A later match that
//! starts inside the span just written extends it silently (`cover_end`), so overlapping
//! secrets never leak a fragment between two markers.
//!
//! Terminal escape sequences ([`super::escapes`]) are not fed to the automaton: offsets of the
//! bytes it sees ("visible" offsets) map back to input offsets through the list of escape runs
//! seen recently, so a span covers the escapes between its first and last visible byte, and a
//! marker whose span held an SGR sequence is followed by a reset.
//!
//! The automaton steps only from where a pattern may start; see [`super::scan`].
//!
//! Held-back bytes may be a secret, so every buffer here is wiped when it is released: its
//! used part only ([`wipe`]), since the rest was wiped at the previous release (a `Vec`'s own
//! `zeroize` wipes the whole capacity, a pass over a buffer grown to a whole read on every
//! write).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::ops::Deref;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aho_corasick::Anchored;
use aho_corasick::automaton::{Automaton, StateID};
use zeroize::{Zeroize, Zeroizing};

use super::escapes::{Byte, Parser, csi_len};
use super::gate::{Gate, Walk};
use super::scan::{Starts, run, scan};
use super::{Engine, MIN_LEN, Redactor, SGR_RESET};

/// How long a short held tail waits for more input before it is written anyway.
pub const IDLE_RELEASE: Duration = Duration::from_millis(50);

/// The redactor a writer masks with: borrowed, or shared with another thread.
#[derive(Clone)]
pub(crate) enum RRef<'r> {
    Borrowed(&'r Redactor),
    Shared(Arc<Redactor>),
}

impl Deref for RRef<'_> {
    type Target = Redactor;
    fn deref(&self) -> &Redactor {
        match self {
            RRef::Borrowed(r) => r,
            RRef::Shared(r) => r,
        }
    }
}

/// Where masked output goes. Each piece names the input offset it stands for, so a sink fed
/// by two streams can send every byte back where it came from.
pub trait Sink {
    /// Input bytes that start at input offset `at`, passed through.
    fn plain(&mut self, at: u64, bytes: &[u8]);
    /// A marker (or the reset after one) for a span that starts at input offset `at`.
    fn marker(&mut self, at: u64, bytes: &[u8]);
    /// Writes out what `plain` and `marker` gathered.
    fn commit(&mut self) -> io::Result<()>;
    /// `plain` then `commit`, without a copy where the sink can.
    fn direct(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.plain(at, bytes);
        self.commit()
    }
    /// `plain` or `marker` for each piece, then `commit`, without a copy where the sink can.
    fn pieces(&mut self, pieces: &[Piece<'_>]) -> io::Result<()> {
        for piece in pieces {
            if piece.marker {
                self.marker(piece.at, piece.bytes);
            } else {
                self.plain(piece.at, piece.bytes);
            }
        }
        self.commit()
    }
    /// Flushes the underlying writer(s).
    fn flush(&mut self) -> io::Result<()>;
}

/// Output for [`Sink::pieces`]: input bytes from input offset `at`, or a marker (or the reset
/// after one) for a span that starts there.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The input offset the piece stands for.
    pub at: u64,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Whether it is a marker rather than input passed through.
    pub marker: bool,
}

/// One writer: each commit is one `write_all` (of [`Sink::pieces`]: one vectored write).
pub struct Plain<W> {
    out: W,
    buf: Zeroizing<Vec<u8>>,
}

impl<W: Write> Plain<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Plain {
            out,
            buf: Zeroizing::new(Vec::new()),
        }
    }
}

impl<W: Write> Sink for Plain<W> {
    fn plain(&mut self, _at: u64, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    fn marker(&mut self, _at: u64, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    fn commit(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let written = self.out.write_all(&self.buf);
            wipe(&mut self.buf);
            written?;
        }
        Ok(())
    }
    fn direct(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        if self.buf.is_empty() {
            self.out.write_all(bytes)
        } else {
            self.plain(at, bytes);
            self.commit()
        }
    }
    /// One vectored write from where the pieces lie: no copy of a whole read into `buf` (and
    /// no wipe of it) for a few markers.
    fn pieces(&mut self, pieces: &[Piece<'_>]) -> io::Result<()> {
        if !self.buf.is_empty() {
            for piece in pieces {
                self.buf.extend_from_slice(piece.bytes);
            }
            return self.commit();
        }
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p.bytes)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.out.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Two writers fed as one stream: each input byte goes back to the writer it was written for
/// (a marker to that of its span's first byte), in input order.
pub struct Split<W> {
    outs: [Option<W>; 2],
    /// Where each run of input from one side starts: (input offset, side).
    sides: VecDeque<(u64, usize)>,
    /// Gathered output, per consecutive side.
    pieces: Vec<(usize, Zeroizing<Vec<u8>>)>,
}

impl<W: Write> Split<W> {
    pub(crate) fn new(outs: [Option<W>; 2]) -> Self {
        Split {
            outs,
            sides: VecDeque::new(),
            pieces: Vec::new(),
        }
    }

    /// Input from offset `at` on comes from `side`.
    fn switch(&mut self, at: u64, side: usize) {
        if self.sides.back().is_none_or(|&(_, s)| s != side) {
            self.sides.push_back((at, side));
        }
    }

    /// Forgets sides of input before `at` (pieces come in input order).
    fn side_at(&mut self, at: u64) -> usize {
        while self.sides.len() > 1 && self.sides[1].0 <= at {
            self.sides.pop_front();
        }
        self.sides.front().map_or(0, |&(_, s)| s)
    }

    fn push(&mut self, side: usize, bytes: &[u8]) {
        match self.pieces.last_mut() {
            Some((s, piece)) if *s == side => piece.extend_from_slice(bytes),
            _ => self.pieces.push((side, Zeroizing::new(bytes.to_vec()))),
        }
    }
}

impl<W: Write> Sink for Split<W> {
    fn plain(&mut self, mut at: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let side = self.side_at(at);
            let next = self.sides.get(1).map_or(u64::MAX, |&(o, _)| o);
            let n = usize::try_from(next - at)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.push(side, &bytes[..n]);
            at += n as u64;
            bytes = &bytes[n..];
        }
    }
    fn marker(&mut self, at: u64, bytes: &[u8]) {
        let side = self.side_at(at);
        self.push(side, bytes);
    }
    fn commit(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for (side, piece) in self.pieces.drain(..) {
            if result.is_ok()
                && let Some(out) = &mut self.outs[side]
            {
                result = out.write_all(&piece);
            }
        }
        result
    }
    fn flush(&mut self) -> io::Result<()> {
        for out in self.outs.iter_mut().flatten() {
            out.flush()?;
        }
        Ok(())
    }
}

/// A masked span not yet written: bytes `[start, end)` of the input.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    /// The secret it is named after, and the length of the match that named it.
    label: u32,
    label_len: u64,
    /// Whether it holds an SGR sequence (a reset follows its marker).
    sgr: bool,
}

/// Escape bytes between two visible bytes.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Visible bytes before it.
    vis: u64,
    /// Its input offsets.
    raw_end: u64,
    /// Escape bytes in the input up to its end.
    cum_end: u64,
    /// Whether an SGR sequence ends in it.
    sgr: bool,
}

/// A [`StreamWriter`] into one plain writer.
pub type RedactWriter<'r, W> = StreamWriter<'r, Plain<W>>;

/// Masks everything written through it; see the module docs.
pub struct StreamWriter<'r, S: Sink> {
    r: RRef<'r>,
    out: S,
    /// Automaton state after `vis_now` visible bytes (set on the first write).
    sid: StateID,
    started: bool,
    /// Input bytes, and visible bytes (not part of an escape sequence), so far.
    now: u64,
    vis_now: u64,
    parser: Parser,
    /// Recent escape runs, and the escape bytes before the first of them.
    runs: VecDeque<Run>,
    run_base: u64,
    /// Input bytes from `pending_base` to the previous write's end, not yet written out
    /// (those before `pend_start` are already consumed by a marker).
    pending: Zeroizing<Vec<u8>>,
    pending_base: u64,
    /// Everything before this has been written (as bytes or as part of a marker).
    pend_start: u64,
    /// Masked spans after `pend_start`, sorted and disjoint.
    spans: Vec<Span>,
    /// The end of the last span written as a marker, and whether a reset followed it.
    cover_end: u64,
    cover_reset: bool,
    /// The last `max_len` visible bytes (or up to twice that), to measure the depth.
    tail: Zeroizing<Vec<u8>>,
    /// Scratch: the visible bytes of a write that holds escapes.
    visible: Zeroizing<Vec<u8>>,
    /// Gated automaton: walks of the patterns behind a head still alive, (visible start of
    /// the head, walk).
    walks: Vec<(u64, Walk)>,
    /// Scratch: matches found in a write, (visible start, visible end, label, length).
    found: Vec<(u64, u64, u32, u64)>,
    /// Scratch: (visible end offset, match state) for each match state seen in a write.
    hits: Vec<(u64, StateID)>,
    last_input: Instant,
}

impl<'r, S: Sink> StreamWriter<'r, S> {
    pub(crate) fn new(r: RRef<'r>, out: S) -> Self {
        let max_len = r.max_len;
        StreamWriter {
            r,
            out,
            sid: StateID::ZERO,
            started: false,
            now: 0,
            vis_now: 0,
            parser: Parser::default(),
            runs: VecDeque::new(),
            run_base: 0,
            pending: Zeroizing::new(Vec::new()),
            pending_base: 0,
            pend_start: 0,
            spans: Vec::new(),
            cover_end: 0,
            cover_reset: false,
            tail: Zeroizing::new(Vec::with_capacity(2 * max_len)),
            visible: Zeroizing::new(Vec::new()),
            walks: Vec::new(),
            found: Vec::new(),
            hits: Vec::new(),
            last_input: Instant::now(),
        }
    }

    /// Writes out everything still held back (the stream has ended) and returns the sink.
    pub fn finish_sink(mut self) -> io::Result<S> {
        self.emit(&[], self.now)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Bytes held back because they could still be the start of a secret (for tests).
    pub fn held(&self) -> usize {
        (self.now - self.pend_start) as usize
    }

    /// Call when no input came for a while: a held tail shorter than [`MIN_LEN`] visible
    /// bytes (a prompt's last characters, which could begin some form) is written once
    /// [`IDLE_RELEASE`] has passed since the last write. Matching goes on from the same state.
    pub fn idle(&mut self) -> io::Result<()> {
        if self.now == self.pend_start || self.last_input.elapsed() < IDLE_RELEASE {
            return Ok(());
        }
        let r = self.r.clone();
        let depth = match r.engine() {
            None => 0,
            Some(Engine::Dfa(a)) => self.depth(a),
            Some(Engine::Gated(a, _)) => self.gated_depth(a),
            Some(Engine::Nfa(a)) => self.depth(a),
        };
        if depth >= MIN_LEN {
            return Ok(());
        }
        self.emit(&[], self.now)?;
        self.out.flush()
    }

    /// The input offset of visible byte `i`.
    fn raw_of(&self, i: u64) -> u64 {
        let k = self.runs.partition_point(|r| r.vis <= i);
        i + if k == 0 {
            self.run_base
        } else {
            self.runs[k - 1].cum_end
        }
    }

    /// Records one match of visible bytes `[vis_start, vis_end)`.
    fn add(&mut self, vis_start: u64, vis_end: u64, label: u32, len: u64) {
        let (mut start, end, sgr) = if self.runs.is_empty() {
            (vis_start + self.run_base, vis_end + self.run_base, false)
        } else {
            // The runs strictly inside the match (the list is sorted by `vis`).
            let first = self.runs.partition_point(|r| r.vis <= vis_start);
            let sgr = self
                .runs
                .range(first..)
                .take_while(|r| r.vis < vis_end)
                .any(|r| r.sgr);
            (self.raw_of(vis_start), self.raw_of(vis_end - 1) + 1, sgr)
        };
        if start < self.cover_end {
            // Overlaps the span just written as a marker: mask the rest silently.
            let mut sgr = sgr;
            self.cover_end = self.cover_end.max(end);
            while let Some(first) = self.spans.first().copied() {
                if first.start >= self.cover_end {
                    break;
                }
                self.cover_end = self.cover_end.max(first.end);
                sgr |= first.sgr;
                self.spans.remove(0);
            }
            if sgr && !self.cover_reset {
                // Nothing was written after the marker yet: the reset still follows it.
                self.out.marker(self.pend_start, SGR_RESET);
                self.cover_reset = true;
            }
            self.pend_start = self.pend_start.max(self.cover_end);
            return;
        }
        // A match can start before `pend_start` only in a short tail released by `idle`:
        // mask the rest of it.
        start = start.max(self.pend_start);
        let mut span = Span {
            start,
            end,
            label,
            label_len: len,
            sgr,
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
                span.sgr |= s.sgr;
            }
            !overlaps
        });
        let at = self.spans.partition_point(|s| s.start < span.start);
        self.spans.insert(at, span);
    }

    /// Writes out everything before `safe` (input offset) that is not masked, and a marker
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
                    .direct(self.pend_start, &chunk[from..(safe - chunk_base) as usize])?;
                self.pend_start = safe;
            } else {
                self.out.commit()?;
            }
        } else {
            self.emit_buffered(chunk, chunk_base, safe)?;
        }
        // Keep [pend_start, now) for the next write.
        if self.pend_start >= chunk_base {
            wipe(&mut self.pending);
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

    /// Writes plain bytes and markers up to `safe` in one commit.
    fn emit_buffered(&mut self, chunk: &[u8], chunk_base: u64, safe: u64) -> io::Result<()> {
        let held = (&self.pending[..], self.pending_base, chunk, chunk_base);
        let mut pieces = Vec::new();
        while let Some(first) = self.spans.first().copied() {
            if first.start >= safe {
                break;
            }
            copy(&mut pieces, held, self.pend_start, first.start);
            let marker = &self.r.markers[first.label as usize];
            pieces.push(Piece {
                at: first.start,
                bytes: marker,
                marker: true,
            });
            if first.sgr {
                pieces.push(Piece {
                    at: first.start,
                    bytes: SGR_RESET,
                    marker: true,
                });
            }
            self.cover_reset = first.sgr;
            self.cover_end = first.end;
            self.pend_start = first.end;
            self.spans.remove(0);
        }
        if safe > self.pend_start {
            copy(&mut pieces, held, self.pend_start, safe);
            self.pend_start = safe;
        }
        self.out.pieces(&pieces)
    }

    /// How many trailing visible bytes could still be the start of a match.
    fn depth<A: Automaton>(&self, a: &A) -> usize {
        if !self.started {
            return 0;
        }
        let start = a.start_state(Anchored::No).expect("unanchored automaton");
        if self.sid == start {
            return 0;
        }
        let tail = &self.tail[self.tail.len().saturating_sub(self.r.max_len)..];
        let n = tail.len();
        let reaches = |k: usize| run(a, start, &tail[n - k..]) == self.sid;
        // Exponential then binary search for the shortest suffix that reaches `sid`.
        let (mut lo, mut hi) = (0, 1);
        while hi < n && !reaches(hi) {
            lo = hi;
            hi *= 2;
        }
        if hi >= n {
            hi = n;
            if !reaches(n) {
                // Cannot happen for Aho-Corasick; hold everything we have to be safe.
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

    /// Keeps (at least) the last `max_len` visible bytes; trimmed only when twice that, so
    /// small writes do not each move the whole tail.
    fn push_tail(&mut self, visible: &[u8]) {
        let max = self.r.max_len;
        if visible.len() >= max {
            self.tail.zeroize();
            self.tail.clear();
            self.tail.extend_from_slice(&visible[visible.len() - max..]);
        } else {
            self.tail.extend_from_slice(visible);
            if self.tail.len() > 2 * max {
                let excess = self.tail.len() - max;
                self.tail[..excess].zeroize();
                self.tail.drain(..excess);
            }
        }
    }

    /// Escapes in this write: puts its visible bytes in `scratch`, noting where the escape
    /// runs sit. A whole CSI sequence (colours, the commonest) is taken in one piece; anything
    /// else goes through the parser byte by byte.
    fn strip_escapes(&mut self, buf: &[u8], scratch: &mut Vec<u8>) {
        let mut i = 0;
        while i < buf.len() {
            if self.parser == Parser::Ground {
                let j = memchr::memchr(0x1b, &buf[i..]).map_or(buf.len(), |k| i + k);
                scratch.extend_from_slice(&buf[i..j]);
                i = j;
                if i == buf.len() {
                    break;
                }
                if let Some((n, sgr)) = csi_len(&buf[i..]) {
                    let vis = self.vis_now + scratch.len() as u64;
                    self.escape_bytes(self.now + i as u64, n as u64, vis, sgr);
                    i += n;
                    continue;
                }
            }
            match self.parser.step(buf[i]) {
                // A byte that ended a broken sequence and is output itself.
                Byte::Visible => scratch.push(buf[i]),
                kind => self.escape_bytes(
                    self.now + i as u64,
                    1,
                    self.vis_now + scratch.len() as u64,
                    kind == Byte::SgrEnd,
                ),
            }
            i += 1;
        }
    }

    /// Records `n` escape bytes from input offset `raw`, after `vis` visible bytes.
    fn escape_bytes(&mut self, raw: u64, n: u64, vis: u64, sgr: bool) {
        match self.runs.back_mut() {
            Some(run) if run.vis == vis && run.raw_end == raw => {
                run.raw_end += n;
                run.cum_end += n;
                run.sgr |= sgr;
            }
            _ => {
                let cum = self.runs.back().map_or(self.run_base, |r| r.cum_end);
                self.runs.push_back(Run {
                    vis,
                    raw_end: raw + n,
                    cum_end: cum + n,
                    sgr,
                });
            }
        }
    }

    /// With a gated automaton, the depth is the longer of the head DFA's and the oldest live
    /// walk's.
    fn gated_depth<A: Automaton>(&self, a: &A) -> usize {
        let oldest = self.walks.iter().map(|&(c, _)| self.vis_now - c).max();
        self.depth(a).max(oldest.unwrap_or(0) as usize)
    }

    /// Scans one write with automaton `a` (with `gate`, a DFA of pattern heads).
    fn write_with<A: Automaton>(
        &mut self,
        a: &A,
        gate: Option<&Gate>,
        starts: &Starts,
        buf: &[u8],
    ) -> io::Result<()> {
        if !self.started {
            self.sid = a.start_state(Anchored::No).expect("unanchored automaton");
            self.started = true;
        }
        let max = self.r.max_len;
        let warm = gate.map_or(max, |g| g.k);
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let mut scratch = std::mem::take(&mut self.visible);
        scratch.clear();
        let plain = self.parser == Parser::Ground && memchr::memchr(0x1b, buf).is_none();
        if !plain {
            self.strip_escapes(buf, &mut scratch);
        }
        let visible: &[u8] = if plain { buf } else { &scratch };
        let vis_start = self.vis_now;
        self.sid = scan(a, starts, self.sid, visible, vis_start, warm, &mut hits);
        hits.sort_unstable_by_key(|h| h.0);

        let mut found = std::mem::take(&mut self.found);
        found.clear();
        match gate {
            None => {
                for &(end, sid) in &hits {
                    for i in 0..a.match_len(sid) {
                        let pid = a.match_pattern(sid, i);
                        let len = a.pattern_len(pid) as u64;
                        found.push((end - len, end, self.r.labels[pid.as_usize()], len));
                    }
                }
            }
            Some(g) => {
                let mut walks = std::mem::take(&mut self.walks);
                walks.retain_mut(|(c, w)| match g.walk(*w, *c, visible, &mut found) {
                    Some(next) => {
                        *w = next;
                        true
                    }
                    None => false,
                });
                for &(end, sid) in &hits {
                    for i in 0..a.match_len(sid) {
                        let head = g.heads[a.match_pattern(sid, i).as_usize()];
                        if let Some((label, len)) = head.complete {
                            let len = u64::from(len);
                            found.push((end - len, end, label, len));
                        }
                        // A head of longer patterns: walk them from the head's end.
                        let Some(w) = head.longer else { continue };
                        let c = end - g.k as u64;
                        let rest = &visible[(end - vis_start) as usize..];
                        if let Some(w) = g.walk(w, c, rest, &mut found) {
                            walks.push((c, w));
                        }
                    }
                }
                self.walks = walks;
            }
        }
        self.push_tail(visible);
        self.vis_now += visible.len() as u64;
        wipe(&mut scratch);
        self.visible = scratch;
        self.now += buf.len() as u64;
        self.hits = hits;

        found.sort_unstable_by_key(|m| (m.1, m.0));
        for &(start, end, label, len) in &found {
            self.add(start, end, label, len);
        }
        self.found = found;
        let depth = match gate {
            None => self.depth(a),
            Some(_) => self.gated_depth(a),
        } as u64;
        let safe = if depth == 0 {
            self.now
        } else {
            self.raw_of(self.vis_now - depth)
        };
        self.emit(buf, safe.max(self.pend_start))?;
        // Forget escape runs no match or held byte can reach any more.
        while let Some(first) = self.runs.front() {
            if first.raw_end > self.pend_start || first.vis + max as u64 > self.vis_now {
                break;
            }
            self.run_base = first.cum_end;
            self.runs.pop_front();
        }
        Ok(())
    }
}

impl<W: Write> StreamWriter<'_, Plain<W>> {
    /// Writes out everything still held back (the stream has ended) and returns the inner
    /// writer.
    pub fn finish(self) -> io::Result<W> {
        self.finish_sink().map(|plain| plain.out)
    }
}

/// One stream written from two sides (a command's stdout and stderr): see
/// [`Redactor::split_writer`].
pub type SplitWriter<'r, W> = StreamWriter<'r, Split<W>>;

impl<W: Write> StreamWriter<'_, Split<W>> {
    /// Writes `buf` as coming from `side` (0 or 1): its bytes go back to that side's writer.
    pub fn write_side(&mut self, side: usize, buf: &[u8]) -> io::Result<()> {
        self.out.switch(self.now, side);
        self.write_all(buf)
    }

    /// Writes out everything still held back and returns the two writers.
    pub fn finish(self) -> io::Result<[Option<W>; 2]> {
        self.finish_sink().map(|split| split.outs)
    }
}

/// Wipes and empties `buf` (its used part: see the module docs). A plain fill runs at memset
/// speed, where zeroize's volatile writes go a byte at a time (a quarter of the scan time on
/// 256 KiB writes); the buffer stays allocated and the zeroes are passed to `black_box`, so
/// the stores cannot be dropped as dead.
fn wipe(buf: &mut Vec<u8>) {
    buf.fill(0);
    std::hint::black_box(buf.as_slice());
    buf.clear();
}

/// The pieces of input `[from, to)`, which lies in `pending ++ chunk`.
fn copy<'a>(out: &mut Vec<Piece<'a>>, held: (&'a [u8], u64, &'a [u8], u64), from: u64, to: u64) {
    let (pending, pending_base, chunk, chunk_base) = held;
    if from >= to {
        return;
    }
    if from < chunk_base {
        let a = (from - pending_base) as usize;
        let b = (to.min(chunk_base) - pending_base) as usize;
        out.push(Piece {
            at: from,
            bytes: &pending[a..b],
            marker: false,
        });
    }
    if to > chunk_base {
        let from = from.max(chunk_base);
        let a = (from - chunk_base) as usize;
        let b = (to - chunk_base) as usize;
        out.push(Piece {
            at: from,
            bytes: &chunk[a..b],
            marker: false,
        });
    }
}

impl<S: Sink> Write for StreamWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let r = self.r.clone();
        self.last_input = Instant::now();
        match r.compiled() {
            None => {
                self.out.direct(self.now, buf)?;
                self.now += buf.len() as u64;
                self.pend_start = self.now;
                self.pending_base = self.now;
            }
            Some((Engine::Dfa(a), s)) => self.write_with(a, None, s, buf)?,
            Some((Engine::Gated(a, g), s)) => self.write_with(a, Some(g), s, buf)?,
            Some((Engine::Nfa(a), s)) => self.write_with(a, None, s, buf)?,
        }
        Ok(buf.len())
    }

    /// Flushes the inner writer. Bytes that could still be the start of a secret stay held
    /// until more input, [`StreamWriter::idle`] or [`StreamWriter::finish_sink`] decides them.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The masking writer of one of a command's output streams; see
/// [`Redactor::output_writers`].
pub struct OutputWriter {
    inner: Output,
}

enum Output {
    Own(Box<StreamWriter<'static, Plain<File>>>),
    /// One of two sides of one stream.
    Shared {
        side: usize,
        shared: Arc<Mutex<SharedStream>>,
    },
}

struct SharedStream {
    writer: Option<StreamWriter<'static, Split<File>>>,
    /// Sides not finished yet.
    open: usize,
}

pub(super) fn output_writers(
    r: &Arc<Redactor>,
    sinks: [Option<File>; 2],
) -> [Option<OutputWriter>; 2] {
    let same = match &sinks {
        [Some(a), Some(b)] => same_file(a, b),
        _ => false,
    };
    if same {
        let writer = StreamWriter::new(RRef::Shared(Arc::clone(r)), Split::new(sinks));
        let shared = Arc::new(Mutex::new(SharedStream {
            writer: Some(writer),
            open: 2,
        }));
        [0, 1].map(|side| {
            Some(OutputWriter {
                inner: Output::Shared {
                    side,
                    shared: Arc::clone(&shared),
                },
            })
        })
    } else {
        sinks.map(|sink| {
            sink.map(|file| OutputWriter {
                inner: Output::Own(Box::new(StreamWriter::new(
                    RRef::Shared(Arc::clone(r)),
                    Plain::new(file),
                ))),
            })
        })
    }
}

/// Whether two open files are the same file, pipe or terminal.
fn same_file(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl OutputWriter {
    /// Whether this writer shares one stream with the other side.
    pub fn is_shared(&self) -> bool {
        matches!(self.inner, Output::Shared { .. })
    }

    /// See [`StreamWriter::idle`]; call when the source has been quiet for a while.
    pub fn idle(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Output::Own(w) => w.idle(),
            Output::Shared { shared, .. } => {
                let mut stream = shared.lock().unwrap_or_else(|p| p.into_inner());
                stream.writer.as_mut().map_or(Ok(()), StreamWriter::idle)
            }
        }
    }

    /// The stream has ended: writes what is held (once both sides of a shared stream end).
    pub fn finish(self) -> io::Result<()> {
        match self.inner {
            Output::Own(w) => w.finish_sink().map(drop),
            Output::Shared { shared, .. } => {
                let mut stream = shared.lock().unwrap_or_else(|p| p.into_inner());
                stream.open -= 1;
                if stream.open > 0 {
                    return Ok(());
                }
                stream
                    .writer
                    .take()
                    .map_or(Ok(()), |w| w.finish_sink().map(drop))
            }
        }
    }
}

impl Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Output::Own(w) => w.write(buf),
            Output::Shared { side, shared } => {
                let mut stream = shared.lock().unwrap_or_else(|p| p.into_inner());
                let Some(w) = stream.writer.as_mut() else {
                    return Err(io::Error::other("the output stream has ended"));
                };
                w.out.switch(w.now, *side);
                w.write(buf)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
        assert_eq!(*w.out.out, *b"Ready on :8080");
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn only_a_possible_secret_start_is_held_back() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        let mut w = r.writer(Vec::new());
        w.write_all(b"login with s3cr").unwrap();
        assert_eq!(*w.out.out, *b"login with ");
        assert_eq!(w.held(), 4);
        w.write_all(b"3t-token now").unwrap();
        assert_eq!(*w.out.out, *b"login with [masked:TOKEN] now");
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

    #[test]
    fn a_coloured_value_is_one_marker_and_the_colour_is_reset() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        // grep --color=always around part of the value, and an OSC title inside it.
        let input = b"x \x1b[1ms3cr\x1b[01;31m\x1b[K3t-t\x1b[m\x1b[Koken\x1b[0m y \x1b]0;t\x07z";
        let want = b"x \x1b[1m[masked:TOKEN]\x1b[0m\x1b[0m y \x1b]0;t\x07z";
        assert_eq!(r.redact(input), want);
        let mut w = r.writer(Vec::new());
        for b in input {
            w.write_all(&[*b]).unwrap();
        }
        assert_eq!(w.finish().unwrap(), want, "one byte at a time");
        // An OSC (no SGR) inside: no reset.
        assert_eq!(
            r.redact(b"s3cr3t\x1b]8;;http://h\x1b\\-token."),
            b"[masked:TOKEN]."
        );
        // Escapes outside a value pass through byte-exact.
        let plain = b"\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b(B\x1b[m";
        assert_eq!(r.redact(plain), plain);
    }

    #[test]
    fn a_short_held_tail_goes_out_when_idle_and_the_rest_is_still_masked() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        let mut w = r.writer(Vec::new());
        w.write_all(b"login s3c").unwrap();
        assert_eq!(w.held(), 3);
        w.idle().unwrap();
        assert_eq!(w.held(), 3, "not before IDLE_RELEASE");
        std::thread::sleep(IDLE_RELEASE + Duration::from_millis(5));
        w.idle().unwrap();
        assert_eq!(w.held(), 0);
        assert_eq!(*w.out.out, *b"login s3c");
        w.write_all(b"r3t-token done").unwrap();
        assert_eq!(
            w.finish().unwrap(),
            b"login s3c[masked:TOKEN] done",
            "at most 3 bytes leak"
        );
        // Four held bytes stay held.
        let mut w = r.writer(Vec::new());
        w.write_all(b"login s3cr").unwrap();
        std::thread::sleep(IDLE_RELEASE + Duration::from_millis(5));
        w.idle().unwrap();
        assert_eq!(w.held(), 4);
    }

    #[test]
    fn a_value_split_across_two_sides_is_masked_and_bytes_go_back_to_their_side() {
        let r = redactor(&[("TOKEN", b"s3cr3t-token")]);
        let mut w = r.split_writer([Vec::new(), Vec::new()]);
        w.write_side(0, b"out1 s3cr").unwrap();
        w.write_side(1, b"3t-token err1\n").unwrap();
        w.write_side(0, b"out2\n").unwrap();
        let [out, err] = w.finish().unwrap();
        assert_eq!(out.unwrap(), b"out1 [masked:TOKEN]out2\n");
        assert_eq!(err.unwrap(), b" err1\n");
    }

    #[test]
    fn the_nfa_masks_like_the_dfa() {
        let secrets: &[(&str, &[u8])] =
            &[("A", b"abcdefgh"), ("B", b"cdefghij"), ("C", b"p@ss w0rd")];
        let dfa = Redactor::new(secrets.iter().copied()).0;
        let nfa = Redactor::new(secrets.iter().copied()).0.with_dfa_limit(0);
        assert_eq!(dfa.stats().engine, "dfa");
        assert_eq!(nfa.stats().engine, "nfa");
        let input = b"..abcdefghij.. p@ss+w0rd cEBzcyB3MHJk \x1b[1mab\x1b[0mcdefgh";
        assert_eq!(nfa.redact(input), dfa.redact(input));
        for k in 4..9 {
            let gated = Redactor::new(secrets.iter().copied()).0.with_gate(k);
            assert_eq!(gated.stats().engine, "gated dfa+sorted");
            assert_eq!(gated.redact(input), dfa.redact(input), "heads of {k}");
            let mut w = gated.writer(Vec::new());
            for b in input {
                w.write_all(&[*b]).unwrap();
            }
            assert_eq!(
                w.finish().unwrap(),
                dfa.redact(input),
                "heads of {k}, byte by byte"
            );
        }
        assert_eq!(
            nfa.redact(input),
            super::super::reference_redact(secrets, input)
        );
    }

    #[test]
    fn long_values_in_a_long_coloured_log_mask_like_the_reference() {
        // Values of 30 bytes and more: the scan tests 8-byte grams every 16 bytes.
        let secrets: &[(&str, &[u8])] = &[
            ("TOKEN", b"ghp_0123456789abcdefABCDEF0123456789ab"),
            ("PASS", b"p@ss w0rd 'quoted' $HOME <tag>"),
            ("HEX", b"00112233445566778899aabbccddeeff00112233"),
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let forms: Vec<Vec<u8>> = secrets
            .iter()
            .flat_map(|(_, v)| super::super::forms::derived_forms(v))
            .collect();
        assert!(
            forms.iter().all(|f| f.len() >= 15),
            "grams of 8 bytes, stride 8"
        );
        let mut input = Vec::new();
        while input.len() < 300_000 {
            match next(12) {
                0 => input.extend_from_slice(&forms[next(forms.len() as u64) as usize]),
                1 => input.extend_from_slice(b"\x1b[32mINFO\x1b[0m "),
                2 => {
                    // A value with a colour change inside it.
                    let v = secrets[next(3) as usize].1;
                    let cut = 1 + next(v.len() as u64 - 1) as usize;
                    input.extend_from_slice(&v[..cut]);
                    input.extend_from_slice(b"\x1b[1;31m");
                    input.extend_from_slice(&v[cut..]);
                }
                3 => input.extend_from_slice(b"{\"level\": \"info\", \"trace\": \"4bf92f35\"}\n"),
                _ => input.extend_from_slice(b"request completed in 12ms GET /api/v1/users 200 "),
            }
        }
        let want = super::super::reference_redact(secrets, &input);
        let r = redactor(secrets);
        assert_eq!(r.redact(&input), want);
        let mut w = r.writer(Vec::new());
        let mut at = 0;
        while at < input.len() {
            let n = (1 + next(70_000) as usize).min(input.len() - at);
            w.write_all(&input[at..at + n]).unwrap();
            at += n;
        }
        assert!(w.finish().unwrap() == want, "streamed in random writes");
    }
}
