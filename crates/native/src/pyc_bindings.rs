//! Python bindings of the `.pyc` reader (crates/pyc). Parsing and
//! disassembly run without the GIL; only the conversion of results into
//! Python objects holds it.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};
use spyglass_pyc::dis::{self, ArgVal, Mode};
use spyglass_pyc::header::{Invalidation, SourceCheck};
use spyglass_pyc::object::{Locals, ObjId, Object, StrKind};
use spyglass_pyc::{exceptions, format, lines, magic, siphash, CodeNode, Pyc};

/// (lineno, end_lineno, col_offset, end_col_offset) of one code unit.
type PyPosition = (Option<i32>, Option<i32>, Option<i32>, Option<i32>);
/// (start, end, target, depth, lasti) of one exception-table entry.
type PyExceptionEntry = (u64, u64, u64, u64, bool);

/// A parsed `.pyc` file.
#[pyclass(frozen, module = "spyglass._native", name = "PycFile")]
pub struct PycFile {
    pyc: Arc<Pyc>,
    filename: String,
    nodes: Vec<CodeNode>,
    index_of: HashMap<ObjId, usize>,
}

fn err(filename: &str, e: spyglass_pyc::Error) -> PyErr {
    PyValueError::new_err(e.with_file(filename))
}

impl PycFile {
    fn wrap(pyc: Pyc, filename: String) -> Self {
        let nodes = pyc.code_objects();
        let mut index_of = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            index_of.entry(n.id).or_insert(i);
        }
        PycFile {
            pyc: Arc::new(pyc),
            filename,
            nodes,
            index_of,
        }
    }

    fn node(&self, i: usize) -> PyResult<&CodeNode> {
        self.nodes.get(i).ok_or_else(|| {
            PyValueError::new_err(format!("no code object {i} in {}", self.filename))
        })
    }

    fn code(&self, i: usize) -> PyResult<&spyglass_pyc::object::Code> {
        let id = self.node(i)?.id;
        Ok(self.pyc.code(id).expect("nodes are code objects"))
    }
}

/// Converts marshal objects into Python objects; shared objects stay shared.
struct Conv<'py, 'a> {
    py: Python<'py>,
    file: &'a PycFile,
    make_code: &'a Bound<'py, PyAny>,
    memo: HashMap<ObjId, Py<PyAny>>,
}

