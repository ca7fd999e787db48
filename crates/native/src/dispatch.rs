//! The run-time hot path: the `_sg_*` builtins that instrumented code calls,
//! and the loop that delivers an event to the handlers of the active tracers.
//!
//! A call finds its module table through the calling frame's code object
//! (per-code extra data), then the site's cached plan: the handlers that
//! apply, resolved by Python (`spyglass._dispatch.plan_site`) once per site
//! and tracer-stack generation. What varies per call (which tracers are
//! enabled, re-entrancy, the thread) is checked here.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::rewrite::sites::Op;
use crate::table::{table_of, ModuleTable};
use crate::truth;

static GENERATION: AtomicU64 = AtomicU64::new(1);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOW_REENTRANT: AtomicBool = AtomicBool::new(false);
/// An event is being handled (Pyccolo's model: global, not per thread).
static HANDLING: AtomicBool = AtomicBool::new(false);
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

const SLOTS: usize = 4096;
static ENABLED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

/// Python objects the dispatcher needs, given once by `install`.
struct Callbacks {
    plan_site: Py<PyAny>,
    handler_failed: Py<PyAny>,
    exec_statement: Py<PyAny>,
    force_thunk: Py<PyAny>,
    table_for_code: Py<PyAny>,
    chain_compare: Py<PyAny>,
    null: Py<PyAny>,
    skip: Py<PyAny>,
    skip_all: Py<PyAny>,
    binops: Py<PyTuple>,
    unaryops: Py<PyTuple>,
    cmpops: Py<PyTuple>,
}

static CALLBACKS: OnceLock<Callbacks> = OnceLock::new();

enum Pending {
    Call(Py<PyAny>),
    Value(Py<PyAny>),
}

thread_local! {
    /// Overrides decided by `_sg_b`, consumed by the `_sg_o` right after.
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// Subscript keys evaluated by `_sg_x`, consumed by the `_sg_l` right after.
    static KEYS: RefCell<Vec<Py<PyAny>>> = const { RefCell::new(Vec::new()) };
}

fn callbacks() -> PyResult<&'static Callbacks> {
    CALLBACKS.get().ok_or_else(|| PyRuntimeError::new_err("spyglass dispatcher used before installation"))
}

const F_REENTRANT_HANDLER: u8 = 1;
const F_TRACER_REENTRANT: u8 = 2;
const F_THREADS: u8 = 4;

struct Entry {
    /// Which of the site's events this handler is for.
    event_pos: u8,
    event: Py<PyAny>,
    slot: u32,
    tracer: Py<PyAny>,
    func: Py<PyAny>,
    node: Py<PyAny>,
    kwnames: Option<Py<PyTuple>>,
    kwvalues: Vec<Py<PyAny>>,
    /// Append the subscript key as the last keyword value.
    dynamic_key: bool,
    predicate: Option<Py<PyAny>>,
    predicate_arg: Py<PyAny>,
    flags: u8,
}

/// The handlers of one site, in firing order, for one tracer-stack generation.
#[pyclass(module = "spyglass._native", frozen)]
pub struct SitePlan {
    generation: u64,
    entries: Vec<Entry>,
}

