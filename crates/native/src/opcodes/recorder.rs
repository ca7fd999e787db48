//! The native recorder's file format: a stream of small varint records,
//! then a JSON footer written by Python (code table, source), then a trailer.
//!
//! ```text
//! "SGOPS\0\x01\0"                      magic + format version 1
//! records:
//!   0x01 INSTR   offset/2, depth, nvalues, nvalues x (len, utf-8)   values top-most last
//!   0x02 ENTER   serial, code id, parent serial + 1 (0 = none), call depth, kind (0 start, 1 resume, 2 throw)
//!   0x03 EXIT    serial, kind (0 return, 1 yield, 2 raise, 3 still running at trace end), has value, [len, utf-8]
//!   0x04 SWITCH  serial                  the following instructions run in that frame
//!   0x05 TRUNCATED                       max_events reached: nothing follows but the footer
//! control-flow records (method "control-flow", 3.12+: no INSTR records;
//! the reader rebuilds the instructions between them from the code table):
//!   0x06 BEGIN   serial, how (0 about to run, 1 in flight), offset/2
//!   0x07 REACH   serial, offset/2        the frame ran up to this instruction (in flight)
//!   0x08 JUMP    how (0 jump/branch, 1 branch left, 2 branch right), from/2, to/2
//!   0x09 RAISE   offset/2                an exception is raised at or comes out of it
//!   0x0a HANDLED offset/2                an exception handler starts here
//! footer: JSON (utf-8)
//! trailer: footer offset (u64 LE), "SGOPSEND"
//! ```
//! All integers are unsigned LEB128.
use std::fs::File;
use std::io::{self, Seek, Write};

pub const MAGIC: &[u8; 8] = b"SGOPS\0\x01\0";
pub const TRAILER: &[u8; 8] = b"SGOPSEND";
pub const INSTR: u8 = 1;
pub const ENTER: u8 = 2;
pub const EXIT: u8 = 3;
pub const SWITCH: u8 = 4;
pub const TRUNCATED: u8 = 5;
pub const BEGIN: u8 = 6;
pub const REACH: u8 = 7;
pub const JUMP: u8 = 8;
pub const RAISE: u8 = 9;
pub const HANDLED: u8 = 10;

pub struct Writer {
    out: File,
    buf: Vec<u8>,
    pub events: u64,
    pub max_events: u64,
    pub truncated: bool,
    pub error: Option<io::Error>,
    /// Every record counts toward `max_events`, not only instructions (a
    /// control-flow recording, where frame records can outnumber the rest).
    pub count_all: bool,
}

#[inline]
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A record under construction, for the rare records (frame entries and
/// exits); instructions are written straight into the writer's buffer.
#[derive(Default)]
pub struct Rec(pub Vec<u8>);

impl Rec {
    pub fn new(tag: u8) -> Rec {
        let mut v = Vec::with_capacity(16);
        v.push(tag);
        Rec(v)
    }
    pub fn u(&mut self, v: u64) -> &mut Self {
        varint(&mut self.0, v);
        self
    }
    pub fn s(&mut self, s: &str) -> &mut Self {
        varint(&mut self.0, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

const FLUSH_AT: usize = 1 << 20;

impl Writer {
    pub fn create(path: &str, max_events: u64) -> io::Result<Writer> {
        let out = File::create(path)?;
        let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
        buf.extend_from_slice(MAGIC);
        Ok(Writer { out, buf, events: 0, max_events, truncated: false, error: None, count_all: false })
    }

    /// Whether another instruction may be recorded.
    #[inline]
    pub fn room(&mut self) -> bool {
        if self.truncated || self.error.is_some() {
            return false;
        }
        if self.events >= self.max_events {
            self.truncated = true;
            self.buf.push(TRUNCATED);
            return false;
        }
        true
    }

    pub fn push(&mut self, rec: &Rec) {
        if self.count_all {
            if !self.room() {
                return;
            }
            self.events += 1;
        }
        if !self.truncated {
            self.buf.extend_from_slice(&rec.0);
            self.end();
        }
    }

    #[inline]
    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    #[inline]
    pub fn u(&mut self, v: u64) {
        varint(&mut self.buf, v);
    }

    pub fn s(&mut self, s: &str) {
        varint(&mut self.buf, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Ends a record: writes the buffer out once it is large.
    #[inline]
    pub fn end(&mut self) {
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }

    /// Appends the footer and trailer, and closes the file.
    pub fn finish(mut self, footer: &[u8]) -> io::Result<()> {
        self.flush();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let at = self.out.stream_position()?;
        self.out.write_all(footer)?;
        self.out.write_all(&at.to_le_bytes())?;
        self.out.write_all(TRAILER)?;
        self.out.flush()
    }
}

// ---------------------------------------------------------------- reading

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Instr { offset: u32, depth: u32, values: Option<Vec<String>> },
    Enter { serial: u64, code: u32, parent: Option<u64>, depth: u32, kind: u8 },
    Exit { serial: u64, kind: u8, value: Option<String> },
    Switch { serial: u64 },
    Truncated,
    Begin { serial: u64, in_flight: bool, offset: u32 },
    Reach { serial: u64, offset: u32 },
    Jump { how: u8, from: u32, to: u32 },
    Raise { offset: u32 },
    Handled { offset: u32 },
}

pub struct Decoded {
    pub records: Vec<Record>,
    pub footer: Vec<u8>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.at).ok_or_else(|| format!("record truncated at byte {}", self.at))?;
        self.at += 1;
        Ok(v)
    }
    fn u(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint too long at byte {}", self.at))
    }
    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.u()?).map_err(|_| format!("value out of range at byte {}", self.at))
    }
    /// A byte offset stored as offset / 2.
    fn offset(&mut self) -> Result<u32, String> {
        self.u32()?.checked_mul(2).ok_or_else(|| format!("offset overflow at byte {}", self.at))
    }
    fn s(&mut self) -> Result<String, String> {
        let n = self.u()? as usize;
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("string of {n} bytes runs past the records at byte {}", self.at))?;
        let s = String::from_utf8_lossy(&self.b[self.at..end]).into_owned();
        self.at = end;
        Ok(s)
    }
}

