//! The 3.11+ exception table (`co_exceptiontable`), decoded as `dis` does:
//! entries of (start, length, target, depth << 1 | lasti), each a big-endian
//! varint of 6-bit chunks with 0x40 as the continuation bit; offsets are in
//! code units. A truncated entry ends the table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// byte offsets: [start, end) is covered, `target` is the handler
    pub start: u64,
    pub end: u64,
    pub target: u64,
    pub depth: u64,
    pub lasti: bool,
}

fn varint(t: &[u8], pos: &mut usize) -> Option<u64> {
    let mut b = *t.get(*pos)?;
    *pos += 1;
    let mut val = (b & 63) as u64;
    while b & 64 != 0 {
        b = *t.get(*pos)?;
        *pos += 1;
        val = val.wrapping_shl(6) | (b & 63) as u64;
    }
    Some(val)
}

pub fn parse(table: &[u8]) -> Vec<ExceptionEntry> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let entry = (|| {
            let start = varint(table, &mut pos)?.wrapping_mul(2);
            let length = varint(table, &mut pos)?.wrapping_mul(2);
            let target = varint(table, &mut pos)?.wrapping_mul(2);
            let dl = varint(table, &mut pos)?;
            Some(ExceptionEntry {
                start,
                end: start.wrapping_add(length),
                target,
                depth: dl >> 1,
                lasti: dl & 1 != 0,
            })
        })();
        match entry {
            Some(e) => out.push(e),
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_entries_like_dis() {
        // start 2, length 3, target 70 (= 1<<6 | 6: two chunks), depth 1, lasti
        let t = [0x80 | 2, 3, 0x40 | 1, 6, 3];
        assert_eq!(
            parse(&t),
            vec![ExceptionEntry {
                start: 4,
                end: 10,
                target: 140,
                depth: 1,
                lasti: true
            }]
        );
        // truncated second entry is dropped
        assert_eq!(parse(&[0x80 | 2, 3, 4, 2, 0x81, 1]).len(), 1);
        assert!(parse(&[]).is_empty());
    }
}