#[pymethods]
impl SitePlan {
    /// `entries`: (event_pos, event, slot, tracer, func, node, kwnames or
    /// None, kwvalues, dynamic_key, predicate or None, predicate_arg, flags)
    #[new]
    fn new(generation: u64, entries: Vec<Bound<'_, PyTuple>>) -> PyResult<SitePlan> {
        let mut out = Vec::with_capacity(entries.len());
        for t in entries {
            let slot: u32 = t.get_item(2)?.extract()?;
            if slot as usize >= SLOTS {
                return Err(PyRuntimeError::new_err("too many tracers"));
            }
            let kwnames = t.get_item(6)?;
            let kwvalues: Vec<Py<PyAny>> = t.get_item(7)?.extract()?;
            let kwnames: Option<Py<PyTuple>> = if kwnames.is_none() { None } else { Some(kwnames.cast_into::<PyTuple>()?.unbind()) };
            let dynamic_key: bool = t.get_item(8)?.extract()?;
            let n_names = kwnames.as_ref().map_or(0, |k| k.bind(t.py()).len());
            if n_names != kwvalues.len() + dynamic_key as usize {
                return Err(PyRuntimeError::new_err("keyword names and values differ in number"));
            }
            let predicate = t.get_item(9)?;
            out.push(Entry {
                event_pos: t.get_item(0)?.extract()?,
                event: t.get_item(1)?.unbind(),
                slot,
                tracer: t.get_item(3)?.unbind(),
                func: t.get_item(4)?.unbind(),
                node: t.get_item(5)?.unbind(),
                kwnames,
                kwvalues,
                dynamic_key,
                predicate: if predicate.is_none() { None } else { Some(predicate.unbind()) },
                predicate_arg: t.get_item(10)?.unbind(),
                flags: t.get_item(11)?.extract()?,
            });
        }
        Ok(SitePlan { generation, entries: out })
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }
}

/// The frame, table and plan of the current call of site `k`; None when the
/// caller is not instrumented code spyglass knows.
struct Here<'py> {
    frame: Bound<'py, PyAny>,
    table: Bound<'py, ModuleTable>,
    plan: Bound<'py, SitePlan>,
}

impl<'py> Here<'py> {
    fn run(&self, initial: Bound<'py, PyAny>, key: Option<&Bound<'py, PyAny>>, stop_on_change: bool) -> PyResult<Bound<'py, PyAny>> {
        run(self.frame.py(), &self.frame, &self.plan, initial, key, stop_on_change, true)
    }

    /// For statement and notify sites: each event starts from `initial`
    /// (they are separate events that happen to fire in one call).
    fn run_each(&self, initial: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        run(self.frame.py(), &self.frame, &self.plan, initial, None, false, false)
    }
}

fn here<'py>(py: Python<'py>, k: usize) -> PyResult<Option<Here<'py>>> {
    // SAFETY: we hold the GIL; the result is a borrowed reference to the
    // running frame (or null when no Python frame runs).
    let frame_ptr = unsafe { ffi::PyEval_GetFrame() } as *mut ffi::PyObject;
    if frame_ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null borrowed frame, GIL held.
    let frame = unsafe { Bound::from_borrowed_ptr(py, frame_ptr) };
    // SAFETY: `frame_ptr` is a frame object; PyFrame_GetCode returns a new reference.
    let code = unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame_ptr as *mut ffi::PyFrameObject) as *mut ffi::PyObject) };
    // SAFETY: `code` is a live code object and we hold the GIL.
    let t = unsafe { table_of(code.as_ptr()) };
    let table_any = if t.is_null() {
        let found = with_headroom(|| callbacks()?.table_for_code.bind(py).call1((&code,)))?;
        if found.is_none() {
            return Ok(None);
        }
        found
    } else {
        // SAFETY: the slot holds a strong reference to the table that lives as long as the code.
        unsafe { Bound::from_borrowed_ptr(py, t) }
    };
    let table = table_any.cast_into::<ModuleTable>()?;
    let t = table.get();
    if k >= t.sites.len() {
        return Ok(None);
    }
    let plans = t.plans.bind(py);
    let gen = GENERATION.load(Ordering::Relaxed);
    // SAFETY: `plans` is a list only Rust can reach, made with one item per
    // site and never resized, and `k < sites.len()` was checked; the item is
    // borrowed for the duration of this call under the GIL.
    let cached = unsafe { Bound::from_borrowed_ptr(py, ffi::PyList_GET_ITEM(plans.as_ptr(), k as ffi::Py_ssize_t)) };
    let plan = match cached.cast::<SitePlan>() {
        Ok(p) if p.get().generation == gen => p.clone(),
        _ => {
            let p = with_headroom(|| callbacks()?.plan_site.bind(py).call1((&table, k, gen)))?.cast_into::<SitePlan>()?;
            plans.set_item(k, &p)?;
            p
        }
    };
    Ok(Some(Here { frame, table, plan }))
}

