//! Text edits on the original source, and the map from the edited text back
//! to the original.
//!
//! The rewriter never reprints code: it copies the original text and inserts
//! snippets around nodes. Three kinds of edit suffice:
//! - inserts that open or close a wrapper around a node (`_sg_e(k, ` ... `)`),
//! - replacements of a small original range (an operator, a `;`),
//! - regions: blocks of lines that move one level deeper because a new
//!   compound statement (`if not ...:`, `try:`) was put around them.
//!
//! Blocks move deeper by one space, placed after a line's own indentation:
//! relative to every other line the indentation keeps its order whether tabs
//! count as 1 or 8 columns, which is what CPython checks.

use std::fmt::Write as _;

/// A part of inserted text.
pub enum Piece {
    Text(String),
    /// A line break followed by `indent` and by one space for every region
    /// the new line is inside: the regions that strictly contain the edit's
    /// offset, plus those that start (for an opening edit) or end (for a
    /// closing edit) exactly there and belong to an outer wrapper (a higher
    /// rank). The edit's own region is never counted: the text after its
    /// line break says itself how deep it goes.
    Newline { indent: String },
}

/// Order of edits that share an offset: closing text of the nodes that end
/// there, a line's extra indentation, opening text of the nodes that start
/// there, and last the replacement of a token there (the first token of a
/// node: its wrappers open before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Close,
    Indent,
    Open,
    Replace,
}

pub struct Edit {
    pub at: u32,
    /// End of the replaced original range (== `at` for inserts).
    pub end: u32,
    pub side: Side,
    /// Wrappers made earlier are nested deeper: among opens at one offset the
    /// highest rank comes first, among closes the lowest.
    pub rank: u32,
    pub pieces: Vec<Piece>,
    /// Original offset that every position inside the inserted text maps to.
    pub anchor: u32,
    /// False for scaffolding (statement-level calls spyglass adds between
    /// statements): its instructions get no location, so that line events
    /// and tracebacks see only the user's lines.
    pub located: bool,
}

/// Lines of `start..end` move one level deeper; `rank` is that of the
/// wrapper that made the region.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u32,
    pub end: u32,
    pub rank: u32,
}

/// A run of the edited text: copied from the original (positions map
/// linearly) or inserted (positions map to `orig`, or to nothing when not
/// `located`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub out: u32,
    pub orig: u32,
    /// For inserted text: the original offset its *end* positions map to
    /// (the end of a replaced token; else `orig`).
    pub orig_end: u32,
    pub len: u32,
    pub copied: bool,
    pub located: bool,
}

#[derive(Default)]
pub struct Builder {
    pub edits: Vec<Edit>,
    pub regions: Vec<Region>,
    rank: u32,
}

impl Builder {
    pub fn next_rank(&mut self) -> u32 {
        self.rank += 1;
        self.rank
    }

    pub fn insert(&mut self, at: u32, side: Side, rank: u32, pieces: Vec<Piece>) -> usize {
        self.edits.push(Edit { at, end: at, side, rank, pieces, anchor: at, located: true });
        self.edits.len() - 1
    }

    /// Scaffolding inserts (see `Edit::located`).
    pub fn insert_quiet(&mut self, at: u32, side: Side, rank: u32, pieces: Vec<Piece>) -> usize {
        let i = self.insert(at, side, rank, pieces);
        self.edits[i].located = false;
        i
    }

    pub fn open_quiet(&mut self, at: u32, pieces: Vec<Piece>) -> usize {
        let rank = self.next_rank();
        self.insert_quiet(at, Side::Open, rank, pieces)
    }

    pub fn close_quiet(&mut self, at: u32, pieces: Vec<Piece>) -> usize {
        let rank = self.next_rank();
        self.insert_quiet(at, Side::Close, rank, pieces)
    }

    /// Puts `prefix` before and `suffix` after the original range `start..end`.
    /// Returns the indexes of the two edits.
    pub fn wrap(&mut self, start: u32, end: u32, prefix: Vec<Piece>, suffix: Vec<Piece>) -> (usize, usize) {
        let rank = self.next_rank();
        let a = self.insert(start, Side::Open, rank, prefix);
        let b = self.insert(end, Side::Close, rank, suffix);
        (a, b)
    }

    pub fn open(&mut self, at: u32, pieces: Vec<Piece>) -> usize {
        let rank = self.next_rank();
        self.insert(at, Side::Open, rank, pieces)
    }

    pub fn close(&mut self, at: u32, pieces: Vec<Piece>) -> usize {
        let rank = self.next_rank();
        self.insert(at, Side::Close, rank, pieces)
    }

