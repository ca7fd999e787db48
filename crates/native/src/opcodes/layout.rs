//! `repr(C)` mirrors of the interpreter's frame structs, one per supported
//! CPython version, and the start-up check that proves a mirror matches the
//! running interpreter before anything reads through it.
//!
//! Sources: `Include/internal/pycore_frame.h` of 3.11, 3.12 and 3.13, and
//! `Include/internal/pycore_interpframe_structs.h` + `pycore_stackref.h` of
//! 3.14 (GIL build, no `Py_DEBUG`, no `Py_STACKREF_DEBUG`).
//!
//! Which mirror is compiled in is decided by pyo3's version cfgs: the
//! extension is built for exactly one interpreter (no abi3).
#![allow(dead_code)]

use pyo3::ffi;
use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

/// The version this build's mirror describes, e.g. (3, 12); None when the
/// build target is not one we have a mirror for.
pub const MIRROR_VERSION: Option<(u8, u8)> = mirror_version();

const fn mirror_version() -> Option<(u8, u8)> {
    if cfg!(any(Py_GIL_DISABLED, py_sys_config = "Py_DEBUG", Py_3_15)) {
        None
    } else if cfg!(Py_3_14) {
        Some((3, 14))
    } else if cfg!(Py_3_13) {
        Some((3, 13))
    } else if cfg!(Py_3_12) {
        Some((3, 12))
    } else if cfg!(Py_3_11) {
        Some((3, 11))
    } else {
        None
    }
}

// ---------------------------------------------------------------- PyFrameObject

/// `struct _frame` (pycore_frame.h).
#[repr(C)]
pub struct FrameObject {
    pub ob_refcnt: isize,
    pub ob_type: *mut ffi::PyTypeObject,
    pub f_back: *mut ffi::PyObject,
    pub f_frame: *mut IFrame,
    pub f_trace: *mut ffi::PyObject,
    pub f_lineno: c_int,
    pub f_trace_lines: c_char,
    pub f_trace_opcodes: c_char,
    #[cfg(not(Py_3_13))]
    pub f_fast_as_locals: c_char,
    #[cfg(Py_3_13)]
    pub f_extra_locals: *mut ffi::PyObject,
    #[cfg(Py_3_13)]
    pub f_locals_cache: *mut ffi::PyObject,
    #[cfg(Py_3_14)]
    pub f_overwritten_fast_locals: *mut ffi::PyObject,
    pub _f_frame_data: [*mut ffi::PyObject; 1],
}

// ---------------------------------------------------------------- _PyInterpreterFrame

/// 3.11 `_PyInterpreterFrame`.
#[cfg(not(Py_3_12))]
#[repr(C)]
pub struct IFrame {
    pub f_func: *mut ffi::PyObject,
    pub f_globals: *mut ffi::PyObject,
    pub f_builtins: *mut ffi::PyObject,
    pub f_locals: *mut ffi::PyObject,
    pub f_code: *mut ffi::PyObject,
    pub frame_obj: *mut ffi::PyObject,
    pub previous: *mut IFrame,
    pub prev_instr: *mut u16,
    pub stacktop: c_int,
    pub is_entry: bool,
    pub owner: c_char,
    pub localsplus: [*mut ffi::PyObject; 1],
}

/// 3.12 and 3.13 `_PyInterpreterFrame` (3.13 renamed `f_code` to
/// `f_executable` and `prev_instr` to `instr_ptr`; the layout is the same).
#[cfg(all(Py_3_12, not(Py_3_14)))]
#[repr(C)]
pub struct IFrame {
    pub f_code: *mut ffi::PyObject,
    pub previous: *mut IFrame,
    pub f_funcobj: *mut ffi::PyObject,
    pub f_globals: *mut ffi::PyObject,
    pub f_builtins: *mut ffi::PyObject,
    pub f_locals: *mut ffi::PyObject,
    pub frame_obj: *mut ffi::PyObject,
    pub instr: *mut u16,
    pub stacktop: c_int,
    pub return_offset: u16,
    pub owner: c_char,
    pub localsplus: [*mut ffi::PyObject; 1],
}

/// 3.14 `_PyInterpreterFrame` (GIL build, release): `_PyStackRef` slots.
#[cfg(Py_3_14)]
#[repr(C)]
pub struct IFrame {
    pub f_executable: usize,
    pub previous: *mut IFrame,
    pub f_funcobj: usize,
    pub f_globals: *mut ffi::PyObject,
    pub f_builtins: *mut ffi::PyObject,
    pub f_locals: *mut ffi::PyObject,
    pub frame_obj: *mut ffi::PyObject,
    pub instr_ptr: *mut u16,
    pub stackpointer: *mut usize,
    pub return_offset: u16,
    pub owner: c_char,
    pub visited: u8,
    pub localsplus: [usize; 1],
}

