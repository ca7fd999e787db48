//! Reading the live value stack into snapshots, and bounded reprs of stack
//! values for the recorder.
use super::layout::{self, IFrame, Slot};
use pyo3::ffi;
use std::fmt::Write as _;

/// A new list holding new references to the `depth` values on the frame's
/// stack, bottom first. NULL slots become `null` (the `spyglass.opcodes.NULL`
/// sentinel); 3.14 tagged integers become Python ints. Returns NULL with an
/// exception set on failure.
///
/// # Safety
/// `f` must be a live frame of this thread stopped at an instruction event,
/// `nlocalsplus` its code's number of fast locals, and `depth` the stack depth
/// at that instruction (so every slot read holds a live value or NULL).
#[inline(never)]
pub unsafe fn snapshot(
    f: *const IFrame,
    nlocalsplus: usize,
    depth: usize,
    null: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: a new list has `depth` item slots; the rest is forwarded.
    unsafe {
        let list = ffi::PyList_New(depth as ffi::Py_ssize_t);
        if list.is_null() {
            return list;
        }
        fill_items(list, f, nlocalsplus, depth, null)
    }
}

/// Sets the `depth` items of `list` (of that size, its item slots holding no
/// references) from the frame's stack; returns the list, or NULL with an
/// exception set after dropping it.
///
/// # Safety
/// As for [`snapshot`]; `list` is a list we own, nobody else references it.
#[inline(always)]
unsafe fn fill_items(
    list: *mut ffi::PyObject,
    f: *const IFrame,
    nlocalsplus: usize,
    depth: usize,
    null: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: the caller guarantees the frame and the depth; every object put
    // into the list gets its own new reference (the frame keeps its own). The
    // item array is read once: the stores below cannot move it (the public
    // PyListObject layout of Include/cpython/listobject.h).
    unsafe {
        let items = (*(list as *mut ffi::PyListObject)).ob_item;
        for i in 0..depth {
            let item = match layout::slot(f, nlocalsplus + i) {
                Slot::Obj(p) => {
                    ffi::Py_INCREF(p);
                    p
                }
                Slot::Null => {
                    ffi::Py_INCREF(null);
                    null
                }
                Slot::Int(v) => {
                    let o = ffi::PyLong_FromSsize_t(v);
                    if o.is_null() {
                        return abandon(list, i);
                    }
                    o
                }
                Slot::Invalid(bits) => return invalid_slot(list, i, bits),
            };
            *items.add(i) = item;
        }
        list
    }
}

/// Drops a partly filled snapshot (its first `filled` items are set) after
/// an error; returns NULL with the exception left set.
#[cold]
#[inline(never)]
unsafe fn abandon(list: *mut ffi::PyObject, filled: usize) -> *mut ffi::PyObject {
    // SAFETY: `list` is a list we own; its item slots from `filled` on hold
    // no references of ours (NULL, or stale pointers a recycled spare kept
    // past its old size), so its size is cut to the filled part before the
    // list is dropped.
    unsafe {
        set_size(list, filled as ffi::Py_ssize_t);
        ffi::Py_DECREF(list);
    }
    std::ptr::null_mut()
}

/// The error for a stack slot that decodes as nothing known (see
/// [`layout::decode_stackref`]): the snapshot is dropped, never read.
#[cold]
#[inline(never)]
unsafe fn invalid_slot(list: *mut ffi::PyObject, i: usize, bits: usize) -> *mut ffi::PyObject {
    // SAFETY: as in `abandon`; the GIL is held.
    unsafe {
        abandon(list, i);
        let msg = std::ffi::CString::new(format!(
            "spyglass.opcodes: stack slot {i} holds bits {bits:#x} that no known \
             encoding produces; refusing to read it"
        ))
        .unwrap_or_default();
        ffi::PyErr_SetString(ffi::PyExc_RuntimeError, msg.as_ptr());
    }
    std::ptr::null_mut()
}

/// `Py_SET_SIZE` (a static inline function in the C API).
#[inline]
unsafe fn set_size(list: *mut ffi::PyObject, n: ffi::Py_ssize_t) {
    // SAFETY: `list` is a list (a PyVarObject) owned by the caller.
    unsafe { (*(list as *mut ffi::PyVarObject)).ob_size = n };
}

