//! The disassembler: what `dis.get_instructions` (or `dis.disassemble`) of
//! the version that wrote the file reports for a code object.
//!
//! Each version's rules are kept apart where `dis` differs: how arguments are
//! unpacked (EXTENDED_ARG, inline CACHE entries), where jumps land (byte
//! offsets up to 3.9, code units from 3.10, backward jumps from 3.11, caches
//! skipped from 3.12), how packed arguments are split (LOAD_GLOBAL,
//! LOAD_ATTR, LOAD_SUPER_ATTR, COMPARE_OP, LOAD_FAST_LOAD_FAST, ...), and
//! which instructions start a line.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::exceptions::{self, ExceptionEntry};
use crate::lines::{self, Position};
use crate::object::{Code, ObjId};
use crate::opcodes::{OpData, VersionData};
use crate::pyc::Pyc;
use crate::repr;

/// The resolved argument, as far as it is a property of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgVal {
    /// no argument
    None,
    /// the argument itself, or a jump target offset
    Int(i64),
    /// a name from co_names or the local/cell/free variable names
    Name(ObjId),
    /// two local names packed in one argument (LOAD_FAST_LOAD_FAST, ...)
    NamePair(ObjId, ObjId),
    /// a fixed string of the version's tables (a comparison operator)
    Str(&'static str),
    /// a constant (its text is `argrepr`)
    Const(ObjId),
    /// something `dis` shows as a Python object that is not in the file
    /// (a conversion function, `dis.UNKNOWN`), or an index out of range
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction<'a> {
    pub offset: u32,
    /// offset of the first EXTENDED_ARG before it (3.13's `start_offset`)
    pub start_offset: u32,
    pub opcode: u8,
    pub opname: &'static str,
    pub arg: Option<i64>,
    pub argval: ArgVal,
    pub argrepr: Cow<'a, str>,
    /// this instruction starts a source line (`dis` marks it in the margin)
    pub starts_line: bool,
    /// the source line: 3.13+ `line_number`; before, the last line started
    pub line: Option<i32>,
    /// (lineno, end_lineno, col_offset, end_col_offset), 3.11+
    pub positions: Option<Position>,
    pub is_jump_target: bool,
    /// 3.13+ label number ("L3")
    pub label: Option<u32>,
    /// inline CACHE code units that follow (3.11+)
    pub caches: u8,
}

/// Which of `dis`'s two views to reproduce: they differ in what counts as
/// a jump target (and so in 3.13+ label numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dis.get_instructions`: jump targets only
    GetInstructions,
    /// `dis.dis` / `dis.disassemble`: exception-table targets too; positions
    /// are left out (`dis.dis` does not print them)
    Disassemble,
}

/// A disassembled code object with the tables `dis` prints after it.
#[derive(Debug, Clone)]
pub struct Disassembly<'a> {
    pub instructions: Vec<Instruction<'a>>,
    pub exception_table: Vec<ExceptionEntry>,
    /// 3.13+: label number of each exception entry's (start, end, target)
    pub exception_labels: Vec<(Option<u32>, Option<u32>, Option<u32>)>,
}

pub fn version_data(pyc: &Pyc) -> Result<&'static VersionData> {
    VersionData::for_minor(pyc.minor()).ok_or_else(|| {
        Error::new(
            0,
            format!(
                "disassembly supports CPython 3.6-3.14; this file was written by {}",
                pyc.header
                    .as_ref()
                    .map(|h| h.info.label.to_string())
                    .unwrap_or_else(|| format!("3.{}", pyc.minor()))
            ),
        )
    })
}

/// Python's sequence indexing (negative counts from the end).
fn py_index(len: usize, i: i64) -> Option<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&j).then_some(j as usize)
}

struct Unit {
    offset: u32,
    start_offset: u32,
    op: u8,
    arg: Option<i64>,
}

