//! Output of a whole file's disassembly: text in the layout of the writing
//! version's `dis.dis`, or JSON lines (one object per instruction).

use std::fmt::Write;

use crate::dis::{self, ArgVal, Disassembly, Instruction, Mode};
use crate::error::Result;
use crate::object::{code_points, Code, ObjId, Object};
use crate::pyc::Pyc;
use crate::repr;

/// Append `s` as a JSON string.
pub fn json_str(out: &mut String, s: &str) {
    json_chars(out, s.chars().map(|c| c as u32));
}

/// Append code points as a JSON string, escaped exactly as Python's
/// `json.dumps(..., ensure_ascii=True)` does (so the output is ASCII, and
/// lone surrogates survive as `\udXXX`).
pub fn json_chars(out: &mut String, chars: impl Iterator<Item = u32>) {
    out.push('"');
    for c in chars {
        match c {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x20..=0x7e => out.push(c as u8 as char),
            0x10000.. => {
                let v = c - 0x10000;
                let _ = write!(
                    out,
                    "\\u{:04x}\\u{:04x}",
                    0xd800 + (v >> 10),
                    0xdc00 + (v & 0x3ff)
                );
            }
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
    }
    out.push('"');
}

/// A str object of the file as a JSON string (exact, surrogates included).
pub fn json_obj_str(out: &mut String, pyc: &Pyc, id: ObjId) {
    match pyc.obj(id) {
        Object::Str(s) => json_chars(out, code_points(pyc.str_raw(s), s.kind)),
        _ => out.push_str("null"),
    }
}

fn json_opt(out: &mut String, v: Option<impl std::fmt::Display>) {
    match v {
        Some(x) => {
            let _ = write!(out, "{x}");
        }
        None => out.push_str("null"),
    }
}

/// One instruction as a JSON object (no newline).
pub fn json_instruction(out: &mut String, pyc: &Pyc, qualname: &str, ins: &Instruction) {
    out.push_str("{\"code\":");
    json_str(out, qualname);
    let _ = write!(
        out,
        ",\"offset\":{},\"opcode\":{},\"opname\":",
        ins.offset, ins.opcode
    );
    json_str(out, ins.opname);
    out.push_str(",\"arg\":");
    json_opt(out, ins.arg);
    out.push_str(",\"argval\":");
    match &ins.argval {
        ArgVal::Int(i) => {
            let _ = write!(out, "{i}");
        }
        ArgVal::Name(id) => json_obj_str(out, pyc, *id),
        ArgVal::NamePair(a, b) => {
            out.push('[');
            json_obj_str(out, pyc, *a);
            out.push(',');
            json_obj_str(out, pyc, *b);
            out.push(']');
        }
        ArgVal::Str(s) => json_str(out, s),
        ArgVal::None | ArgVal::Const(_) | ArgVal::Other => out.push_str("null"),
    }
    out.push_str(",\"argrepr\":");
    json_str(out, &ins.argrepr);
    out.push_str(",\"line\":");
    json_opt(out, ins.line);
    let _ = write!(out, ",\"starts_line\":{}", ins.starts_line);
    out.push_str(",\"positions\":");
    match &ins.positions {
        Some(p) => {
            out.push('[');
            for (i, v) in p.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_opt(out, *v);
            }
            out.push(']');
        }
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"is_jump_target\":{}}}", ins.is_jump_target);
}

/// Every instruction of every code object, one JSON object per line, as
/// `dis.get_instructions` reports them.
pub fn jsonl(pyc: &Pyc, out: &mut String) -> Result<()> {
    dis::version_data(pyc)?;
    out.reserve(pyc.data.len().saturating_mul(16));
    for node in pyc.code_objects() {
        if node.repeated {
            continue;
        }
        let code = pyc.code(node.id).expect("code object");
        let d = dis::disassemble(pyc, code, Mode::GetInstructions)?;
        for ins in &d.instructions {
            json_instruction(out, pyc, &node.qualname, ins);
            out.push('\n');
        }
    }
    Ok(())
}

/// The text `dis.dis(code)` of the writing version prints for the module.
pub fn text(pyc: &Pyc, out: &mut String) -> Result<()> {
    dis::version_data(pyc)?;
    out.reserve(pyc.data.len().saturating_mul(4));
    for (i, node) in pyc.code_objects().iter().enumerate() {
        let code = pyc.code(node.id).expect("code object");
        if i > 0 {
            out.push('\n');
            out.push_str("Disassembly of ");
            repr::repr_into(pyc, node.id, out);
            out.push_str(":\n");
        }
        if node.repeated {
            out.push_str("(the same code object as above, shared through a marshal reference)\n");
            continue;
        }
        let d = dis::disassemble(pyc, code, Mode::Disassemble)?;
        text_code(pyc, code, &d, out);
    }
    Ok(())
}

/// Decimal digits of `v` in a stack buffer (no allocation).
struct Num {
    buf: [u8; 24],
    start: usize,
}

