//! Module tables: what one instrumented module's code needs at run time (its
//! sites and nodes, the position map), how code objects find their table
//! (per-code extra data), and the Python API to instrument a source.

use std::collections::HashMap;
use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::events::EVENTS;
use crate::rewrite::edits::PositionMap;
use crate::rewrite::lines::LineIndex;
use crate::rewrite::nodes::NodeKey;
use crate::rewrite::sites::{Form, KwVal, Site};
use crate::rewrite::{self, linetable, Plan, Remapper};

/// Everything the dispatcher and the Python side need about one instrumented
/// module. Python keeps its own lazily built state (the real `ast` nodes,
/// the per-site plans) in the instance `__dict__`.
#[pyclass(module = "spyglass._native", frozen, dict, weakref)]
pub struct ModuleTable {
    #[pyo3(get)]
    pub filename: Py<PyString>,
    /// The original source text.
    #[pyo3(get)]
    pub source: Py<PyString>,
    /// The instrumented text.
    #[pyo3(get)]
    pub text: Py<PyString>,
    pub sites: Vec<Site>,
    pub nodes: Vec<NodeKey>,
    pub map: PositionMap,
    pub orig_lines: LineIndex,
    /// One entry per site: the cached dispatch plan (a `SitePlan`) or None.
    #[pyo3(get)]
    pub plans: Py<PyList>,
}

fn kw_to_py<'py>(py: Python<'py>, v: &KwVal) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        KwVal::None => py.None().into_bound(py),
        KwVal::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        KwVal::Int(i) => i.into_pyobject(py)?.into_any(),
        KwVal::Str(s) => PyString::new(py, s).into_any(),
        // node references reach Python as ("node", id); Python turns them into ids of ast nodes
        KwVal::Node(n) => PyTuple::new(py, [PyString::new(py, "node").into_any(), n.into_pyobject(py)?.into_any()])?.into_any(),
    })
}

#[pymethods]
impl ModuleTable {
    fn __len__(&self) -> usize {
        self.sites.len()
    }

    /// (form code, [(event index, node id, {kwarg: value})...], after site or None)
    fn site<'py>(&self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyTuple>> {
        let site = self.sites.get(k).ok_or_else(|| PyValueError::new_err(format!("no site {k}")))?;
        let events = PyList::empty(py);
        for e in &site.events {
            let kw = PyDict::new(py);
            for (name, v) in &e.kwargs {
                kw.set_item(name, kw_to_py(py, v)?)?;
            }
            events.append((e.ev as usize, e.node, kw))?;
        }
        let op = match &site.op {
            None => py.None().into_bound(py),
            Some(rewrite::sites::Op::Bin(c)) => ("bin", *c).into_pyobject(py)?.into_any(),
            Some(rewrite::sites::Op::Unary(c)) => ("unary", *c).into_pyobject(py)?.into_any(),
            Some(rewrite::sites::Op::Compare(cs)) => ("compare", PyTuple::new(py, cs)?).into_pyobject(py)?.into_any(),
        };
        PyTuple::new(py, [site.form.code().into_pyobject(py)?.into_any(), events.into_any(), site.after.into_pyobject(py)?.into_any(), op])
    }

    /// [(class name, (lineno, col, end_lineno, end_col) or None)] by node id
    fn node_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for k in &self.nodes {
            out.append((k.class, k.pos))?;
        }
        Ok(out)
    }

    /// The instrumented text of the expression of Before site `k`, and where
    /// it starts (line, column) in the instrumented module.
    fn thunk_source(&self, py: Python<'_>, k: usize) -> PyResult<(String, u32, u32)> {
        let site = self.sites.get(k).ok_or_else(|| PyValueError::new_err(format!("no site {k}")))?;
        let (s, e) = site.thunk.ok_or_else(|| PyValueError::new_err(format!("site {k} has no thunk")))?;
        let text = self.text.bind(py).to_str()?;
        let lines = LineIndex::new(text);
        let (line, col) = lines.line_col(s);
        Ok((text[s as usize..e as usize].to_string(), line, col))
    }

    /// Maps the positions of code compiled from the instrumented text (or a
    /// piece of it placed at its own coordinates) back to the original source,
    /// and ties every code object to this table. Returns the new code.
    fn adopt<'py>(slf: &Bound<'py, Self>, code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let py = slf.py();
        let text = this.text.bind(py).to_str()?;
        let remap = Remapper { map: &this.map, out_lines: LineIndex::new(text), orig_lines: &this.orig_lines };
        adopt_code(py, code, &remap, text, slf.as_any())
    }

    /// The original line of a line of the instrumented text.
    fn original_line(&self, py: Python<'_>, line: i32) -> PyResult<i32> {
        let text = self.text.bind(py).to_str()?;
        let remap = Remapper { map: &self.map, out_lines: LineIndex::new(text), orig_lines: &self.orig_lines };
        Ok(remap.line(text, line))
    }

    /// Ties code objects (and their nested ones) to this table without
    /// remapping, for code compiled from the original text.
    fn attach(slf: &Bound<'_, Self>, code: &Bound<'_, PyAny>) -> PyResult<()> {
        attach_code(code, slf.as_any())
    }

    /// A compact serialisation for the on-disk cache (everything but the texts).
    fn dump<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &crate::cache::dump(&self.sites, &self.nodes, &self.map)))
    }

    #[staticmethod]
    fn load(py: Python<'_>, data: &[u8], filename: Py<PyString>, source: Py<PyString>, text: Py<PyString>) -> PyResult<ModuleTable> {
        let (sites, nodes, map) = crate::cache::load(data).ok_or_else(|| PyValueError::new_err("corrupt cached module table"))?;
        let orig_lines = LineIndex::new(source.bind(py).to_str()?);
        let n = sites.len();
        Ok(ModuleTable { filename, source, text, sites, nodes, map, orig_lines, plans: none_list(py, n)? })
    }
}