/// [`snapshot`] into the shared spare list ([`SPARE`]) when it has room:
/// one list serves every event, instead of an allocation per instruction.
///
/// # Safety
/// As for [`snapshot`].
#[inline(always)]
pub unsafe fn snapshot_spare(f: *const IFrame, nlocalsplus: usize, depth: usize, null: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: forwarded.
    unsafe {
        let spare = take_spare(depth);
        if !spare.is_null() {
            return fill_items(spare, f, nlocalsplus, depth, null);
        }
        snapshot(f, nlocalsplus, depth, null)
    }
}

/// As [`snapshot_spare`], but only into the spare list: NULL with no
/// exception set when it is missing or too small. Runs no Python code
/// (allocating a list may run the garbage collector, and finalizers with it).
///
/// # Safety
/// As for [`snapshot`].
#[inline(always)]
pub unsafe fn snapshot_in_spare(f: *const IFrame, nlocalsplus: usize, depth: usize, null: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: forwarded.
    unsafe {
        let spare = take_spare(depth);
        if spare.is_null() {
            return spare;
        }
        fill_items(spare, f, nlocalsplus, depth, null)
    }
}

/// The spare list, taken out of [`SPARE`] and sized to `depth` (its items
/// not set yet), when it has room for them; NULL otherwise.
#[inline(always)]
unsafe fn take_spare(depth: usize) -> *mut ffi::PyObject {
    let spare = SPARE.0.get();
    // SAFETY: a spare list is empty, exclusively ours (see `recycle_spare`),
    // and has `allocated` item slots; it leaves SPARE before it is filled.
    unsafe {
        if !spare.is_null() && (*(spare as *mut ffi::PyListObject)).allocated >= depth as ffi::Py_ssize_t {
            SPARE.0.set(std::ptr::null_mut());
            set_size(spare, depth as ffi::Py_ssize_t);
            return spare;
        }
    }
    std::ptr::null_mut()
}

/// Takes back a snapshot list after the callback returned: if nothing else
/// references it, its items are released and the empty list becomes the
/// spare ([`SPARE`]) for the next snapshot; otherwise our reference is
/// dropped. A list the callback kept is never touched again.
///
/// # Safety
/// The GIL must be held; `list` is a list we own one reference to.
#[inline(always)]
pub unsafe fn recycle_spare(list: *mut ffi::PyObject) {
    // SAFETY: as documented; with a reference count of 1 the list is only
    // reachable through our reference, and it stays out of SPARE until its
    // items are released: releasing one may run Python code, which may take
    // (and fill) the spare of the moment.
    unsafe {
        if ffi::Py_REFCNT(list) != 1 || ffi::PyList_CheckExact(list) == 0 {
            ffi::Py_DECREF(list);
            return;
        }
        let n = ffi::Py_SIZE(list);
        set_size(list, 0);
        // the released items stay behind as stale pointers past the size:
        // nothing reads them (a snapshot sets its items before the list is
        // seen; see also `abandon`)
        let items = (*(list as *mut ffi::PyListObject)).ob_item;
        for i in 0..n as usize {
            ffi::Py_DECREF(*items.add(i));
        }
        let old = SPARE.0.replace(list);
        if !old.is_null() {
            keep_roomier(old);
        }
    }
}

/// Two empty spare lists (a callback's code took an event of its own):
/// the one with more room stays.
#[cold]
#[inline(never)]
unsafe fn keep_roomier(old: *mut ffi::PyObject) {
    let cur = SPARE.0.get();
    // SAFETY: both are empty lists we own (see `recycle_spare`): dropping
    // one releases no items and runs no Python code.
    unsafe {
        let room = |l: *mut ffi::PyObject| (*(l as *mut ffi::PyListObject)).allocated;
        if room(old) > room(cur) {
            SPARE.0.set(old);
            ffi::Py_DECREF(cur);
        } else {
            ffi::Py_DECREF(old);
        }
    }
}

/// The spare snapshot list, shared by all traces (only touched with the GIL).
pub struct Spare(pub std::cell::Cell<*mut ffi::PyObject>);

// SAFETY: only used with the GIL held (free-threaded builds are refused).
unsafe impl Sync for Spare {}

pub static SPARE: Spare = Spare(std::cell::Cell::new(std::ptr::null_mut()));