/// `dis._unpack_opargs` of each version.
fn unpack(v: &VersionData, code: &[u8]) -> Vec<Unit> {
    let minor = v.minor;
    let mut out = Vec::with_capacity(code.len() / 2);
    let mut extended: i64 = 0;
    let mut caches = 0usize;
    let mut ext_count = 0u32;
    let mut i = 0;
    while i < code.len() {
        if caches > 0 {
            caches -= 1;
            i += 2;
            continue;
        }
        let op = code[i];
        let second = code.get(i + 1).copied().unwrap_or(0) as i64;
        let base = v.base(op);
        let deop = v.op(op).deopt;
        if minor >= 11 {
            caches = base.caches as usize;
        }
        let has_arg = if minor >= 12 {
            base.flags & OpData::ARG != 0
        } else {
            deop >= v.have_argument
        };
        let arg = if has_arg {
            let a = second | extended;
            extended = if deop == v.extended_arg {
                a.wrapping_shl(8)
            } else {
                0
            };
            if minor >= 11 && extended >= 1 << 31 {
                extended -= 1 << 32;
            }
            Some(a)
        } else {
            if minor >= 10 {
                extended = 0;
            }
            None
        };
        let start_offset = if deop == v.extended_arg {
            ext_count += 1;
            i as u32
        } else {
            let s = i as u32 - 2 * ext_count.min(i as u32 / 2);
            ext_count = 0;
            s
        };
        out.push(Unit {
            offset: i as u32,
            start_offset: if minor >= 13 { start_offset } else { i as u32 },
            op,
            arg,
        });
        i += 2;
    }
    out
}

/// Where a jump goes (`findlabels` / `_get_jump_target` of each version).
fn jump_target(v: &VersionData, u: &Unit) -> Option<i64> {
    let arg = u.arg?;
    let base = v.base(u.op);
    let off = u.offset as i64;
    match v.minor {
        0..=9 => {
            if base.flags & OpData::JREL != 0 {
                Some(off + 2 + arg)
            } else if base.flags & OpData::JABS != 0 {
                Some(arg)
            } else {
                None
            }
        }
        _ => {
            if base.flags & OpData::JREL != 0 {
                let signed = if base.flags & OpData::BACKWARD != 0 {
                    -arg
                } else {
                    arg
                };
                let caches = if v.minor >= 12 { base.caches as i64 } else { 0 };
                Some(off + 2 + signed.wrapping_mul(2) + 2 * caches)
            } else if base.flags & OpData::JABS != 0 {
                Some(arg.wrapping_mul(2))
            } else {
                None
            }
        }
    }
}

struct Ctx<'a> {
    _marker: std::marker::PhantomData<&'a ()>,
    pyc: &'a Pyc,
    v: &'static VersionData,
    names: &'a [ObjId],
    consts: &'a [ObjId],
    /// haslocal names (varnames, or localsplus from 3.11)
    locals: Vec<ObjId>,
    /// hasfree names (cellvars + freevars, or localsplus from 3.11)
    frees: Vec<ObjId>,
    labels: HashMap<i64, u32>,
    ops: &'static Named,
    /// reprs of constants made so far (one per constant, reused)
    const_reprs: std::cell::RefCell<HashMap<usize, String>>,
    /// bytes of constant reprs still allowed: a hostile file can make a
    /// small shared tuple expand exponentially; real files stay far below
    repr_budget: std::cell::Cell<usize>,
}

/// Total repr text allowed per code object: generous for real files (whose
/// reprs are about as long as the file), bounded for hostile ones.
fn repr_budget(file_len: usize) -> usize {
    file_len.saturating_mul(16).saturating_add(1 << 20)
}

/// Opcodes `dis` treats by name, looked up once per version.
struct Named {
    load_const: Option<u8>,
    load_global: Option<u8>,
    load_attr: Option<u8>,
    load_super_attr: Option<u8>,
    format_value: Option<u8>,
    make_function: Option<u8>,
    binary_op: Option<u8>,
    intrinsic1: Option<u8>,
    intrinsic2: Option<u8>,
    convert_value: Option<u8>,
    set_function_attribute: Option<u8>,
    fast_pairs: Vec<u8>,
    load_common_constant: Option<u8>,
    load_special: Option<u8>,
    is_op: Option<u8>,
    contains_op: Option<u8>,
    end_async_for: Option<u8>,
}

