//! Bytecode-level tracing with the live value stack (spyglass.opcodes).
//!
//! * `layout`: `repr(C)` mirrors of the interpreter frame per version, and
//!   the start-up check against the live interpreter.
//! * `stack`: reading the stack into snapshots; bounded reprs.
//! * `state`: the per-trace state shared by the backends.
//! * `tracefunc` (3.11) and `monitoring` (3.12+): the backends.
//! * `recorder`: the native recorder's file format.
//!
//! Everything here is exposed as `spyglass._native.opcodes`; the public API
//! is `python/spyglass/opcodes.py`.
pub mod layout;
pub mod recorder;
pub mod stack;
pub mod state;

#[cfg(Py_3_12)]
mod monitoring;
#[cfg(not(Py_3_12))]
mod tracefunc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use state::{CodeInfo, Sink, TraceState, ACTIVE};
use std::collections::HashMap;

fn require_verified() -> PyResult<()> {
    match layout::verified() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(PyRuntimeError::new_err(e.clone())),
        None => Err(PyRuntimeError::new_err("spyglass.opcodes: the frame layout has not been checked yet")),
    }
}

/// Registers a code object with the trace: `info` is None (never trace it)
/// or the tuple built by spyglass.opcodes: (id, nlocalsplus, stacksize,
/// depths or None, instrs or None, flags bytes).
pub(crate) fn register_code(st: &mut TraceState, info: &Bound<'_, PyAny>, code: *mut ffi::PyObject, root: bool) -> PyResult<()> {
    let py = info.py();
    // SAFETY: `code` is a live object passed by the interpreter or by Python.
    let code_obj = unsafe { Bound::from_borrowed_ptr(py, code) };
    if info.is_none() {
        if !st.codes.contains_key(&(code as usize)) {
            st.codes.insert(code as usize, None);
            st.rejected.push(code_obj.unbind());
        }
        return Ok(());
    }
    if matches!(st.codes.get(&(code as usize)), Some(Some(_))) {
        // already prepared (a code reached twice): prepared entries are
        // never replaced, see TraceState::code_info. A `None` entry (not
        // traced when followed) gives way to a root.
        return Ok(());
    }
    if !code_obj.is_instance_of::<pyo3::types::PyCode>() {
        return Err(PyTypeError::new_err("expected a code object"));
    }
    let (id, nlocalsplus, stacksize, depths, instrs, flags): (u32, usize, usize, Option<Vec<i32>>, Option<Vec<Option<Py<PyAny>>>>, Vec<u8>) =
        info.extract()?;
    let n = code_obj.getattr("co_code")?.len()? / 2;
    let depths = depths.unwrap_or_default();
    if (!depths.is_empty() && depths.len() != n) || flags.len() != n {
        return Err(PyValueError::new_err("code info does not match the code object's length"));
    }
    // (a control-flow recording reads no stack: the reader takes the depths)
    if layout::MIRROR_VERSION.is_some_and(|v| v == (3, 12) || v == (3, 13)) && depths.is_empty() && !st.flow {
        return Err(PyValueError::new_err("this version needs the static stack depths"));
    }
    if depths.iter().any(|&d| d > stacksize as i32) {
        return Err(PyValueError::new_err("a stack depth exceeds the code's co_stacksize"));
    }
    st.codes.insert(
        code as usize,
        Some(Box::new(CodeInfo {
            code: code_obj.unbind(),
            id,
            nlocalsplus,
            stacksize,
            depths,
            instrs: instrs.unwrap_or_default(),
            flags,
            root,
        })),
    );
    Ok(())
}

/// How preparing a frame's code went (see [`prepare_frame`]).
pub(crate) enum Prepared {
    Traced,
    NotTraced,
    /// Python's `prepare` or the registration failed: the error is stored
    /// and the trace stopped.
    Failed,
}