fn none_list(py: Python<'_>, n: usize) -> PyResult<Py<PyList>> {
    Ok(PyList::new(py, (0..n).map(|_| py.None()))?.unbind())
}

fn code_extra_index() -> PyResult<isize> {
    static INDEX: OnceLock<isize> = OnceLock::new();
    unsafe extern "C" fn free_table(p: *mut std::ffi::c_void) {
        // SAFETY: CPython calls this with the GIL held when the code object
        // dies or its slot is overwritten; `p` is the strong reference
        // `set_table` stored (or null if none was).
        unsafe { ffi::Py_XDECREF(p as *mut ffi::PyObject) };
    }
    let idx = *INDEX.get_or_init(|| {
        // SAFETY: requesting an index only registers the free function; we
        // hold the GIL (every caller is a #[pyfunction] or method).
        unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(free_table) }
    });
    if idx < 0 {
        return Err(PyRuntimeError::new_err("CPython has no free per-code extra slot for spyglass"));
    }
    Ok(idx)
}

/// The table tied to `code`, as a borrowed pointer, or null.
///
/// # Safety
/// `code` must be a valid code object and the GIL held.
pub unsafe fn table_of(code: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let Ok(idx) = code_extra_index() else { return std::ptr::null_mut() };
    let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: per the contract, `code` is a code object and we hold the GIL.
    let rc = unsafe { ffi::PyUnstable_Code_GetExtra(code, idx, &mut p) };
    if rc != 0 {
        // SAFETY: GetExtra only fails with an exception set; we hold the GIL.
        unsafe { ffi::PyErr_Clear() };
        return std::ptr::null_mut();
    }
    p as *mut ffi::PyObject
}

fn set_table(code: &Bound<'_, PyAny>, table: &Bound<'_, PyAny>) -> PyResult<()> {
    let idx = code_extra_index()?;
    let t = table.clone().into_ptr();
    // SAFETY: `code` is a code object (checked by callers), the GIL is held,
    // and `t` is a new strong reference that the slot now owns; CPython frees
    // the previous value (through `free_table`) when it overwrites it.
    let rc = unsafe { ffi::PyUnstable_Code_SetExtra(code.as_ptr(), idx, t as *mut std::ffi::c_void) };
    if rc != 0 {
        // SAFETY: the slot did not take the reference: release it.
        unsafe { ffi::Py_DECREF(t) };
        return Err(PyErr::fetch(code.py()));
    }
    Ok(())
}

fn is_code(o: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a type check on a live object with the GIL held.
    unsafe { ffi::PyCode_Check(o.as_ptr()) != 0 }
}

fn attach_code(code: &Bound<'_, PyAny>, table: &Bound<'_, PyAny>) -> PyResult<()> {
    if !is_code(code) {
        return Err(PyValueError::new_err("expected a code object"));
    }
    set_table(code, table)?;
    for c in code.getattr("co_consts")?.try_iter()? {
        let c = c?;
        if is_code(&c) {
            attach_code(&c, table)?;
        }
    }
    Ok(())
}