impl Named {
    /// The table of one version, built once.
    fn of(v: &'static VersionData) -> &'static Named {
        static CACHE: [OnceLock<Named>; 16] = [const { OnceLock::new() }; 16];
        CACHE[(v.minor as usize).min(15)].get_or_init(|| Named::new(v))
    }

    fn new(v: &VersionData) -> Named {
        let pairs: &[&str] = match v.minor {
            13 => &[
                "LOAD_FAST_LOAD_FAST",
                "STORE_FAST_LOAD_FAST",
                "STORE_FAST_STORE_FAST",
            ],
            14.. => &[
                "LOAD_FAST_LOAD_FAST",
                "LOAD_FAST_BORROW_LOAD_FAST_BORROW",
                "STORE_FAST_LOAD_FAST",
                "STORE_FAST_STORE_FAST",
            ],
            _ => &[],
        };
        Named {
            load_const: v.opcode("LOAD_CONST"),
            load_global: v.opcode("LOAD_GLOBAL"),
            load_attr: v.opcode("LOAD_ATTR"),
            load_super_attr: v.opcode("LOAD_SUPER_ATTR"),
            format_value: v.opcode("FORMAT_VALUE"),
            make_function: v.opcode("MAKE_FUNCTION"),
            binary_op: v.opcode("BINARY_OP"),
            intrinsic1: v.opcode("CALL_INTRINSIC_1"),
            intrinsic2: v.opcode("CALL_INTRINSIC_2"),
            convert_value: v.opcode("CONVERT_VALUE"),
            set_function_attribute: v.opcode("SET_FUNCTION_ATTRIBUTE"),
            fast_pairs: pairs.iter().filter_map(|n| v.opcode(n)).collect(),
            load_common_constant: v.opcode("LOAD_COMMON_CONSTANT"),
            load_special: v.opcode("LOAD_SPECIAL"),
            is_op: v.opcode("IS_OP"),
            contains_op: v.opcode("CONTAINS_OP"),
            end_async_for: v.opcode("END_ASYNC_FOR"),
        }
    }
}

const FORMAT_CONVERTERS: [&str; 4] = ["", "str", "repr", "ascii"];
const MAKE_FUNCTION_FLAGS: [&str; 5] = [
    "defaults",
    "kwdefaults",
    "annotations",
    "closure",
    "annotate",
];

fn flag_list(arg: i64, names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| arg & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'a> Ctx<'a> {
    fn name(&self, list: &[ObjId], i: i64) -> (ArgVal, Cow<'a, str>) {
        match py_index(list.len(), i) {
            Some(j) => (ArgVal::Name(list[j]), self.pyc.text(list[j])),
            None => (
                ArgVal::Other,
                Cow::Owned(format!("<index {i} out of range>")),
            ),
        }
    }

    fn konst(&self, i: i64) -> (ArgVal, Cow<'a, str>) {
        let Some(j) = py_index(self.consts.len(), i) else {
            return (
                ArgVal::Other,
                Cow::Owned(format!("<index {i} out of range>")),
            );
        };
        let id = self.consts[j];
        if let Some(r) = self.const_reprs.borrow().get(&j) {
            let left = self.repr_budget.get();
            if r.len() <= left {
                self.repr_budget.set(left - r.len());
                return (ArgVal::Const(id), Cow::Owned(r.clone()));
            }
        }
        let left = self.repr_budget.get();
        let mut r = String::new();
        repr::repr_limited(self.pyc, id, &mut r, left.clamp(256, repr::MAX_REPR));
        self.repr_budget.set(left.saturating_sub(r.len()));
        self.const_reprs.borrow_mut().insert(j, r.clone());
        (ArgVal::Const(id), Cow::Owned(r))
    }

    fn table(list: Option<&'static [&'static str]>, i: i64) -> Cow<'a, str> {
        Cow::Borrowed(
            list.and_then(|l| py_index(l.len(), i).map(|j| l[j]))
                .unwrap_or(""),
        )
    }

