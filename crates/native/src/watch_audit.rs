//! 3.11: code-object CREATE events emulated from an audit hook (part of
//! `watch`; there is no code watcher API before 3.12).
//!
//! A C audit hook reports a code object, and depth first every code object
//! nested in its `co_consts`, the first time it reaches an audited use:
//! `exec`/`eval` (which covers imports from source and from `.pyc`),
//! `types.FunctionType()` or an assignment to `function.__code__`. The
//! `compile`, `marshal.loads` and `code.__new__` events fire before the code
//! object exists, so they cannot be used. A code extra slot marks what has
//! been reported. The hook cannot be removed; with no callbacks it returns
//! after one atomic load.
use super::*;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicIsize, AtomicPtr};

/// The code extra slot that marks code objects already reported.
static SEEN_INDEX: AtomicIsize = AtomicIsize::new(-1);
/// The interned string "co_consts" (a reference kept forever), so that the
/// walk does not build it for every code object.
static CO_CONSTS: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
/// Any non-NULL pointer: the marker is never dereferenced.
const SEEN: *mut c_void = ptr::dangling_mut::<c_void>();

unsafe extern "C" fn free_marker(_: *mut c_void) {}

/// Marks `code` as reported; false if it already was.
///
/// # Safety
/// The GIL is held, `code` is a code object and no exception is set.
unsafe fn mark(code: *mut ffi::PyObject) -> bool {
    let index = SEEN_INDEX.load(Ordering::Acquire);
    if index < 0 {
        return false;
    }
    let mut value: *mut c_void = ptr::null_mut();
    // SAFETY: GIL held, code is a code object, index was returned by
    // _PyEval_RequestCodeExtraIndex for this interpreter.
    if unsafe { ffi::PyUnstable_Code_GetExtra(code, index, &mut value) } < 0 {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        return false;
    }
    if !value.is_null() {
        return false;
    }
    // SAFETY: as above; the free function of this index ignores the marker.
    if unsafe { ffi::PyUnstable_Code_SetExtra(code, index, SEEN) } < 0 {
        // Out of memory: report it anyway, it may be reported again.
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
    }
    true
}

/// Appends to `out` the code objects nested in `root` (and `root`) that
/// were not reported yet, children before parents (the order CPython
/// creates them in), and marks them. The pointers are borrowed: the caller
/// holds a reference to `root`, whose (immutable) `co_consts` tuples keep
/// every nested code object alive. Iterative: the nesting depth of code
/// objects built by hand is not bounded.
///
/// # Safety
/// The GIL is held, `root` is a code object the caller keeps alive, and no
/// exception is set.
unsafe fn unseen_tree(root: *mut ffi::PyObject, out: &mut Vec<*mut ffi::PyObject>) {
    let name = CO_CONSTS.load(Ordering::Acquire);
    // SAFETY: GIL held, root is a code object.
    if name.is_null() || !unsafe { mark(root) } {
        return;
    }
    // (code, its co_consts tuple or NULL, next index). The consts tuple is a
    // new reference (from getattr), released when the entry is popped.
    let mut stack: Vec<(*mut ffi::PyObject, *mut ffi::PyObject, ffi::Py_ssize_t)> =
        Vec::with_capacity(8);
    let consts_of = |code: *mut ffi::PyObject| {
        // SAFETY: GIL held, code and name valid; a new reference or NULL.
        let consts = unsafe { ffi::PyObject_GetAttr(code, name) };
        if consts.is_null() {
            // SAFETY: GIL held.
            unsafe { ffi::PyErr_Clear() };
            return ptr::null_mut();
        }
        // SAFETY: consts is a valid object we own.
        if unsafe { ffi::PyTuple_Check(consts) } == 0 {
            // SAFETY: we own consts' reference.
            unsafe { ffi::Py_DECREF(consts) };
            return ptr::null_mut();
        }
        consts
    };
    stack.push((root, consts_of(root), 0));
    while let Some(top) = stack.last_mut() {
        let (code, consts, next) = *top;
        // SAFETY: consts is NULL or a tuple we hold a reference to.
        let len = if consts.is_null() {
            0
        } else {
            unsafe { ffi::PyTuple_GET_SIZE(consts) }
        };
        if next < len {
            top.2 += 1;
            // SAFETY: 0 <= next < len; the tuple (referenced) keeps the item alive.
            let item = unsafe { ffi::PyTuple_GET_ITEM(consts, next) };
            // SAFETY: item is a valid object; mark needs a code object.
            if unsafe { ffi::PyCode_Check(item) } != 0 && unsafe { mark(item) } {
                stack.push((item, consts_of(item), 0));
            }
        } else {
            stack.pop();
            if !consts.is_null() {
                // SAFETY: we own consts' reference; the code object still
                // holds its own, so nested code objects stay alive.
                unsafe { ffi::Py_DECREF(consts) };
            }
            out.push(code);
        }
    }
}