/// Calls Python's `prepare(code, depth, root)` (filter, stack-depth
/// analysis, `Instr` objects) outside any borrow of the state, registers
/// the result and, when the code is traced, places the frame with the entry
/// kind `kind` gives once the code is registered (3.11 reads it from the
/// code's flags).
///
/// # Safety
/// The GIL is held; `iframe` is the frame executing `code` on this thread
/// (it stays live and in place while `prepare` runs: a running frame is
/// never moved), at a frame event of `kind`.
pub(crate) unsafe fn prepare_frame(
    code: *mut ffi::PyObject,
    iframe: *mut layout::IFrame,
    depth: u32,
    root_depth: u32,
    root: bool,
    kind: impl Fn(&state::TraceState) -> state::EnterKind,
) -> Prepared {
    // SAFETY: the GIL is held (see above).
    let py = unsafe { Python::assume_attached() };
    let prepare = ACTIVE.with(|c| c.try_borrow().ok().and_then(|g| g.as_ref().map(|st| st.prepare.clone_ref(py))));
    let Some(prepare) = prepare else { return Prepared::NotTraced };
    // SAFETY: `code` is the live code object of the executing frame.
    let code_obj = unsafe { Bound::from_borrowed_ptr(py, code) };
    let prepared = prepare.bind(py).call1((code_obj, depth, root));
    ACTIVE.with(|c| {
        let Ok(mut g) = c.try_borrow_mut() else { return Prepared::NotTraced };
        let Some(st) = g.as_mut() else { return Prepared::NotTraced };
        let registered = prepared.and_then(|info| register_code(st, &info, code, root));
        if let Err(e) = registered {
            st.error.get_or_insert(e);
            st.stopped = true;
            return Prepared::Failed;
        }
        if st.code_info(code as usize).is_none() {
            return Prepared::NotTraced;
        }
        // an event inside `prepare` may have placed it already
        if !st.frames.iter().any(|e| e.iframe == iframe && e.code == code as usize) {
            let kind = kind(st);
            // SAFETY: `iframe` is the live current frame, executing `code`.
            unsafe { st.push(iframe, code as usize, depth, root_depth, true, kind) };
        }
        Prepared::Traced
    })
}

/// The code objects handed to a trace as roots (`Trace.on_new_code`),
/// shared with the native state of each of the trace's sessions. Holds a
/// reference to each code object (so its address is not reused) until it
/// is cleared or dropped. Usable from any thread: code objects are created
/// on whichever thread imports or compiles them.
#[pyclass(module = "spyglass._native.opcodes")]
pub struct RootSet {
    roots: state::Roots,
}

#[pymethods]
impl RootSet {
    #[new]
    fn new() -> Self {
        RootSet { roots: Default::default() }
    }

    /// Adds a code object; false if it was already there.
    fn add(&self, code: &Bound<'_, PyAny>) -> PyResult<bool> {
        if !code.is_instance_of::<pyo3::types::PyCode>() {
            return Err(PyTypeError::new_err(format!("expected a code object, not {}", code.get_type().name()?)));
        }
        let keep = code.clone().unbind();
        let mut m = state::lock_roots(&self.roots);
        let key = code.as_ptr() as usize;
        if m.contains_key(&key) {
            drop(m);
            return Ok(false); // `keep` is released after the lock
        }
        m.insert(key, keep);
        Ok(true)
    }

    fn __contains__(&self, code: &Bound<'_, PyAny>) -> bool {
        state::lock_roots(&self.roots).contains_key(&(code.as_ptr() as usize))
    }

    fn __len__(&self) -> usize {
        state::lock_roots(&self.roots).len()
    }

    /// The code objects, in no particular order.
    fn codes(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        state::lock_roots(&self.roots).values().map(|c| c.clone_ref(py)).collect()
    }