    /// `argval, argrepr` for one instruction, branch order as in each version's dis.
    fn resolve(&self, u: &Unit) -> (ArgVal, Cow<'a, str>) {
        let Some(arg) = u.arg else {
            return (ArgVal::None, Cow::Borrowed(""));
        };
        let v = self.v;
        let minor = v.minor;
        let deop = v.op(u.op).deopt;
        let f = v.base(u.op).flags;
        let is = |o: Option<u8>| o == Some(deop);
        let n = &self.ops;
        if f & OpData::CONST != 0 {
            if minor == 11 && !is(n.load_const) {
                return (ArgVal::Other, Cow::Borrowed("")); // dis.UNKNOWN
            }
            return self.konst(arg);
        }
        if f & OpData::NAME != 0 {
            if minor >= 11 && is(n.load_global) {
                let (val, r) = self.name(self.names, arg.div_euclid(2));
                return (val, self.null_suffix(arg & 1 != 0, r, "NULL"));
            }
            if minor >= 12 && is(n.load_attr) {
                let (val, r) = self.name(self.names, arg.div_euclid(2));
                return (val, self.null_suffix(arg & 1 != 0, r, "NULL|self"));
            }
            if minor >= 12 && is(n.load_super_attr) {
                let (val, r) = self.name(self.names, arg.div_euclid(4));
                return (val, self.null_suffix(arg & 1 != 0, r, "NULL|self"));
            }
            return self.name(self.names, arg);
        }
        if minor >= 13 {
            if f & (OpData::JUMP | OpData::EXC) != 0 {
                let Some(target) = jump_target(v, u) else {
                    return (ArgVal::Int(arg), Cow::Borrowed(""));
                };
                let word = if minor >= 14 && is(n.end_async_for) {
                    "from"
                } else {
                    "to"
                };
                let lbl = self
                    .labels
                    .get(&target)
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".into());
                return (ArgVal::Int(target), Cow::Owned(format!("{word} L{lbl}")));
            }
            if n.fast_pairs.contains(&deop) {
                let (a, ra) = self.name(&self.locals, arg >> 4);
                let (b, rb) = self.name(&self.locals, arg & 15);
                let val = match (a, b) {
                    (ArgVal::Name(a), ArgVal::Name(b)) => ArgVal::NamePair(a, b),
                    _ => ArgVal::Other,
                };
                return (val, Cow::Owned(format!("{ra}, {rb}")));
            }
        } else {
            if minor >= 10 && f & OpData::JABS != 0 {
                let t = arg.wrapping_mul(2);
                return (ArgVal::Int(t), Cow::Owned(format!("to {t}")));
            }
            if f & OpData::JREL != 0 {
                let t = jump_target(v, u).unwrap_or(arg);
                return (ArgVal::Int(t), Cow::Owned(format!("to {t}")));
            }
        }
        if minor >= 11 {
            if f & (OpData::LOCAL | OpData::FREE) != 0 {
                return self.name(&self.locals, arg);
            }
        } else if f & OpData::LOCAL != 0 {
            return self.name(&self.locals, arg);
        }
        if f & OpData::COMPARE != 0 {
            let idx = match minor {
                0..=11 => arg,
                12 => arg >> 4,
                _ => arg >> 5,
            };
            let Some(j) = py_index(v.cmp_op.len(), idx) else {
                return (
                    ArgVal::Other,
                    Cow::Owned(format!("<index {idx} out of range>")),
                );
            };
            let op = v.cmp_op[j];
            let r = if minor >= 13 && arg & 16 != 0 {
                Cow::Owned(format!("bool({op})"))
            } else {
                Cow::Borrowed(op)
            };
            return (ArgVal::Str(op), r);
        }
        if minor <= 10 && f & OpData::FREE != 0 {
            return self.name(&self.frees, arg);
        }
        let plain = ArgVal::Int(arg);
        if minor <= 12 && is(n.format_value) {
            let mut r = FORMAT_CONVERTERS[(arg & 3) as usize].to_string();
            if arg & 4 != 0 {
                if !r.is_empty() {
                    r.push_str(", ");
                }
                r.push_str("with format");
            }
            return (ArgVal::Other, Cow::Owned(r));
        }
        if (8..=12).contains(&minor) && is(n.make_function) {
            return (plain, Cow::Owned(flag_list(arg, &MAKE_FUNCTION_FLAGS[..4])));
        }
        if minor >= 13 && is(n.convert_value) {
            let r = py_index(4, arg).map(|j| FORMAT_CONVERTERS[j]).unwrap_or("");
            return (ArgVal::Other, Cow::Borrowed(r));
        }
        if minor >= 13 && is(n.set_function_attribute) {
            let flags = if minor >= 14 {
                &MAKE_FUNCTION_FLAGS[..]
            } else {
                &MAKE_FUNCTION_FLAGS[..4]
            };
            return (plain, Cow::Owned(flag_list(arg, flags)));
        }
        if minor >= 11 && is(n.binary_op) {
            return (plain, Self::table(v.nb_ops, arg));
        }
        if minor >= 12 && is(n.intrinsic1) {
            return (plain, Self::table(v.intrinsic1, arg));
        }
        if minor >= 12 && is(n.intrinsic2) {
            return (plain, Self::table(v.intrinsic2, arg));
        }
        if minor >= 14 {
            if is(n.load_common_constant) {
                return (plain, Self::table(v.common_constants, arg));
            }
            if is(n.load_special) {
                return (plain, Self::table(v.special_method_names, arg));
            }
            if is(n.is_op) {
                return (plain, Cow::Borrowed(if arg != 0 { "is not" } else { "is" }));
            }
            if is(n.contains_op) {
                return (plain, Cow::Borrowed(if arg != 0 { "not in" } else { "in" }));
            }
        }
        (plain, Cow::Borrowed(""))
    }