impl<'py> Conv<'py, '_> {
    fn str_of(&self, id: ObjId) -> PyResult<Bound<'py, PyAny>> {
        let pyc = &self.file.pyc;
        let Object::Str(s) = pyc.obj(id) else {
            return Ok(self.py.None().into_bound(self.py));
        };
        let raw = pyc.str_raw(s);
        match s.kind {
            StrKind::Utf8 => Ok(pyo3::types::PyString::new(self.py, &pyc.str_text(s)).into_any()),
            StrKind::Utf8Surrogates => {
                PyBytes::new(self.py, raw).call_method1("decode", ("utf-8", "surrogatepass"))
            }
            StrKind::Latin1 => PyBytes::new(self.py, raw).call_method1("decode", ("latin-1",)),
        }
    }

    fn obj(&mut self, id: ObjId) -> PyResult<Bound<'py, PyAny>> {
        if let Some(o) = self.memo.get(&id) {
            return Ok(o.bind(self.py).clone());
        }
        let py = self.py;
        let pyc = self.file.pyc.clone();
        let o: Bound<'py, PyAny> = match pyc.obj(id) {
            Object::None => py.None().into_bound(py),
            Object::True => true.into_pyobject(py)?.to_owned().into_any(),
            Object::False => false.into_pyobject(py)?.to_owned().into_any(),
            Object::Ellipsis => py.Ellipsis().into_bound(py),
            Object::StopIteration => py.import("builtins")?.getattr("StopIteration")?,
            Object::Int(i) => i.into_pyobject(py)?.into_any(),
            Object::Long { negative, digits } => {
                // pack the 15-bit digits into little-endian bytes for int.from_bytes
                let mut bytes = Vec::with_capacity(digits.len() * 15 / 8 + 2);
                let (mut acc, mut bits) = (0u32, 0u32);
                for &d in digits.iter() {
                    acc |= (d as u32) << bits;
                    bits += 15;
                    while bits >= 8 {
                        bytes.push(acc as u8);
                        acc >>= 8;
                        bits -= 8;
                    }
                }
                bytes.push(acc as u8);
                let v = py
                    .import("builtins")?
                    .getattr("int")?
                    .call_method1("from_bytes", (PyBytes::new(py, &bytes), "little"))?;
                if *negative {
                    v.neg()?
                } else {
                    v
                }
            }
            Object::Float(f) => f.into_pyobject(py)?.into_any(),
            Object::Complex(re, im) => {
                pyo3::types::PyComplex::from_doubles(py, *re, *im).into_any()
            }
            Object::Bytes(_) => PyBytes::new(py, pyc.bytes(id)).into_any(),
            Object::Str(_) => self.str_of(id)?,
            Object::Tuple(items) => {
                let v = items
                    .iter()
                    .map(|&i| self.obj(i))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, v)?.into_any()
            }
            Object::List(items) => {
                let v = items
                    .iter()
                    .map(|&i| self.obj(i))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, v)?.into_any()
            }
            Object::Set(items) | Object::FrozenSet(items) => {
                let v = items
                    .iter()
                    .map(|&i| self.obj(i))
                    .collect::<PyResult<Vec<_>>>()?;
                if matches!(pyc.obj(id), Object::Set(_)) {
                    PySet::new(py, &v)?.into_any()
                } else {
                    PyFrozenSet::new(py, &v)?.into_any()
                }
            }
            Object::Dict(items) => {
                let d = PyDict::new(py);
                for &(k, v) in items.iter() {
                    d.set_item(self.obj(k)?, self.obj(v)?)?;
                }
                d.into_any()
            }
            Object::Slice(parts) => {
                let [a, b, c] = **parts;
                py.import("builtins")?.getattr("slice")?.call1((
                    self.obj(a)?,
                    self.obj(b)?,
                    self.obj(c)?,
                ))?
            }
            Object::Code(_) => {
                let index = self.file.index_of.get(&id).copied();
                self.make_code.call1((index,))?
            }
        };
        self.memo.insert(id, o.clone().unbind());
        Ok(o)
    }

    fn names(&mut self, ids: &[ObjId]) -> PyResult<Bound<'py, PyTuple>> {
        let v = ids
            .iter()
            .map(|&i| self.str_of(i))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(self.py, v)
    }
}

#[pymethods]
impl PycFile {
    /// Parse the bytes of a `.pyc` file (header included). `layout=True`
    /// also records where each marshalled object sits.
    #[new]
    #[pyo3(signature = (data, filename = "<bytes>".to_string(), layout = false))]
    fn new(py: Python<'_>, data: Vec<u8>, filename: String, layout: bool) -> PyResult<Self> {
        let parsed = py.detach(|| {
            if layout {
                Pyc::parse_with_layout(data)
            } else {
                Pyc::parse(data)
            }
        });
        let pyc = parsed.map_err(|e| err(&filename, e))?;
        Ok(Self::wrap(pyc, filename))
    }

    /// Parse raw marshal data (no header) written by CPython 3.`minor`.
    #[staticmethod]
    #[pyo3(signature = (data, minor, filename = "<bytes>".to_string(), layout = false))]
    fn from_marshal(
        py: Python<'_>,
        data: Vec<u8>,
        minor: u8,
        filename: String,
        layout: bool,
    ) -> PyResult<Self> {
        let pyc = py
            .detach(|| Pyc::from_marshal(data, minor, layout))
            .map_err(|e| err(&filename, e))?;
        Ok(Self::wrap(pyc, filename))
    }

    #[getter]
    fn filename(&self) -> &str {
        &self.filename
    }

    #[getter]
    fn version(&self) -> (u8, u8) {
        self.pyc.version
    }

    #[getter]
    fn size(&self) -> usize {
        self.pyc.data.len()
    }

    /// Offset where the marshalled data ends (CPython ignores what follows).
    #[getter]
    fn end(&self) -> usize {
        self.pyc.end
    }

    #[getter]
    fn ref_count(&self) -> usize {
        self.pyc.refs
    }

