//! 3.12+ backend: `sys.monitoring` callbacks implemented as C functions.
//!
//! Python (spyglass.opcodes) picks a tool id, registers these functions and
//! enables INSTRUCTION, PY_START, PY_RESUME, PY_RETURN and PY_YIELD locally
//! on traced code objects only; PY_UNWIND and PY_THROW (global-only events)
//! and, with `follow`, PY_START globally, while a trace is active.
//!
//! The current frame comes from `PyEval_GetFrame()`; an event is only acted
//! on when that frame executes the code object the event names. 3.12/3.13 do
//! not save the stack pointer at these events, so the depth comes from the
//! static analysis; 3.14 saves it (`stackpointer`).
use super::layout;
use super::state::{self, Deliver, EnterKind, ExitKind, Flow, Lookup, ACTIVE};
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

unsafe fn none() -> *mut ffi::PyObject {
    // SAFETY: the GIL is held (we are inside a Python call).
    unsafe {
        let n = ffi::Py_None();
        ffi::Py_INCREF(n);
        n
    }
}

/// The current interpreter frame, if it executes `code`.
unsafe fn current(code: *mut ffi::PyObject) -> Option<*mut layout::IFrame> {
    // SAFETY: the GIL is held.
    unsafe { current_on(ffi::PyThreadState_Get(), code) }
}

/// As `current`, given the current thread state.
#[inline]
unsafe fn current_on(ts: *mut ffi::PyThreadState, code: *mut ffi::PyObject) -> Option<*mut layout::IFrame> {
    // SAFETY: the GIL is held; the thread state's current frame is the frame
    // executing the instruction that fired the event. The layout was
    // verified before any trace could be activated.
    unsafe {
        let iframe = layout::current_iframe(ts);
        if iframe.is_null() || layout::iframe_code(iframe) != code {
            return None;
        }
        Some(iframe)
    }
}

/// Raises the trace's stored error (a copy) in the traced frame.
unsafe fn fail() -> *mut ffi::PyObject {
    // SAFETY: the GIL is held.
    let py = unsafe { Python::assume_attached() };
    ACTIVE.with(|c| {
        if let Ok(g) = c.try_borrow() {
            if let Some(e) = g.as_ref().and_then(|st| st.error.as_ref()) {
                e.clone_ref(py).restore(py);
                return;
            }
        }
        pyo3::exceptions::PyRuntimeError::new_err("spyglass.opcodes: the trace failed").restore(py);
    });
    std::ptr::null_mut()
}

/// The instruction event under the state's borrow: what to deliver, the
/// frame, whether the trace stopped, whether rendering may have raised.
///
/// # Safety
/// Called from an INSTRUCTION event with the GIL held; `ts` is this thread's
/// state and `code` the code object the event names.
#[inline(always)]
unsafe fn handle_instruction(
    tool: *mut ffi::PyObject,
    ts: *mut ffi::PyThreadState,
    code: *mut ffi::PyObject,
    offset: usize,
) -> (Deliver, *mut layout::IFrame, bool, bool) {
    ACTIVE.with_ts(ts, |c| {
        let nothing = (Deliver::Nothing, std::ptr::null_mut(), false, false);
        let Ok(mut g) = c.try_borrow_mut() else { return nothing };
        let Some(st) = g.as_mut() else { return nothing };
        if st.stopped || st.tool != tool {
            return nothing;
        }
        // SAFETY: the GIL is held and `ts` is this thread's state (see the caller).
        let Some(iframe) = (unsafe { current_on(ts, code) }) else { return nothing };
        // SAFETY: `iframe` is the current frame, executing `code`, stopped
        // before the instruction at `offset` (an INSTRUCTION event).
        let d = unsafe { state::instruction(st, iframe, code as usize, offset) };
        (d, iframe, st.stopped, st.may_raise)
    })
}

/// The rare path of an instruction event: the frame runs a root that was
/// already running when the trace started (3.12+). Prepares its code, then
/// handles the event again. None: preparing failed (the error is stored).
///
/// # Safety
/// As [`handle_instruction`]; `iframe` is the current frame, executing `code`.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn prepare_then_instruction(
    tool: *mut ffi::PyObject,
    ts: *mut ffi::PyThreadState,
    code: *mut ffi::PyObject,
    offset: usize,
    iframe: *mut layout::IFrame,
    depth: u32,
    root_depth: u32,
    root: bool,
) -> Option<(Deliver, bool, bool)> {
    // SAFETY: forwarded (see above).
    unsafe {
        match super::prepare_frame(code, iframe, depth, root_depth, root, |_| EnterKind::Resume) {
            super::Prepared::Failed => None,
            super::Prepared::NotTraced => Some((Deliver::Nothing, false, false)),
            super::Prepared::Traced => {
                let (again, _, failed, may_raise) = handle_instruction(tool, ts, code, offset);
                let again = if matches!(again, Deliver::Prepare { .. }) { Deliver::Nothing } else { again };
                Some((again, failed, may_raise))
            }
        }
    }
}