    fn null_suffix(&self, set: bool, r: Cow<'a, str>, what: &str) -> Cow<'a, str> {
        if !set || r.is_empty() {
            r
        } else if self.v.minor >= 13 {
            Cow::Owned(format!("{r} + {what}"))
        } else {
            Cow::Owned(format!("{what} + {r}"))
        }
    }
}

/// Disassemble one code object of `pyc` as its version's `dis` would.
pub fn disassemble<'a>(pyc: &'a Pyc, code: &Code, mode: Mode) -> Result<Disassembly<'a>> {
    let v = version_data(pyc)?;
    let minor = v.minor;
    let bytecode = pyc.bytes(code.code);
    let units = unpack(v, bytecode);

    let exception_table = code
        .exceptiontable
        .map(|t| exceptions::parse(pyc.bytes(t)))
        .unwrap_or_default();
    let mut jump_targets: Vec<i64> = Vec::new();
    let mut seen = HashSet::new();
    for u in &units {
        if let Some(t) = jump_target(v, u) {
            if seen.insert(t) {
                jump_targets.push(t);
            }
        }
    }
    let with_exceptions = mode == Mode::Disassemble;
    let mut targets: HashSet<i64> = seen;
    let mut labels = HashMap::new();
    if minor >= 13 {
        let mut all: Vec<i64> = targets.iter().copied().collect();
        if with_exceptions {
            for e in &exception_table {
                all.extend([e.start as i64, e.end as i64, e.target as i64]);
            }
        }
        all.sort_unstable();
        all.dedup();
        for (i, off) in all.iter().enumerate() {
            labels.insert(*off, i as u32 + 1);
        }
    } else if with_exceptions && minor >= 11 {
        for e in &exception_table {
            targets.insert(e.target as i64);
        }
    }
    let exception_labels = exception_table
        .iter()
        .map(|e| {
            let l = |o: u64| labels.get(&(o as i64)).copied();
            (l(e.start), l(e.end), l(e.target))
        })
        .collect();

    let linetable = pyc.bytes(code.linetable);
    // line starts by code unit (instructions sit at even offsets); later entries win, as in dict()
    let mut linestarts: Vec<Option<Option<i32>>> = vec![None; bytecode.len() / 2 + 1];
    for (off, line) in lines::findlinestarts(minor, linetable, code.firstlineno, bytecode.len()) {
        if off % 2 == 0 {
            if let Some(slot) = linestarts.get_mut(off as usize / 2) {
                *slot = Some(line);
            }
        }
    }
    let mut is_target = vec![false; bytecode.len() / 2 + 1];
    for t in &targets {
        if *t >= 0 && t % 2 == 0 {
            if let Some(slot) = is_target.get_mut(*t as usize / 2) {
                *slot = true;
            }
        }
    }
    let positions = (minor >= 11 && mode == Mode::GetInstructions)
        .then(|| lines::location_positions(linetable, code.firstlineno));

    let (locals, frees) = pyc.oparg_names(code);
    let ctx = Ctx {
        _marker: std::marker::PhantomData,
        pyc,
        v,
        names: pyc.items(code.names),
        consts: pyc.items(code.consts),
        locals,
        frees,
        labels,
        ops: Named::of(v),
        const_reprs: Default::default(),
        repr_budget: std::cell::Cell::new(repr_budget(pyc.data.len())),
    };

    let mut out = Vec::with_capacity(units.len());
    let mut line: Option<i32> = None;
    for u in &units {
        let start = linestarts.get(u.offset as usize / 2).copied().flatten();
        let starts_line = match start {
            Some(l) => minor >= 13 || l.is_some(),
            None => false,
        };
        if let Some(l) = start {
            if minor >= 13 || l.is_some() {
                line = l;
            }
        }
        let (argval, argrepr) = ctx.resolve(u);
        let base = v.base(u.op);
        let off = u.offset as i64;
        let position = positions
            .as_ref()
            .map(|p| p.get((u.offset / 2) as usize).copied().unwrap_or([None; 4]));
        out.push(Instruction {
            offset: u.offset,
            start_offset: u.start_offset,
            opcode: u.op,
            opname: v.op(u.op).name,
            arg: u.arg,
            argval,
            argrepr,
            starts_line,
            line,
            positions: position,
            is_jump_target: if minor >= 13 {
                ctx.labels.contains_key(&off)
            } else {
                is_target
                    .get(u.offset as usize / 2)
                    .copied()
                    .unwrap_or(false)
            },
            label: if minor >= 13 {
                ctx.labels.get(&off).copied()
            } else {
                None
            },
            caches: if minor >= 11 { base.caches } else { 0 },
        });
    }
    Ok(Disassembly {
        instructions: out,
        exception_table,
        exception_labels,
    })
}