    /// The header as a dict, or None for raw marshal data.
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(h) = &self.pyc.header else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("magic", h.info.magic)?;
        d.set_item("magic_bytes", PyBytes::new(py, &h.magic_bytes))?;
        d.set_item("version", (h.info.major, h.info.minor))?;
        d.set_item("label", h.info.label)?;
        d.set_item("note", h.info.note)?;
        d.set_item("flags", h.flags)?;
        d.set_item("length", h.len)?;
        match &h.invalidation {
            Invalidation::Timestamp { mtime, source_size } => {
                d.set_item("kind", "timestamp")?;
                d.set_item("mtime", *mtime)?;
                d.set_item("source_size", *source_size)?;
            }
            Invalidation::Hash { hash, check_source } => {
                d.set_item("kind", "hash")?;
                d.set_item("source_hash", PyBytes::new(py, hash))?;
                d.set_item("check_source", *check_source)?;
            }
        }
        Ok(Some(d))
    }

    /// Check `source` against the header: ("match" | "mismatch" | "unchecked", expected, found).
    fn check_source(&self, source: &[u8]) -> (String, Option<String>, Option<String>) {
        match self.pyc.header.as_ref().map(|h| h.check_source(source)) {
            Some(SourceCheck::Match) => ("match".into(), None, None),
            Some(SourceCheck::Mismatch { expected, found }) => {
                ("mismatch".into(), Some(expected), Some(found))
            }
            _ => ("unchecked".into(), None, None),
        }
    }

    fn code_count(&self) -> usize {
        self.nodes.len()
    }

    /// (qualname, parent index, depth, repeated) of code object `i`.
    fn code_node(&self, i: usize) -> PyResult<(String, Option<usize>, usize, bool)> {
        let n = self.node(i)?;
        Ok((n.qualname.clone(), n.parent, n.depth, n.repeated))
    }

    /// The fields of code object `i`; nested code objects in `co_consts` are
    /// `make_code(index)`.
    fn code_fields<'py>(
        &self,
        py: Python<'py>,
        i: usize,
        make_code: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let code = self.code(i)?.clone();
        let pyc = self.pyc.clone();
        let mut conv = Conv {
            py,
            file: self,
            make_code: &make_code,
            memo: HashMap::new(),
        };
        let d = PyDict::new(py);
        d.set_item("offset", code.offset)?;
        d.set_item("co_argcount", code.argcount)?;
        d.set_item("co_posonlyargcount", code.posonlyargcount)?;
        d.set_item("co_kwonlyargcount", code.kwonlyargcount)?;
        d.set_item(
            "co_nlocals",
            code.nlocals.unwrap_or(pyc.varnames(&code).len() as i32),
        )?;
        d.set_item("co_stacksize", code.stacksize)?;
        d.set_item("co_flags", code.flags)?;
        d.set_item("co_code", PyBytes::new(py, pyc.bytes(code.code)))?;
        d.set_item("co_consts", conv.obj(code.consts)?)?;
        d.set_item("co_names", conv.names(pyc.items(code.names))?)?;
        d.set_item("co_varnames", conv.names(&pyc.varnames(&code))?)?;
        d.set_item("co_cellvars", conv.names(&pyc.cellvars(&code))?)?;
        d.set_item("co_freevars", conv.names(&pyc.freevars(&code))?)?;
        if let Locals::Plus { names, kinds } = &code.locals {
            d.set_item("co_localsplusnames", conv.names(pyc.items(*names))?)?;
            d.set_item("co_localspluskinds", PyBytes::new(py, pyc.bytes(*kinds)))?;
        }
        d.set_item("co_filename", conv.str_of(code.filename)?)?;
        d.set_item("co_name", conv.str_of(code.name)?)?;
        match code.qualname {
            Some(q) => d.set_item("co_qualname", conv.str_of(q)?)?,
            None => d.set_item("co_qualname", self.node(i)?.qualname.clone())?,
        }
        d.set_item("co_firstlineno", code.firstlineno)?;
        let table_name = if pyc.minor() <= 9 {
            "co_lnotab"
        } else {
            "co_linetable"
        };
        d.set_item(table_name, PyBytes::new(py, pyc.bytes(code.linetable)))?;
        if let Some(t) = code.exceptiontable {
            d.set_item("co_exceptiontable", PyBytes::new(py, pyc.bytes(t)))?;
        }
        Ok(d)
    }

    /// Instructions of code object `i` as tuples (see spyglass.pyc.Instruction).
    /// `mode` is "get_instructions" (jump targets only) or "dis" (with
    /// exception-table targets, as `dis.dis` marks them).
    #[pyo3(signature = (i, make_code, mode = "get_instructions"))]
    fn instructions<'py>(
        &self,
        py: Python<'py>,
        i: usize,
        make_code: Bound<'py, PyAny>,
        mode: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let mode = match mode {
            "get_instructions" => Mode::GetInstructions,
            "dis" => Mode::Disassemble,
            other => return Err(PyValueError::new_err(format!("unknown mode {other:?}"))),
        };
        let code = self.code(i)?.clone();
        let pyc = self.pyc.clone();
        let d = py
            .detach(|| dis::disassemble(&pyc, &code, mode))
            .map_err(|e| err(&self.filename, e))?;
        let mut conv = Conv {
            py,
            file: self,
            make_code: &make_code,
            memo: HashMap::new(),
        };
        let out = PyList::empty(py);
        for ins in &d.instructions {
            let argval: Bound<'py, PyAny> = match &ins.argval {
                ArgVal::None | ArgVal::Other => py.None().into_bound(py),
                ArgVal::Int(v) => v.into_pyobject(py)?.into_any(),
                ArgVal::Name(n) => conv.str_of(*n)?,
                ArgVal::NamePair(a, b) => {
                    PyTuple::new(py, [conv.str_of(*a)?, conv.str_of(*b)?])?.into_any()
                }
                ArgVal::Str(s) => s.into_pyobject(py)?.into_any(),
                ArgVal::Const(c) => conv.obj(*c)?,
            };
            let t = PyTuple::new(
                py,
                [
                    ins.offset.into_pyobject(py)?.into_any(),
                    ins.start_offset.into_pyobject(py)?.into_any(),
                    ins.opcode.into_pyobject(py)?.into_any(),
                    ins.opname.into_pyobject(py)?.into_any(),
                    ins.arg.into_pyobject(py)?.into_any(),
                    argval,
                    ins.argrepr.as_ref().into_pyobject(py)?.into_any(),
                    ins.starts_line.into_pyobject(py)?.to_owned().into_any(),
                    ins.line.into_pyobject(py)?.into_any(),
                    ins.positions
                        .map(|p| (p[0], p[1], p[2], p[3]))
                        .into_pyobject(py)?
                        .into_any(),
                    ins.is_jump_target.into_pyobject(py)?.to_owned().into_any(),
                    ins.label.into_pyobject(py)?.into_any(),
                    ins.caches.into_pyobject(py)?.into_any(),
                ],
            )?;
            out.append(t)?;
        }
        Ok(out)
    }

    /// `co_lines()` of code object `i`: (start, end, line) ranges.
    fn lines(&self, i: usize) -> PyResult<Vec<(u32, u32, Option<i32>)>> {
        let code = self.code(i)?;
        let pyc = &self.pyc;
        let r = lines::co_lines(
            pyc.minor(),
            pyc.bytes(code.linetable),
            code.firstlineno,
            pyc.bytes(code.code).len(),
        );
        Ok(r.into_iter().map(|r| (r.start, r.end, r.line)).collect())
    }

    /// `co_positions()` of code object `i` (3.11+; empty before).
    fn positions(&self, i: usize) -> PyResult<Vec<PyPosition>> {
        let code = self.code(i)?;
        if self.pyc.minor() < 11 {
            return Ok(Vec::new());
        }
        let p = lines::location_positions(self.pyc.bytes(code.linetable), code.firstlineno);
        Ok(p.into_iter().map(|p| (p[0], p[1], p[2], p[3])).collect())
    }

    /// The exception table of code object `i`: (start, end, target, depth, lasti).
    fn exception_table(&self, i: usize) -> PyResult<Vec<PyExceptionEntry>> {
        let code = self.code(i)?;
        let t = code
            .exceptiontable
            .map(|t| exceptions::parse(self.pyc.bytes(t)))
            .unwrap_or_default();
        Ok(t.into_iter()
            .map(|e| (e.start, e.end, e.target, e.depth, e.lasti))
            .collect())
    }

    /// Where each marshalled object sits (only when parsed with layout=True):
    /// (offset, end, depth, type code, ref index, ref target, field, code index, summary).
    #[allow(clippy::type_complexity)]
    fn layout(
        &self,
    ) -> Vec<(
        usize,
        usize,
        u32,
        String,
        Option<u32>,
        Option<u32>,
        Option<&'static str>,
        Option<usize>,
        String,
    )> {
        let pyc = &self.pyc;
        let Some(layout) = &pyc.layout else {
            return Vec::new();
        };
        layout
            .iter()
            .map(|e| {
                let summary = match e.obj {
                    Some(id) => {
                        let mut s = spyglass_pyc::repr::repr(pyc, id);
                        if s.len() > 60 {
                            let mut cut = 57;
                            while !s.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            s.truncate(cut);
                            s.push_str("...");
                        }
                        s
                    }
                    None => String::new(),
                };
                let code_index = e
                    .obj
                    .and_then(|id| self.index_of.get(&id).copied())
                    .filter(|_| e.code == 'c');
                (
                    e.offset,
                    e.end,
                    e.depth,
                    e.code.to_string(),
                    e.ref_index,
                    e.ref_target,
                    e.field,
                    code_index,
                    summary,
                )
            })
            .collect()
    }

    /// The whole file disassembled: "text" (the writing version's `dis.dis`
    /// layout) or "jsonl" (one JSON object per instruction); UTF-8 bytes
    /// instead of str with `binary=True`.
    #[pyo3(signature = (fmt = "text", binary = false))]
    fn dis<'py>(&self, py: Python<'py>, fmt: &str, binary: bool) -> PyResult<Bound<'py, PyAny>> {
        let pyc = self.pyc.clone();
        let fmt = fmt.to_string();
        let r = py.detach(move || {
            let mut out = String::new();
            let res = match fmt.as_str() {
                "jsonl" => format::jsonl(&pyc, &mut out),
                _ => format::text(&pyc, &mut out),
            };
            res.map(|_| out)
        });
        let out = r.map_err(|e| err(&self.filename, e))?;
        text_or_bytes(py, out, binary)
    }

    fn __repr__(&self) -> String {
        let label = self
            .pyc
            .header
            .as_ref()
            .map(|h| h.info.label.to_string())
            .unwrap_or_default();
        format!(
            "<PycFile {:?} {} {} code objects>",
            self.filename,
            label,
            self.nodes.len()
        )
    }
}

