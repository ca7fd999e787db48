//! The location table of CPython 3.11+ code objects (`co_linetable`), as
//! described in CPython's Objects/locations.md: decode, and encode back in
//! the most compact form, so that instrumented code can carry the original
//! positions.

/// Where the instructions of one entry come from. Columns are UTF-8 byte
/// offsets; `None` where the table records none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub line: i32,
    pub end_line: i32,
    pub col: Option<u32>,
    pub end_col: Option<u32>,
}

/// One entry: `units` code units (1..=8) and their location, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub units: u8,
    pub loc: Option<Loc>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub usize);

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let v = *self.b.get(self.i).ok_or(Malformed(self.i))?;
        self.i += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u32, Malformed> {
        let mut shift = 0u32;
        let mut v = 0u32;
        loop {
            let b = self.byte()?;
            if shift > 28 {
                return Err(Malformed(self.i));
            }
            v |= ((b & 63) as u32) << shift;
            shift += 6;
            if b & 64 == 0 {
                return Ok(v);
            }
        }
    }

    fn svarint(&mut self) -> Result<i32, Malformed> {
        let u = self.varint()?;
        Ok(if u & 1 != 0 { -((u >> 1) as i32) } else { (u >> 1) as i32 })
    }
}

pub fn decode(table: &[u8], firstlineno: i32) -> Result<Vec<Entry>, Malformed> {
    let mut r = Reader { b: table, i: 0 };
    let mut line = firstlineno;
    let mut out = Vec::new();
    while r.i < table.len() {
        let at = r.i;
        let first = r.byte()?;
        if first & 0x80 == 0 {
            return Err(Malformed(at));
        }
        let code = (first >> 3) & 15;
        let units = (first & 7) + 1;
        let loc = match code {
            15 => None,
            14 => {
                line += r.svarint()?;
                let end_line = line + r.varint()? as i32;
                let col = r.varint()?;
                let end_col = r.varint()?;
                Some(Loc {
                    line,
                    end_line,
                    col: col.checked_sub(1),
                    end_col: end_col.checked_sub(1),
                })
            }
            13 => {
                line += r.svarint()?;
                Some(Loc { line, end_line: line, col: None, end_col: None })
            }
            10..=12 => {
                line += (code - 10) as i32;
                let col = r.byte()? as u32;
                let end_col = r.byte()? as u32;
                Some(Loc { line, end_line: line, col: Some(col), end_col: Some(end_col) })
            }
            _ => {
                let second = r.byte()?;
                let col = code as u32 * 8 + ((second >> 4) & 7) as u32;
                let end_col = col + (second & 15) as u32;
                Some(Loc { line, end_line: line, col: Some(col), end_col: Some(end_col) })
            }
        };
        out.push(Entry { units, loc });
    }
    Ok(out)
}

fn write_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 64 {
        out.push(64 | (v & 63) as u8);
        v >>= 6;
    }
    out.push(v as u8);
}

fn write_svarint(out: &mut Vec<u8>, v: i32) {
    let u = if v < 0 { ((-(v as i64)) as u32) << 1 | 1 } else { (v as u32) << 1 };
    write_varint(out, u);
}

pub fn encode(entries: &[Entry], firstlineno: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 2);
    let mut prev = firstlineno;
    for e in entries {
        let units = e.units.clamp(1, 8) - 1;
        let Some(loc) = e.loc else {
            out.push(0x80 | (15 << 3) | units);
            continue;
        };
        let delta = loc.line - prev;
        prev = loc.line;
        match (loc.col, loc.end_col) {
            (Some(col), Some(end_col)) if loc.end_line == loc.line => {
                if delta == 0 && col < 80 && end_col >= col && end_col - col < 16 {
                    out.push(0x80 | (((col / 8) as u8) << 3) | units);
                    out.push((((col % 8) as u8) << 4) | (end_col - col) as u8);
                } else if (0..3).contains(&delta) && col < 128 && end_col < 128 {
                    out.push(0x80 | ((10 + delta as u8) << 3) | units);
                    out.push(col as u8);
                    out.push(end_col as u8);
                } else {
                    long(&mut out, units, delta, loc);
                }
            }
            (None, None) if loc.end_line == loc.line => {
                out.push(0x80 | (13 << 3) | units);
                write_svarint(&mut out, delta);
            }
            _ => long(&mut out, units, delta, loc),
        }
    }
    out
}

fn long(out: &mut Vec<u8>, units: u8, delta: i32, loc: Loc) {
    out.push(0x80 | (14 << 3) | units);
    write_svarint(out, delta);
    write_varint(out, (loc.end_line - loc.line).max(0) as u32);
    write_varint(out, loc.col.map_or(0, |c| c + 1));
    write_varint(out, loc.end_col.map_or(0, |c| c + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(line: i32, end_line: i32, col: Option<u32>, end_col: Option<u32>) -> Option<Loc> {
        Some(Loc { line, end_line, col, end_col })
    }

    #[test]
    fn every_form_round_trips() {
        let entries = vec![
            Entry { units: 1, loc: loc(3, 3, Some(0), Some(0)) },
            Entry { units: 2, loc: loc(3, 3, Some(4), Some(12)) },   // short
            Entry { units: 8, loc: loc(5, 5, Some(100), Some(120)) }, // one-line, delta 2
            Entry { units: 3, loc: loc(4, 9, Some(1), Some(2)) },     // long, negative delta
            Entry { units: 1, loc: None },
            Entry { units: 4, loc: loc(40, 40, None, None) },         // no column
            Entry { units: 1, loc: loc(40, 41, None, None) },         // long without columns
            Entry { units: 5, loc: loc(40, 40, Some(300), Some(2000)) },
        ];
        let bytes = encode(&entries, 3);
        assert_eq!(decode(&bytes, 3).unwrap(), entries);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(decode(&[0x01], 1).is_err());
        assert!(decode(&[0x80 | (14 << 3)], 1).is_err());
        assert!(decode(&[0x80 | (14 << 3), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1).is_err());
    }
}
