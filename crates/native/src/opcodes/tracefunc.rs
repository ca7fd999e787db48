//! 3.11 backend: a C trace function (`PyEval_SetTrace`).
//!
//! At `PyTrace_OPCODE` events the interpreter has saved the stack pointer in
//! the frame (`_PyFrame_SetStackPointer` before `maybe_call_line_trace`), so
//! `stacktop` gives the live depth. Opcode events are switched on per frame
//! (`f_trace_opcodes`) at the frame's `PyTrace_CALL` event (which also
//! comes at each resumption of a generator), only for frames that belong to
//! the trace, and off again when the frame returns or yields, so no frame
//! keeps the flag after the trace. Line events are left alone (the trace
//! function ignores them).
use super::layout;
use super::state::{self, Deliver, EnterKind, ExitKind, Lookup, ACTIVE};
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::c_int;

unsafe extern "C" fn trace_fn(
    obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    let frame = frame as *mut ffi::PyObject;
    // SAFETY: called by the interpreter with a live frame object of this
    // thread and the GIL held; the layout was verified before activation.
    unsafe {
        // opcode events first: nearly all events are
        if what == ffi::PyTrace_OPCODE {
            return on_opcode(obj, frame);
        }
        on_other(frame, what, arg)
    }
}

/// Any event but an opcode event.
///
/// # Safety
/// As `trace_fn`.
#[cold]
#[inline(never)]
unsafe fn on_other(frame: *mut ffi::PyObject, what: c_int, arg: *mut ffi::PyObject) -> c_int {
    // SAFETY: forwarded (see trace_fn).
    unsafe {
        match what {
            ffi::PyTrace_CALL => on_call(frame),
            ffi::PyTrace_RETURN => on_return(frame, arg),
            _ => 0,
        }
    }
}

/// An opcode event: the saved context's fast path ([`state::hot_snapshot`])
/// inline, anything else out of line.
///
/// # Safety
/// As `trace_fn`; `obj` is the trace function's object (see [`reinstall`]).
#[inline(always)]
unsafe fn on_opcode(obj: *mut ffi::PyObject, frame: *mut ffi::PyObject) -> c_int {
    // SAFETY: see trace_fn.
    unsafe {
        let iframe = layout::iframe_of(frame);
        let Some(offset) = layout::opcode_lasti(iframe) else { return 0 };
        let code = layout::iframe_code(iframe) as usize;
        // the trace function's object stands for this thread's trace (see
        // `Reinstall`), which spares the thread state lookup on the fast path
        let key = obj as usize;
        if let Some(d) = state::hot_snapshot(key, std::ptr::null_mut(), iframe, code, offset) {
            return if state::deliver(d) { 0 } else { -1 };
        }
        on_opcode_general(key, iframe, code, offset)
    }
}

/// An opcode event that the saved context does not cover.
///
/// # Safety
/// As `on_opcode`; `iframe` is the current frame, stopped before `offset`
/// of `code`.
#[inline(never)]
unsafe fn on_opcode_general(key: usize, iframe: *mut layout::IFrame, code: usize, offset: usize) -> c_int {
    // SAFETY: see trace_fn.
    unsafe {
        let ts = ffi::PyThreadState_Get();
        let no_tool = std::ptr::null_mut();
        let mut failed = false;
        let mut may_raise = false;
        let d = ACTIVE.with_ts(ts, |c| {
            let Ok(mut g) = c.try_borrow_mut() else { return Deliver::Nothing };
            let Some(st) = g.as_mut() else { return Deliver::Nothing };
            if st.stopped {
                return Deliver::Nothing;
            }
            if st.trace_obj.as_ref().is_some_and(|o| o.as_ptr() as usize == key) {
                if let Some(d) = state::snapshot_fast(st, key, no_tool, iframe, code, offset) {
                    return d;
                }
            }
            let d = state::instruction(st, iframe, code, offset);
            failed = st.stopped;
            may_raise = st.may_raise;
            d
        });
        if failed {
            let py = Python::assume_attached();
            ACTIVE.with(|c| {
                if let Some(e) = c.try_borrow().ok().and_then(|g| g.as_ref().and_then(|s| s.error.as_ref().map(|e| e.clone_ref(py)))) {
                    e.restore(py);
                }
            });
            if ffi::PyErr_Occurred().is_null() {
                pyo3::exceptions::PyRuntimeError::new_err("spyglass.opcodes: the trace failed").restore(py);
            }
            return -1;
        }
        if may_raise && !ffi::PyErr_Occurred().is_null() {
            // an asynchronous exception raised while rendering values
            return -1;
        }
        if state::deliver(d) { 0 } else { -1 }
    }
}