/// Runs `f` (which calls Python: handlers, plans) with room above the
/// recursion limit, so that spyglass's own frames never make the user's code
/// hit (or miss) a RecursionError it would not have otherwise.
fn with_headroom<T>(f: impl FnOnce() -> T) -> T {
    const HEADROOM: i32 = 200;
    // SAFETY: plain reads/writes of the interpreter's recursion limit with the GIL held.
    let limit = unsafe { ffi::Py_GetRecursionLimit() };
    // SAFETY: as above.
    unsafe { ffi::Py_SetRecursionLimit(limit.saturating_add(HEADROOM)) };
    let out = f();
    // SAFETY: as above; restores what the user had (a handler changing the
    // limit itself is overridden, by design).
    unsafe { ffi::Py_SetRecursionLimit(limit) };
    out
}

fn thread_ident() -> u64 {
    // SAFETY: a plain query of the current thread's id.
    unsafe { ffi::PyThread_get_thread_ident() as u64 }
}

/// Delivers the site's events and returns the final `ret`. `key` is the
/// subscript key of Subscript sites; `stop_on_change` ends delivery once an
/// event's handlers replaced `initial` (before-expression sites: an outer
/// replacement means the inner expression never runs); `chain` threads `ret`
/// from event to event (false for statement and notify sites, whose events
/// are independent).
fn run<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    plan: &Bound<'py, SitePlan>,
    initial: Bound<'py, PyAny>,
    key: Option<&Bound<'py, PyAny>>,
    stop_on_change: bool,
    chain: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if plan.get().entries.is_empty() {
        return Ok(initial);
    }
    with_headroom(|| run_entries(py, frame, plan, initial, key, stop_on_change, chain))
}

/// `run` for a plan that has entries, inside the recursion headroom.
fn run_entries<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    plan: &Bound<'py, SitePlan>,
    initial: Bound<'py, PyAny>,
    key: Option<&Bound<'py, PyAny>>,
    stop_on_change: bool,
    chain: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cb = callbacks()?;
    let entries = &plan.get().entries;
    let nested = HANDLING.load(Ordering::Relaxed);
    let allow = ALLOW_REENTRANT.load(Ordering::Relaxed);
    let mut off_main: Option<bool> = None;
    let mut ret = initial.clone();
    let mut current = u8::MAX;
    let mut skip_slot: Option<u32> = None;
    let mut skip_event = false;
    for e in entries {
        if e.event_pos != current {
            if stop_on_change && current != u8::MAX && !ret.is(&initial) {
                break;
            }
            current = e.event_pos;
            skip_slot = None;
            skip_event = false;
            if !chain {
                ret = initial.clone();
            }
        }
        if skip_event || skip_slot == Some(e.slot) || !ENABLED[e.slot as usize].load(Ordering::Relaxed) {
            continue;
        }
        if nested && !allow && (e.flags & F_TRACER_REENTRANT == 0 || e.flags & F_REENTRANT_HANDLER == 0) {
            continue;
        }
        if e.flags & F_THREADS == 0 && *off_main.get_or_insert_with(|| thread_ident() != MAIN_THREAD.load(Ordering::Relaxed)) {
            continue;
        }
        let was = HANDLING.swap(true, Ordering::Relaxed);
        let result = match &e.predicate {
            None => call_handler(py, e, &ret, frame, key).map(Some),
            Some(p) => match p.bind(py).call1((e.predicate_arg.bind(py),)).and_then(|v| v.is_truthy()) {
                Ok(true) => call_handler(py, e, &ret, frame, key).map(Some),
                Ok(false) => Ok(None),
                Err(err) => Err(err),
            },
        };
        HANDLING.store(was, Ordering::Relaxed);
        let new = match result {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(err) => {
                if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
                    return Err(err);
                }
                let propagate = cb
                    .handler_failed
                    .bind(py)
                    .call1((e.tracer.bind(py), e.func.bind(py), e.event.bind(py), frame, err.value(py)))?;
                if propagate.is_truthy()? {
                    return Err(err);
                }
                continue;
            }
        };
        if new.is(cb.skip_all.bind(py)) {
            skip_event = true;
        } else if new.is(cb.skip.bind(py)) {
            skip_slot = Some(e.slot);
        } else if new.is_none() {
            // no override
        } else if new.is(cb.null.bind(py)) {
            ret = py.None().into_bound(py);
        } else {
            ret = new;
        }
    }
    Ok(ret)
}