    fn clear(&self) {
        // the references are released after the lock (a deallocation may
        // run Python code)
        let old = std::mem::take(&mut *state::lock_roots(&self.roots));
        drop(old);
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Ok(m) = self.roots.try_lock() {
            for c in m.values() {
                visit.call(c)?;
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.clear();
    }
}

/// One bytecode trace. Its state lives here while inactive and in a
/// thread-local while active (see `state`).
#[pyclass(unsendable, module = "spyglass._native.opcodes")]
pub struct Tracer {
    state: Option<Box<TraceState>>,
    active: bool,
}

impl Tracer {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut TraceState) -> PyResult<R>) -> PyResult<R> {
        if let Some(st) = self.state.as_mut() {
            return f(st);
        }
        ACTIVE.with(|c| {
            let mut g = c
                .try_borrow_mut()
                .map_err(|_| PyRuntimeError::new_err("spyglass.opcodes: the trace is busy delivering an event"))?;
            match g.as_mut() {
                Some(st) if self.active => f(st),
                _ => Err(PyRuntimeError::new_err("spyglass.opcodes: this trace has no state (finished?)")),
            }
        })
    }
}

#[pymethods]
impl Tracer {
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // only the inactive state is here; an active one is in the thread-local
        if let Some(st) = &self.state {
            visit.call(&st.prepare)?;
            visit.call(&st.null)?;
            if let Some(o) = &st.trace_obj {
                visit.call(o)?;
            }
            if let Sink::Callback(cb) = &st.sink {
                visit.call(cb)?;
            }
            for c in &st.rejected {
                visit.call(c)?;
            }
            for info in st.codes.values().flatten() {
                visit.call(&info.code)?;
                for i in info.instrs.iter().flatten() {
                    visit.call(i)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        if !self.active {
            self.state = None;
        }
    }

    #[new]
    #[pyo3(signature = (prepare, null, callback=None, record=None, reprs="safe", max_repr=80, max_values=8, max_events=u64::MAX, follow=false, max_depth=8, roots=None, flow=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        prepare: Py<PyAny>,
        null: Py<PyAny>,
        callback: Option<Py<PyAny>>,
        record: Option<String>,
        reprs: &str,
        max_repr: usize,
        max_values: usize,
        max_events: u64,
        follow: bool,
        max_depth: u32,
        roots: Option<PyRef<'_, RootSet>>,
        flow: bool,
    ) -> PyResult<Self> {
        require_verified()?;
        if flow && (!cfg!(Py_3_12) || record.is_none() || reprs != "none") {
            return Err(PyValueError::new_err(
                "control-flow recording needs CPython 3.12+, a recording and reprs='none'",
            ));
        }
        let sink = match (callback, record) {
            (Some(cb), None) => Sink::Callback(cb),
            (None, Some(path)) => {
                let reprs = match reprs {
                    "none" => stack::ReprMode::None,
                    "safe" => stack::ReprMode::Safe,
                    "full" => stack::ReprMode::Full,
                    other => return Err(PyValueError::new_err(format!("reprs must be 'none', 'safe' or 'full', not {other:?}"))),
                };
                let mut writer = recorder::Writer::create(&path, max_events)
                    .map_err(|e| PyRuntimeError::new_err(format!("cannot write the recording {path}: {e}")))?;
                writer.count_all = flow;
                Sink::Record { writer: Some(writer), reprs, max_repr: max_repr.clamp(8, 1 << 20), max_values: max_values.min(1 << 16) }
            }
            _ => return Err(PyValueError::new_err("give exactly one of callback and record")),
        };
        let may_raise = matches!(&sink, Sink::Record { reprs: stack::ReprMode::Full, .. });
        Ok(Tracer {
            state: Some(Box::new(TraceState {
                sink,
                prepare,
                null,
                follow,
                max_depth,
                boundary: std::ptr::null_mut(),
                codes: HashMap::with_hasher(state::PtrHash),
                rejected: Vec::new(),
                roots: roots.map(|r| r.roots.clone()),
                last_code: std::cell::Cell::new((0, std::ptr::null())),
                frames: Vec::new(),
                error: None,
                stopped: false,
                next_serial: 0,
                current: 0,
                instructions: 0,
                mismatches: Vec::new(),
                checked: 0,
                may_raise,
                tool: std::ptr::null_mut(),
                tool_ref: None,
                trace_obj: None,
                flow,
            })),
            active: false,
        })
    }

    /// Registers a root code object (traced wherever it runs in the trace).
    fn add_root(&mut self, code: &Bound<'_, PyAny>, info: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = code.as_ptr();
        self.with_state(|st| register_code(st, info, p, true))
    }

    /// Starts delivering events on this thread. `boundary` is the running
    /// frame that makes the traced call: frames below it are outside the trace.
    #[pyo3(signature = (boundary=None))]
    #[allow(unused_variables)] // `py` is used by the 3.11 backend only
    fn activate(&mut self, py: Python<'_>, boundary: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        require_verified()?;
        let boundary = match boundary {
            Some(f) if f.is_instance_of::<pyo3::types::PyFrame>() => f.as_ptr(),
            Some(f) if f.is_none() => std::ptr::null_mut(),
            None => std::ptr::null_mut(),
            Some(_) => return Err(PyTypeError::new_err("boundary must be a frame or None")),
        };
        let Some(mut st) = self.state.take() else {
            return Err(PyRuntimeError::new_err("this trace is already active"));
        };
        // SAFETY: `boundary` is a live frame object held by the caller, of a
        // frame that is executing (it makes the traced call); layout verified.
        st.boundary = if boundary.is_null() { std::ptr::null_mut() } else { unsafe { layout::iframe_of(boundary) } };
        let res = ACTIVE.with(|c| {
            let g = c.try_borrow_mut().map_err(|_| PyRuntimeError::new_err("spyglass.opcodes: busy"))?;
            if g.is_some() {
                return Err(PyRuntimeError::new_err(
                    "another spyglass.opcodes trace is already active on this thread",
                ));
            }
            Ok(())
        });
        if let Err(e) = res {
            self.state = Some(st);
            return Err(e);
        }
        #[cfg(not(Py_3_12))]
        if st.trace_obj.is_none() {
            match tracefunc::new_trace_obj(py) {
                Ok(o) => st.trace_obj = Some(o),
                Err(e) => {
                    self.state = Some(st);
                    return Err(e);
                }
            }
        }
        ACTIVE.with(|c| *c.borrow_mut() = Some(st));
        self.active = true;
        #[cfg(not(Py_3_12))]
        tracefunc::reinstall();
        Ok(())
    }

    /// Stops delivering events on this thread (the trace can be resumed).
    fn deactivate(&mut self) -> PyResult<()> {
        if !self.active {
            return Ok(());
        }
        #[cfg(not(Py_3_12))]
        tracefunc::remove();
        let st = ACTIVE.with(|c| {
            c.try_borrow_mut()
                .map(|mut g| g.take())
                .map_err(|_| PyRuntimeError::new_err("spyglass.opcodes: cannot stop while an event is delivered"))
        })?;
        self.state = st;
        self.active = false;
        Ok(())
    }

    /// Makes an already running frame a root frame of the trace (the block
    /// form: the frame that contains the `with`).
    fn adopt(&mut self, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        if !frame.is_instance_of::<pyo3::types::PyFrame>() {
            return Err(PyTypeError::new_err("expected a frame object"));
        }
        let f = frame.as_ptr();
        self.with_state(|st| {
            // SAFETY: `f` is a live frame object (held by the caller) of a
            // frame that is executing on this thread.
            unsafe {
                let iframe = layout::iframe_of(f);
                let code = layout::iframe_code(iframe) as usize;
                if st.code_info(code).is_none() {
                    return Err(PyValueError::new_err("the frame's code is not registered"));
                }
                if !st.frames.iter().any(|e| e.iframe == iframe) {
                    let i = st.push(iframe, code, 0, 0, true, state::EnterKind::Resume);
                    // in flight in the call that adopts it (`with recorder:`)
                    if let Some(at) = layout::lasti(iframe) {
                        st.flow_begin(i, true, at);
                    }
                }
                #[cfg(not(Py_3_12))]
                layout::set_trace_opcodes(f, true);
            }
            Ok(())
        })
    }

    /// Control-flow recording: notes where `frame`, a frame of the trace
    /// still running when the recording ends (`with recorder:`), stands.
    fn reach(&mut self, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        if !frame.is_instance_of::<pyo3::types::PyFrame>() {
            return Err(PyTypeError::new_err("expected a frame object"));
        }
        let f = frame.as_ptr();
        self.with_state(|st| {
            // SAFETY: `f` is a live frame object (held by the caller) of a
            // frame that is executing on this thread.
            let iframe = unsafe { layout::iframe_of(f) };
            if let Some(i) = st.frames.iter().rposition(|e| e.iframe == iframe) {
                // SAFETY: as above: a live interpreter frame.
                if let Some(at) = unsafe { layout::lasti(iframe) } {
                    st.flow_reach(i, at);
                }
            }
            Ok(())
        })
    }

    /// Binds the trace to its sys.monitoring tool id (3.12+).
    /// `tool` must be the very object given to `callbacks(tool)`.
    fn set_tool(&mut self, tool: &Bound<'_, PyAny>) -> PyResult<()> {
        let keep = tool.clone().unbind();
        self.with_state(|st| {
            st.tool = keep.as_ptr();
            st.tool_ref = Some(keep);
            Ok(())
        })
    }

    /// Stops the trace without deactivating it (events are ignored).
    fn stop(&mut self) -> PyResult<()> {
        self.with_state(|st| {
            st.stopped = true;
            Ok(())
        })
    }

    /// The exception that stopped the trace, if any (cleared).
    fn take_error(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.with_state(|st| Ok(st.error.take().map(|e| e.into_value(py).into_any())))
    }

    /// Closes the frames still open, then writes the recording's footer.
    fn finish(&mut self, footer: &[u8]) -> PyResult<()> {
        self.with_state(|st| {
            while !st.frames.is_empty() {
                st.exit_top(state::ExitKind::Open, None);
            }
            if let Sink::Record { writer, .. } = &mut st.sink {
                if let Some(w) = writer.take() {
                    w.finish(footer).map_err(|e| PyRuntimeError::new_err(format!("cannot write the recording: {e}")))?;
                }
            }
            Ok(())
        })
    }

    /// Counters: instructions delivered, depths checked against the
    /// interpreter, mismatches [(code id, offset, analysis, interpreter)],
    /// whether the recorder truncated.
    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        self.with_state(|st| {
            d.set_item("instructions", st.instructions)?;
            d.set_item("checked", st.checked)?;
            d.set_item("mismatches", st.mismatches.clone())?;
            d.set_item("open_frames", st.frames.len())?;
            let truncated = matches!(&st.sink, Sink::Record { writer: Some(w), .. } if w.truncated);
            d.set_item("truncated", truncated)?;
            Ok(())
        })?;
        Ok(d)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.active {
            #[cfg(not(Py_3_12))]
            tracefunc::remove();
            ACTIVE.with(|c| {
                if let Ok(mut g) = c.try_borrow_mut() {
                    g.take();
                }
            });
        }
    }
}