/// How the recorder renders stack values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReprMode {
    /// No values, only depths.
    None,
    /// Values of built-in types rendered in Rust/C without running any
    /// Python code; other objects as `<TypeName object>`.
    Safe,
    /// `repr()` of every value (may run the program's own `__repr__`).
    Full,
}

/// Appends a bounded rendering of a slot to `out`.
///
/// # Safety
/// The GIL must be held and `slot` must come from a live frame (see [`snapshot`]).
pub unsafe fn slot_repr(slot: Slot, mode: ReprMode, max_len: usize, out: &mut String) {
    match slot {
        Slot::Null => out.push_str("NULL"),
        Slot::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Slot::Invalid(bits) => {
            let _ = write!(out, "<invalid stack slot {bits:#x}>");
        }
        // SAFETY: forwarded from the caller.
        Slot::Obj(p) => unsafe { obj_repr(p, mode, max_len, 2, out) },
    }
}

/// # Safety
/// The GIL must be held and `p` must be a live object.
pub unsafe fn obj_repr(p: *mut ffi::PyObject, mode: ReprMode, max_len: usize, nest: u32, out: &mut String) {
    let start = out.len();
    // SAFETY: forwarded from the caller.
    unsafe {
        match mode {
            ReprMode::None => {}
            ReprMode::Full => full_repr(p, out),
            ReprMode::Safe => safe_repr(p, max_len, nest, out),
        }
    }
    truncate(out, start, max_len);
}