/// `enum _frameowner`: which owners are Python frames (as opposed to the
/// shim frames the interpreter puts on the C stack, 3.12+).
pub const OWNED_BY_THREAD: c_char = 0;
pub const OWNED_BY_GENERATOR: c_char = 1;
pub const OWNED_BY_FRAME_OBJECT: c_char = 2;

// ---------------------------------------------------------------- PyThreadState (3.12+)

/// The prefix of `struct _ts` (Include/cpython/pystate.h) up to the
/// currently executing interpreter frame: 3.12 reaches it through
/// `cframe->current_frame`, 3.13 and 3.14 hold `current_frame` directly.
/// Reading it avoids `PyEval_GetFrame()`, which creates frame objects.
#[cfg(Py_3_12)]
#[repr(C)]
pub struct ThreadState {
    pub prev: *mut ffi::PyObject,
    pub next: *mut ffi::PyObject,
    pub interp: *mut ffi::PyObject,
    #[cfg(Py_3_13)]
    pub eval_breaker: usize,
    pub status: u32,
    #[cfg(Py_3_14)]
    pub holds_gil: c_int,
    #[cfg(Py_3_13)]
    pub whence: c_int,
    #[cfg(Py_3_13)]
    pub state: c_int,
    pub py_recursion_remaining: c_int,
    pub py_recursion_limit: c_int,
    #[cfg(not(Py_3_14))]
    pub c_recursion_remaining: c_int,
    pub recursion_headroom: c_int,
    pub tracing: c_int,
    pub what_event: c_int,
    #[cfg(not(Py_3_13))]
    pub cframe: *mut *mut IFrame,
    #[cfg(Py_3_13)]
    pub current_frame: *mut IFrame,
}

/// The interpreter frame executing on the thread of `ts`.
///
/// # Safety
/// `ts` must be the current thread's state (GIL held) and [`verified`] must
/// have returned Ok.
#[cfg(Py_3_12)]
#[inline]
pub unsafe fn current_iframe(ts: *mut ffi::PyThreadState) -> *mut IFrame {
    // SAFETY: the thread state of the calling thread is live while it holds
    // the GIL; the prefix layout was checked at start-up (see verify).
    unsafe {
        let ts = ts as *const ThreadState;
        #[cfg(not(Py_3_13))]
        {
            let cframe = (*ts).cframe;
            if cframe.is_null() { std::ptr::null_mut() } else { *cframe }
        }
        #[cfg(Py_3_13)]
        {
            (*ts).current_frame
        }
    }
}

/// The frame object of an interpreter frame, creating it if needed
/// (borrowed reference, or NULL with an exception set).
///
/// # Safety
/// `f` must be the frame currently executing on this thread.
#[cfg(Py_3_12)]
#[inline]
pub unsafe fn frame_object(f: *mut IFrame) -> *mut ffi::PyObject {
    // SAFETY: the caller guarantees `f` is the current frame, so
    // PyEval_GetFrame returns its frame object.
    unsafe {
        let fo = (*f).frame_obj;
        if !fo.is_null() {
            return fo;
        }
        ffi::PyEval_GetFrame() as *mut ffi::PyObject
    }
}

// ---------------------------------------------------------------- _PyStackRef (3.14)

/// One decoded value-stack slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Null,
    Obj(*mut ffi::PyObject),
    /// A tagged integer (3.14 pushes `lasti` of exception handlers this way).
    Int(isize),
    /// Bits that no known encoding produces: never dereferenced.
    Invalid(usize),
}

/// Decodes a 3.14 `_PyStackRef` (pycore_stackref.h, GIL build):
/// `PyStackRef_NULL` is `Py_TAG_REFCNT` (1); tagged ints have both low bits
/// set (`Py_INT_TAG` 3); otherwise the pointer is the bits without
/// `Py_TAG_REFCNT` (tag 0 = owned reference, 1 = deferred/borrowed).
#[inline]
pub fn decode_stackref(bits: usize) -> Slot {
    const TAG_REFCNT: usize = 1;
    const INT_TAG: usize = 3;
    // an object (tag 0 or 1, above the first page) first: the common case
    if bits & 2 == 0 && bits >= 4096 {
        Slot::Obj((bits & !TAG_REFCNT) as *mut ffi::PyObject)
    } else if bits == TAG_REFCNT {
        Slot::Null
    } else if bits & INT_TAG == INT_TAG {
        Slot::Int((bits as isize) >> 2)
    } else {
        Slot::Invalid(bits)
    }
}