fn call_handler<'py>(py: Python<'py>, e: &Entry, ret: &Bound<'py, PyAny>, frame: &Bound<'py, PyAny>, key: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    const INLINE: usize = 16;
    let n = 5 + e.kwvalues.len() + e.dynamic_key as usize;
    if n > INLINE {
        return Err(PyRuntimeError::new_err("spyglass: too many keyword arguments for a handler"));
    }
    let mut args = [std::mem::MaybeUninit::<*mut ffi::PyObject>::uninit(); INLINE];
    args[0].write(e.tracer.as_ptr());
    args[1].write(ret.as_ptr());
    args[2].write(e.node.as_ptr());
    args[3].write(frame.as_ptr());
    args[4].write(e.event.as_ptr());
    for (slot, v) in args[5..].iter_mut().zip(&e.kwvalues) {
        slot.write(v.as_ptr());
    }
    if e.dynamic_key {
        args[n - 1].write(key.map_or_else(|| py.None().as_ptr(), |k| k.as_ptr()));
    }
    let kwnames = e.kwnames.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr());
    // SAFETY: the first `n` slots were written above with live objects kept
    // alive by the plan entry or by the caller for the duration of the call
    // (MaybeUninit<*mut T> has the layout of *mut T); `kwnames` is a tuple of
    // str whose length equals the number of trailing keyword values (checked
    // when the plan was built); the GIL is held.
    let r = unsafe { ffi::PyObject_Vectorcall(e.func.as_ptr(), args.as_ptr() as *const *mut ffi::PyObject, 5, kwnames) };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, r) }
}

fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Fires site `k` with `initial` as `ret` (events chained) and returns the
/// final value; `initial` itself when no tracer is active or the caller is
/// code spyglass does not know.
fn fire<'py>(py: Python<'py>, k: usize, initial: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if !active() {
        return Ok(initial);
    }
    match here(py, k)? {
        Some(h) => h.run(initial, None, false),
        None => Ok(initial),
    }
}

/// Calls `f` as the body of a METH_FASTCALL builtin: a Python token, no
/// panic crossing into CPython, errors set as the current exception.
///
/// # Safety
/// Must be called by CPython as a builtin's implementation (GIL held).
unsafe fn fastcall_body(f: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>) -> *mut ffi::PyObject {
    // SAFETY: CPython calls builtins with the thread attached (GIL held).
    let py = unsafe { Python::assume_attached() };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(py))) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            e.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("spyglass: internal error in the dispatcher").restore(py);
            std::ptr::null_mut()
        }
    }
}

/// The site number, first argument of every `_sg_*` call.
///
/// # Safety
/// `args` must hold at least one valid object (checked by callers).
unsafe fn site_arg(args: *mut *mut ffi::PyObject) -> PyResult<usize> {
    // SAFETY: per the contract there is a first argument.
    let k = unsafe { ffi::PyLong_AsSsize_t(*args) };
    if k < 0 {
        // SAFETY: GIL held (callers are builtins).
        let py = unsafe { Python::assume_attached() };
        return Err(PyErr::take(py).unwrap_or_else(|| PyTypeError::new_err("spyglass: a site number must be >= 0")));
    }
    Ok(k as usize)
}