fn truncate(out: &mut String, start: usize, max_len: usize) {
    if out.len() - start > max_len {
        let mut cut = start + max_len.saturating_sub(3);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
}

unsafe fn push_pystr(s: *mut ffi::PyObject, out: &mut String) -> bool {
    // SAFETY: `s` is a str object owned by the caller, the GIL is held.
    unsafe {
        let mut n: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(s, &mut n);
        if data.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let bytes = std::slice::from_raw_parts(data as *const u8, n as usize);
        out.push_str(&String::from_utf8_lossy(bytes));
        true
    }
}

unsafe fn c_repr(p: *mut ffi::PyObject, out: &mut String) {
    // SAFETY: the GIL is held and `p` is live; only called on exact built-in
    // types whose repr is implemented in C. The type's tp_repr is called
    // directly: PyObject_Repr would first run pending signal handlers
    // (PyErr_CheckSignals), i.e. Python code, at a point where the untraced
    // program would not have run them.
    unsafe {
        let Some(f) = (*ffi::Py_TYPE(p)).tp_repr else {
            out.push_str("<no repr>");
            return;
        };
        let r = f(p);
        if r.is_null() {
            ffi::PyErr_Clear();
            out.push_str("<repr failed>");
            return;
        }
        push_pystr(r, out);
        ffi::Py_DECREF(r);
    }
}

unsafe fn full_repr(p: *mut ffi::PyObject, out: &mut String) {
    // SAFETY: the GIL is held and `p` is live. An Exception from the
    // object's own __repr__ is cleared and reported in the text; anything
    // else (KeyboardInterrupt from a signal handler that ran here) is left
    // set for the backend to raise in the traced frame, where the untraced
    // program would have seen it.
    unsafe {
        let r = ffi::PyObject_Repr(p);
        if r.is_null() {
            if ffi::PyErr_ExceptionMatches(ffi::PyExc_Exception) != 0 {
                ffi::PyErr_Clear();
                let _ = write!(out, "<{} object; repr failed>", type_name(p));
            } else {
                out.push_str("<interrupted>");
            }
            return;
        }
        if !push_pystr(r, out) {
            out.push_str("<unprintable repr>");
        }
        ffi::Py_DECREF(r);
    }
}

unsafe fn type_name(p: *mut ffi::PyObject) -> String {
    // SAFETY: tp_name is a NUL-terminated C string owned by the live type.
    unsafe {
        let t = ffi::Py_TYPE(p);
        std::ffi::CStr::from_ptr((*t).tp_name).to_string_lossy().into_owned()
    }
}

unsafe fn attr_str(p: *mut ffi::PyObject, name: &std::ffi::CStr, out: &mut String) -> bool {
    // SAFETY: only called for exact built-in types (function, code, module,
    // type) whose attribute getters are C code.
    unsafe {
        let a = ffi::PyObject_GetAttrString(p, name.as_ptr());
        if a.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let ok = ffi::PyUnicode_Check(a) != 0 && push_pystr(a, out);
        ffi::Py_DECREF(a);
        ok
    }
}

unsafe fn safe_repr(p: *mut ffi::PyObject, max_len: usize, nest: u32, out: &mut String) {
    // SAFETY: the GIL is held and `p` is live. Every branch checks the exact
    // type first, so only C implementations run (no user __repr__/__getattr__).
    unsafe {
        let t = ffi::Py_TYPE(p);
        let is = |ty: *mut ffi::PyTypeObject| t == ty;
        if p == ffi::Py_None() || is(&raw mut ffi::PyBool_Type) || is(&raw mut ffi::PyFloat_Type)
            || is(&raw mut ffi::PyComplex_Type) || is(&raw mut ffi::PyRange_Type)
            || is(&raw mut ffi::PySlice_Type) || p == ffi::Py_Ellipsis()
            || p == ffi::Py_NotImplemented()
        {
            c_repr(p, out);
        } else if is(&raw mut ffi::PyLong_Type) {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
            if overflow != 0 {
                ffi::PyErr_Clear();
                out.push_str("<big int>");
            } else {
                let _ = write!(out, "{v}");
            }
        } else if is(&raw mut ffi::PyUnicode_Type) || is(&raw mut ffi::PyBytes_Type) {
            let n = ffi::PyObject_Length(p);
            if n > max_len as ffi::Py_ssize_t {
                let part = ffi::PySequence_GetSlice(p, 0, max_len as ffi::Py_ssize_t);
                if part.is_null() {
                    ffi::PyErr_Clear();
                    out.push_str("<str>");
                } else {
                    c_repr(part, out);
                    ffi::Py_DECREF(part);
                }
            } else {
                c_repr(p, out);
            }
        } else if is(&raw mut ffi::PyTuple_Type) || is(&raw mut ffi::PyList_Type) {
            let tuple = is(&raw mut ffi::PyTuple_Type);
            let n = ffi::PyObject_Length(p);
            out.push(if tuple { '(' } else { '[' });
            if nest == 0 && n > 0 {
                out.push_str("...");
            } else {
                for i in 0..n.min(8) {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let item = if tuple { ffi::PyTuple_GetItem(p, i) } else { ffi::PyList_GetItem(p, i) };
                    if item.is_null() {
                        ffi::PyErr_Clear();
                        break;
                    }
                    // borrowed from a container we hold; keep it alive while rendering
                    ffi::Py_INCREF(item);
                    safe_repr(item, max_len, nest - 1, out);
                    ffi::Py_DECREF(item);
                    if out.len() > max_len * 2 {
                        break;
                    }
                }
                if n > 8 {
                    out.push_str(", ...");
                }
                if tuple && n == 1 {
                    out.push(',');
                }
            }
            out.push(if tuple { ')' } else { ']' });
        } else if is(&raw mut ffi::PyDict_Type) {
            let n = ffi::PyObject_Length(p);
            let _ = write!(out, "<dict of {n} items>");
        } else if is(&raw mut ffi::PySet_Type) || is(&raw mut ffi::PyFrozenSet_Type) {
            let n = ffi::PyObject_Length(p);
            let _ = write!(out, "<{} of {n} items>", type_name(p));
        } else if is(&raw mut ffi::PyFunction_Type) {
            out.push_str("<function ");
            attr_str(p, c"__qualname__", out);
            out.push('>');
        } else if is(&raw mut ffi::PyCode_Type) {
            out.push_str("<code ");
            attr_str(p, c"co_qualname", out);
            out.push('>');
        } else if is(&raw mut ffi::PyModule_Type) {
            out.push_str("<module ");
            attr_str(p, c"__name__", out);
            out.push('>');
        } else if ffi::PyType_Check(p) != 0 {
            let name = std::ffi::CStr::from_ptr((*(p as *mut ffi::PyTypeObject)).tp_name);
            let _ = write!(out, "<class '{}'>", name.to_string_lossy());
        } else if is(&raw mut ffi::PyCFunction_Type) {
            out.push_str("<built-in function ");
            attr_str(p, c"__name__", out);
            out.push('>');
        } else {
            let _ = write!(out, "<{} object>", type_name(p));
        }
    }
}
