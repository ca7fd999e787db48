//! Code-object watchers from Python.
//!
//! One native hook per process multiplexes any number of Python callbacks:
//! - 3.12+: a single `PyCode_AddWatcher` watcher (CPython allows 8 per
//!   interpreter). It is installed the first time a callback is added and
//!   stays when the last one is cleared: `notify_code_watchers` reads the
//!   slot table in a loop without checking for NULL, so clearing a slot
//!   while another watcher's callback runs further up the stack would crash
//!   the interpreter. `watch_release` (called at interpreter exit, or by a
//!   program that knows no watcher callback is running) clears it. With no
//!   callbacks registered, an event costs one C call and one atomic load.
//! - 3.11: there is no watcher API; `watch_audit.rs` emulates CREATE from
//!   an audit hook. DESTROY cannot be emulated there.
//!
//! Callbacks are called as `callback(event, code)` with `event` a member of
//! the Python `CodeEvent` enum, in registration order. A callback is never
//! re-entered on the same thread: events caused while it runs (code it
//! compiles, objects it frees) are not reported to it, which rules out
//! infinite recursion. Errors go to `sys.unraisablehook` with the callback
//! named; an exception pending on entry is preserved.
use std::cell::RefCell;
use std::ffi::{c_int, CString};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::ffi_extra;

/// Event numbers are CPython's `PyCodeEvent` values; bit `1 << event`.
const CREATE: usize = ffi_extra::PY_CODE_EVENT_CREATE as usize;
#[cfg_attr(not(Py_3_12), allow(dead_code))] // 3.11 cannot report DESTROY
const DESTROY: usize = ffi_extra::PY_CODE_EVENT_DESTROY as usize;
const EVENT_NAMES: [&str; 2] = ["CREATE", "DESTROY"];
const CREATE_BIT: u8 = 1 << CREATE;
#[cfg_attr(not(Py_3_12), allow(dead_code))]
const DESTROY_BIT: u8 = 1 << DESTROY;

/// Events this interpreter can report.
#[cfg(Py_3_12)]
const SUPPORTED_MASK: u8 = CREATE_BIT | DESTROY_BIT;
#[cfg(not(Py_3_12))]
const SUPPORTED_MASK: u8 = CREATE_BIT;

/// A strong reference that is only created, cloned and dropped with the GIL
/// held (every path into this module holds it: Python calls and CPython's
/// watcher and audit callbacks).
struct Owned(NonNull<ffi::PyObject>);

impl Owned {
    /// # Safety
    /// `obj` is a valid object and the GIL is held; takes a new reference.
    unsafe fn new_ref(obj: NonNull<ffi::PyObject>) -> Self {
        // SAFETY: the caller guarantees a valid object and the GIL.
        unsafe { ffi::Py_INCREF(obj.as_ptr()) };
        Owned(obj)
    }
    fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }
}

impl Clone for Owned {
    fn clone(&self) -> Self {
        // SAFETY: self holds a strong reference, so the object is alive; the
        // GIL is held by the invariant of this type.
        unsafe { Owned::new_ref(self.0) }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: we own one reference and hold the GIL (type invariant). The
        // decref may run arbitrary Python code, which is why no `Owned` is
        // ever dropped while REGISTRY is locked.
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

// SAFETY: an `Owned` is only touched with the GIL held (see the type's
// invariant), which serialises all access across threads.
unsafe impl Send for Owned {}
// SAFETY: as above.
unsafe impl Sync for Owned {}

#[derive(Clone)]
struct Entry {
    id: u64,
    mask: u8,
    callback: Owned,
}

/// Immutable state a dispatch works on. Updates build a new snapshot, so a
/// callback may add or clear watchers while a dispatch is iterating.
struct Snapshot {
    entries: Vec<Entry>,
    /// `CodeEvent.CREATE`, `CodeEvent.DESTROY`, as given to `watch_setup`.
    events: [Owned; 2],
}

struct Registry {
    snapshot: Option<Arc<Snapshot>>,
    next_id: u64,
    /// The 3.12+ watcher slot, or 0 for the 3.11 audit hook; -1 before
    /// installation.
    hook: c_int,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    snapshot: None,
    next_id: 1,
    hook: -1,
});

/// Union of the masks of the registered callbacks: the hot path's first test.
static MASK: AtomicU8 = AtomicU8::new(0);

/// Bumped (under the lock) whenever the snapshot is replaced.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Set while the native hook is being installed (the 3.11 audit hook
/// installation runs other audit hooks, which may call back into us).
static INSTALLING: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// Ids of the callbacks running on this thread (never re-entered).
    static ACTIVE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Locks the registry without ever blocking. No code path runs Python code,
/// allocates Python objects or releases the GIL while holding the lock, so
/// with the GIL held the lock is always free; if that invariant were ever
/// broken we fail instead of deadlocking.
fn try_lock() -> Option<MutexGuard<'static, Registry>> {
    match REGISTRY.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn lock_or_err() -> PyResult<MutexGuard<'static, Registry>> {
    try_lock().ok_or_else(|| {
        PyRuntimeError::new_err("spyglass watcher registry is busy (re-entrant call)")
    })
}