/// Whether `offset_arg` may read small ints directly (set once the layout
/// it reads was checked against the running interpreter, see `callbacks`).
static COMPACT_INTS: AtomicBool = AtomicBool::new(false);

/// The value of a "compact" int, one that fits in one digit (3.12+
/// `_PyLong_IsCompact` and `_PyLong_CompactValue`, static inline functions
/// of Include/cpython/longintrepr.h: `lv_tag` follows the object header,
/// below 16 for compact ints, its low two bits the sign (2 = negative); the
/// first 30-bit digit follows it). None for any other int.
///
/// # Safety
/// `o` must be a live int object (exactly `int`).
#[inline(always)]
unsafe fn compact_int(o: *mut ffi::PyObject) -> Option<isize> {
    // SAFETY: an int object is at least its header, `lv_tag` and one digit.
    unsafe {
        let tag = *(o as *const usize).add(2);
        if tag >= 16 {
            return None;
        }
        let digit = *((o as *const usize).add(3) as *const u32) as isize;
        Some(if tag & 3 == 2 { -digit } else { digit })
    }
}

/// Checks `compact_int` against `PyLong_AsSsize_t` on ints of every size
/// class; only a full match turns the direct reads on.
fn check_compact_ints() -> bool {
    let compact: [isize; 9] = [0, 1, 2, 7, 255, 256, 4_000, 65_536, (1 << 30) - 1];
    let wide: [isize; 3] = [1 << 30, 1 << 40, -(1 << 31)];
    // SAFETY: the GIL is held (called from a Python function); every object
    // is a new int, read while we hold it and then released.
    unsafe {
        let check = |v: isize, want_compact: bool| {
            let o = ffi::PyLong_FromSsize_t(v);
            if o.is_null() {
                ffi::PyErr_Clear();
                return false;
            }
            let ok = ffi::Py_TYPE(o) == &raw mut ffi::PyLong_Type
                && ffi::PyLong_AsSsize_t(o) == v
                && match compact_int(o) {
                    Some(got) => want_compact && got == v,
                    None => !want_compact,
                };
            ffi::Py_DECREF(o);
            ok
        };
        compact.iter().all(|&v| check(v, true) && (v == 0 || check(-v, true)))
            && wide.iter().all(|&v| check(v, false))
    }
}

/// The instruction offset sys.monitoring passes (an int), or -1 when it is
/// not a non-negative int that fits.
#[inline(always)]
unsafe fn offset_arg(o: *mut ffi::PyObject) -> isize {
    // SAFETY: `o` is a live object (an argument of the current call); the
    // direct read only happens on exact ints, once the layout was checked.
    unsafe {
        if COMPACT_INTS.load(Ordering::Relaxed) && ffi::Py_TYPE(o) == &raw mut ffi::PyLong_Type {
            if let Some(v) = compact_int(o) {
                return v;
            }
        }
        let v = ffi::PyLong_AsSsize_t(o);
        if v < 0 {
            ffi::PyErr_Clear();
            return -1;
        }
        v
    }
}

unsafe extern "C" fn on_instruction(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: called by sys.monitoring with (code, offset) and the GIL held.
    unsafe {
        if nargs < 2 {
            return none();
        }
        let code = *args;
        let offset = offset_arg(*args.add(1));
        if offset < 0 {
            return none();
        }
        let ts = ffi::PyThreadState_Get();
        if let Some(d) = state::hot_snapshot(ts as usize, slf, layout::current_iframe(ts), code as usize, offset as usize) {
            return if state::deliver(d) { none() } else { std::ptr::null_mut() };
        }
        let fast = ACTIVE.with_ts(ts, |c| {
            let mut g = c.try_borrow_mut().ok()?;
            let st = g.as_mut()?;
            if st.stopped || st.tool != slf {
                return None;
            }
            // SAFETY: the GIL is held and `ts` is this thread's state; the
            // frame is stopped before `offset` (an INSTRUCTION event).
            state::snapshot_fast(st, ts as usize, slf, current_on(ts, code)?, code as usize, offset as usize)
        });
        if let Some(d) = fast {
            return if state::deliver(d) { none() } else { std::ptr::null_mut() };
        }
        let (mut d, iframe, mut failed, mut may_raise) = handle_instruction(slf, ts, code, offset as usize);
        if let Deliver::Prepare { depth, root_depth, root } = d {
            match prepare_then_instruction(slf, ts, code, offset as usize, iframe, depth, root_depth, root) {
                Some(again) => (d, failed, may_raise) = again,
                None => return fail(),
            }
        }
        if failed {
            return fail();
        }
        if may_raise && !ffi::PyErr_Occurred().is_null() {
            // an asynchronous exception raised while rendering values
            return std::ptr::null_mut();
        }
        if !state::deliver(d) {
            return std::ptr::null_mut();
        }
        none()
    }
}

