//! Line tables of each era, decoded exactly as each version's `dis` and code
//! objects do:
//!
//! * 3.6-3.9: `co_lnotab`, pairs of (byte increment, signed line increment);
//! * 3.10: PEP 626 `co_linetable`, pairs of (byte delta, line delta; -128 = no line);
//! * 3.11+: the location table: entries of 1-8 code units with line, end line
//!   and columns (Objects/locations.md in CPython).
//!
//! Decoders never read past the table: a truncated entry ends the table.

/// One range of `co_lines()`: code offsets [start, end) and their line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    pub start: u32,
    pub end: u32,
    pub line: Option<i32>,
}

/// (line, end line, column, end column) of one code unit; None where CPython has None.
pub type Position = [Option<i32>; 4];

/// `dis.findlinestarts` of 3.6-3.9, from `co_lnotab`. From 3.8 on, entries
/// past the end of the bytecode are dropped (`code_len`).
pub fn lnotab_linestarts(
    minor: u8,
    lnotab: &[u8],
    firstlineno: i32,
    code_len: usize,
) -> Vec<(u32, Option<i32>)> {
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    let mut line = firstlineno as i64;
    let mut addr: u64 = 0;
    for pair in lnotab.chunks_exact(2) {
        let (byte_incr, line_incr) = (pair[0], pair[1]);
        if byte_incr != 0 {
            if Some(line) != last {
                out.push((addr as u32, Some(line as i32)));
                last = Some(line);
            }
            addr += byte_incr as u64;
            if minor >= 8 && addr >= code_len as u64 {
                return out;
            }
        }
        line += line_incr as i8 as i64;
    }
    if Some(line) != last {
        out.push((addr as u32, Some(line as i32)));
    }
    out
}

/// `code.co_lines()` of 3.10, from the PEP 626 line table.
pub fn linetable_310(table: &[u8], firstlineno: i32) -> Vec<LineRange> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut end: u32 = 0;
    let mut computed = firstlineno;
    // one step of the C `advance()`; None at the end of the table
    let mut advance = |pos: &mut usize, end: &mut u32| -> Option<(u32, u32, Option<i32>)> {
        if *pos + 2 > table.len() {
            return None;
        }
        let start = *end;
        *end = end.wrapping_add(table[*pos] as u32);
        let ldelta = table[*pos + 1] as i8;
        *pos += 2;
        let line = if ldelta == -128 {
            None
        } else {
            computed = computed.wrapping_add(ldelta as i32);
            Some(computed)
        };
        Some((start, *end, line))
    };
    while let Some(mut r) = advance(&mut pos, &mut end) {
        // empty ranges are skipped (PyLineTable_NextAddressRange)
        let mut ok = true;
        while r.0 == r.1 {
            match advance(&mut pos, &mut end) {
                Some(next) => r = next,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break;
        }
        out.push(LineRange {
            start: r.0,
            end: r.1,
            line: r.2,
        });
    }
    out
}

fn read_varint(t: &[u8], pos: &mut usize) -> Option<u32> {
    let mut b = *t.get(*pos)?;
    *pos += 1;
    let mut val = (b & 63) as u32;
    let mut shift = 0u32;
    while b & 64 != 0 {
        b = *t.get(*pos)?;
        *pos += 1;
        shift += 6;
        if shift < 32 {
            val |= ((b & 63) as u32) << shift;
        }
    }
    Some(val)
}

fn read_svarint(t: &[u8], pos: &mut usize) -> Option<i32> {
    let u = read_varint(t, pos)?;
    Some(if u & 1 != 0 {
        -((u >> 1) as i32)
    } else {
        (u >> 1) as i32
    })
}

/// The line delta of the entry at `t[pos]` without consuming it (`get_line_delta`).
fn entry_line_delta(t: &[u8], pos: usize) -> i32 {
    let code = (t[pos] >> 3) & 15;
    match code {
        15 => 0,
        13 | 14 => {
            let mut p = pos + 1;
            read_svarint(t, &mut p).unwrap_or(0)
        }
        10..=12 => code as i32 - 10,
        _ => 0,
    }
}