fn recompute_mask(entries: &[Entry]) {
    let mask = entries.iter().fold(0u8, |m, e| m | e.mask);
    MASK.store(mask, Ordering::Release);
}

/// Marks callback `id` as running on this thread; false if it already is
/// (or the thread-local is gone, during thread teardown): then it must not
/// be called.
fn enter(id: u64) -> bool {
    ACTIVE
        .try_with(|a| match a.try_borrow_mut() {
            Ok(mut v) if !v.contains(&id) => {
                v.push(id);
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

/// Undoes the matching `enter(id)` (calls nest, so it is the last entry).
fn leave(id: u64) {
    let _ = ACTIVE.try_with(|a| {
        if let Ok(mut v) = a.try_borrow_mut() {
            if v.last() == Some(&id) {
                v.pop();
            } else if let Some(pos) = v.iter().rposition(|&x| x == id) {
                v.remove(pos);
            }
        }
    });
}

/// The exception pending on entry to a callback, kept aside.
struct SavedError {
    #[cfg(Py_3_12)]
    exc: *mut ffi::PyObject,
    #[cfg(not(Py_3_12))]
    parts: [*mut ffi::PyObject; 3],
}

impl SavedError {
    /// # Safety
    /// The GIL is held.
    unsafe fn take() -> Self {
        #[cfg(Py_3_12)]
        {
            // SAFETY: GIL held; returns a new reference or NULL and clears the
            // error indicator.
            SavedError {
                exc: unsafe { ffi::PyErr_GetRaisedException() },
            }
        }
        #[cfg(not(Py_3_12))]
        {
            let mut parts = [ptr::null_mut(); 3];
            // SAFETY: GIL held; the three out-pointers are valid and receive
            // new references (or NULL); the indicator is cleared.
            unsafe { ffi::PyErr_Fetch(&mut parts[0], &mut parts[1], &mut parts[2]) };
            SavedError { parts }
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn restore(self) {
        #[cfg(Py_3_12)]
        {
            if !self.exc.is_null() {
                // SAFETY: GIL held; steals the reference taken in `take`.
                unsafe { ffi::PyErr_SetRaisedException(self.exc) };
            }
        }
        #[cfg(not(Py_3_12))]
        {
            // SAFETY: GIL held; steals the three references (NULLs allowed).
            unsafe { ffi::PyErr_Restore(self.parts[0], self.parts[1], self.parts[2]) };
        }
    }
}

/// `repr(obj)` as a Rust string, never failing: a failing `repr` is
/// swallowed. Must be called with no exception set.
///
/// # Safety
/// The GIL is held and `obj` is a valid object.
unsafe fn safe_repr(obj: *mut ffi::PyObject) -> String {
    // SAFETY: GIL held, obj valid; returns a new reference or NULL.
    let r = unsafe { ffi::PyObject_Repr(obj) };
    if r.is_null() {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        return "<object with a failing repr>".to_owned();
    }
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: r is a str (PyObject_Repr's result); the buffer lives as long
    // as r, and is copied before r is released.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(r, &mut size) };
    let text = if data.is_null() {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        "<object with an unencodable repr>".to_owned()
    } else {
        // SAFETY: data points to `size` bytes of UTF-8 owned by r.
        let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size.max(0) as usize) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    // SAFETY: we own the reference from PyObject_Repr.
    unsafe { ffi::Py_DECREF(r) };
    text
}

/// Reports the exception raised by `callback` as unraisable, naming the
/// callback, the event and the code object (as text only: handing the code
/// object to the hook could resurrect it during DESTROY). The message reads
/// the same on every version: "Exception ignored in spyglass code watcher
/// callback <callback> on <EVENT> of <code>".
///
/// # Safety
/// The GIL is held, an exception is set, `callback` and `code` are valid.
unsafe fn report_callback_error(
    callback: *mut ffi::PyObject,
    event: usize,
    code: *mut ffi::PyObject,
) {
    // SAFETY: GIL held. The callback's exception is set aside while the
    // reprs (which run Python code) are computed, then put back.
    let raised = unsafe { SavedError::take() };
    // SAFETY: GIL held, objects valid, no exception set.
    let (cb, co) = unsafe { (safe_repr(callback), safe_repr(code)) };
    let text = format!(
        "in spyglass code watcher callback {cb} on {} of {co}",
        EVENT_NAMES[event]
    );
    let msg = CString::new(text.replace('\0', "\\x00")).unwrap_or_default();
    // SAFETY: GIL held; puts the callback's exception back for the writer.
    unsafe { raised.restore() };
    #[cfg(Py_3_13)]
    {
        // SAFETY: GIL held with an exception set; "%s" consumes exactly one
        // NUL-terminated UTF-8 string, which outlives the call.
        unsafe {
            ffi_extra::PyErr_FormatUnraisable(c"Exception ignored %s".as_ptr(), msg.as_ptr())
        };
    }
    #[cfg(not(Py_3_13))]
    {
        // SAFETY: GIL held with an exception set; the message is a
        // NUL-terminated string (formatted with "%s", so '%' in it is inert)
        // and a NULL object is allowed (the hook receives None).
        unsafe { ffi_extra::_PyErr_WriteUnraisableMsg(msg.as_ptr(), ptr::null_mut()) };
    }
}

/// Calls every registered callback that wants `event` for `code`.
///
/// # Safety
/// The GIL is held and `code` is a valid code object (possibly with a
/// pending exception set, which is preserved).
#[cfg(Py_3_12)]
unsafe fn dispatch(event: usize, code: *mut ffi::PyObject) {
    // SAFETY: guaranteed by the caller.
    unsafe { dispatch_all(event, &[code]) }
}

/// `dispatch` for several code objects in a row, with one snapshot.
///
/// # Safety
/// The GIL is held and every pointer in `codes` is a valid code object
/// that stays alive for the call.
unsafe fn dispatch_all(event: usize, codes: &[*mut ffi::PyObject]) {
    let take = || match try_lock() {
        Some(reg) => reg
            .snapshot
            .clone()
            .map(|s| (s, GENERATION.load(Ordering::Acquire))),
        None => None,
    };
    let Some((mut snapshot, mut generation)) = take() else {
        return;
    };
    // SAFETY: GIL held.
    let saved = unsafe { SavedError::take() };
    for &code in codes {
        // A callback added or cleared by a callback applies from the next
        // code object on.
        if GENERATION.load(Ordering::Acquire) != generation {
            match take() {
                Some(fresh) => (snapshot, generation) = fresh,
                None => break,
            }
        }
        // SAFETY: GIL held, code valid, no exception set.
        unsafe { call_callbacks(&snapshot, event, code) };
    }
    // Dropping the snapshot may release cleared callbacks and run their
    // finalizers: do it before the pending exception is put back.
    drop(snapshot);
    // SAFETY: GIL held; restores exactly what was pending on entry.
    unsafe { saved.restore() };
}

/// # Safety
/// The GIL is held, `code` is a valid code object and no exception is set.
unsafe fn call_callbacks(snapshot: &Snapshot, event: usize, code: *mut ffi::PyObject) {
    let bit = 1u8 << event;
    for entry in &snapshot.entries {
        if entry.mask & bit == 0 || !enter(entry.id) {
            continue;
        }
        let args = [snapshot.events[event].as_ptr(), code];
        // SAFETY: GIL held, no exception set; the callable and both
        // arguments are alive (the snapshot owns the callable and event, the
        // caller guarantees `code`); args is an array of 2 valid pointers.
        let result = unsafe {
            ffi::PyObject_Vectorcall(entry.callback.as_ptr(), args.as_ptr(), 2, ptr::null_mut())
        };
        if result.is_null() {
            // SAFETY: GIL held, the call failed so an exception is set.
            // Still marked active: the report runs Python code (reprs, the
            // hook) whose code events must not re-enter this callback.
            unsafe { report_callback_error(entry.callback.as_ptr(), event, code) };
        } else {
            // SAFETY: we own the result's reference.
            unsafe { ffi::Py_DECREF(result) };
        }
        leave(entry.id);
    }
}

// ---------------------------------------------------------------------------
// 3.12+: the native code watcher

#[cfg(Py_3_12)]
unsafe extern "C" fn on_code_event(
    event: ffi_extra::PyCodeEvent,
    co: *mut ffi::PyCodeObject,
) -> c_int {
    let event = match event {
        ffi_extra::PY_CODE_EVENT_CREATE => CREATE,
        ffi_extra::PY_CODE_EVENT_DESTROY => DESTROY,
        _ => return 0, // an event a future CPython adds: not ours to report
    };
    if MASK.load(Ordering::Acquire) & (1 << event) == 0 {
        return 0;
    }
    // SAFETY: CPython calls watchers with the GIL held and a borrowed
    // reference to a live (CREATE) or not yet torn down (DESTROY, refcount
    // temporarily 1) code object.
    unsafe { dispatch(event, co.cast()) };
    0
}

#[cfg(Py_3_12)]
fn install(py: Python<'_>) -> PyResult<c_int> {
    // SAFETY: GIL held (we have `py`); on_code_event matches
    // PyCode_WatchCallback.
    let id = unsafe { ffi_extra::PyCode_AddWatcher(on_code_event) };
    if id < 0 {
        let cause = PyErr::take(py).map(|e| e.to_string()).unwrap_or_default();
        return Err(PyRuntimeError::new_err(format!(
            "spyglass needs one of the interpreter's 8 code watcher slots and all are taken by other tools ({cause})"
        )));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------
// 3.11: CREATE emulated from an audit hook

#[cfg(not(Py_3_12))]
#[path = "watch_audit.rs"]
mod emulation;

#[cfg(not(Py_3_12))]
use emulation::install;

// ---------------------------------------------------------------------------
// Python API (wrapped by python/spyglass/watch.py)

/// Gives the native side the two `CodeEvent` members passed to callbacks.
#[pyfunction]
fn watch_setup(create: Bound<'_, PyAny>, destroy: Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: GIL held (Bound); both objects are alive.
    let events = unsafe {
        [
            Owned::new_ref(nonnull(&create)),
            Owned::new_ref(nonnull(&destroy)),
        ]
    };
    let old;
    {
        let mut reg = lock_or_err()?;
        let entries = reg
            .snapshot
            .as_ref()
            .map(|s| s.entries.clone())
            .unwrap_or_default();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        old = reg.snapshot.replace(Arc::new(Snapshot { entries, events }));
    }
    drop(old); // outside the lock: may run Python code
    Ok(())
}

fn nonnull(obj: &Bound<'_, PyAny>) -> NonNull<ffi::PyObject> {
    // A Bound always wraps a non-NULL pointer.
    NonNull::new(obj.as_ptr()).unwrap_or(NonNull::dangling())
}

fn ensure_installed(py: Python<'_>) -> PyResult<()> {
    if lock_or_err()?.hook >= 0 {
        return Ok(());
    }
    if INSTALLING.swap(1, Ordering::AcqRel) == 1 {
        return Err(PyRuntimeError::new_err(
            "spyglass is already installing its code watcher (re-entrant call)",
        ));
    }
    let result = install(py);
    INSTALLING.store(0, Ordering::Release);
    let hook = result?;
    lock_or_err()?.hook = hook;
    Ok(())
}

/// Registers `callback(event, code)` for the events in `mask` (bit
/// `1 << event`); returns its id.
#[pyfunction]
fn watch_add(py: Python<'_>, callback: Bound<'_, PyAny>, mask: u8) -> PyResult<u64> {
    if !callback.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "a code watcher callback must be callable, not {}",
            callback.get_type().name()?
        )));
    }
    if mask == 0 || mask & !SUPPORTED_MASK != 0 {
        return Err(PyValueError::new_err(format!(
            "event mask {mask:#b} is not a non-empty subset of what this interpreter supports ({SUPPORTED_MASK:#b})"
        )));
    }
    ensure_installed(py)?;
    // SAFETY: GIL held; callback is alive.
    let callback = unsafe { Owned::new_ref(nonnull(&callback)) };
    let old;
    let id;
    {
        let mut reg = lock_or_err()?;
        let Some(current) = reg.snapshot.as_ref() else {
            drop(reg);
            drop(callback);
            return Err(PyRuntimeError::new_err(
                "spyglass.watch is not set up (watch_setup was not called)",
            ));
        };
        id = reg.next_id;
        let mut entries = current.entries.clone();
        let events = current.events.clone();
        entries.push(Entry { id, mask, callback });
        recompute_mask(&entries);
        reg.next_id += 1;
        GENERATION.fetch_add(1, Ordering::AcqRel);
        old = reg.snapshot.replace(Arc::new(Snapshot { entries, events }));
    }
    drop(old);
    Ok(id)
}

/// Unregisters the callback with this id; false if there is none.
#[pyfunction]
fn watch_clear(id: u64) -> PyResult<bool> {
    let old;
    {
        let mut reg = lock_or_err()?;
        let Some(current) = reg.snapshot.as_ref() else {
            return Ok(false);
        };
        if !current.entries.iter().any(|e| e.id == id) {
            return Ok(false);
        }
        let entries: Vec<Entry> = current
            .entries
            .iter()
            .filter(|e| e.id != id)
            .cloned()
            .collect();
        let events = current.events.clone();
        recompute_mask(&entries);
        GENERATION.fetch_add(1, Ordering::AcqRel);
        old = reg.snapshot.replace(Arc::new(Snapshot { entries, events }));
    }
    drop(old); // outside the lock: may release the callback
    Ok(true)
}

/// Unregisters every callback (run at interpreter exit, so that no Python
/// callback runs while modules are torn down).
#[pyfunction]
fn watch_clear_all() -> PyResult<()> {
    let old;
    {
        let mut reg = lock_or_err()?;
        let Some(current) = reg.snapshot.as_ref() else {
            return Ok(());
        };
        let events = current.events.clone();
        MASK.store(0, Ordering::Release);
        GENERATION.fetch_add(1, Ordering::AcqRel);
        old = reg.snapshot.replace(Arc::new(Snapshot {
            entries: Vec::new(),
            events,
        }));
    }
    drop(old);
    Ok(())
}

/// Gives back the native watcher slot (3.12+; the 3.11 audit hook cannot be
/// removed and becomes a no-op). Refused while callbacks are registered or
/// from inside a spyglass callback; the caller vouches that no other code
/// watcher's callback is running either (see the module comment).
#[pyfunction]
fn watch_release(py: Python<'_>) -> PyResult<()> {
    let (count, hook) = {
        let reg = lock_or_err()?;
        (
            reg.snapshot.as_ref().map_or(0, |s| s.entries.len()),
            reg.hook,
        )
    };
    if count > 0 {
        return Err(PyValueError::new_err(format!(
            "cannot release the code watcher while {count} callback(s) are registered"
        )));
    }
    if ACTIVE
        .try_with(|a| a.try_borrow().map(|v| !v.is_empty()).unwrap_or(true))
        .unwrap_or(true)
    {
        return Err(PyRuntimeError::new_err(
            "cannot release the code watcher from inside a watcher callback",
        ));
    }
    #[cfg(Py_3_12)]
    if hook >= 0 {
        // SAFETY: GIL held; hook is the id PyCode_AddWatcher gave us and no
        // notification loop is running on this thread (checked above, and
        // vouched for by the caller for other tools' watchers).
        if unsafe { ffi_extra::PyCode_ClearWatcher(hook) } < 0 {
            return Err(PyErr::take(py)
                .unwrap_or_else(|| PyRuntimeError::new_err("PyCode_ClearWatcher failed")));
        }
        lock_or_err()?.hook = -1;
    }
    #[cfg(not(Py_3_12))]
    let _ = (py, hook);
    Ok(())
}

/// Ids of the registered callbacks, in call order.
#[pyfunction]
fn watch_ids() -> PyResult<Vec<u64>> {
    let reg = lock_or_err()?;
    Ok(reg
        .snapshot
        .as_ref()
        .map(|s| s.entries.iter().map(|e| e.id).collect())
        .unwrap_or_default())
}

/// (backend name, native watcher id or None, supported event mask).
#[pyfunction]
fn watch_backend() -> PyResult<(&'static str, Option<c_int>, u8)> {
    let hook = lock_or_err()?.hook;
    #[cfg(Py_3_12)]
    let backend = (
        "PyCode_AddWatcher",
        (hook >= 0).then_some(hook),
        SUPPORTED_MASK,
    );
    #[cfg(not(Py_3_12))]
    let backend = {
        let _ = hook;
        ("audit hook", None, SUPPORTED_MASK)
    };
    Ok(backend)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(watch_setup, m)?)?;
    m.add_function(wrap_pyfunction!(watch_add, m)?)?;
    m.add_function(wrap_pyfunction!(watch_clear, m)?)?;
    m.add_function(wrap_pyfunction!(watch_clear_all, m)?)?;
    m.add_function(wrap_pyfunction!(watch_release, m)?)?;
    m.add_function(wrap_pyfunction!(watch_ids, m)?)?;
    m.add_function(wrap_pyfunction!(watch_backend, m)?)?;
    Ok(())
}
