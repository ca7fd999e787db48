//! Byte offsets <-> (line, column) in CPython's convention: lines from 1,
//! columns in UTF-8 bytes from 0.

pub struct LineIndex {
    /// Byte offset at which each line starts; `starts[0] == 0` is line 1.
    starts: Vec<u32>,
    len: u32,
    /// The line found last (a lookup hint; lookups are mostly nearby).
    hint: std::cell::Cell<usize>,
}

// SAFETY: `hint` is only a lookup hint, bounds-checked before use; any value
// is valid, so sharing can only cost speed.
unsafe impl Sync for LineIndex {}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i as u32 + 1);
            }
        }
        LineIndex { starts, len: text.len() as u32, hint: std::cell::Cell::new(0) }
    }

    pub fn line_count(&self) -> u32 {
        self.starts.len() as u32
    }

    /// (line, column) of a byte offset; offsets past the end clamp to it.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let offset = offset.min(self.len);
        let h = self.hint.get();
        let line = if h < self.starts.len() && self.starts[h] <= offset && self.starts.get(h + 1).is_none_or(|&n| offset < n) {
            h
        } else {
            let l = self.starts.partition_point(|&s| s <= offset) - 1;
            self.hint.set(l);
            l
        };
        (line as u32 + 1, offset - self.starts[line])
    }

    /// Byte offset of (line, column), clamped to the text.
    pub fn offset(&self, line: u32, col: u32) -> u32 {
        if line == 0 {
            return 0;
        }
        match self.starts.get(line as usize - 1) {
            Some(&s) => (s + col).min(self.len),
            None => self.len,
        }
    }

    pub fn line_start(&self, line: u32) -> u32 {
        self.offset(line, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = "ab\ncdé\n\nx";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_count(), 4);
        assert_eq!(idx.line_col(0), (1, 0));
        assert_eq!(idx.line_col(3), (2, 0));
        assert_eq!(idx.line_col(6), (2, 3)); // after the 2-byte é
        assert_eq!(idx.line_col(9), (4, 0));
        for off in 0..text.len() as u32 {
            let (l, c) = idx.line_col(off);
            assert_eq!(idx.offset(l, c), off);
        }
    }
}
