//! Opcode tables of CPython 3.6-3.14, as each version's `dis` sees them.
//!
//! The data lives in `generated/opcodes.rs` (made by scripts/gen_opcodes.py
//! from the interpreters); this module only gives it types and lookups.

use crate::generated::opcodes as data;

/// One opcode of one version. Flags are those of the opcode itself; the
/// disassembler always looks at the flags of `deopt` (the base opcode), as
/// `dis` does with `_deoptop`.
#[derive(Debug)]
pub struct OpData {
    pub name: &'static str,
    pub deopt: u8,
    pub flags: u16,
    /// inline CACHE code units that follow the instruction (3.11+)
    pub caches: u8,
}

impl OpData {
    pub const ARG: u16 = 1 << 0;
    pub const CONST: u16 = 1 << 1;
    pub const NAME: u16 = 1 << 2;
    pub const JREL: u16 = 1 << 3;
    pub const JABS: u16 = 1 << 4;
    pub const LOCAL: u16 = 1 << 5;
    pub const FREE: u16 = 1 << 6;
    pub const COMPARE: u16 = 1 << 7;
    pub const EXC: u16 = 1 << 8;
    pub const JUMP: u16 = 1 << 9;
    /// `dis._is_backward_jump` is true (3.11+)
    pub const BACKWARD: u16 = 1 << 10;
}

/// Everything `dis` of one version knows about opcodes.
#[derive(Debug)]
pub struct VersionData {
    pub minor: u8,
    /// the magic number this release writes
    pub magic: u16,
    pub have_argument: u8,
    pub extended_arg: u8,
    pub ops: [OpData; 256],
    pub cmp_op: &'static [&'static str],
    pub nb_ops: Option<&'static [&'static str]>,
    pub intrinsic1: Option<&'static [&'static str]>,
    pub intrinsic2: Option<&'static [&'static str]>,
    pub special_method_names: Option<&'static [&'static str]>,
    pub common_constants: Option<&'static [&'static str]>,
    pub cache_format: &'static [(&'static str, &'static [(&'static str, u8)])],
}

impl VersionData {
    /// The table of CPython 3.`minor`, if it is one of 3.6-3.14.
    pub fn for_minor(minor: u8) -> Option<&'static VersionData> {
        data::ALL.iter().copied().find(|v| v.minor == minor)
    }

    /// The opcode called `name` (base opcodes only), if this version has it.
    pub fn opcode(&self, name: &str) -> Option<u8> {
        self.ops
            .iter()
            .enumerate()
            .position(|(i, o)| o.name == name && o.deopt as usize == i)
            .map(|i| i as u8)
    }

    pub fn op(&self, op: u8) -> &OpData {
        &self.ops[op as usize]
    }

    /// The base opcode's data (what `dis` calls `deop`).
    pub fn base(&self, op: u8) -> &OpData {
        &self.ops[self.ops[op as usize].deopt as usize]
    }

    pub fn cache_format(&self, name: &str) -> &'static [(&'static str, u8)] {
        self.cache_format
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .unwrap_or(&[])
    }
}

/// The minor versions that have opcode tables (3.6-3.14).
pub fn supported_minors() -> impl Iterator<Item = u8> {
    data::ALL.iter().map(|v| v.minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_table() {
        for minor in 6..=14 {
            let v = VersionData::for_minor(minor).expect("table");
            assert_eq!(v.minor, minor);
            assert_eq!(v.op(v.extended_arg).name, "EXTENDED_ARG");
        }
        assert!(VersionData::for_minor(5).is_none());
    }

    #[test]
    fn opcode_lookup_matches_names() {
        let v = VersionData::for_minor(11).unwrap();
        let lg = v.opcode("LOAD_GLOBAL").unwrap();
        assert_eq!(v.op(lg).name, "LOAD_GLOBAL");
        assert_eq!(v.op(lg).caches, 5);
        // a specialised form deoptimises to its base
        let spec = v
            .ops
            .iter()
            .position(|o| o.name == "LOAD_GLOBAL_MODULE")
            .unwrap();
        assert_eq!(v.ops[spec].deopt, lg);
        assert!(v.opcode("LOAD_GLOBAL_MODULE").is_none());
        let v13 = VersionData::for_minor(13).unwrap();
        let lflf = v13.opcode("LOAD_FAST_LOAD_FAST").unwrap();
        assert!(v13.op(lflf).flags & OpData::LOCAL != 0);
    }
}