impl Num {
    fn new(v: i64) -> Num {
        let mut buf = [0u8; 24];
        let mut i = buf.len();
        let mut m = v.unsigned_abs();
        loop {
            i -= 1;
            buf[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if v < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        Num { buf, start: i }
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn push_to(&self, out: &mut String) {
        for &b in &self.buf[self.start..] {
            out.push(b as char);
        }
    }
}

fn pad_num(out: &mut String, v: i64, width: usize) {
    let n = Num::new(v);
    spaces(out, width.saturating_sub(n.len()));
    n.push_to(out);
}

fn pad_left(out: &mut String, s: &str, width: usize) {
    spaces(out, width.saturating_sub(s.chars().count()));
    out.push_str(s);
}

/// `s` (ASCII, such as an opcode name) left-justified in `width` columns.
fn pad_right(out: &mut String, s: &str, width: usize) {
    out.push_str(s);
    spaces(out, width.saturating_sub(s.len()));
}

const SPACES: &str = "                                                                ";

fn spaces(out: &mut String, mut n: usize) {
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// The opcode name, argument and argument details columns, then the end of
/// the line (dis joins its fields with spaces and strips the right end).
fn finish_line(out: &mut String, ins: &Instruction, arg_width: usize) {
    pad_right(out, ins.opname, 20);
    if let Some(arg) = ins.arg {
        out.push(' ');
        pad_num(out, arg, arg_width);
        if !ins.argrepr.is_empty() {
            out.push_str(" (");
            out.push_str(&ins.argrepr);
            out.push(')');
        }
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
}

fn text_code(pyc: &Pyc, code: &Code, d: &Disassembly, out: &mut String) {
    let minor = pyc.minor();
    let code_len = pyc.bytes(code.code).len();
    let starts: Vec<Option<i32>> = d
        .instructions
        .iter()
        .filter(|i| i.starts_line)
        .map(|i| i.line)
        .collect();
    if minor >= 13 {
        let max = starts.iter().flatten().copied().filter(|l| *l != 0).max();
        let lineno_width = match max {
            None => 0,
            Some(m) => {
                let w = 3.max(Num::new(m as i64).len());
                if w < 4 && starts.contains(&None) {
                    4
                } else {
                    w
                }
            }
        };
        let nlabels = d
            .instructions
            .iter()
            .filter_map(|i| i.label)
            .max()
            .unwrap_or(0) as usize;
        let nlabels = nlabels.max(
            d.exception_labels
                .iter()
                .flat_map(|(a, b, c)| [*a, *b, *c])
                .flatten()
                .max()
                .unwrap_or(0) as usize,
        );
        let label_width = 4 + Num::new(nlabels as i64).len();
        for ins in &d.instructions {
            if lineno_width > 0 && ins.starts_line && ins.offset > 0 {
                out.push('\n');
            }
            if lineno_width > 0 {
                match (ins.starts_line, ins.line) {
                    (true, Some(l)) => pad_num(out, l as i64, lineno_width),
                    (true, None) => pad_left(out, "  --", lineno_width),
                    _ => spaces(out, lineno_width),
                }
                out.push(' ');
            }
            match ins.label {
                Some(l) => {
                    let n = Num::new(l as i64);
                    spaces(out, label_width.saturating_sub(n.len() + 2));
                    out.push('L');
                    n.push_to(out);
                    out.push(':');
                }
                None => spaces(out, label_width),
            }
            out.push_str("     ");
            let excess = ins.opname.len().saturating_sub(20);
            finish_line(out, ins, 5usize.saturating_sub(excess));
        }
        if !d.exception_table.is_empty() {
            out.push_str("ExceptionTable:\n");
            for (e, (s, en, t)) in d.exception_table.iter().zip(&d.exception_labels) {
                let l = |x: &Option<u32>| x.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
                let _ = writeln!(
                    out,
                    "  L{} to L{} -> L{} [{}]{}",
                    l(s),
                    l(en),
                    l(t),
                    e.depth,
                    if e.lasti { " lasti" } else { "" }
                );
            }
        }
        return;
    }
    // 3.6-3.12
    let show_lineno = !starts.is_empty() || minor <= 9;
    let max = starts.iter().flatten().copied().max().unwrap_or(0);
    let lineno_width = if !show_lineno {
        0
    } else if minor >= 7 && max >= 1000 {
        Num::new(max as i64).len()
    } else {
        3
    };
    let maxoffset = code_len.saturating_sub(2);
    let offset_width = if minor >= 7 && maxoffset >= 10000 {
        Num::new(maxoffset as i64).len()
    } else {
        4
    };
    for ins in &d.instructions {
        if show_lineno && ins.starts_line && ins.offset > 0 {
            out.push('\n');
        }
        if lineno_width > 0 {
            match (ins.starts_line, ins.line) {
                (true, Some(l)) => pad_num(out, l as i64, lineno_width),
                _ => spaces(out, lineno_width),
            }
            out.push(' ');
        }
        out.push_str("    ");
        out.push_str(if ins.is_jump_target { ">> " } else { "   " });
        pad_num(out, ins.offset as i64, offset_width);
        out.push(' ');
        finish_line(out, ins, 5);
    }
    if !d.exception_table.is_empty() {
        out.push_str("ExceptionTable:\n");
        for e in &d.exception_table {
            let _ = writeln!(
                out,
                "  {} to {} -> {} [{}]{}",
                e.start,
                e.end as i64 - 2,
                e.target,
                e.depth,
                if e.lasti { " lasti" } else { "" }
            );
        }
    }
}
