//! The marshal reader: every type code of marshal versions 0-5, references,
//! and code objects in the field order of each CPython version.
//!
//! Hostile input is expected: every length is checked against the bytes that
//! remain before anything is allocated, nesting is limited like CPython's
//! (`MAX_MARSHAL_STACK_DEPTH`), and a reference must name an object that is
//! complete (CPython lets a tuple or list contain itself through a reference
//! to the unfinished container; such cycles are refused here).

use crate::error::{Error, Result};
use crate::object::{check_utf8_surrogatepass, Code, Locals, ObjId, Object, PyStr, Span, StrKind};

/// CPython's limit on nesting (Python/marshal.c).
pub const MAX_DEPTH: usize = 2000;
const FLAG_REF: u8 = 0x80;

/// One object as it sits in the file, for showing the marshal layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutEntry {
    /// file offset of the type code
    pub offset: usize,
    /// file offset just past the object
    pub end: usize,
    pub depth: u32,
    /// the type code without FLAG_REF, as a character ('c', 'r', 'z', ...)
    pub code: char,
    /// FLAG_REF was set: the object was stored under `ref_index`
    pub ref_index: Option<u32>,
    /// for 'r': the reference index it names
    pub ref_target: Option<u32>,
    /// what the object is to its parent (a code object field such as "co_consts")
    pub field: Option<&'static str>,
    pub obj: Option<ObjId>,
}

/// The result of reading one marshal stream.
#[derive(Debug)]
pub struct Marshal {
    pub objects: Vec<Object>,
    pub root: ObjId,
    /// file offset just past the root object (trailing bytes are ignored, as CPython does)
    pub end: usize,
    pub layout: Option<Vec<LayoutEntry>>,
    /// number of entries in the reference table
    pub refs: usize,
}

/// Which code object layout to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeLayout {
    /// 3.0-3.7: argcount, kwonlyargcount, nlocals, ...
    Py30,
    /// 3.8-3.10: posonlyargcount added
    Py38,
    /// 3.11+: localsplus names and kinds, qualname, exception table
    Py311,
}

impl CodeLayout {
    pub fn for_minor(minor: u8) -> CodeLayout {
        match minor {
            0..=7 => CodeLayout::Py30,
            8..=10 => CodeLayout::Py38,
            _ => CodeLayout::Py311,
        }
    }
}

/// Stack for the reader's thread: enough for MAX_DEPTH levels even in a
/// debug build (only the pages used are ever committed).
const READER_STACK: usize = 64 << 20;
/// Nesting read on the caller's own stack; real files stay below it (the
/// compiler nests code objects and constants far less), deeper data is read
/// again on a thread with READER_STACK.
const SHALLOW_DEPTH: usize = 100;

/// Read the object that starts at `start` in `data`.
///
/// Reading recurses once per nesting level. Up to SHALLOW_DEPTH levels it
/// runs on the caller's stack; data that nests deeper is read again on a
/// thread of its own, with a stack sized for marshal's depth limit, so that
/// hostile nesting gives an error whatever stack the caller has.
pub fn read(data: &[u8], start: usize, layout: CodeLayout, record_layout: bool) -> Result<Marshal> {
    match read_here(data, start, layout, record_layout, SHALLOW_DEPTH) {
        Err(e) if e.message == DEEPER => {}
        other => return other,
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("spyglass-marshal".into())
            .stack_size(READER_STACK)
            .spawn_scoped(s, || {
                read_here(data, start, layout, record_layout, MAX_DEPTH)
            })
            .map_err(|e| Error::new(start, format!("cannot start the reader thread: {e}")))?
            .join()
            .unwrap_or_else(|_| {
                Err(Error::new(
                    start,
                    "internal error: the marshal reader panicked",
                ))
            })
    })
}

/// Internal: the shallow pass hit its limit (never returned to callers).
const DEEPER: &str = "deeper than the shallow pass";