/// Checks the frame layout against a live probe frame (see layout::verify).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn layout_check(
    version: (u8, u8),
    frame: &Bound<'_, PyAny>,
    caller_code: &Bound<'_, PyAny>,
    locals: Vec<Bound<'_, PyAny>>,
) -> PyResult<()> {
    if !frame.is_instance_of::<pyo3::types::PyFrame>() {
        return Err(PyTypeError::new_err("expected a frame object"));
    }
    let basicsize: isize = frame.get_type().getattr("__basicsize__")?.extract()?;
    let code = frame.getattr("f_code")?;
    let globals = frame.getattr("f_globals")?;
    let builtins = frame.getattr("f_builtins")?;
    let locals: Vec<*mut ffi::PyObject> = locals.iter().map(|o| o.as_ptr()).collect();
    layout::verify(
        version,
        basicsize,
        frame.as_ptr(),
        code.as_ptr(),
        globals.as_ptr(),
        builtins.as_ptr(),
        caller_code.as_ptr(),
        &locals,
    )
    .clone()
    .map_err(PyRuntimeError::new_err)
}

/// The layout this build carries, e.g. (3, 12), or None.
#[pyfunction]
fn mirror_version() -> Option<(u8, u8)> {
    layout::MIRROR_VERSION
}

/// The values held by a suspended generator/coroutine frame, bottom first,
/// and the interpreter's saved depth (valid on every version for a
/// suspended frame).
#[pyfunction]
fn suspended_stack(py: Python<'_>, frame: &Bound<'_, PyAny>, nlocalsplus: usize, stacksize: usize, null: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    require_verified()?;
    if !frame.is_instance_of::<pyo3::types::PyFrame>() {
        return Err(PyTypeError::new_err("expected a frame object"));
    }
    // SAFETY: `frame` is a live frame object; the caller (spyglass.opcodes)
    // checked that it belongs to a suspended generator or coroutine, whose
    // stack pointer the interpreter saved when it suspended. The owner and
    // the depth bounds are checked before any slot is read.
    unsafe {
        let iframe = layout::iframe_of(frame.as_ptr());
        if iframe.is_null() || (*iframe).owner != layout::OWNED_BY_GENERATOR {
            return Err(PyValueError::new_err("the frame is not a suspended generator or coroutine frame"));
        }
        #[cfg(not(Py_3_14))]
        let depth = layout::raw_stacktop(iframe).unwrap_or(-1) - nlocalsplus as isize;
        #[cfg(Py_3_14)]
        let depth = layout::saved_depth(iframe, nlocalsplus).unwrap_or(-1);
        if depth < 0 || depth as usize > stacksize {
            return Err(PyRuntimeError::new_err(format!("implausible saved stack depth {depth}")));
        }
        let list = stack::snapshot(iframe, nlocalsplus, depth as usize, null.as_ptr());
        Ok(Bound::from_owned_ptr_or_err(py, list)?.unbind())
    }
}