// ---------------------------------------------------------------- accessors

/// The interpreter frame behind a frame object.
///
/// # Safety
/// `frame` must be a live `PyFrameObject` and [`verified`] must have returned Ok.
#[inline]
pub unsafe fn iframe_of(frame: *mut ffi::PyObject) -> *mut IFrame {
    // SAFETY: the caller guarantees `frame` is a frame object whose layout the
    // start-up check matched against this mirror.
    unsafe { (*(frame as *mut FrameObject)).f_frame }
}

/// Sets the frame object's `f_trace_opcodes` flag (3.11 backend).
///
/// # Safety
/// As for [`iframe_of`].
pub unsafe fn set_trace_opcodes(frame: *mut ffi::PyObject, opcodes: bool) {
    // SAFETY: as in iframe_of; a plain char that the interpreter reads at
    // each instruction while tracing (what `frame.f_trace_opcodes = x` sets
    // on 3.11).
    unsafe {
        (*(frame as *mut FrameObject)).f_trace_opcodes = opcodes as c_char;
    }
}

/// The code object an interpreter frame executes (borrowed).
///
/// # Safety
/// `f` must point to a live interpreter frame of this thread.
#[inline]
pub unsafe fn iframe_code(f: *const IFrame) -> *mut ffi::PyObject {
    // SAFETY: the caller guarantees `f` is live; the field is the first word
    // of the struct in every mirror.
    unsafe {
        #[cfg(not(Py_3_14))]
        {
            (*f).f_code
        }
        #[cfg(Py_3_14)]
        {
            ((*f).f_executable & !3usize) as *mut ffi::PyObject
        }
    }
}

/// # Safety
/// `f` must point to a live interpreter frame of this thread.
pub unsafe fn iframe_previous(f: *const IFrame) -> *mut IFrame {
    // SAFETY: see iframe_code.
    unsafe { (*f).previous }
}

/// The byte offset of the instruction the frame last started: the one in
/// flight while the frame calls out, or the one raising (3.12+; None on
/// 3.11, where only the control-flow recorder, 3.12+, would ask).
///
/// # Safety
/// `f` must point to a live interpreter frame of this thread.
#[inline]
pub unsafe fn lasti(f: *mut IFrame) -> Option<usize> {
    #[cfg(Py_3_12)]
    {
        // SAFETY: forwarded; the function only reads the frame and never raises.
        usize::try_from(unsafe { crate::ffi_extra::PyUnstable_InterpreterFrame_GetLasti(f.cast()) }).ok()
    }
    #[cfg(not(Py_3_12))]
    {
        let _ = f;
        None
    }
}

/// 3.11: the byte offset of the instruction an opcode event is about to
/// run, as `PyFrame_GetLasti` computes it without the call: `prev_instr`
/// minus the code's first code unit, which follows the code object's fixed
/// part (`_PyCode_CODE`; `PyCode_Type.tp_basicsize` is the offset of
/// `co_code_adaptive`). None before the first instruction. Checked against
/// `PyFrame_GetLasti` by `verify`.
///
/// # Safety
/// `f` must point to a live interpreter frame of this thread.
#[cfg(not(Py_3_12))]
#[inline]
pub unsafe fn opcode_lasti(f: *const IFrame) -> Option<usize> {
    // SAFETY: the caller guarantees `f` is live; PyCode_Type is a static
    // type object, only read.
    unsafe {
        let first = (*f).f_code as usize + (*(&raw const ffi::PyCode_Type)).tp_basicsize as usize;
        ((*f).prev_instr as usize).checked_sub(first)
    }
}

/// The head of `PyCodeObject` (`_PyCode_DEF` in `cpython/code.h`, 3.13 and
/// 3.14) up to `co_flags`; checked by `verify` before any use.
#[cfg(Py_3_13)]
#[repr(C)]
struct CodeHead {
    ob_base: ffi::PyVarObject,
    co_consts: *mut ffi::PyObject,
    co_names: *mut ffi::PyObject,
    co_exceptiontable: *mut ffi::PyObject,
    co_flags: c_int,
}

/// `CO_NO_MONITORING_EVENTS` (3.13+): the interpreter's own shim code, such
/// as the frame that finishes `__init__` after a specialised class call.
#[cfg(Py_3_13)]
const CO_NO_MONITORING_EVENTS: c_int = 0x200_0000;