unsafe fn enter(tool: *mut ffi::PyObject, code: *mut ffi::PyObject, offset: usize, kind: fn() -> EnterKind) -> *mut ffi::PyObject {
    // control flow: where the frame starts; a throw enters a frame in flight
    // at its suspended yield
    let in_flight = matches!(kind(), EnterKind::Throw);
    // SAFETY: called from the callbacks below with the GIL held.
    unsafe {
        let need = ACTIVE.with(|c| {
            let Ok(mut g) = c.try_borrow_mut() else { return None };
            let st = g.as_mut()?;
            if st.stopped || st.tool != tool {
                return None;
            }
            let iframe = current(code)?;
            match st.lookup(iframe, code as usize, kind()) {
                Lookup::NeedPrepare { depth, root_depth, root } => Some((iframe, depth, root_depth, root)),
                Lookup::Known(i) => {
                    st.flow_begin(i, in_flight, offset);
                    None
                }
                Lookup::Ignore => None,
            }
        });
        let Some((iframe, depth, root_depth, root)) = need else { return none() };
        match super::prepare_frame(code, iframe, depth, root_depth, root, |_| kind()) {
            super::Prepared::Failed => fail(),
            super::Prepared::Traced => {
                ACTIVE.with(|c| {
                    let Ok(mut g) = c.try_borrow_mut() else { return };
                    let Some(st) = g.as_mut() else { return };
                    if let Some(i) = st.frames.iter().rposition(|e| e.iframe == iframe && e.code == code as usize) {
                        st.flow_begin(i, in_flight, offset);
                    }
                });
                none()
            }
            super::Prepared::NotTraced => none(),
        }
    }
}

unsafe fn leave(
    tool: *mut ffi::PyObject,
    code: *mut ffi::PyObject,
    offset: usize,
    kind: ExitKind,
    value: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called from the callbacks below with the GIL held.
    unsafe {
        ACTIVE.with(|c| {
            let Ok(mut g) = c.try_borrow_mut() else { return };
            let Some(st) = g.as_mut() else { return };
            if st.tool != tool {
                return;
            }
            if let Some(iframe) = current(code) {
                // control flow: a return or yield is the last instruction run
                if st.flow && !matches!(kind, ExitKind::Raise) {
                    if let Some(i) = st.frames.iter().rposition(|e| e.iframe == iframe && e.code == code as usize) {
                        st.flow_reach(i, offset);
                    }
                }
                st.exit(iframe, kind, Some(value));
            }
        });
        none()
    }
}

/// A control-flow event (JUMP, BRANCH*, RAISE, RERAISE, EXCEPTION_HANDLED).
unsafe fn flow(tool: *mut ffi::PyObject, code: *mut ffi::PyObject, ev: Flow) -> *mut ffi::PyObject {
    // SAFETY: called from the callbacks below with the GIL held.
    unsafe {
        let ts = ffi::PyThreadState_Get();
        ACTIVE.with_ts(ts, |c| {
            let Ok(mut g) = c.try_borrow_mut() else { return };
            let Some(st) = g.as_mut() else { return };
            if st.stopped || st.tool != tool {
                return;
            }
            // SAFETY: the GIL is held and `ts` is this thread's state.
            let Some(iframe) = current_on(ts, code) else { return };
            // SAFETY: `iframe` is the current frame, executing `code`.
            st.flow(iframe, code as usize, ev);
        });
        none()
    }
}

/// A non-negative integer argument of an event (an offset), or None.
unsafe fn event_offset(o: *mut ffi::PyObject) -> Option<usize> {
    if o.is_null() {
        return None;
    }
    // SAFETY: `o` is an argument the interpreter passed to the callback.
    usize::try_from(unsafe { offset_arg(o) }).ok()
}

macro_rules! callback {
    ($name:ident, $body:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *mut *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
        ) -> *mut ffi::PyObject {
            // SAFETY: called by sys.monitoring with the GIL held and the
            // documented arguments (code, offset[, value]).
            unsafe {
                if nargs < 2 {
                    return none();
                }
                let code = *args;
                let Some(offset) = event_offset(*args.add(1)) else { return none() };
                let value = if nargs >= 3 { *args.add(2) } else { std::ptr::null_mut() };
                let f: unsafe fn(*mut ffi::PyObject, *mut ffi::PyObject, usize, *mut ffi::PyObject) -> *mut ffi::PyObject = $body;
                f(slf, code, offset, value)
            }
        }
    };
}

