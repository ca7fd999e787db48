//! Code-object introspection through CPython's own C API (3.11+):
//! `PyCode_Addr2Line`, `PyCode_Addr2Location`, `PyCode_GetCode`,
//! `PyCode_GetVarnames`/`Cellvars`/`Freevars` and `PyCode_NewEmpty`.
use std::ffi::{c_int, CString};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyBytesMethods, PyTuple};

use crate::ffi_extra;

/// The code object behind `code`, or a TypeError naming what was given.
fn as_code(code: &Bound<'_, PyAny>) -> PyResult<*mut ffi::PyCodeObject> {
    // SAFETY: the pointer of a Bound is a valid object and the GIL is held.
    if unsafe { ffi::PyCode_Check(code.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err(format!(
            "expected a code object, not {}",
            code.get_type().name()?
        )));
    }
    Ok(code.as_ptr().cast())
}

/// Takes the result of a C call that returns a new reference or NULL with
/// an exception set.
///
/// # Safety
/// `obj` is such a result.
unsafe fn owned<'py>(py: Python<'py>, obj: *mut ffi::PyObject) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: guaranteed by the caller.
    unsafe { Bound::from_owned_ptr_or_err(py, obj) }
}

/// Checks that `offset` is the byte offset of an instruction of `code`:
/// CPython only asserts this in debug builds.
fn check_offset(py: Python<'_>, co: *mut ffi::PyCodeObject, offset: i64) -> PyResult<c_int> {
    // SAFETY: co is a code object (as_code), GIL held; PyCode_GetCode
    // returns a new reference or NULL with an exception set.
    let bytecode = unsafe { owned(py, ffi_extra::PyCode_GetCode(co)) }?;
    let len = bytecode.cast::<PyBytes>()?.as_bytes().len() as i64;
    match c_int::try_from(offset) {
        Ok(addr) if offset < len && offset >= 0 && offset % 2 == 0 => Ok(addr),
        _ => Err(PyValueError::new_err(format!(
            "offset {offset} is not an instruction offset of this code object (even, 0 <= offset < {len})"
        ))),
    }
}

/// `PyCode_Addr2Line(code, offset)`: the line, or -1 when the instruction
/// has none.
#[pyfunction]
fn code_addr2line(code: &Bound<'_, PyAny>, offset: i64) -> PyResult<c_int> {
    let co = as_code(code)?;
    let offset = check_offset(code.py(), co, offset)?;
    // SAFETY: co is a code object and offset is one of its instructions.
    Ok(unsafe { ffi::PyCode_Addr2Line(co, offset) })
}

/// `PyCode_Addr2Location(code, offset)`: (start_line, start_column,
/// end_line, end_column), -1 for a missing value.
#[pyfunction]
fn code_addr2location(
    code: &Bound<'_, PyAny>,
    offset: i64,
) -> PyResult<(c_int, c_int, c_int, c_int)> {
    let co = as_code(code)?;
    let offset = check_offset(code.py(), co, offset)?;
    let (mut sl, mut sc, mut el, mut ec) = (-1, -1, -1, -1);
    // SAFETY: co is a code object, offset is one of its instructions, and the
    // four out-pointers are valid.
    unsafe { ffi_extra::PyCode_Addr2Location(co, offset, &mut sl, &mut sc, &mut el, &mut ec) };
    Ok((sl, sc, el, ec))
}

/// (bytecode, varnames, cellvars, freevars) through the C accessors.
#[pyfunction]
fn code_parts<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let co = as_code(code)?;
    let py = code.py();
    // SAFETY: co is a code object and the GIL is held; each call returns a
    // new reference or NULL with an exception set.
    let parts = unsafe {
        [
            owned(py, ffi_extra::PyCode_GetCode(co))?,
            owned(py, ffi_extra::PyCode_GetVarnames(co))?,
            owned(py, ffi_extra::PyCode_GetCellvars(co))?,
            owned(py, ffi_extra::PyCode_GetFreevars(co))?,
        ]
    };
    PyTuple::new(py, parts)
}

/// `PyCode_NewEmpty(filename, funcname, firstlineno)`.
#[pyfunction]
fn code_new_empty<'py>(
    py: Python<'py>,
    filename: &str,
    funcname: &str,
    firstlineno: c_int,
) -> PyResult<Bound<'py, PyAny>> {
    let c = |what: &str, s: &str| {
        CString::new(s).map_err(|_| {
            PyValueError::new_err(format!("{what} must not contain a NUL character: {s:?}"))
        })
    };
    let (filename, funcname) = (c("filename", filename)?, c("funcname", funcname)?);
    // SAFETY: GIL held; both strings are NUL-terminated UTF-8 and outlive
    // the call; returns a new reference or NULL with an exception set.
    let co = unsafe { ffi::PyCode_NewEmpty(filename.as_ptr(), funcname.as_ptr(), firstlineno) };
    // SAFETY: PyCode_NewEmpty returns a new reference or NULL with an error.
    unsafe { owned(py, co.cast()) }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(code_addr2line, m)?)?;
    m.add_function(wrap_pyfunction!(code_addr2location, m)?)?;
    m.add_function(wrap_pyfunction!(code_parts, m)?)?;
    m.add_function(wrap_pyfunction!(code_new_empty, m)?)?;
    Ok(())
}