/// Parses a recording. `limit` bounds the number of records returned.
pub fn decode(data: &[u8], limit: usize) -> Result<Decoded, String> {
    if data.len() < 24 || &data[..8] != MAGIC {
        return Err("not a spyglass opcode recording (bad magic)".into());
    }
    if &data[data.len() - 8..] != TRAILER {
        return Err("recording is incomplete (no trailer): was the traced run interrupted?".into());
    }
    let at_bytes: [u8; 8] = data[data.len() - 16..data.len() - 8].try_into().unwrap_or_default();
    let footer_at = u64::from_le_bytes(at_bytes) as usize;
    if footer_at < 8 || footer_at > data.len() - 16 {
        return Err(format!("footer offset {footer_at} is out of range"));
    }
    let body = &data[8..footer_at];
    let footer = data[footer_at..data.len() - 16].to_vec();
    let mut c = Cursor { b: body, at: 0 };
    let mut records = Vec::new();
    while c.at < body.len() && records.len() < limit {
        let tag = c.byte()?;
        let r = match tag {
            INSTR => {
                let offset = c.offset()?;
                let depth = c.u32()?;
                let n = c.u()? as usize;
                if n > depth as usize + 1 {
                    return Err(format!("{n} values for a stack of depth {depth}"));
                }
                let values = if n == 0 && depth > 0 {
                    None
                } else {
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(c.s()?);
                    }
                    Some(v)
                };
                Record::Instr { offset, depth, values }
            }
            ENTER => {
                let serial = c.u()?;
                let code = c.u32()?;
                let parent = c.u()?.checked_sub(1);
                let depth = c.u32()?;
                let kind = c.byte()?;
                Record::Enter { serial, code, parent, depth, kind }
            }
            EXIT => {
                let serial = c.u()?;
                let kind = c.byte()?;
                let value = if c.byte()? != 0 { Some(c.s()?) } else { None };
                Record::Exit { serial, kind, value }
            }
            SWITCH => Record::Switch { serial: c.u()? },
            TRUNCATED => Record::Truncated,
            BEGIN => {
                let serial = c.u()?;
                let in_flight = c.byte()? != 0;
                Record::Begin { serial, in_flight, offset: c.offset()? }
            }
            REACH => {
                let serial = c.u()?;
                Record::Reach { serial, offset: c.offset()? }
            }
            JUMP => {
                let how = c.byte()?;
                let from = c.offset()?;
                Record::Jump { how, from, to: c.offset()? }
            }
            RAISE => Record::Raise { offset: c.offset()? },
            HANDLED => Record::Handled { offset: c.offset()? },
            other => return Err(format!("unknown record tag {other} at byte {}", c.at + 7)),
        };
        records.push(r);
    }
    Ok(Decoded { records, footer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("sgops-test-{}", std::process::id()));
        let path = dir.to_str().unwrap().to_owned();
        let mut w = Writer::create(&path, 2).unwrap();
        w.push(Rec::new(ENTER).u(1).u(0).u(0).u(0).u(0));
        w.push(Rec::new(BEGIN).u(1).u(1).u(3));
        w.push(Rec::new(JUMP).u(2).u(200).u(4));
        w.push(Rec::new(RAISE).u(5));
        w.push(Rec::new(HANDLED).u(6));
        w.push(Rec::new(REACH).u(1).u(7));
        for (off, depth) in [(2u64, 0u64), (300, 1), (4, 2)] {
            if w.room() {
                w.events += 1;
                let mut r = Rec::new(INSTR);
                r.u(off / 2).u(depth).u(depth.min(1));
                if depth > 0 {
                    r.s("é1");
                }
                w.push(&r);
            }
        }
        w.push(Rec::new(EXIT).u(1).u(0).u(1).s("None"));
        w.finish(b"{}").unwrap();
        let data = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let d = decode(&data, usize::MAX).unwrap();
        assert_eq!(d.footer, b"{}");
        assert_eq!(
            d.records,
            vec![
                Record::Enter { serial: 1, code: 0, parent: None, depth: 0, kind: 0 },
                Record::Begin { serial: 1, in_flight: true, offset: 6 },
                Record::Jump { how: 2, from: 400, to: 8 },
                Record::Raise { offset: 10 },
                Record::Handled { offset: 12 },
                Record::Reach { serial: 1, offset: 14 },
                Record::Instr { offset: 2, depth: 0, values: Some(vec![]) },
                Record::Instr { offset: 300, depth: 1, values: Some(vec!["é1".into()]) },
                Record::Truncated,
            ]
        );
        // hostile input: errors, never panics
        for cut in 0..data.len() {
            let _ = decode(&data[..cut], usize::MAX);
        }
        let mut bad = data.clone();
        bad[9] = 0xff;
        let _ = decode(&bad, usize::MAX);
    }
}