callback!(on_py_start, |tool, code, at, _| enter(tool, code, at, || EnterKind::Start));
callback!(on_py_resume, |tool, code, at, _| enter(tool, code, at, || EnterKind::Resume));
callback!(on_py_throw, |tool, code, at, _| enter(tool, code, at, || EnterKind::Throw));
callback!(on_py_return, |tool, code, at, v| leave(tool, code, at, ExitKind::Return, v));
callback!(on_py_yield, |tool, code, at, v| leave(tool, code, at, ExitKind::Yield, v));
callback!(on_py_unwind, |tool, code, at, v| leave(tool, code, at, ExitKind::Raise, v));
callback!(on_raise, |tool, code, at, _| flow(tool, code, Flow::Raise(at)));
callback!(on_reraise, |tool, code, at, _| flow(tool, code, Flow::Reraise(at)));
callback!(on_handled, |tool, code, at, _| flow(tool, code, Flow::Handled(at)));
callback!(on_jump, |tool, code, from, to| match event_offset(to) {
    Some(to) => flow(tool, code, Flow::Jump { how: 0, from, to }),
    None => none(),
});
#[cfg(Py_3_14)]
callback!(on_branch_left, |tool, code, from, to| match event_offset(to) {
    Some(to) => flow(tool, code, Flow::Jump { how: 1, from, to }),
    None => none(),
});
#[cfg(Py_3_14)]
callback!(on_branch_right, |tool, code, from, to| match event_offset(to) {
    Some(to) => flow(tool, code, Flow::Jump { how: 2, from, to }),
    None => none(),
});

struct Defs([ffi::PyMethodDef; 7]);
struct FlowDefs([ffi::PyMethodDef; FLOW_EVENTS]);
// SAFETY: as for `Defs`.
unsafe impl Sync for FlowDefs {}
// SAFETY: the definitions are immutable static data (pointers to static
// strings and functions), only ever read by the interpreter.
unsafe impl Sync for Defs {}

const fn def(name: &'static CStr, f: ffi::PyCFunctionFast) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: std::ptr::null(),
    }
}

static DEFS: Defs = Defs([
    def(c"INSTRUCTION", on_instruction),
    def(c"PY_START", on_py_start),
    def(c"PY_RESUME", on_py_resume),
    def(c"PY_THROW", on_py_throw),
    def(c"PY_RETURN", on_py_return),
    def(c"PY_YIELD", on_py_yield),
    def(c"PY_UNWIND", on_py_unwind),
]);

#[cfg(not(Py_3_14))]
const FLOW_EVENTS: usize = 5;
#[cfg(Py_3_14)]
const FLOW_EVENTS: usize = 6;

/// The control-flow recorder's events (3.14 splits BRANCH in two).
static FLOW_DEFS: FlowDefs = FlowDefs([
    def(c"JUMP", on_jump),
    #[cfg(not(Py_3_14))]
    def(c"BRANCH", on_jump),
    #[cfg(Py_3_14)]
    def(c"BRANCH_LEFT", on_branch_left),
    #[cfg(Py_3_14)]
    def(c"BRANCH_RIGHT", on_branch_right),
    def(c"RAISE", on_raise),
    def(c"RERAISE", on_reraise),
    def(c"EXCEPTION_HANDLED", on_handled),
]);

/// {event name: callback function} for `sys.monitoring.register_callback`.
/// The functions are bound to the tool id (their `self`), so that a trace
/// acts only on the events of its own tool when several traces run on
/// different threads.
#[pyfunction]
pub fn callbacks<'py>(py: Python<'py>, tool_obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    if !COMPACT_INTS.load(Ordering::Relaxed) && check_compact_ints() {
        COMPACT_INTS.store(true, Ordering::Relaxed);
    }
    let d = pyo3::types::PyDict::new(py);
    for def in DEFS.0.iter().chain(FLOW_DEFS.0.iter()) {
        // SAFETY: `def` is 'static; PyCFunction_NewEx keeps a reference to
        // `self` and returns a new reference or NULL.
        let f = unsafe {
            let p = ffi::PyCFunction_NewEx(def as *const _ as *mut _, tool_obj.as_ptr(), std::ptr::null_mut());
            Bound::from_owned_ptr_or_err(py, p)?
        };
        // SAFETY: ml_name is a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(def.ml_name) }.to_str().unwrap_or("?");
        d.set_item(name, f)?;
    }
    Ok(d)
}