    pub fn replace(&mut self, start: u32, end: u32, pieces: Vec<Piece>) -> usize {
        let rank = self.next_rank();
        self.replace_ranked(start, end, rank, pieces)
    }

    /// A replacement that belongs to a wrapper made with `rank`.
    pub fn replace_ranked(&mut self, start: u32, end: u32, rank: u32, pieces: Vec<Piece>) -> usize {
        self.edits.push(Edit { at: start, end, side: Side::Replace, rank, pieces, anchor: start, located: true });
        self.edits.len() - 1
    }

    pub fn region(&mut self, start: u32, end: u32, rank: u32) {
        self.regions.push(Region { start, end, rank });
    }
}

pub fn text(s: impl Into<String>) -> Piece {
    Piece::Text(s.into())
}

pub fn newline(indent: &str) -> Piece {
    Piece::Newline { indent: indent.to_string() }
}

pub struct Applied {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Output range of each edit, by edit index.
    pub spans: Vec<(u32, u32)>,
    /// Number of line breaks inserted before each original offset is
    /// queried through `lines_added_before`.
    inserted_newlines: Vec<u32>,
}

impl Applied {
    /// How many new lines the edits put before original offset `orig`.
    pub fn lines_added_before(&self, orig: u32) -> u32 {
        self.inserted_newlines.partition_point(|&o| o < orig) as u32
    }
}

/// Applies the edits. `multiline_tokens` are the ranges of tokens (strings,
/// f-string literal parts) whose inner lines must not be touched.
pub fn apply(source: &str, mut b: Builder, multiline_tokens: &[(u32, u32)]) -> Applied {
    add_indent_edits(source, &mut b, multiline_tokens);
    let Builder { edits, regions, .. } = b;

    let depth = RegionDepth::new(&regions);
    let mut order: Vec<usize> = (0..edits.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&edits[i], &edits[j]);
        a.at.cmp(&b.at).then(a.side.cmp(&b.side)).then_with(|| match a.side {
            Side::Open => b.rank.cmp(&a.rank),
            _ => a.rank.cmp(&b.rank),
        })
    });

    let mut out = String::with_capacity(source.len() * 2);
    let mut segments: Vec<Segment> = Vec::with_capacity(edits.len() * 2 + 1);
    let mut spans = vec![(0u32, 0u32); edits.len()];
    let mut inserted_newlines = Vec::new();
    let mut cursor = 0u32;

    let copy = |out: &mut String, segments: &mut Vec<Segment>, from: u32, to: u32| {
        if to > from {
            segments.push(Segment { out: out.len() as u32, orig: from, orig_end: to, len: to - from, copied: true, located: true });
            out.push_str(&source[from as usize..to as usize]);
        }
    };

    for &i in &order {
        let e = &edits[i];
        if e.at < cursor {
            // an edit inside a range another edit replaced: the walker never
            // produces these, so this is a bug, but keep the text well formed
            debug_assert!(false, "overlapping edit at {}", e.at);
            continue;
        }
        copy(&mut out, &mut segments, cursor, e.at);
        cursor = e.at;
        let start = out.len() as u32;
        for piece in &e.pieces {
            match piece {
                Piece::Text(s) => {
                    // `match(x)` must not become `match_sg_e(...)`
                    if s.starts_with(is_word) && out.ends_with(is_word) {
                        out.push(' ');
                    }
                    out.push_str(s);
                }
                Piece::Newline { indent } => {
                    out.push('\n');
                    out.push_str(indent);
                    for _ in 0..depth.at_edit(e) {
                        out.push(' ');
                    }
                    inserted_newlines.push(e.at);
                }
            }
        }
        let end = out.len() as u32;
        if end > start {
            let orig_end = if e.side == Side::Replace { e.end } else { e.anchor };
            segments.push(Segment { out: start, orig: e.anchor, orig_end, len: end - start, copied: false, located: e.located });
        }
        spans[i] = (start, end);
        if e.side == Side::Replace {
            cursor = e.end;
        }
    }
    copy(&mut out, &mut segments, cursor, source.len() as u32);
    inserted_newlines.sort_unstable();
    Applied { text: out, segments, spans, inserted_newlines }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Adds, at the first non-blank character of every original line inside