/// `_sg_e(k, value)` as a plain METH_FASTCALL builtin: the hottest call.
unsafe extern "C" fn sg_e_fast(_m: *mut ffi::PyObject, args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: CPython passes `nargs` valid arguments; we read two after checking.
    unsafe {
        fastcall_body(|py| {
            if nargs != 2 {
                return Err(PyTypeError::new_err("_sg_e takes 2 arguments"));
            }
            let value = Bound::from_borrowed_ptr(py, *args.add(1));
            if !active() {
                return Ok(value.into_ptr());
            }
            let k = site_arg(args)?;
            match truth::unwrap(&value) {
                None => Ok(fire(py, k, value)?.into_ptr()),
                Some(inner) => Ok(fire_for_operand(py, k, value, inner)?.into_ptr()),
            }
        })
    }
}

/// `fire` for a truth proxy (`_sg_p`): handlers see the operand; unless
/// one replaced it, the proxy goes on to the test that remembers its truth.
/// Rare and out of line, to keep `_sg_e`'s usual path short.
#[cold]
#[inline(never)]
fn fire_for_operand<'py>(py: Python<'py>, k: usize, proxy: Bound<'py, PyAny>, operand: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let out = fire(py, k, operand.clone())?;
    Ok(if out.is(&operand) { proxy } else { out })
}

/// `_sg_n(k[, value])` as a plain METH_FASTCALL builtin.
unsafe extern "C" fn sg_n_fast(_m: *mut ffi::PyObject, args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: CPython passes `nargs` valid arguments; we read at most two after checking.
    unsafe {
        fastcall_body(|py| {
            if !(1..=2).contains(&nargs) {
                return Err(PyTypeError::new_err("_sg_n takes 1 or 2 arguments"));
            }
            if active() {
                let k = site_arg(args)?;
                if let Some(h) = here(py, k)? {
                    let initial = if nargs == 2 { Bound::from_borrowed_ptr(py, *args.add(1)) } else { py.None().into_bound(py) };
                    h.run_each(initial)?;
                }
            }
            Ok(py.None().into_ptr())
        })
    }
}

fn add_fastcall(m: &Bound<'_, PyModule>, def: &'static mut ffi::PyMethodDef) -> PyResult<()> {
    // SAFETY: `def` is a static method definition that lives for the
    // process; PyCFunction_NewEx returns a new reference or null.
    let f = unsafe { Bound::from_owned_ptr_or_err(m.py(), ffi::PyCFunction_NewEx(def, std::ptr::null_mut(), std::ptr::null_mut()))? };
    // SAFETY: `ml_name` is a static C string.
    let name = unsafe { std::ffi::CStr::from_ptr(def.ml_name) }.to_str().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    m.add(name, f)
}

/// `_sg_x(k, obj, key)`: events before a subscript; keeps the key for `_sg_l`.
#[pyfunction]
fn _sg_x<'py>(py: Python<'py>, k: usize, obj: Bound<'py, PyAny>, key: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let out = if active() {
        match here(py, k)? {
            Some(h) => h.run(obj, Some(&key), false)?,
            None => obj,
        }
    } else {
        obj
    };
    KEYS.with(|keys| keys.borrow_mut().push(key.unbind()));
    Ok(out)
}

/// `_sg_l()`: the key the last `_sg_x` of this thread kept.
#[pyfunction]
fn _sg_l(py: Python<'_>) -> PyResult<Py<PyAny>> {
    KEYS.with(|keys| keys.borrow_mut().pop())
        .map(|k| k.clone_ref(py))
        .ok_or_else(|| PyRuntimeError::new_err("spyglass: no subscript key to load (instrumented code out of step)"))
}