/// Whether the frame is a Python function frame (not a C-stack shim).
///
/// # Safety
/// `f` must point to a live interpreter frame of this thread.
pub unsafe fn iframe_is_python(f: *const IFrame) -> bool {
    // SAFETY: see iframe_code.
    let owner = unsafe { (*f).owner };
    matches!(owner, OWNED_BY_THREAD | OWNED_BY_GENERATOR | OWNED_BY_FRAME_OBJECT)
        // SAFETY: see iframe_code; a shim frame's code is not a code object
        // on 3.13+ (None), so also require a real code object.
        && unsafe { ffi::PyCode_Check(iframe_code(f)) } != 0
        // SAFETY: a code object, whose head `verify` checked.
        && !unsafe { is_shim_code(iframe_code(f)) }
}

/// Whether `code` is interpreter shim code (3.13+), not a program's.
///
/// # Safety
/// `code` must be a live code object.
#[inline]
unsafe fn is_shim_code(code: *mut ffi::PyObject) -> bool {
    #[cfg(Py_3_13)]
    {
        // SAFETY: the caller passes a code object; the head layout was
        // checked against the interpreter by `verify`.
        unsafe { (*(code as *const CodeHead)).co_flags & CO_NO_MONITORING_EVENTS != 0 }
    }
    #[cfg(not(Py_3_13))]
    {
        let _ = code;
        false
    }
}

/// The stack depth the interpreter saved in the frame, where this version
/// saves it at the events we use: 3.11 (`stacktop`, valid at opcode trace
/// events) and 3.14 (`stackpointer`). 3.12/3.13 return None.
///
/// # Safety
/// `f` must point to a live interpreter frame of this thread, stopped at an
/// event where the saved pointer is valid (see the module docs).
#[inline]
pub unsafe fn saved_depth(f: *const IFrame, nlocalsplus: usize) -> Option<isize> {
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: the caller guarantees the frame is live.
        let top = unsafe { (*f).stacktop } as isize;
        Some(top - nlocalsplus as isize)
    }
    #[cfg(Py_3_14)]
    {
        // SAFETY: the caller guarantees the frame is live; both pointers are
        // into the same frame allocation.
        unsafe {
            let base = (&raw const (*f).localsplus) as *const usize;
            let sp = (*f).stackpointer as *const usize;
            if sp.is_null() {
                return None;
            }
            Some(sp.offset_from(base) - nlocalsplus as isize)
        }
    }
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    {
        let _ = (f, nlocalsplus);
        None
    }
}

/// The `stacktop` field of 3.12/3.13 frames, which is only valid where the
/// interpreter saved it (a suspended generator, a caller during a Python
/// call). Used by tests to check the static analysis.
///
/// # Safety
/// `f` must point to a live interpreter frame.
pub unsafe fn raw_stacktop(f: *const IFrame) -> Option<isize> {
    #[cfg(not(Py_3_14))]
    {
        // SAFETY: the caller guarantees the frame is live.
        Some(unsafe { (*f).stacktop } as isize)
    }
    #[cfg(Py_3_14)]
    {
        let _ = f;
        None
    }
}

/// Reads slot `i` of `localsplus`.
///
/// # Safety
/// `f` must point to a live interpreter frame and `i` must be below the
/// frame's live extent (locals plus current stack depth).
#[inline]
pub unsafe fn slot(f: *const IFrame, i: usize) -> Slot {
    // SAFETY: the caller guarantees `i` is within the live part of the
    // frame's `localsplus` array, which is allocated inline after the struct.
    unsafe {
        let base = &raw const (*f).localsplus;
        #[cfg(not(Py_3_14))]
        {
            let p = *(base as *const *mut ffi::PyObject).add(i);
            if p.is_null() {
                Slot::Null
            } else {
                Slot::Obj(p)
            }
        }
        #[cfg(Py_3_14)]
        {
            decode_stackref(*(base as *const usize).add(i))
        }
    }
}

// ---------------------------------------------------------------- start-up check

static VERIFIED: OnceLock<Result<(), String>> = OnceLock::new();

/// The outcome of the start-up check (None until it has run).
pub fn verified() -> Option<&'static Result<(), String>> {
    VERIFIED.get()
}