/// `code.co_lines()` of 3.11+, from the location table. From 3.12 on,
/// consecutive ranges of the same line are merged (`merge`), as
/// `lineiter_next` does; 3.11 reports one range per table entry.
pub fn location_lines(table: &[u8], firstlineno: i32, merge: bool) -> Vec<LineRange> {
    let mut raw: Vec<LineRange> = Vec::new();
    let mut pos = 0;
    let mut end: u32 = 0;
    let mut computed = firstlineno;
    while pos < table.len() {
        let first = table[pos];
        computed = computed.wrapping_add(entry_line_delta(table, pos));
        let line = if first >> 3 == 0x1f {
            None
        } else {
            Some(computed)
        };
        let start = end;
        end = end.wrapping_add(((first & 7) as u32 + 1) * 2);
        pos += 1;
        while pos < table.len() && table[pos] & 128 == 0 {
            pos += 1;
        }
        raw.push(LineRange { start, end, line });
    }
    if !merge {
        return raw;
    }
    let mut out: Vec<LineRange> = Vec::with_capacity(raw.len());
    for r in raw {
        match out.last_mut() {
            Some(last) if last.line == r.line => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// `code.co_positions()` of 3.11+: one position per code unit the table covers.
pub fn location_positions(table: &[u8], firstlineno: i32) -> Vec<Position> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut computed = firstlineno;
    let opt = |v: i32| if v == -1 { None } else { Some(v) };
    while pos < table.len() {
        let first = table[pos];
        pos += 1;
        let code = (first >> 3) & 15;
        let units = (first & 7) as usize + 1;
        let entry = (|| -> Option<Position> {
            Some(match code {
                15 => [None; 4],
                14 => {
                    computed = computed.wrapping_add(read_svarint(table, &mut pos)?);
                    let endline = computed.wrapping_add(read_varint(table, &mut pos)? as i32);
                    let col = (read_varint(table, &mut pos)? as i32).wrapping_sub(1);
                    let endcol = (read_varint(table, &mut pos)? as i32).wrapping_sub(1);
                    [opt(computed), opt(endline), opt(col), opt(endcol)]
                }
                13 => {
                    computed = computed.wrapping_add(read_svarint(table, &mut pos)?);
                    [opt(computed), opt(computed), None, None]
                }
                10..=12 => {
                    computed = computed.wrapping_add(code as i32 - 10);
                    let col = *table.get(pos)? as i32;
                    let endcol = *table.get(pos + 1)? as i32;
                    pos += 2;
                    [opt(computed), opt(computed), Some(col), Some(endcol)]
                }
                _ => {
                    let second = *table.get(pos)? as i32;
                    pos += 1;
                    let col = (code as i32) << 3 | (second >> 4);
                    [
                        opt(computed),
                        opt(computed),
                        Some(col),
                        Some(col + (second & 15)),
                    ]
                }
            })
        })();
        match entry {
            Some(p) => out.extend(std::iter::repeat_n(p, units)),
            None => break,
        }
    }
    out
}

/// `dis.findlinestarts(code)` of CPython 3.`minor`: (offset, line) pairs.
/// 3.10-3.12 skip ranges without a line and repeats of the last line; 3.13+
/// report every change, a change to "no line" (None) included.
pub fn findlinestarts(
    minor: u8,
    table: &[u8],
    firstlineno: i32,
    code_len: usize,
) -> Vec<(u32, Option<i32>)> {
    match minor {
        0..=9 => lnotab_linestarts(minor, table, firstlineno, code_len),
        _ => {
            let ranges = if minor == 10 {
                linetable_310(table, firstlineno)
            } else {
                location_lines(table, firstlineno, minor >= 12)
            };
            let mut out = Vec::new();
            if minor <= 12 {
                let mut last = None;
                for r in ranges {
                    if r.line.is_some() && r.line != last {
                        last = r.line;
                        out.push((r.start, r.line));
                    }
                }
            } else {
                let mut last: Option<Option<i32>> = None;
                for r in ranges {
                    if last != Some(r.line) {
                        last = Some(r.line);
                        out.push((r.start, r.line));
                    }
                }
            }
            out
        }
    }
}

/// `co_lines()` for any version (3.6-3.9 derived from the line starts, as
/// CPython 3.10+ would for such a table).
pub fn co_lines(minor: u8, table: &[u8], firstlineno: i32, code_len: usize) -> Vec<LineRange> {
    match minor {
        0..=9 => {
            let starts = lnotab_linestarts(minor, table, firstlineno, code_len);
            let mut out = Vec::with_capacity(starts.len());
            for (i, &(start, line)) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map(|s| s.0).unwrap_or(code_len as u32);
                if end > start {
                    out.push(LineRange { start, end, line });
                }
            }
            out
        }
        10 => linetable_310(table, firstlineno),
        _ => location_lines(table, firstlineno, minor >= 12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_signed_increments() {
        // 3.8: offsets 0 -> line 1, 4 -> line 3, 10 -> line 2 (increment 0xff = -1)
        let starts = lnotab_linestarts(8, &[4, 2, 6, 0xff], 1, 20);
        assert_eq!(starts, vec![(0, Some(1)), (4, Some(3)), (10, Some(2))]);
        // 3.8 drops entries past the end of the bytecode; 3.7 does not
        assert_eq!(lnotab_linestarts(8, &[4, 2, 6, 1], 1, 10).len(), 2);
        assert_eq!(lnotab_linestarts(7, &[4, 2, 6, 1], 1, 10).len(), 3);
    }

    #[test]
    fn linetable_310_skips_empty_ranges_and_no_line() {
        // (2, +0) (0, +1) (4, +1) (2, -128)
        let r = linetable_310(&[2, 0, 0, 1, 4, 1, 2, 0x80], 5);
        assert_eq!(
            r,
            vec![
                LineRange {
                    start: 0,
                    end: 2,
                    line: Some(5)
                },
                LineRange {
                    start: 2,
                    end: 6,
                    line: Some(7)
                },
                LineRange {
                    start: 6,
                    end: 8,
                    line: None
                },
            ]
        );
        assert_eq!(
            findlinestarts(10, &[2, 0, 0, 1, 4, 1, 2, 0x80], 5, 8),
            vec![(0, Some(5)), (2, Some(7))]
        );
    }

    #[test]
    fn location_table_forms() {
        // short form (code 0, 1 unit, col 1..3), one-line form +1 (code 11, 2 units, cols 4..9),
        // no-column form (code 13, 1 unit, delta -1), long form (code 14), no location (code 15)
        let table = [
            0x80,
            0x12, // code 0: col 0<<3 | 1, end col 1 + 2
            0x80 | (11 << 3) | 1,
            4,
            9,
            0x80 | (13 << 3),
            3, // svarint 3 -> -1
            0x80 | (14 << 3),
            4,
            2,
            5,
            7, // line +2, end line +2, col 4, end col 6
            0x80 | (15 << 3) | 2,
        ];
        let p = location_positions(&table, 10);
        assert_eq!(p.len(), 1 + 2 + 1 + 1 + 3);
        assert_eq!(p[0], [Some(10), Some(10), Some(1), Some(3)]);
        assert_eq!(p[1], [Some(11), Some(11), Some(4), Some(9)]);
        assert_eq!(p[2], p[1]);
        assert_eq!(p[3], [Some(10), Some(10), None, None]);
        assert_eq!(p[4], [Some(12), Some(14), Some(4), Some(6)]);
        assert_eq!(p[5], [None; 4]);
        assert_eq!(location_lines(&table, 10, false).len(), 5);
        let lines = location_lines(&table, 10, true);
        assert_eq!(
            lines,
            vec![
                LineRange {
                    start: 0,
                    end: 2,
                    line: Some(10)
                },
                LineRange {
                    start: 2,
                    end: 6,
                    line: Some(11)
                },
                LineRange {
                    start: 6,
                    end: 8,
                    line: Some(10)
                },
                LineRange {
                    start: 8,
                    end: 10,
                    line: Some(12)
                },
                LineRange {
                    start: 10,
                    end: 16,
                    line: None
                },
            ]
        );
        // 3.12 skips the no-line range; 3.13 reports it
        assert_eq!(findlinestarts(12, &table, 10, 16).len(), 4);
        assert_eq!(findlinestarts(13, &table, 10, 16).last(), Some(&(10, None)));
    }

    #[test]
    fn truncated_tables_end_quietly() {
        assert!(location_positions(&[0x80 | (14 << 3), 0x40], 1).is_empty());
        assert_eq!(linetable_310(&[2], 1), vec![]);
        assert_eq!(location_lines(&[0x80 | (13 << 3)], 1, true).len(), 1);
    }
}