fn read_here(
    data: &[u8],
    start: usize,
    layout: CodeLayout,
    record_layout: bool,
    max_depth: usize,
) -> Result<Marshal> {
    let mut r = Reader {
        data,
        pos: start,
        objects: Vec::new(),
        refs: Vec::new(),
        depth: 0,
        max_depth,
        code_layout: layout,
        layout: record_layout.then(Vec::new),
    };
    let root = match r.object(None)? {
        Some(id) => id,
        None => return Err(Error::new(start, "expected an object, found NULL ('0')")),
    };
    Ok(Marshal {
        objects: r.objects,
        root,
        end: r.pos,
        layout: r.layout,
        refs: r.refs.len(),
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    objects: Vec<Object>,
    /// None while the object is still being read
    refs: Vec<Option<ObjId>>,
    depth: usize,
    max_depth: usize,
    code_layout: CodeLayout,
    layout: Option<Vec<LayoutEntry>>,
}

fn type_char(code: u8) -> String {
    if code.is_ascii_graphic() {
        format!("'{}'", code as char)
    } else {
        format!("0x{code:02x}")
    }
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn eof(&self, what: &str) -> Error {
        Error::new(
            self.pos,
            format!(
                "truncated data: expected {what}, but the file ends at offset {}",
                self.data.len()
            ),
        )
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.eof(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.eof(what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn long(&mut self, what: &str) -> Result<i32> {
        let b = self.bytes(4, what)?;
        Ok(i32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// A length prefix: `n` items of at least `min_item` bytes each must fit in what remains.
    fn length(&mut self, at: usize, n: i64, min_item: usize, what: &str) -> Result<usize> {
        if n < 0 {
            return Err(Error::new(
                at,
                format!("bad marshal data: negative length {n} for {what}"),
            ));
        }
        let n = n as usize;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(Error::new(
                at,
                format!(
                    "bad marshal data: {what} of length {n} needs at least {} bytes, only {} remain",
                    n.saturating_mul(min_item),
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    fn push(&mut self, obj: Object) -> ObjId {
        self.objects.push(obj);
        ObjId(self.objects.len() as u32 - 1)
    }

    fn reserve(&mut self, flag: bool) -> Option<usize> {
        flag.then(|| {
            self.refs.push(None);
            self.refs.len() - 1
        })
    }

    fn fill(&mut self, slot: Option<usize>, id: ObjId) {
        if let Some(i) = slot {
            self.refs[i] = Some(id);
        }
    }

    /// Read one object; Ok(None) for the NULL marker '0'.
    #[inline(never)]
    fn object(&mut self, field: Option<&'static str>) -> Result<Option<ObjId>> {
        let start = self.pos;
        let code = self.byte("a type code")?;
        if self.depth >= self.max_depth {
            return Err(too_deep(start, self.max_depth));
        }
        let flag = code & FLAG_REF != 0;
        let ty = code & !FLAG_REF;
        let layout_index = if self.layout.is_some() {
            self.layout_open(start, ty, field)
        } else {
            usize::MAX
        };
        self.depth += 1;
        let slot = match ty {
            // singletons and references are never stored in the reference table
            b'0' | b'N' | b'F' | b'T' | b'S' | b'.' | b'r' => None,
            _ => self.reserve(flag),
        };
        let result = self.object_body(start, ty);
        self.depth -= 1;
        let id = result?;
        if let Some(id) = id {
            self.fill(slot, id);
        }
        if layout_index != usize::MAX {
            self.layout_close(layout_index, start, ty, slot, id);
        }
        Ok(id)
    }

    #[inline(never)]
    fn layout_open(&mut self, start: usize, ty: u8, field: Option<&'static str>) -> usize {
        let l = self.layout.as_mut().expect("recording");
        l.push(LayoutEntry {
            offset: start,
            end: start,
            depth: self.depth as u32,
            code: ty as char,
            ref_index: None,
            ref_target: None,
            field,
            obj: None,
        });
        l.len() - 1
    }

    #[inline(never)]
    fn layout_close(
        &mut self,
        i: usize,
        start: usize,
        ty: u8,
        slot: Option<usize>,
        id: Option<ObjId>,
    ) {
        let ref_target = (ty == b'r').then(|| {
            let b = &self.data[start + 1..start + 5];
            u32::from_le_bytes(b.try_into().expect("4 bytes"))
        });
        let end = self.pos;
        let e = &mut self.layout.as_mut().expect("recording")[i];
        e.end = end;
        e.obj = id;
        e.ref_index = slot.map(|s| s as u32);
        e.ref_target = ref_target;
    }

    fn object_body(&mut self, start: usize, ty: u8) -> Result<Option<ObjId>> {
        let obj = match ty {
            b'0' => return Ok(None),
            b'(' | b')' | b'[' | b'<' | b'>' => self.sequence(start, ty)?,
            b'{' => self.dict()?,
            b':' => self.slice()?,
            b'c' => self.code_object(start)?,
            b'r' => return self.reference(start).map(Some),
            _ => self.scalar(start, ty)?,
        };
        Ok(Some(self.push(obj)))
    }

    #[inline(never)]
    fn sequence(&mut self, start: usize, ty: u8) -> Result<Object> {
        let n = if ty == b')' {
            self.byte("the length of a small tuple")? as usize
        } else {
            let n = self.long("a container length")? as i64;
            self.length(start, n, 1, container_name(ty))?
        };
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            match self.object(None)? {
                Some(id) => items.push(id),
                None => return Err(self.null_in(container_name(ty), i, n)),
            }
        }
        let items = items.into_boxed_slice();
        Ok(match ty {
            b'(' | b')' => Object::Tuple(items),
            b'[' => Object::List(items),
            b'<' => Object::Set(items),
            _ => Object::FrozenSet(items),
        })
    }

    #[inline(never)]
    fn null_in(&self, what: &str, i: usize, n: usize) -> Error {
        Error::new(
            self.pos - 1,
            format!("bad marshal data: NULL object in {what} (item {i} of {n})"),
        )
    }

    #[inline(never)]
    fn dict(&mut self) -> Result<Object> {
        let mut items = Vec::new();
        // NULL ends the dict, as a key or as a value
        while let Some(k) = self.object(None)? {
            let Some(v) = self.object(None)? else { break };
            items.push((k, v));
        }
        Ok(Object::Dict(items.into_boxed_slice()))
    }

    #[inline(never)]
    fn slice(&mut self) -> Result<Object> {
        let mut parts = [ObjId(0); 3];
        for (i, p) in parts.iter_mut().enumerate() {
            match self.object(None)? {
                Some(id) => *p = id,
                None => return Err(self.null_in("slice", i, 3)),
            }
        }
        Ok(Object::Slice(Box::new(parts)))
    }

    #[inline(never)]
    fn code_object(&mut self, start: usize) -> Result<Object> {
        Ok(Object::Code(Box::new(self.code(start)?)))
    }

    #[inline(never)]
    fn reference(&mut self, start: usize) -> Result<ObjId> {
        let n = self.long("a reference index")?;
        match usize::try_from(n).ok().and_then(|i| self.refs.get(i)) {
            Some(Some(id)) => Ok(*id),
            Some(None) => Err(Error::new(
                start,
                format!("bad marshal data: reference {n} names an object that is still being read (a cycle)"),
            )),
            None => Err(Error::new(
                start,
                format!("bad marshal data: reference {n} out of range ({} objects stored so far)", self.refs.len()),
            )),
        }
    }

    #[inline(never)]
    fn scalar(&mut self, start: usize, ty: u8) -> Result<Object> {
        Ok(match ty {
            b'N' => Object::None,
            b'F' => Object::False,
            b'T' => Object::True,
            b'S' => Object::StopIteration,
            b'.' => Object::Ellipsis,
            b'i' => Object::Int(self.long("a 4-byte int")? as i64),
            b'I' => {
                let b = self.bytes(8, "an 8-byte int")?;
                Object::Int(i64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            b'l' => self.read_long(start)?,
            b'f' => Object::Float(self.text_float(start)?),
            b'g' => Object::Float(self.binary_float()?),
            b'x' => {
                let re = self.text_float(start)?;
                let im = self.text_float(start)?;
                Object::Complex(re, im)
            }
            b'y' => {
                let re = self.binary_float()?;
                let im = self.binary_float()?;
                Object::Complex(re, im)
            }
            b's' => {
                let n = self.long("the length of a bytes object")? as i64;
                let n = self.length(start, n, 1, "bytes")?;
                Object::Bytes(Span { start: self.pos as u32, len: self.bytes(n, "bytes data")?.len() as u32 })
            }
            b'u' | b't' => {
                let n = self.long("the length of a string")? as i64;
                let n = self.length(start, n, 1, "str")?;
                let at = self.pos;
                let b = self.bytes(n, "string data")?;
                let kind = match check_utf8_surrogatepass(b) {
                    Ok(false) => StrKind::Utf8,
                    Ok(true) => StrKind::Utf8Surrogates,
                    Err(i) => {
                        return Err(Error::new(at + i, format!("bad marshal data: invalid UTF-8 in string at byte {i}")))
                    }
                };
                Object::Str(PyStr { span: Span { start: at as u32, len: n as u32 }, kind, interned: ty == b't' })
            }
            b'a' | b'A' | b'z' | b'Z' => {
                let n = if ty == b'z' || ty == b'Z' {
                    self.byte("the length of a short string")? as usize
                } else {
                    let n = self.long("the length of a string")? as i64;
                    self.length(start, n, 1, "str")?
                };
                let at = self.pos;
                let b = self.bytes(n, "string data")?;
                let kind = if b.is_ascii() { StrKind::Utf8 } else { StrKind::Latin1 };
                Object::Str(PyStr { span: Span { start: at as u32, len: n as u32 }, kind, interned: ty == b'A' || ty == b'Z' })
            }
            b'?' => return Err(Error::new(start, "bad marshal data: TYPE_UNKNOWN ('?') marks an object marshal could not write")),
            other => {
                return Err(Error::new(
                    start,
                    format!("bad marshal data: unknown type code {} (expected one of 0NFTS.iIlfgxysutaAzZ()[{{}}<>:cr)", type_char(other)),
                ))
            }
        })
    }

    fn read_long(&mut self, start: usize) -> Result<Object> {
        let n = self.long("the digit count of a long")? as i64;
        let count = self.length(start, n.abs(), 2, "long")?;
        let mut digits = Vec::with_capacity(count);
        for _ in 0..count {
            let b = self.bytes(2, "a long digit")?;
            let d = u16::from_le_bytes([b[0], b[1]]);
            if d > 0x7fff {
                return Err(Error::new(
                    self.pos - 2,
                    format!("bad marshal data: long digit {d} out of range (15-bit digits)"),
                ));
            }
            digits.push(d);
        }
        if digits.last() == Some(&0) {
            return Err(Error::new(
                self.pos - 2,
                "bad marshal data: unnormalized long (leading zero digit)",
            ));
        }
        let negative = n < 0;
        if count <= 4 {
            let mag = digits
                .iter()
                .rev()
                .fold(0u64, |acc, &d| (acc << 15) | d as u64);
            if mag <= i64::MAX as u64 {
                return Ok(Object::Int(if negative {
                    -(mag as i64)
                } else {
                    mag as i64
                }));
            }
        }
        Ok(Object::Long {
            negative,
            digits: digits.into_boxed_slice(),
        })
    }

    fn text_float(&mut self, start: usize) -> Result<f64> {
        let n = self.byte("the length of a float")? as usize;
        let b = self.bytes(n, "float text")?;
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| parse_py_float(s.trim()))
            .ok_or_else(|| {
                Error::new(
                    start,
                    format!(
                        "bad marshal data: {:?} is not a float",
                        String::from_utf8_lossy(b)
                    ),
                )
            })
    }

    fn binary_float(&mut self) -> Result<f64> {
        let b = self.bytes(8, "an 8-byte float")?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn field(&mut self, name: &'static str) -> Result<(usize, ObjId)> {
        let at = self.pos;
        match self.object(Some(name))? {
            Some(id) => Ok((at, id)),
            None => Err(Error::new(
                at,
                format!("bad marshal data: NULL object for code field {name}"),
            )),
        }
    }

    fn typed(&mut self, name: &'static str, want: &'static str) -> Result<ObjId> {
        let (at, id) = self.field(name)?;
        let obj = &self.objects[id.0 as usize];
        let ok = match want {
            "bytes" => matches!(obj, Object::Bytes(_)),
            "str" => matches!(obj, Object::Str(_)),
            "tuple" => matches!(obj, Object::Tuple(_)),
            "tuple of str" => match obj {
                Object::Tuple(items) => items
                    .iter()
                    .all(|i| matches!(self.objects[i.0 as usize], Object::Str(_))),
                _ => false,
            },
            _ => unreachable!("known field types"),
        };
        if !ok {
            return Err(Error::new(
                at,
                format!(
                    "bad code object: {name} must be {want}, found {}",
                    obj.type_name()
                ),
            ));
        }
        Ok(id)
    }

    fn int_field(&mut self, name: &'static str) -> Result<i32> {
        self.long(name)
    }

    fn code(&mut self, start: usize) -> Result<Code> {
        let layout = self.code_layout;
        let argcount = self.int_field("co_argcount")?;
        let posonlyargcount = match layout {
            CodeLayout::Py30 => None,
            _ => Some(self.int_field("co_posonlyargcount")?),
        };
        let kwonlyargcount = self.int_field("co_kwonlyargcount")?;
        let nlocals = match layout {
            CodeLayout::Py311 => None,
            _ => Some(self.int_field("co_nlocals")?),
        };
        let stacksize = self.int_field("co_stacksize")?;
        let flags = self.int_field("co_flags")? as u32;
        let code = self.typed("co_code", "bytes")?;
        let consts = self.typed("co_consts", "tuple")?;
        let names = self.typed("co_names", "tuple of str")?;
        let locals = match layout {
            CodeLayout::Py311 => {
                let names = self.typed("co_localsplusnames", "tuple of str")?;
                let at = self.pos;
                let kinds = self.typed("co_localspluskinds", "bytes")?;
                let n_names = match &self.objects[names.0 as usize] {
                    Object::Tuple(t) => t.len(),
                    _ => 0,
                };
                let n_kinds = match &self.objects[kinds.0 as usize] {
                    Object::Bytes(s) => s.len as usize,
                    _ => 0,
                };
                if n_names != n_kinds {
                    return Err(Error::new(
                        at,
                        format!("bad code object: {n_names} localsplus names but {n_kinds} kinds"),
                    ));
                }
                Locals::Plus { names, kinds }
            }
            _ => Locals::Classic {
                varnames: self.typed("co_varnames", "tuple of str")?,
                freevars: self.typed("co_freevars", "tuple of str")?,
                cellvars: self.typed("co_cellvars", "tuple of str")?,
            },
        };
        let filename = self.typed("co_filename", "str")?;
        let name = self.typed("co_name", "str")?;
        let qualname = match layout {
            CodeLayout::Py311 => Some(self.typed("co_qualname", "str")?),
            _ => None,
        };
        let firstlineno = self.int_field("co_firstlineno")?;
        let table_name = match layout {
            CodeLayout::Py311 => "co_linetable",
            _ => "co_lnotab",
        };
        let linetable = self.typed(table_name, "bytes")?;
        let exceptiontable = match layout {
            CodeLayout::Py311 => Some(self.typed("co_exceptiontable", "bytes")?),
            _ => None,
        };
        let code_len = match &self.objects[code.0 as usize] {
            Object::Bytes(s) => s.len,
            _ => 0,
        };
        if code_len % 2 != 0 && !matches!(layout, CodeLayout::Py30) {
            return Err(Error::new(
                start,
                format!("bad code object: co_code has an odd length ({code_len} bytes)"),
            ));
        }
        Ok(Code {
            offset: start,
            argcount,
            posonlyargcount,
            kwonlyargcount,
            nlocals,
            stacksize,
            flags,
            code,
            consts,
            names,
            locals,
            filename,
            name,
            qualname,
            firstlineno,
            linetable,
            exceptiontable,
        })
    }
}

#[cold]
#[inline(never)]
fn too_deep(start: usize, max_depth: usize) -> Error {
    if max_depth < MAX_DEPTH {
        return Error::new(start, DEEPER);
    }
    Error::new(
        start,
        format!("nesting deeper than {MAX_DEPTH} levels (marshal's recursion limit)"),
    )
}

fn container_name(ty: u8) -> &'static str {
    match ty {
        b'(' | b')' => "tuple",
        b'[' => "list",
        b'<' => "set",
        b'>' => "frozenset",
        _ => "container",
    }
}

/// Parse float text as marshal wrote it (`repr` of a float: digits,
/// exponent, "inf", "nan", with an optional sign).
fn parse_py_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let (neg, body) = match lower.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let v = match body {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
            && !body.is_empty() =>
        {
            body.parse::<f64>().ok()?
        }
        _ => return None,
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> Result<Marshal> {
        read(data, 0, CodeLayout::Py311, true)
    }

    #[test]
    fn scalars() {
        let m = read_all(b"i\xff\xff\xff\xff").unwrap();
        assert_eq!(m.objects[m.root.0 as usize], Object::Int(-1));
        // -(2**15 + 1): two digits, negative count
        let m = read_all(b"l\xfe\xff\xff\xff\x01\x00\x01\x00").unwrap();
        assert_eq!(m.objects[m.root.0 as usize], Object::Int(-32769));
        let m = read_all(b"g\x00\x00\x00\x00\x00\x00\xf8\x3f").unwrap();
        assert_eq!(m.objects[m.root.0 as usize], Object::Float(1.5));
        let m = read_all(b"f\x04-inf").unwrap();
        assert_eq!(
            m.objects[m.root.0 as usize],
            Object::Float(f64::NEG_INFINITY)
        );
    }

    #[test]
    fn refs_and_containers() {
        // (FLAG_REF 'z' "ab", r 0) -> both items are one object
        let m = read_all(b")\x02\xfa\x02abr\x00\x00\x00\x00").unwrap();
        match &m.objects[m.root.0 as usize] {
            Object::Tuple(items) => assert_eq!(items[0], items[1]),
            o => panic!("{o:?}"),
        }
        assert_eq!(m.refs, 1);
        let layout = m.layout.unwrap();
        assert_eq!(layout.iter().map(|e| e.code).collect::<String>(), ")zr");
        assert_eq!(layout[2].ref_target, Some(0));
        // dict terminated by NULL
        let m = read_all(b"{z\x01aN0").unwrap();
        assert!(matches!(&m.objects[m.root.0 as usize], Object::Dict(d) if d.len() == 1));
    }

    #[test]
    fn hostile_input_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"r\x05\x00\x00\x00", "reference 5 out of range"),
            (b"\xa8\x01\x00\x00\x00r\x00\x00\x00\x00", "still being read"),
            (b"(\xff\xff\xff\x7f", "needs at least"),
            (b"s\x10\x00\x00\x00abc", "needs at least 16 bytes"),
            (b"(\x02\x00\x00\x00N", "needs at least 2 bytes"),
            (b"(\x01\x00\x00\x00", "needs at least 1 bytes"),
            (b"i\x01\x00", "truncated data: expected a 4-byte int"),
            (b"Q", "unknown type code 'Q'"),
            (b"u\x02\x00\x00\x00\xff\xfe", "invalid UTF-8"),
            (b"l\x01\x00\x00\x00\x00\x80", "digit 32768 out of range"),
            (b"l\x01\x00\x00\x00\x00\x00", "unnormalized"),
            (b"(\x01\x00\x00\x000", "NULL object in tuple"),
            (b"", "truncated data"),
        ];
        for (data, want) in cases {
            let e = read_all(data).unwrap_err();
            assert!(e.message.contains(want), "{data:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut data = vec![b'['; 0];
        for _ in 0..5000 {
            data.extend_from_slice(b")\x01");
        }
        data.push(b'N');
        let e = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || read_all(&data).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        assert!(e.message.contains("nesting deeper than 2000"), "{e}");
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    /// The deepest nesting marshal allows must fit the 2 MiB stack of a test
    /// thread in a debug build (and so any thread CPython gives us).
    #[test]
    fn depth_limit_fits_a_small_stack() {
        let mut data = Vec::new();
        for _ in 0..MAX_DEPTH - 1 {
            data.extend_from_slice(b")\x01");
        }
        data.push(b'N');
        let m = read(&data, 0, CodeLayout::Py311, true).unwrap();
        assert_eq!(m.objects.len(), MAX_DEPTH);
        let mut code_nest = Vec::new();
        // nested code objects: c -> consts tuple -> c ...; each level costs 2
        for _ in 0..(MAX_DEPTH / 2 - 1) {
            code_nest.push(b'c');
            code_nest.extend_from_slice(&[0; 20]);
            code_nest.extend_from_slice(b"s\x00\x00\x00\x00");
            code_nest.extend_from_slice(b")\x01");
        }
        let e = read(&code_nest, 0, CodeLayout::Py311, false).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
    }
}