/// A before-expression event's thunk: calling it evaluates the expression.
#[pyclass(module = "spyglass._native", frozen)]
pub struct Thunk {
    table: Py<ModuleTable>,
    site: usize,
    frame: Py<PyAny>,
    value: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Thunk {
    #[pyo3(signature = (*_args))]
    fn __call__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        if let Some(v) = self.value.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(v.clone_ref(py));
        }
        let v = callbacks()?.force_thunk.bind(py).call1((self.table.bind(py), self.site, self.frame.bind(py)))?.unbind();
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone_ref(py));
        Ok(v)
    }

    #[getter]
    fn forced(&self) -> bool {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn __repr__(&self) -> String {
        format!("<spyglass thunk of site {}>", self.site)
    }
}

/// A callable that returns a fixed value (a handler returned a plain value
/// where a callable was expected).
#[pyclass(module = "spyglass._native", frozen)]
pub struct Const {
    value: Py<PyAny>,
}

#[pymethods]
impl Const {
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __call__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>) -> Py<PyAny> {
        self.value.clone_ref(py)
    }
}

/// A handler's replacement for an operator, called with real operands.
#[pyclass(module = "spyglass._native", frozen)]
pub struct Unwrapped {
    func: Py<PyAny>,
}

#[pymethods]
impl Unwrapped {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>, kwargs: Option<&Bound<'py, pyo3::types::PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        let real: Vec<Bound<'py, PyAny>> = args.iter().map(|a| truth::unwrap(&a).unwrap_or(a)).collect();
        self.func.bind(py).call(PyTuple::new(py, real)?, kwargs)
    }
}

/// `((expr) if _sg_b(k) else _sg_o())`: events before an expression.
/// True evaluates the expression in place; False means `_sg_o` supplies it.
#[pyfunction]
fn _sg_b(py: Python<'_>, k: usize) -> PyResult<bool> {
    if !active() {
        return Ok(true);
    }
    let Some(h) = here(py, k)? else { return Ok(true) };
    let thunk = Bound::new(
        py,
        Thunk { table: h.table.clone().unbind(), site: k, frame: h.frame.clone().unbind(), value: Mutex::new(None) },
    )?;
    let out = h.run(thunk.clone().into_any(), None, true)?;
    let pending = if out.is(&thunk) {
        match thunk.get().value.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // the handler evaluated the thunk: never evaluate twice
            Some(v) => Pending::Value(v.clone_ref(py)),
            None => return Ok(true),
        }
    } else if out.is_callable() {
        Pending::Call(out.unbind())
    } else {
        Pending::Value(out.unbind())
    };
    PENDING.with(|p| p.borrow_mut().push(pending));
    Ok(false)
}

/// `_sg_o()`: the replacement decided by the `_sg_b` just before.
#[pyfunction]
fn _sg_o(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let p = PENDING.with(|p| p.borrow_mut().pop());
    match p {
        Some(Pending::Call(f)) => Ok(f.bind(py).call0()?.unbind()),
        Some(Pending::Value(v)) => Ok(v),
        None => Err(PyRuntimeError::new_err("spyglass: no replacement to load (instrumented code out of step)")),
    }
}

fn operator<'py>(py: Python<'py>, table: &ModuleTable, k: usize) -> PyResult<Bound<'py, PyAny>> {
    let cb = callbacks()?;
    match table.sites.get(k).and_then(|s| s.op.as_ref()) {
        Some(Op::Bin(c)) => cb.binops.bind(py).get_item(*c as usize),
        Some(Op::Unary(c)) => cb.unaryops.bind(py).get_item(*c as usize),
        Some(Op::Compare(cs)) if cs.len() == 1 => cb.cmpops.bind(py).get_item(cs[0] as usize),
        Some(Op::Compare(cs)) => cb.chain_compare.bind(py).call1((PyTuple::new(py, cs)?,)),
        None => Err(PyRuntimeError::new_err(format!("spyglass: site {k} has no operator"))),
    }
}

