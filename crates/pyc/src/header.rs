//! The `.pyc` header: magic number, PEP 552 flags, and timestamp + source
//! size or source hash. 8 bytes up to 3.2, 12 bytes in 3.3-3.6, 16 from 3.7.

use crate::error::{Error, Result};
use crate::magic::{self, MagicInfo};
use crate::siphash;

/// How the interpreter decides whether the `.pyc` is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Source modification time (seconds) and, from 3.3, source size mod 2**32.
    Timestamp {
        mtime: u32,
        source_size: Option<u32>,
    },
    /// PEP 552: SipHash of the source; `check_source` is flag bit 1.
    Hash { hash: [u8; 8], check_source: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub magic_bytes: [u8; 4],
    pub info: MagicInfo,
    /// PEP 552 flags (3.7+)
    pub flags: Option<u32>,
    pub invalidation: Invalidation,
    /// length of the header; the marshalled code object starts here
    pub len: usize,
}

/// Header length for a magic number of the 3.x line: the source size was added
/// by 3210 (3.3a1), the flags word by 3392 (3.7a4, PEP 552).
fn header_len(info: &MagicInfo) -> usize {
    if info.major < 3 || info.magic < 3210 {
        8
    } else if info.magic < 3392 {
        12
    } else {
        16
    }
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"))
}

impl Header {
    pub fn parse(data: &[u8]) -> Result<Header> {
        if data.len() < 4 {
            return Err(Error::new(
                data.len(),
                format!(
                    "truncated header: expected a 4-byte magic number, the file has {} bytes",
                    data.len()
                ),
            ));
        }
        let magic_bytes: [u8; 4] = data[..4].try_into().expect("4 bytes");
        if magic_bytes[2..] != *b"\r\n" {
            return Err(Error::new(
                0,
                format!(
                    "bad magic number {}: not a .pyc file (expected 2 bytes of version number then \\r\\n)",
                    hex(&magic_bytes)
                ),
            ));
        }
        let number = u16::from_le_bytes([magic_bytes[0], magic_bytes[1]]);
        let info = magic::lookup(number).ok_or_else(|| {
            Error::new(
                0,
                format!(
                    "unknown magic number {number} ({}): not a CPython release this reader knows (3.0-3.14 use 3000-3627)",
                    hex(&magic_bytes)
                ),
            )
        })?;
        let len = header_len(&info);
        if data.len() < len {
            return Err(Error::new(
                data.len(),
                format!(
                    "truncated header: a {} .pyc header has {len} bytes, the file has {}",
                    info.label,
                    data.len()
                ),
            ));
        }
        let (flags, invalidation) = if len == 16 {
            let flags = u32_at(data, 4);
            if flags & !0b11 != 0 {
                return Err(Error::new(
                    4,
                    format!("invalid PEP 552 flags 0x{flags:x}: only bits 0 and 1 are defined"),
                ));
            }
            let inv = if flags & 1 != 0 {
                Invalidation::Hash {
                    hash: data[8..16].try_into().expect("8 bytes"),
                    check_source: flags & 2 != 0,
                }
            } else {
                Invalidation::Timestamp {
                    mtime: u32_at(data, 8),
                    source_size: Some(u32_at(data, 12)),
                }
            };
            (Some(flags), inv)
        } else {
            let size = (len == 12).then(|| u32_at(data, 8));
            (
                None,
                Invalidation::Timestamp {
                    mtime: u32_at(data, 4),
                    source_size: size,
                },
            )
        };
        Ok(Header {
            magic_bytes,
            info,
            flags,
            invalidation,
            len,
        })
    }

    /// Whether `source` is what this `.pyc` was compiled from, by the check
    /// its own interpreter would make (hash or size; a timestamp cannot be
    /// checked from bytes alone, so only its size is).
    pub fn check_source(&self, source: &[u8]) -> SourceCheck {
        match &self.invalidation {
            Invalidation::Hash { hash, .. } => {
                match siphash::source_hash(self.info.minor, self.magic_bytes, source) {
                    Some(h) if &h == hash => SourceCheck::Match,
                    Some(h) => SourceCheck::Mismatch {
                        expected: hex(hash),
                        found: hex(&h),
                    },
                    None => SourceCheck::Unchecked,
                }
            }
            Invalidation::Timestamp {
                source_size: Some(size),
                ..
            } => {
                if *size == source.len() as u32 {
                    SourceCheck::Match
                } else {
                    SourceCheck::Mismatch {
                        expected: size.to_string(),
                        found: (source.len() as u32).to_string(),
                    }
                }
            }
            Invalidation::Timestamp {
                source_size: None, ..
            } => SourceCheck::Unchecked,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCheck {
    Match,
    Mismatch { expected: String, found: String },
    Unchecked,
}

pub fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_magic(magic: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = magic.to_le_bytes().to_vec();
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn layouts_of_each_era() {
        let h = Header::parse(&with_magic(3131, &[1, 0, 0, 0])).unwrap();
        assert_eq!((h.len, h.flags), (8, None));
        assert_eq!(
            h.invalidation,
            Invalidation::Timestamp {
                mtime: 1,
                source_size: None
            }
        );
        let h = Header::parse(&with_magic(3379, &[1, 0, 0, 0, 7, 0, 0, 0])).unwrap();
        assert_eq!(h.len, 12);
        assert_eq!(
            h.invalidation,
            Invalidation::Timestamp {
                mtime: 1,
                source_size: Some(7)
            }
        );
        let h = Header::parse(&with_magic(3495, &[0, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0])).unwrap();
        assert_eq!((h.len, h.flags), (16, Some(0)));
        assert_eq!(h.check_source(b"x = 1\n"), SourceCheck::Match);
        assert!(matches!(
            h.check_source(b"x = 12\n"),
            SourceCheck::Mismatch { .. }
        ));
    }

    #[test]
    fn hash_based() {
        let mut rest = vec![3, 0, 0, 0];
        rest.extend_from_slice(
            &siphash::source_hash(11, [0xa7, 0x0d, 0x0d, 0x0a], b"x = 1\n").unwrap(),
        );
        let h = Header::parse(&with_magic(3495, &rest)).unwrap();
        assert!(matches!(
            h.invalidation,
            Invalidation::Hash {
                check_source: true,
                ..
            }
        ));
        assert_eq!(h.check_source(b"x = 1\n"), SourceCheck::Match);
        assert!(matches!(
            h.check_source(b"x = 2\n"),
            SourceCheck::Mismatch { .. }
        ));
    }

    #[test]
    fn bad_headers_say_what_and_where() {
        let e = Header::parse(b"\x00").unwrap_err();
        assert!(e.message.contains("truncated header"), "{e}");
        let e = Header::parse(b"abcdefgh").unwrap_err();
        assert!(e.message.contains("bad magic number 61626364"), "{e}");
        let e = Header::parse(&with_magic(3999, &[0; 12])).unwrap_err();
        assert!(e.message.contains("unknown magic number 3999"), "{e}");
        let e = Header::parse(&with_magic(3495, &[0; 5])).unwrap_err();
        assert!(e.message.contains("has 16 bytes, the file has 9"), "{e}");
        let e =
            Header::parse(&with_magic(3495, &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).unwrap_err();
        assert_eq!(e.offset, 4);
    }
}