/// Runs the structural checks once and remembers the outcome.
///
/// `frame` is a live frame object of a probe function (spyglass.opcodes) that
/// is executing, whose first `expected_locals.len()` fast locals hold exactly
/// those objects, and whose caller is `caller` (a frame object).
pub fn verify(
    py_version: (u8, u8),
    frame_basicsize: isize,
    frame: *mut ffi::PyObject,
    code: *mut ffi::PyObject,
    globals: *mut ffi::PyObject,
    builtins: *mut ffi::PyObject,
    caller_code: *mut ffi::PyObject,
    expected_locals: &[*mut ffi::PyObject],
) -> &'static Result<(), String> {
    VERIFIED.get_or_init(|| {
        let want = MIRROR_VERSION.ok_or_else(|| {
            format!(
                "spyglass.opcodes has no frame layout for this build of CPython {}.{} \
                 (supported: release, GIL builds of CPython 3.11 to 3.14)",
                py_version.0, py_version.1
            )
        })?;
        if want != py_version {
            return Err(format!(
                "spyglass.opcodes was built for CPython {}.{} but runs on {}.{}",
                want.0, want.1, py_version.0, py_version.1
            ));
        }
        let expect_basic = std::mem::offset_of!(FrameObject, _f_frame_data)
            + std::mem::offset_of!(IFrame, localsplus);
        if frame_basicsize as usize != expect_basic {
            return Err(format!(
                "CPython {}.{}: frame objects are {} bytes where the layout expects {}",
                want.0, want.1, frame_basicsize, expect_basic
            ));
        }
        // SAFETY: `frame` is a live frame object (the caller holds it) and
        // its type's size matches the mirror, checked just above; the
        // interpreter frame it points to is executing on this thread, and
        // fields are compared by address only, never dereferenced further
        // until they match the values Python reports.
        unsafe {
            let fo = frame as *mut FrameObject;
            let f = (*fo).f_frame;
            if f.is_null() {
                return Err("frame object has no interpreter frame".into());
            }
            let check = |what: &str, got: *mut ffi::PyObject, want: *mut ffi::PyObject| {
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "CPython {}.{}: the frame layout does not match this interpreter \
                         ({what} read {got:p}, expected {want:p})",
                        py_version.0, py_version.1
                    ))
                }
            };
            check("code", iframe_code(f), code)?;
            check("globals", (*f).f_globals, globals)?;
            check("builtins", (*f).f_builtins, builtins)?;
            check("frame_obj", (*f).frame_obj, frame)?;
            #[cfg(Py_3_12)]
            {
                let cur = current_iframe(ffi::PyThreadState_Get());
                if cur != f {
                    return Err(format!(
                        "CPython {}.{}: the thread state layout does not match this interpreter \
                         (current frame read {cur:p}, expected {f:p})",
                        py_version.0, py_version.1
                    ));
                }
            }
            if (*f).owner != OWNED_BY_THREAD {
                return Err(format!("unexpected frame owner {}", (*f).owner));
            }
            for (i, &want_obj) in expected_locals.iter().enumerate() {
                match slot(f, i) {
                    Slot::Obj(p) => check("a local", p, want_obj)?,
                    other => return Err(format!("local {i} decoded as {other:?}")),
                }
            }
            #[cfg(Py_3_13)]
            {
                // the code head, compared with what Python reports
                let head = code as *const CodeHead;
                let consts = ffi::PyObject_GetAttrString(code, c"co_consts".as_ptr());
                let flags = ffi::PyObject_GetAttrString(code, c"co_flags".as_ptr());
                let ok = !consts.is_null()
                    && !flags.is_null()
                    && (*head).co_consts == consts
                    && ffi::PyLong_AsLong(flags) == std::ffi::c_long::from((*head).co_flags);
                for o in [consts, flags] {
                    if !o.is_null() {
                        ffi::Py_DECREF(o);
                    }
                }
                if !ok {
                    ffi::PyErr_Clear();
                    return Err(format!(
                        "CPython {}.{}: the code object layout does not match this interpreter",
                        py_version.0, py_version.1
                    ));
                }
            }
            #[cfg(not(Py_3_12))]
            {
                let got = opcode_lasti(f).map_or(-1, |v| v as c_int);
                let want = ffi::PyFrame_GetLasti(frame as *mut ffi::PyFrameObject);
                if got != want || (*(&raw const ffi::PyCode_Type)).tp_itemsize != 2 {
                    return Err(format!(
                        "CPython {}.{}: the instruction offset read from the frame ({got}) \
                         does not match PyFrame_GetLasti ({want})",
                        py_version.0, py_version.1
                    ));
                }
            }
            // the caller's frame: skip C-stack shims
            let mut prev = (*f).previous;
            while !prev.is_null() && !iframe_is_python(prev) {
                prev = (*prev).previous;
            }
            if prev.is_null() {
                return Err("the probe frame has no caller frame".into());
            }
            check("the caller's code", iframe_code(prev), caller_code)?;
        }
        Ok(())
    })
}