fn text_or_bytes(py: Python<'_>, out: String, binary: bool) -> PyResult<Bound<'_, PyAny>> {
    Ok(if binary {
        PyBytes::new(py, out.as_bytes()).into_any()
    } else {
        out.into_pyobject(py)?.into_any()
    })
}

/// Disassemble the file at `path` without building any Python object but
/// the result (str, or UTF-8 bytes with `binary=True`).
#[pyfunction]
#[pyo3(signature = (path, fmt = "text", binary = false))]
fn pyc_dis_file<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    fmt: &str,
    binary: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let name = path.display().to_string();
    let fmt = fmt.to_string();
    let out = py.detach(move || {
        let data =
            std::fs::read(&path).map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        let pyc = Pyc::parse(data).map_err(|e| err(&name, e))?;
        let mut out = String::new();
        let r = if fmt == "jsonl" {
            format::jsonl(&pyc, &mut out)
        } else {
            format::text(&pyc, &mut out)
        };
        r.map_err(|e| err(&name, e))?;
        Ok::<_, PyErr>(out)
    })?;
    text_or_bytes(py, out, binary)
}

/// Every magic number the reader knows: (magic, major, minor, label, note).
#[pyfunction]
fn pyc_magic_table() -> Vec<(u16, u8, u8, &'static str, &'static str)> {
    magic::all()
        .map(|m| (m.magic, m.major, m.minor, m.label, m.note))
        .collect()
}

/// `_imp.source_hash` of CPython 3.`minor` for a file with these magic bytes.
#[pyfunction]
fn pyc_source_hash<'py>(
    py: Python<'py>,
    minor: u8,
    magic_bytes: [u8; 4],
    source: &[u8],
) -> Option<Bound<'py, PyBytes>> {
    siphash::source_hash(minor, magic_bytes, source).map(|h| PyBytes::new(py, &h))
}

/// The minor versions the disassembler has opcode tables for.
#[pyfunction]
fn pyc_dis_versions() -> Vec<u8> {
    spyglass_pyc::opcodes::supported_minors().collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PycFile>()?;
    m.add_function(wrap_pyfunction!(pyc_dis_file, m)?)?;
    m.add_function(wrap_pyfunction!(pyc_magic_table, m)?)?;
    m.add_function(wrap_pyfunction!(pyc_source_hash, m)?)?;
    m.add_function(wrap_pyfunction!(pyc_dis_versions, m)?)?;
    Ok(())
}
