//! The objects a marshal stream can hold, kept in one arena per file.
//!
//! Strings and bytes are spans of the file's own data (no copy); containers
//! hold the ids of their items, so an object shared through a marshal
//! reference is stored once.

/// Index of an object in [`crate::Pyc::objects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjId(pub u32);

/// A byte range of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// How a string's bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrKind {
    /// valid UTF-8 without surrogates (ASCII included): usable as `&str`
    Utf8,
    /// UTF-8 with lone surrogates, as marshal's "surrogatepass" accepts
    Utf8Surrogates,
    /// one byte per character (marshal's ASCII types given bytes >= 0x80)
    Latin1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyStr {
    pub span: Span,
    pub kind: StrKind,
    /// written with an interned type code ('t', 'A', 'Z')
    pub interned: bool,
}

/// Kinds of the fast locals of 3.11+ (`co_localspluskinds`).
pub mod fast_kind {
    pub const HIDDEN: u8 = 0x10;
    pub const LOCAL: u8 = 0x20;
    pub const CELL: u8 = 0x40;
    pub const FREE: u8 = 0x80;
}

/// Local variable names: separate tuples up to 3.10, one "localsplus"
/// tuple with a kind byte per name from 3.11.
#[derive(Debug, Clone, PartialEq)]
pub enum Locals {
    Classic {
        varnames: ObjId,
        freevars: ObjId,
        cellvars: ObjId,
    },
    Plus {
        names: ObjId,
        kinds: ObjId,
    },
}

/// A code object, fields in the order of its version's marshal format.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// file offset of the 'c' type code
    pub offset: usize,
    pub argcount: i32,
    /// 3.8+
    pub posonlyargcount: Option<i32>,
    pub kwonlyargcount: i32,
    /// up to 3.10 (3.11+ derives it from the kinds)
    pub nlocals: Option<i32>,
    pub stacksize: i32,
    pub flags: u32,
    pub code: ObjId,
    pub consts: ObjId,
    pub names: ObjId,
    pub locals: Locals,
    pub filename: ObjId,
    pub name: ObjId,
    /// 3.11+
    pub qualname: Option<ObjId>,
    pub firstlineno: i32,
    /// lnotab (<= 3.9), linetable (3.10) or location table (3.11+)
    pub linetable: ObjId,
    /// 3.11+
    pub exceptiontable: Option<ObjId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    None,
    True,
    False,
    StopIteration,
    Ellipsis,
    Int(i64),
    /// an int too big for i64: sign and 15-bit digits, least significant first
    Long {
        negative: bool,
        digits: Box<[u16]>,
    },
    Float(f64),
    Complex(f64, f64),
    Bytes(Span),
    Str(PyStr),
    Tuple(Box<[ObjId]>),
    List(Box<[ObjId]>),
    Dict(Box<[(ObjId, ObjId)]>),
    Set(Box<[ObjId]>),
    FrozenSet(Box<[ObjId]>),
    Slice(Box<[ObjId; 3]>),
    Code(Box<Code>),
}

impl Object {
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::None => "None",
            Object::True | Object::False => "bool",
            Object::StopIteration => "StopIteration",
            Object::Ellipsis => "ellipsis",
            Object::Int(_) | Object::Long { .. } => "int",
            Object::Float(_) => "float",
            Object::Complex(..) => "complex",
            Object::Bytes(_) => "bytes",
            Object::Str(_) => "str",
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::FrozenSet(_) => "frozenset",
            Object::Slice(_) => "slice",
            Object::Code(_) => "code",
        }
    }
}

/// Decode the code points of a string: surrogates included, as Python has them.
pub fn code_points(bytes: &[u8], kind: StrKind) -> CodePoints<'_> {
    CodePoints {
        bytes,
        pos: 0,
        latin1: kind == StrKind::Latin1,
    }
}

#[derive(Clone)]
pub struct CodePoints<'a> {
    bytes: &'a [u8],
    pos: usize,
    latin1: bool,
}

impl Iterator for CodePoints<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let b = &self.bytes[self.pos..];
        let first = *b.first()?;
        if self.latin1 || first < 0x80 {
            self.pos += 1;
            return Some(first as u32);
        }
        // the bytes were validated when read: a well-formed (generalised) UTF-8 sequence
        let (len, init) = match first {
            0xc0..=0xdf => (2, (first & 0x1f) as u32),
            0xe0..=0xef => (3, (first & 0x0f) as u32),
            _ => (4, (first & 0x07) as u32),
        };
        let len = len.min(b.len());
        let cp = b[1..len]
            .iter()
            .fold(init, |acc, &c| (acc << 6) | (c & 0x3f) as u32);
        self.pos += len;
        Some(cp)
    }
}

/// Check UTF-8 as marshal does (`"surrogatepass"`). Ok(has_surrogates), or
/// the index of the first bad byte.
pub fn check_utf8_surrogatepass(bytes: &[u8]) -> Result<bool, usize> {
    if std::str::from_utf8(bytes).is_ok() {
        return Ok(false);
    }
    let mut i = 0;
    let mut surrogates = false;
    while i < bytes.len() {
        let b = bytes[i];
        let (len, min, max_second, min_second) = match b {
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            0xc2..=0xdf => (2, 0, 0xbf, 0x80),
            0xe0 => (3, 0, 0xbf, 0xa0),
            0xe1..=0xef => (3, 0, 0xbf, 0x80),
            0xf0 => (4, 0, 0xbf, 0x90),
            0xf1..=0xf3 => (4, 0, 0xbf, 0x80),
            0xf4 => (4, 0, 0x8f, 0x80),
            _ => return Err(i),
        };
        let _ = min;
        if i + len > bytes.len() {
            return Err(i);
        }
        let second = bytes[i + 1];
        if second < min_second || second > max_second {
            return Err(i);
        }
        if bytes[i + 2..i + len].iter().any(|&c| c & 0xc0 != 0x80) {
            return Err(i);
        }
        if b == 0xed && second >= 0xa0 {
            surrogates = true;
        }
        i += len;
    }
    Ok(surrogates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogatepass_accepts_lone_surrogates_only() {
        assert_eq!(check_utf8_surrogatepass("héllo €".as_bytes()), Ok(false));
        assert_eq!(check_utf8_surrogatepass(b"a\xed\xa0\x80b"), Ok(true));
        assert_eq!(check_utf8_surrogatepass(b"a\xff"), Err(1));
        assert_eq!(check_utf8_surrogatepass(b"\xe2\x82"), Err(0));
        assert_eq!(check_utf8_surrogatepass(b"\xc0\x80"), Err(0));
        let cps: Vec<u32> =
            code_points(b"a\xed\xa0\x80\xf0\x9f\x98\x80", StrKind::Utf8Surrogates).collect();
        assert_eq!(cps, vec![0x61, 0xd800, 0x1f600]);
        let cps: Vec<u32> = code_points(b"\xe9", StrKind::Latin1).collect();
        assert_eq!(cps, vec![0xe9]);
    }
}