/// regions, one space per region that strictly contains it.
fn add_indent_edits(source: &str, b: &mut Builder, multiline_tokens: &[(u32, u32)]) {
    if b.regions.is_empty() {
        return;
    }
    let mut starts: Vec<u32> = b.regions.iter().map(|r| r.start).collect();
    let mut ends: Vec<u32> = b.regions.iter().map(|r| r.end).collect();
    starts.sort_unstable();
    ends.sort_unstable();
    let bytes = source.as_bytes();
    let (mut si, mut ei, mut tok) = (0usize, 0usize, 0usize);
    let mut new_edits = Vec::new();
    for (q, &byte) in bytes.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        let q = q as u32;
        // skip line breaks inside multi-line tokens
        while tok < multiline_tokens.len() && multiline_tokens[tok].1 <= q {
            tok += 1;
        }
        if tok < multiline_tokens.len() && multiline_tokens[tok].0 <= q {
            continue;
        }
        let mut p = q as usize + 1;
        while p < bytes.len() && matches!(bytes[p], b' ' | b'\t' | b'\x0c') {
            p += 1;
        }
        if p >= bytes.len() || matches!(bytes[p], b'\n' | b'\r') {
            continue;
        }
        let p = p as u32;
        while si < starts.len() && starts[si] < p {
            si += 1;
        }
        while ei < ends.len() && ends[ei] <= p {
            ei += 1;
        }
        // regions with start < p, minus those with end <= p (such a region
        // also has start < p, since start <= end)
        let depth = si.saturating_sub(ei);
        if depth > 0 {
            new_edits.push(Edit {
                at: p,
                end: p,
                side: Side::Indent,
                rank: 0,
                pieces: vec![Piece::Text(" ".repeat(depth))],
                anchor: p,
                located: true,
            });
        }
    }
    b.edits.extend(new_edits);
}

/// Answers "how many regions is a new line inside" in logarithmic time.
struct RegionDepth {
    starts: Vec<u32>,
    ends: Vec<u32>,
    /// (offset, rank), sorted: regions by where they start / end.
    start_ranks: Vec<(u32, u32)>,
    end_ranks: Vec<(u32, u32)>,
}

impl RegionDepth {
    fn new(regions: &[Region]) -> RegionDepth {
        let mut starts: Vec<u32> = regions.iter().map(|r| r.start).collect();
        let mut ends: Vec<u32> = regions.iter().map(|r| r.end).collect();
        let mut start_ranks: Vec<(u32, u32)> = regions.iter().map(|r| (r.start, r.rank)).collect();
        let mut end_ranks: Vec<(u32, u32)> = regions.iter().map(|r| (r.end, r.rank)).collect();
        starts.sort_unstable();
        ends.sort_unstable();
        start_ranks.sort_unstable();
        end_ranks.sort_unstable();
        RegionDepth { starts, ends, start_ranks, end_ranks }
    }

    /// Regions with start < p < end.
    fn strictly_containing(&self, p: u32) -> usize {
        let started = self.starts.partition_point(|&s| s < p);
        let ended = self.ends.partition_point(|&e| e <= p);
        started.saturating_sub(ended)
    }

    fn outer_at(list: &[(u32, u32)], p: u32, rank: u32) -> usize {
        let lo = list.partition_point(|&(o, _)| o < p);
        let hi = list.partition_point(|&(o, r)| o < p || (o == p && r <= rank));
        let end = list.partition_point(|&(o, _)| o <= p);
        debug_assert!(lo <= hi && hi <= end);
        end - hi
    }

    fn at_edit(&self, e: &Edit) -> usize {
        let mut n = self.strictly_containing(e.at);
        match e.side {
            Side::Open => n += Self::outer_at(&self.start_ranks, e.at, e.rank),
            Side::Close => n += Self::outer_at(&self.end_ranks, e.at, e.rank),
            Side::Replace | Side::Indent => {}
        }
        n
    }
}

/// Maps positions of the edited text back to the original.
pub struct PositionMap {
    segments: Vec<Segment>,
    /// Index of the segment found last (a lookup hint).
    hint: std::cell::Cell<usize>,
}

// SAFETY: `hint` is only a lookup hint; every value of it is valid (it is
// bounds-checked before use), so concurrent use could only cost speed. The
// maps are used under the GIL in any case.
unsafe impl Sync for PositionMap {}

impl PositionMap {
    pub fn new(segments: Vec<Segment>) -> PositionMap {
        PositionMap { segments, hint: std::cell::Cell::new(0) }
    }

    fn segment_at(&self, out: u32) -> Option<&Segment> {
        // lookups come in code order, mostly close to the previous one
        let hint = self.hint.get();
        if let Some(s) = self.segments.get(hint) {
            if s.out <= out && self.segments.get(hint + 1).is_none_or(|n| out < n.out) {
                return Some(s);
            }
            if let Some(n) = self.segments.get(hint + 1) {
                if n.out <= out && self.segments.get(hint + 2).is_none_or(|m| out < m.out) {
                    self.hint.set(hint + 1);
                    return Some(n);
                }
            }
        }
        let i = self.segments.partition_point(|s| s.out <= out);
        if i == 0 {
            None
        } else {
            self.hint.set(i - 1);
            Some(&self.segments[i - 1])
        }
    }