/// For tests of the static analysis on 3.12/3.13: the `stacktop` field of a
/// frame, meaningful only where the interpreter saved it (a caller frame
/// while its callee runs, a suspended generator). Reads one int, nothing else.
#[pyfunction]
fn raw_stacktop(frame: &Bound<'_, PyAny>) -> PyResult<Option<isize>> {
    require_verified()?;
    if !frame.is_instance_of::<pyo3::types::PyFrame>() {
        return Err(PyTypeError::new_err("expected a frame object"));
    }
    // SAFETY: live frame object, verified layout; reads an int field only.
    unsafe {
        let iframe = layout::iframe_of(frame.as_ptr());
        if iframe.is_null() {
            return Ok(None);
        }
        #[cfg(Py_3_14)]
        return Ok(layout::saved_depth(iframe, 0));
        #[cfg(not(Py_3_14))]
        return Ok(layout::raw_stacktop(iframe));
    }
}

/// Whether a frame's caller link is a direct Python-to-Python call (no C
/// shim between), and the caller's frame object if so... (tests only).
#[pyfunction]
fn direct_caller(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<bool> {
    require_verified()?;
    let _ = py;
    if !frame.is_instance_of::<pyo3::types::PyFrame>() {
        return Err(PyTypeError::new_err("expected a frame object"));
    }
    // SAFETY: live frame object of this thread (the caller holds it while
    // it executes), verified layout; follows one `previous` link.
    unsafe {
        let iframe = layout::iframe_of(frame.as_ptr());
        if iframe.is_null() {
            return Ok(false);
        }
        let prev = layout::iframe_previous(iframe);
        Ok(!prev.is_null() && layout::iframe_is_python(prev))
    }
}

/// Decodes a recording: (records, footer bytes).
#[pyfunction]
#[pyo3(signature = (data, limit=usize::MAX))]
fn decode_recording<'py>(py: Python<'py>, data: &[u8], limit: usize) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyBytes>)> {
    let d = recorder::decode(data, limit).map_err(PyValueError::new_err)?;
    let out = PyList::empty(py);
    for r in d.records {
        let t = match r {
            recorder::Record::Instr { offset, depth, values } => PyTuple::new(py, [
                "I".into_pyobject(py)?.into_any(), offset.into_pyobject(py)?.into_any(), depth.into_pyobject(py)?.into_any(),
                values.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Enter { serial, code, parent, depth, kind } => PyTuple::new(py, [
                "E".into_pyobject(py)?.into_any(), serial.into_pyobject(py)?.into_any(), code.into_pyobject(py)?.into_any(),
                parent.into_pyobject(py)?.into_any(), depth.into_pyobject(py)?.into_any(), kind.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Exit { serial, kind, value } => PyTuple::new(py, [
                "X".into_pyobject(py)?.into_any(), serial.into_pyobject(py)?.into_any(), kind.into_pyobject(py)?.into_any(),
                value.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Switch { serial } => PyTuple::new(py, ["S".into_pyobject(py)?.into_any(), serial.into_pyobject(py)?.into_any()])?,
            recorder::Record::Truncated => PyTuple::new(py, ["T".into_pyobject(py)?.into_any()])?,
            recorder::Record::Begin { serial, in_flight, offset } => PyTuple::new(py, [
                "B".into_pyobject(py)?.into_any(), serial.into_pyobject(py)?.into_any(),
                in_flight.into_pyobject(py)?.to_owned().into_any(), offset.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Reach { serial, offset } => PyTuple::new(py, [
                "R".into_pyobject(py)?.into_any(), serial.into_pyobject(py)?.into_any(), offset.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Jump { how, from, to } => PyTuple::new(py, [
                "J".into_pyobject(py)?.into_any(), how.into_pyobject(py)?.into_any(),
                from.into_pyobject(py)?.into_any(), to.into_pyobject(py)?.into_any(),
            ])?,
            recorder::Record::Raise { offset } => PyTuple::new(py, ["A".into_pyobject(py)?.into_any(), offset.into_pyobject(py)?.into_any()])?,
            recorder::Record::Handled { offset } => PyTuple::new(py, ["H".into_pyobject(py)?.into_any(), offset.into_pyobject(py)?.into_any()])?,
        };
        out.append(t)?;
    }
    Ok((out, PyBytes::new(py, &d.footer)))
}

/// Adds `spyglass._native.opcodes`.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "opcodes")?;
    m.add_class::<Tracer>()?;
    m.add_class::<RootSet>()?;
    m.add_function(wrap_pyfunction!(layout_check, &m)?)?;
    m.add_function(wrap_pyfunction!(mirror_version, &m)?)?;
    m.add_function(wrap_pyfunction!(suspended_stack, &m)?)?;
    m.add_function(wrap_pyfunction!(raw_stacktop, &m)?)?;
    m.add_function(wrap_pyfunction!(direct_caller, &m)?)?;
    m.add_function(wrap_pyfunction!(decode_recording, &m)?)?;
    #[cfg(Py_3_12)]
    m.add_function(wrap_pyfunction!(monitoring::callbacks, &m)?)?;
    #[cfg(not(Py_3_12))]
    m.add_class::<tracefunc::Reinstall>()?;
    m.add("BACKEND", if cfg!(Py_3_12) { "sys.monitoring" } else { "trace function" })?;
    parent.add_submodule(&m)?;
    Ok(())
}
