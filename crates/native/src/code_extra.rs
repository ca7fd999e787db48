//! Per-code-object storage on CPython's code extra slots.
//!
//! Each `CodeExtra` owns one index from `PyUnstable_Eval_RequestCodeExtraIndex`
//! (`_PyEval_RequestCodeExtraIndex` on 3.11) and stores one strong reference
//! per code object in it. The index's free function releases that reference
//! when the code object dies. CPython also calls the free function on the old
//! value when a slot is overwritten, so a value is released exactly once: by
//! that call, never by us as well.
//!
//! Indexes cannot be given back (255 per interpreter, shared with every other
//! tool), so the Python layer keeps one store per name.
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

/// How many indexes `CodeExtra` may take, leaving the rest to other tools.
const MAX_STORES: usize = 32;
static STORES: AtomicUsize = AtomicUsize::new(0);

/// The free function of our indexes: CPython calls it from `code_dealloc`
/// for every index the code object's extra array covers (NULL for slots
/// never set) and from `SetExtra` on the value being replaced.
unsafe extern "C" fn release_value(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: CPython calls free functions with the GIL held; a non-NULL
        // value in one of our slots is a strong reference we stored.
        unsafe { ffi::Py_DECREF(value.cast()) };
    }
}

/// A per-code-object store made by `spyglass.code.extra(name)`:
/// `store[code]`, `store[code] = value`, `del store[code]`, `code in store`,
/// `get`, `setdefault`, `pop`. It cannot list its keys (CPython keeps no
/// index of code objects).
#[pyclass(module = "spyglass._native", name = "CodeExtra", frozen)]
pub struct CodeExtra {
    name: String,
    index: ffi::Py_ssize_t,
}

fn check_code(code: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: the pointer of a Bound is a valid object and the GIL is held.
    if unsafe { ffi::PyCode_Check(code.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err(format!(
            "spyglass.code.extra keys are code objects, not {}",
            code.get_type().name()?
        )));
    }
    Ok(())
}

impl CodeExtra {
    /// The stored value as a new reference, or None.
    fn load<'py>(&self, code: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        check_code(code)?;
        let mut value: *mut c_void = ptr::null_mut();
        // SAFETY: GIL held, code is a code object, index is ours.
        if unsafe { ffi::PyUnstable_Code_GetExtra(code.as_ptr(), self.index, &mut value) } < 0 {
            return Err(PyErr::fetch(code.py()));
        }
        if value.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-NULL value is an object we keep a reference to;
        // from_borrowed_ptr takes a new one for the caller.
        Ok(Some(unsafe {
            Bound::from_borrowed_ptr(code.py(), value.cast())
        }))
    }

    /// Stores `value` (NULL clears the slot).
    fn store(&self, code: &Bound<'_, PyAny>, value: *mut ffi::PyObject) -> PyResult<()> {
        // Hold the old value ourselves while CPython's SetExtra releases the
        // slot's reference: its finalizer then runs after the slot holds the
        // new value, never in the middle of SetExtra (where it could see or
        // overwrite a half-updated slot).
        let old = self.load(code)?;
        if !value.is_null() {
            // SAFETY: value is a live object; the slot takes this reference.
            unsafe { ffi::Py_INCREF(value) };
        }
        // SAFETY: GIL held, code is a code object (checked by load), index is
        // ours; on success the slot owns `value` and the old reference was
        // released through release_value.
        let rc = unsafe { ffi::PyUnstable_Code_SetExtra(code.as_ptr(), self.index, value.cast()) };
        if rc < 0 {
            if !value.is_null() {
                // SAFETY: the slot did not take the reference we made.
                unsafe { ffi::Py_DECREF(value) };
            }
            return Err(PyErr::fetch(code.py()));
        }
        drop(old);
        Ok(())
    }
}

#[pymethods]
impl CodeExtra {
    /// Takes a new code extra index; `name` is for display only.
    #[new]
    fn new(name: String) -> PyResult<Self> {
        if STORES.fetch_add(1, Ordering::AcqRel) >= MAX_STORES {
            STORES.fetch_sub(1, Ordering::AcqRel);
            return Err(PyRuntimeError::new_err(format!(
                "spyglass.code.extra: at most {MAX_STORES} stores per process (code extra indexes are shared with other tools and never given back)"
            )));
        }
        // SAFETY: the GIL is held in a #[new]; release_value matches freefunc.
        let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(release_value) };
        if index < 0 {
            STORES.fetch_sub(1, Ordering::AcqRel);
            return Err(PyRuntimeError::new_err(
                "spyglass.code.extra: the interpreter has no code extra index left (255 are shared by all tools)",
            ));
        }
        Ok(CodeExtra { name, index })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn index(&self) -> ffi::Py_ssize_t {
        self.index
    }

    fn __getitem__<'py>(&self, code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.load(code)?
            .ok_or_else(|| PyKeyError::new_err(code.clone().unbind()))
    }

    fn __setitem__(&self, code: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        check_code(code)?;
        self.store(code, value.as_ptr())
    }

    fn __delitem__(&self, code: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.load(code)?.is_none() {
            return Err(PyKeyError::new_err(code.clone().unbind()));
        }
        self.store(code, ptr::null_mut())
    }

    fn __contains__(&self, code: &Bound<'_, PyAny>) -> PyResult<bool> {
        // `x in store` for a non-code x is False, like a dict of code keys.
        // SAFETY: valid object, GIL held.
        if unsafe { ffi::PyCode_Check(code.as_ptr()) } == 0 {
            return Ok(false);
        }
        Ok(self.load(code)?.is_some())
    }

    #[pyo3(signature = (code, default=None))]
    fn get<'py>(
        &self,
        code: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.load(code)?.or(default))
    }

    #[pyo3(signature = (code, default=None))]
    fn setdefault<'py>(
        &self,
        code: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(v) = self.load(code)? {
            return Ok(v);
        }
        let value = default.unwrap_or_else(|| code.py().None().into_bound(code.py()));
        self.store(code, value.as_ptr())?;
        Ok(value)
    }

    /// Removes and returns the value; `default` (or KeyError) if absent.
    #[pyo3(signature = (code, *default))]
    fn pop<'py>(
        &self,
        code: &Bound<'py, PyAny>,
        default: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        use pyo3::types::PyTupleMethods;
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        match self.load(code)? {
            Some(v) => {
                self.store(code, ptr::null_mut())?;
                Ok(v)
            }
            None => match default.get_item(0) {
                Ok(d) => Ok(d),
                Err(_) => Err(PyKeyError::new_err(code.clone().unbind())),
            },
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<spyglass.code.extra {:?} (code extra index {})>",
            self.name, self.index
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CodeExtra>()
}