    /// Original offset of the character at edited offset `out`, and whether
    /// that character has a location (scaffolding has none).
    pub fn start_located(&self, out: u32) -> (u32, bool) {
        match self.segment_at(out) {
            None => (0, true),
            Some(s) if s.copied => (s.orig + (out - s.out).min(s.len), true),
            Some(s) => (s.orig, s.located),
        }
    }

    /// The same for an exclusive end: the character before `out`.
    pub fn end_located(&self, out: u32) -> (u32, bool) {
        if out == 0 {
            return (0, true);
        }
        match self.segment_at(out - 1) {
            None => (0, true),
            Some(s) if s.copied => (s.orig + (out - s.out).min(s.len), true),
            Some(s) => (s.orig_end, s.located),
        }
    }

    pub fn start(&self, out: u32) -> u32 {
        self.start_located(out).0
    }

    pub fn end(&self, out: u32) -> u32 {
        self.end_located(out).0
    }

    /// Serialises the map for the instrumented-code cache.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.segments.len() * 17);
        for s in &self.segments {
            v.extend_from_slice(&s.out.to_le_bytes());
            v.extend_from_slice(&s.orig.to_le_bytes());
            v.extend_from_slice(&s.orig_end.to_le_bytes());
            v.extend_from_slice(&s.len.to_le_bytes());
            v.push(if s.copied { 1 } else if s.located { 0 } else { 2 });
        }
        v
    }

    pub fn from_bytes(b: &[u8]) -> Option<PositionMap> {
        if b.len() % 17 != 0 {
            return None;
        }
        let u = |c: &[u8]| u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let segments = b
            .chunks_exact(17)
            .map(|c| Segment {
                out: u(&c[0..4]),
                orig: u(&c[4..8]),
                orig_end: u(&c[8..12]),
                len: u(&c[12..16]),
                copied: c[16] == 1,
                located: c[16] != 2,
            })
            .collect();
        Some(PositionMap::new(segments))
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            let _ = writeln!(s, "{:?}", seg);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_nest_and_map_back() {
        let src = "x = a + b\n";
        let mut b = Builder::default();
        // inner wrapper first, outer second
        b.wrap(4, 5, vec![text("E(1, ")], vec![text(")")]);
        b.wrap(4, 9, vec![text("E(2, ")], vec![text(")")]);
        let applied = apply(src, b, &[]);
        assert_eq!(applied.text, "x = E(2, E(1, a) + b)\n");
        let map = PositionMap::new(applied.segments);
        // `a` in the output is at 14
        assert_eq!(map.start(14), 4);
        assert_eq!(map.end(15), 5);
        // the inserted prefix maps to where the wrapped node starts
        assert_eq!(map.start(4), 4);
        // the closing paren of the outer wrapper maps to the node's end
        assert_eq!(map.end(21), 9);
    }

    #[test]
    fn regions_indent_lines_but_not_string_contents() {
        let src = "if a:\n    s = '''x\n  y'''\n    t = 1\nz = 2\n";
        let mut b = Builder::default();
        // put the two body statements in a new block
        let rank = b.next_rank();
        b.region(10, 35, rank);
        b.insert(10, Side::Open, rank, vec![text("try:"), newline("    "), text(" ")]);
        b.insert(35, Side::Close, rank, vec![newline("    "), text("finally: pass")]);
        let applied = apply(src, b, &[(14, 25)]);
        assert_eq!(
            applied.text,
            "if a:\n    try:\n     s = '''x\n  y'''\n     t = 1\n    finally: pass\nz = 2\n"
        );
        assert_eq!(applied.lines_added_before(10), 0);
        assert_eq!(applied.lines_added_before(11), 1);
        assert_eq!(applied.lines_added_before(36), 2);
    }

    #[test]
    fn map_round_trips_through_bytes() {
        let map = PositionMap::new(vec![
            Segment { out: 0, orig: 0, orig_end: 4, len: 4, copied: true, located: true },
            Segment { out: 4, orig: 4, orig_end: 5, len: 6, copied: false, located: false },
        ]);
        let again = PositionMap::from_bytes(&map.to_bytes()).unwrap();
        assert_eq!(again.segments, map.segments);
        assert!(PositionMap::from_bytes(&[1, 2, 3]).is_none());
    }
}