/// Borrowed item `i` of the audit arguments tuple, or NULL.
///
/// # Safety
/// The GIL is held and `args` is valid.
unsafe fn arg(args: *mut ffi::PyObject, i: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: GIL held; checked to be a tuple of more than i items first.
    unsafe {
        if args.is_null() || ffi::PyTuple_Check(args) == 0 || ffi::PyTuple_Size(args) <= i {
            return ptr::null_mut();
        }
        ffi::PyTuple_GetItem(args, i)
    }
}

unsafe extern "C" fn audit_hook(
    event: *const c_char,
    args: *mut ffi::PyObject,
    _: *mut c_void,
) -> c_int {
    if MASK.load(Ordering::Acquire) & CREATE_BIT == 0 || event.is_null() {
        return 0;
    }
    // SAFETY: CPython passes a NUL-terminated event name.
    let name = unsafe { CStr::from_ptr(event) }.to_bytes();
    let code = match name {
        // SAFETY: audit hooks run with the GIL held and a valid arguments
        // tuple (`arg` checks its type and length).
        b"exec" | b"function.__new__" => unsafe { arg(args, 0) },
        b"object.__setattr__" => {
            // SAFETY: as above.
            let attr = unsafe { arg(args, 1) };
            // SAFETY: attr is NULL (checked first) or a valid object; the
            // comparison never raises.
            if !attr.is_null()
                && unsafe { ffi::PyUnicode_Check(attr) } != 0
                && unsafe { ffi::PyUnicode_CompareWithASCIIString(attr, c"__code__".as_ptr()) } == 0
            {
                // SAFETY: as above.
                unsafe { arg(args, 2) }
            } else {
                ptr::null_mut()
            }
        }
        _ => return 0,
    };
    // SAFETY: code is NULL or a valid borrowed object.
    if code.is_null() || unsafe { ffi::PyCode_Check(code) } == 0 {
        return 0;
    }
    // SAFETY: GIL held. An audit hook must not fail the audited
    // operation, so whatever happens the error state on exit is the one
    // on entry and the result is 0.
    let saved = unsafe { SavedError::take() };
    // SAFETY: GIL held; code is alive (borrowed from the audit arguments)
    // and this reference keeps it so while callbacks run.
    let root = unsafe { Owned::new_ref(NonNull::new_unchecked(code)) };
    let mut fresh = Vec::with_capacity(64);
    // SAFETY: GIL held, root is a code object we keep alive, no exception set.
    unsafe { unseen_tree(root.as_ptr(), &mut fresh) };
    if !fresh.is_empty() {
        // SAFETY: GIL held; `root` keeps every code object in `fresh` alive.
        unsafe { dispatch_all(CREATE, &fresh) };
    }
    drop(root);
    // SAFETY: GIL held.
    unsafe { saved.restore() };
    0
}

pub(super) fn install(py: Python<'_>) -> PyResult<c_int> {
    // SAFETY: GIL held; returns a new reference (kept forever) or NULL.
    let name = unsafe { ffi::PyUnicode_InternFromString(c"co_consts".as_ptr()) };
    if name.is_null() {
        return Err(PyErr::fetch(py));
    }
    CO_CONSTS.store(name, Ordering::Release);
    // SAFETY: GIL held; free_marker matches freefunc.
    let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(free_marker) };
    if index < 0 {
        return Err(PyRuntimeError::new_err(
            "spyglass could not get a code extra index (all 255 of this interpreter are taken)",
        ));
    }
    SEEN_INDEX.store(index, Ordering::Release);
    // SAFETY: GIL held; audit_hook matches Py_AuditHookFunction.
    if unsafe { ffi_extra::PySys_AddAuditHook(audit_hook, ptr::null_mut()) } < 0 {
        return Err(PyErr::take(py)
            .unwrap_or_else(|| PyRuntimeError::new_err("could not add the audit hook")));
    }
    Ok(0)
}