/// `_sg_c(k)(operands...)`: events before an operator; returns the callable
/// that computes it.
#[pyfunction]
fn _sg_c<'py>(py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyAny>> {
    // the operator is only known from the table, so it is looked up even
    // when no tracer is active
    match here(py, k)? {
        Some(h) => {
            let op = operator(py, h.table.get(), k)?;
            if !active() {
                return Ok(op);
            }
            let out = h.run(op.clone(), None, false)?;
            if out.is(&op) {
                Ok(out)
            } else if out.is_callable() {
                // a replacement for `not` must see operands, not truth proxies
                Ok(Bound::new(py, Unwrapped { func: out.unbind() })?.into_any())
            } else {
                Ok(Bound::new(py, Const { value: out.unbind() })?.into_any())
            }
        }
        None => Err(PyRuntimeError::new_err(format!("spyglass: operator site {k} called from code spyglass did not instrument"))),
    }
}

/// `if not _sg_s(k): stmt`: events before a statement; True when a handler
/// asked to skip it (after running the replacement, if it gave one).
#[pyfunction]
fn _sg_s(py: Python<'_>, k: usize) -> PyResult<bool> {
    if !active() {
        return Ok(false);
    }
    let Some(h) = here(py, k)? else { return Ok(false) };
    let out = h.run_each(py.None().into_bound(py))?;
    if out.is_none() {
        return Ok(false);
    }
    let cb = callbacks()?;
    let skipped: bool = cb.exec_statement.bind(py).call1((&h.table, k, &out, &h.frame))?.extract()?;
    if skipped {
        if let Some(after) = h.table.get().sites.get(k).and_then(|s| s.after) {
            if let Some(ha) = here(py, after as usize)? {
                ha.run_each(py.None().into_bound(py))?;
            }
        }
    }
    Ok(skipped)
}

/// The context manager of `with _sg_w(k):` blocks: its exit fires site `k`.
#[pyclass(module = "spyglass._native", frozen)]
pub struct SiteExit {
    site: usize,
}

#[pymethods]
impl SiteExit {
    fn __enter__(&self) {}

    fn __exit__(&self, py: Python<'_>, _t: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) -> PyResult<bool> {
        if active() {
            if let Some(h) = here(py, self.site)? {
                h.run_each(py.None().into_bound(py))?;
            }
        }
        Ok(false)
    }
}

/// `with _sg_w(k):`: the context manager that fires site `k` when the block
/// ends (one object per site number, shared by all tables).
#[pyfunction]
fn _sg_w(py: Python<'_>, k: usize) -> PyResult<Py<SiteExit>> {
    static EXITS: Mutex<Vec<Py<SiteExit>>> = Mutex::new(Vec::new());
    let mut exits = EXITS.lock().unwrap_or_else(|e| e.into_inner());
    while exits.len() <= k {
        let n = exits.len();
        exits.push(Py::new(py, SiteExit { site: n })?);
    }
    Ok(exits[k].clone_ref(py))
}