#[inline(never)]
unsafe fn on_return(frame: *mut ffi::PyObject, arg: *mut ffi::PyObject) -> c_int {
    // SAFETY: see trace_fn.
    unsafe {
        ACTIVE.with(|c| {
            let Ok(mut g) = c.try_borrow_mut() else { return };
            let Some(st) = g.as_mut() else { return };
            let iframe = layout::iframe_of(frame);
            let code = layout::iframe_code(iframe) as usize;
            let kind = if arg.is_null() {
                ExitKind::Raise
            } else {
                let off = ffi::PyFrame_GetLasti(frame as *mut ffi::PyFrameObject);
                let yields = st.code_info(code).and_then(|i| i.flags.get((off.max(0) / 2) as usize)).is_some_and(|f| f & 1 != 0);
                if yields { ExitKind::Yield } else { ExitKind::Return }
            };
            st.exit(iframe, kind, if arg.is_null() { None } else { Some(arg) });
            layout::set_trace_opcodes(frame, false);
        });
    }
    0
}

unsafe fn enter_kind(st: &state::TraceState, frame: *mut ffi::PyObject, code: usize) -> EnterKind {
    // SAFETY: live frame (see trace_fn); bit 1 of the flags marks `RESUME 0`.
    let off = unsafe { ffi::PyFrame_GetLasti(frame as *mut ffi::PyFrameObject) };
    let start = st.code_info(code).and_then(|i| i.flags.get((off.max(0) / 2) as usize)).is_some_and(|f| f & 2 != 0);
    if start { EnterKind::Start } else { EnterKind::Resume }
}

#[inline(never)]
unsafe fn on_call(frame: *mut ffi::PyObject) -> c_int {
    // SAFETY: see trace_fn.
    unsafe {
        let iframe = layout::iframe_of(frame);
        let code = layout::iframe_code(iframe);
        let need = ACTIVE.with(|c| {
            let Ok(mut g) = c.try_borrow_mut() else { return None };
            let st = g.as_mut()?;
            if st.stopped {
                return None;
            }
            let kind = enter_kind(st, frame, code as usize);
            match st.lookup(iframe, code as usize, kind) {
                Lookup::Known(i) => {
                    layout::set_trace_opcodes(frame, st.frames[i].traced);
                    None
                }
                Lookup::NeedPrepare { depth, root_depth, root } => Some((depth, root_depth, root)),
                Lookup::Ignore => None,
            }
        });
        let Some((depth, root_depth, root)) = need else { return 0 };
        // the entry kind comes from the code's flags, known once it is registered
        // (inside this function's unsafe block) `frame` is the live frame
        // of this call event (see trace_fn).
        let kind = |st: &state::TraceState| enter_kind(st, frame, code as usize);
        match super::prepare_frame(code, iframe, depth, root_depth, root, kind) {
            super::Prepared::Traced => {
                layout::set_trace_opcodes(frame, true);
                0
            }
            super::Prepared::NotTraced => {
                layout::set_trace_opcodes(frame, false);
                0
            }
            super::Prepared::Failed => {
                let py = Python::assume_attached();
                ACTIVE.with(|c| {
                    if let Some(e) = c.try_borrow().ok().and_then(|g| g.as_ref().and_then(|s| s.error.as_ref().map(|e| e.clone_ref(py)))) {
                        e.restore(py);
                    }
                });
                -1
            }
        }
    }
}

/// What `sys.gettrace()` returns while a trace is active. Code that saves
/// and restores the trace function (`test.support.no_tracing`, debuggers)
/// puts it back with `sys.settrace(obj)`; its first call then re-installs
/// the C trace function, so the trace survives the round trip.
///
/// Each activation has one of its own (`TraceState::trace_obj`), handed to
/// the C trace function as its object: since a trace function is set per
/// thread, the object tells which thread's trace an event belongs to
/// without reading the thread state.
#[pyclass(module = "spyglass._native.opcodes")]
pub struct Reinstall;

#[pymethods]
impl Reinstall {
    fn __call__(&self, _frame: Py<PyAny>, _event: Py<PyAny>, _arg: Py<PyAny>) -> Option<Py<PyAny>> {
        reinstall();
        None
    }

    fn __repr__(&self) -> &'static str {
        "<spyglass.opcodes trace function>"
    }
}

/// A new trace function object for an activation.
pub fn new_trace_obj(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Reinstall)?.into_any())
}

/// Installs the C trace function on the current thread with the object of
/// the trace active here, if any.
pub fn reinstall() {
    ACTIVE.with(|c| {
        let Ok(g) = c.try_borrow() else { return };
        if let Some(obj) = g.as_ref().and_then(|s| s.trace_obj.as_ref()) {
            // SAFETY: the GIL is held (ACTIVE is only used with it); the
            // interpreter takes its own reference to the object.
            unsafe { ffi::PyEval_SetTrace(Some(trace_fn), obj.as_ptr()) };
        }
    });
}

/// Removes the trace function from the current thread.
pub fn remove() {
    // SAFETY: the GIL is held by every caller (Python methods and Drop of a
    // Python object).
    unsafe { ffi::PyEval_SetTrace(None, std::ptr::null_mut()) };
}
