//! Functions created from chosen code objects run another code object
//! instead (3.12+, one function watcher): how the source engine takes over
//! functions of code it did not compile (`BaseTracer.on_new_code`).
//!
//! Each chosen code object comes with a resolver, called the first time a
//! function is made from it, that returns the replacement (or None). The
//! replacement is installed with `func.__code__ = twin`, CPython's own
//! checked path (it resets the function's version and tells other
//! watchers); a failure is reported as unraisable and the function keeps
//! its code. Only code objects without free variables are accepted: at
//! CREATE a closure is not attached yet, so `__code__` could not be set.

use pyo3::prelude::*;

#[cfg(Py_3_12)]
mod imp {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::{PyCode, PyTuple};

    use crate::ffi_extra;

    enum Twin {
        Unresolved,
        Resolved(Option<Py<PyAny>>),
    }

    struct Swap {
        /// keeps the code object, so its address is not reused while listed
        _code: Py<PyAny>,
        resolver: Py<PyAny>,
        twin: Twin,
    }

    static WATCHER: AtomicI32 = AtomicI32::new(-1);
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static SWAPS: Mutex<Option<HashMap<usize, Swap>>> = Mutex::new(None);

    fn with_swaps<T>(f: impl FnOnce(&mut HashMap<usize, Swap>) -> T) -> T {
        let mut guard = SWAPS.lock().unwrap_or_else(|e| e.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        let out = f(map);
        COUNT.store(map.len(), Ordering::Relaxed);
        out
    }

    /// The twin for `code`, resolving it once. Python runs only while the
    /// lock is not held (a resolver compiles, which makes functions).
    fn twin_for(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let key = code.as_ptr() as usize;
        let resolver = match with_swaps(|m| match m.get(&key) {
            None => Err(None),
            Some(Swap { twin: Twin::Resolved(t), .. }) => Err(t.as_ref().map(|t| t.clone_ref(py))),
            Some(s) => Ok(s.resolver.clone_ref(py)),
        }) {
            Ok(r) => r,
            Err(known) => return Ok(known),
        };
        let got = resolver.bind(py).call1((code,))?;
        let twin = if got.is_none() {
            None
        } else {
            let t = got.cast::<PyCode>().map_err(|_| {
                PyValueError::new_err(format!("spyglass: a code resolver returned {}, not a code object or None", got.get_type().name().map(|n| n.to_string()).unwrap_or_default()))
            })?;
            Some(t.clone().into_any().unbind())
        };
        with_swaps(|m| {
            if let Some(s) = m.get_mut(&key) {
                s.twin = Twin::Resolved(twin.as_ref().map(|t| t.clone_ref(py)));
            }
        });
        Ok(twin)
    }

    unsafe extern "C" fn on_function_event(event: ffi_extra::PyFunction_WatchEvent, func: *mut ffi::PyObject, _new: *mut ffi::PyObject) -> i32 {
        if event != ffi_extra::PY_FUNCTION_EVENT_CREATE || COUNT.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let outcome = std::panic::catch_unwind(|| {
            // SAFETY: CPython calls function watchers with the thread attached.
            let py = unsafe { Python::assume_attached() };
            // SAFETY: `func` is the live function being created; its code is
            // a borrowed reference that lives as long as the function.
            let code = unsafe { Bound::from_borrowed_ptr(py, ffi::PyFunction_GetCode(func)) };
            if !with_swaps(|m| m.contains_key(&(code.as_ptr() as usize))) {
                return;
            }
            // whatever happens here must not disturb an exception in flight
            let pending = PyErr::take(py);
            // SAFETY: as above, `func` is a live object.
            let f = unsafe { Bound::from_borrowed_ptr(py, func) };
            let result = twin_for(py, &code).and_then(|twin| match twin {
                Some(t) => f.setattr("__code__", t),
                None => Ok(()),
            });
            if let Err(e) = result {
                e.write_unraisable(py, Some(&f));
            }
            if let Some(p) = pending {
                p.restore(py);
            }
        });
        let _ = outcome; // a panic leaves the function as CPython made it
        0
    }

    fn ensure_watcher() -> PyResult<()> {
        if WATCHER.load(Ordering::Relaxed) >= 0 {
            return Ok(());
        }
        // SAFETY: the GIL is held (called from a pyfunction); the callback
        // is a static function with the C signature CPython expects.
        let id = unsafe { ffi_extra::PyFunction_AddWatcher(on_function_event) };
        if id < 0 {
            // SAFETY: GIL held; PyFunction_AddWatcher set an exception.
            let py = unsafe { Python::assume_attached() };
            return Err(PyErr::take(py).unwrap_or_else(|| PyRuntimeError::new_err("spyglass: no function watcher slot left")));
        }
        WATCHER.store(id, Ordering::Relaxed);
        Ok(())
    }

    /// `swap_on_create(code, resolver)`: functions made from `code` get
    /// `resolver(code)` (a code object, or None for no change) as code.
    #[pyfunction]
    pub fn swap_on_create(code: Bound<'_, PyAny>, resolver: Bound<'_, PyAny>) -> PyResult<bool> {
        let c = code.cast::<PyCode>().map_err(|_| PyValueError::new_err("spyglass: swap_on_create needs a code object"))?;
        let free = c.getattr("co_freevars")?.cast_into::<PyTuple>().map_err(PyErr::from)?.len();
        if free > 0 {
            return Ok(false);
        }
        ensure_watcher()?;
        with_swaps(|m| {
            m.entry(code.as_ptr() as usize).or_insert_with(|| Swap { _code: code.clone().unbind(), resolver: resolver.unbind(), twin: Twin::Unresolved });
        });
        Ok(true)
    }

    /// `swap_forget(resolver)`: drops every code object listed with `resolver`.
    #[pyfunction]
    pub fn swap_forget(py: Python<'_>, resolver: Bound<'_, PyAny>) -> usize {
        // the dropped references are released after the lock is gone
        let dropped: Vec<Swap> = with_swaps(|m| {
            let keys: Vec<usize> = m.iter().filter(|(_, s)| s.resolver.bind(py).is(&resolver)).map(|(k, _)| *k).collect();
            keys.into_iter().filter_map(|k| m.remove(&k)).collect()
        });
        dropped.len()
    }

    #[pyfunction]
    pub fn swap_count() -> usize {
        COUNT.load(Ordering::Relaxed)
    }
}

#[cfg(not(Py_3_12))]
mod imp {
    use pyo3::exceptions::PyNotImplementedError;
    use pyo3::prelude::*;

    fn unsupported() -> PyErr {
        PyNotImplementedError::new_err("spyglass: taking over new functions needs function watchers (CPython 3.12+)")
    }

    #[pyfunction]
    pub fn swap_on_create(_code: Bound<'_, PyAny>, _resolver: Bound<'_, PyAny>) -> PyResult<bool> {
        Err(unsupported())
    }

    #[pyfunction]
    pub fn swap_forget(_resolver: Bound<'_, PyAny>) -> usize {
        0
    }

    #[pyfunction]
    pub fn swap_count() -> usize {
        0
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(imp::swap_on_create, m)?)?;
    m.add_function(wrap_pyfunction!(imp::swap_forget, m)?)?;
    m.add_function(wrap_pyfunction!(imp::swap_count, m)?)
}