/// `except _sg_t(k):` for a bare `except:`: returns BaseException (or a replacement).
#[pyfunction]
fn _sg_t(py: Python<'_>, k: usize) -> PyResult<Bound<'_, PyAny>> {
    fire(py, k, py.get_type::<pyo3::exceptions::PyBaseException>().into_any())
}

/// Installs the Python side of the dispatcher (see spyglass/_dispatch.py).
#[pyfunction]
fn install(py: Python<'_>, cb: &Bound<'_, PyAny>) -> PyResult<()> {
    let get = |name: &str| -> PyResult<Py<PyAny>> { Ok(cb.getattr(name)?.unbind()) };
    let tuple = |name: &str| -> PyResult<Py<PyTuple>> { Ok(cb.getattr(name)?.cast_into::<PyTuple>()?.unbind()) };
    let callbacks = Callbacks {
        plan_site: get("plan_site")?,
        handler_failed: get("handler_failed")?,
        exec_statement: get("exec_statement")?,
        force_thunk: get("force_thunk")?,
        table_for_code: get("table_for_code")?,
        chain_compare: get("chain_compare")?,
        null: get("Null")?,
        skip: get("Skip")?,
        skip_all: get("SkipAll")?,
        binops: tuple("BINARY_OPERATORS")?,
        unaryops: tuple("UNARY_OPERATORS")?,
        cmpops: tuple("COMPARISON_OPERATORS")?,
    };
    let main: u64 = py.import("threading")?.call_method0("main_thread")?.getattr("ident")?.extract()?;
    MAIN_THREAD.store(main, Ordering::Relaxed);
    CALLBACKS.set(callbacks).map_err(|_| PyRuntimeError::new_err("the spyglass dispatcher is already installed"))?;
    Ok(())
}

/// Invalidates every cached site plan (the tracer stack or handlers changed).
#[pyfunction]
fn bump_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed) + 1
}

#[pyfunction]
fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

#[pyfunction]
fn set_active(n: usize) {
    ACTIVE.store(n, Ordering::Relaxed);
}

#[pyfunction]
fn set_tracer_enabled(slot: usize, enabled: bool) -> PyResult<()> {
    ENABLED
        .get(slot)
        .ok_or_else(|| PyTypeError::new_err(format!("tracer slot {slot} out of range")))?
        .store(enabled, Ordering::Relaxed);
    Ok(())
}

#[pyfunction]
fn set_allow_reentrant(allow: bool) -> bool {
    ALLOW_REENTRANT.swap(allow, Ordering::Relaxed)
}

/// Runs the handlers of `plan` for an event that has no site (imports, sys
/// trace events): returns the final `ret`.
#[pyfunction]
fn emit_plan<'py>(py: Python<'py>, plan: Bound<'py, SitePlan>, frame: Bound<'py, PyAny>, ret: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    run(py, &frame, &plan, ret, None, false, true)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    static mut SG_E: ffi::PyMethodDef = ffi::PyMethodDef {
        ml_name: c"_sg_e".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: sg_e_fast },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"spyglass: events after an expression (instrumented code calls this)".as_ptr(),
    };
    static mut SG_N: ffi::PyMethodDef = ffi::PyMethodDef {
        ml_name: c"_sg_n".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: sg_n_fast },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"spyglass: events at a point of control flow (instrumented code calls this)".as_ptr(),
    };
    // SAFETY: the statics are only ever handed to CPython here, once, when
    // the module initialises (under the GIL); nothing else touches them.
    unsafe {
        add_fastcall(m, &mut *std::ptr::addr_of_mut!(SG_E))?;
        add_fastcall(m, &mut *std::ptr::addr_of_mut!(SG_N))?;
    }
    m.add_class::<SitePlan>()?;
    m.add_class::<Thunk>()?;
    m.add_class::<Const>()?;
    m.add_class::<Unwrapped>()?;
    m.add_class::<SiteExit>()?;
    for f in [
        wrap_pyfunction!(_sg_x, m)?,
        wrap_pyfunction!(_sg_l, m)?,
        wrap_pyfunction!(_sg_b, m)?,
        wrap_pyfunction!(_sg_o, m)?,
        wrap_pyfunction!(_sg_c, m)?,
        wrap_pyfunction!(_sg_s, m)?,
        wrap_pyfunction!(_sg_t, m)?,
        wrap_pyfunction!(_sg_w, m)?,
        wrap_pyfunction!(install, m)?,
        wrap_pyfunction!(bump_generation, m)?,
        wrap_pyfunction!(generation, m)?,
        wrap_pyfunction!(set_active, m)?,
        wrap_pyfunction!(set_tracer_enabled, m)?,
        wrap_pyfunction!(set_allow_reentrant, m)?,
        wrap_pyfunction!(emit_plan, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