fn adopt_code<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    remap: &Remapper<'_>,
    text: &str,
    table: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if !is_code(code) {
        return Err(PyValueError::new_err("expected a code object"));
    }
    let consts = code.getattr("co_consts")?;
    let mut changed = false;
    let mut new_consts = Vec::new();
    for c in consts.try_iter()? {
        let c = c?;
        if is_code(&c) {
            new_consts.push(adopt_code(py, &c, remap, text, table)?);
            changed = true;
        } else {
            new_consts.push(c);
        }
    }
    let first: i32 = code.getattr("co_firstlineno")?.extract()?;
    let table_bytes: Vec<u8> = code.getattr("co_linetable")?.extract()?;
    let entries = linetable::decode(&table_bytes, first)
        .map_err(|e| PyRuntimeError::new_err(format!("unexpected location table byte at {}", e.0)))?;
    let mapped: Vec<linetable::Entry> =
        entries.into_iter().map(|e| linetable::Entry { units: e.units, loc: e.loc.and_then(|l| remap.loc(l)) }).collect();
    let new_first = remap.line(text, first);
    let kwargs = PyDict::new(py);
    kwargs.set_item("co_firstlineno", new_first)?;
    kwargs.set_item("co_linetable", PyBytes::new(py, &linetable::encode(&mapped, new_first)))?;
    if changed {
        kwargs.set_item("co_consts", PyTuple::new(py, new_consts)?)?;
    }
    let new = code.call_method("replace", (), Some(&kwargs))?;
    set_table(&new, table)?;
    Ok(new)
}

/// A parsed source awaiting instrumentation.
#[pyclass(module = "spyglass._native", unsendable)]
pub struct Source {
    inner: rewrite::Source,
}

fn plan_from(
    enabled: Vec<bool>,
    predicated: Vec<bool>,
    decisions: HashMap<(u8, usize), bool>,
    collect: bool,
    version: (u8, u8),
) -> PyResult<Plan> {
    if enabled.len() != EVENTS.len() || predicated.len() != EVENTS.len() {
        return Err(PyValueError::new_err(format!("expected {} flags per event list", EVENTS.len())));
    }
    Ok(Plan { enabled, predicated, decisions, collect, version })
}

#[pymethods]
impl Source {
    /// Parses `text` (mode "exec" or "eval"). A syntax error raises
    /// ValueError(offset, message); the caller asks CPython for its own error.
    #[new]
    fn new(text: String, mode: &str) -> PyResult<Source> {
        let eval = match mode {
            "exec" => false,
            "eval" => true,
            other => return Err(PyValueError::new_err(format!("mode must be 'exec' or 'eval', not {other:?}"))),
        };
        rewrite::parse(text, eval)
            .map(|inner| Source { inner })
            .map_err(|p| PyValueError::new_err((p.offset, p.message)))
    }

    /// [(event index, node address, class, position)] of the predicated
    /// events that could be instrumented.
    fn candidates(&self, enabled: Vec<bool>, predicated: Vec<bool>, version: (u8, u8)) -> PyResult<Vec<(usize, usize, &'static str, Option<(u32, u32, u32, u32)>)>> {
        let plan = plan_from(enabled, predicated, HashMap::new(), true, version)?;
        Ok(self.inner.candidates(&plan).into_iter().map(|c| (c.ev as usize, c.addr, c.key.class, c.key.pos)).collect())
    }

    /// Rewrites; `decisions` maps (event index, node address) of candidates
    /// to whether to instrument. Returns a ModuleTable, or None when nothing
    /// was instrumented (the code should then be compiled as is).
    fn rewrite(
        &self,
        py: Python<'_>,
        filename: Py<PyString>,
        enabled: Vec<bool>,
        predicated: Vec<bool>,
        decisions: HashMap<(u8, usize), bool>,
        version: (u8, u8),
    ) -> PyResult<Option<ModuleTable>> {
        let plan = plan_from(enabled, predicated, decisions, false, version)?;
        let out = self.inner.rewrite(&plan);
        if out.sites.is_empty() {
            return Ok(None);
        }
        let n = out.sites.len();
        Ok(Some(ModuleTable {
            filename,
            source: PyString::new(py, &self.inner.text).unbind(),
            text: PyString::new(py, &out.text).unbind(),
            sites: out.sites,
            nodes: out.nodes,
            map: out.map,
            orig_lines: LineIndex::new(&self.inner.text),
            plans: none_list(py, n)?,
        }))
    }
}

/// [(name, value, group, kind, ast class or None, fires, ret, kwargs)] in table order.
#[pyfunction]
pub fn events() -> Vec<(&'static str, &'static str, &'static str, &'static str, Option<&'static str>, &'static str, &'static str, &'static str)> {
    EVENTS.iter().map(|e| (e.name, e.value, e.group, e.kind.name(), e.ast_class, e.fires, e.ret, e.kwargs)).collect()
}

/// The site forms, by name, as the codes `ModuleTable.site` reports.
#[pyfunction]
pub fn site_forms() -> Vec<(&'static str, u8)> {
    use Form::*;
    [("value", Value), ("before", Before), ("operator", Operator), ("statement", Statement), ("notify", Notify), ("subscript", Subscript), ("handler_type", HandlerType)]
        .into_iter()
        .map(|(n, f)| (n, f.code()))
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ModuleTable>()?;
    m.add_class::<Source>()?;
    m.add_function(wrap_pyfunction!(events, m)?)?;
    m.add_function(wrap_pyfunction!(site_forms, m)?)?;
    Ok(())
}
