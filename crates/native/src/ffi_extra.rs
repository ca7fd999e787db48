//! C APIs that pyo3-ffi 0.30 does not declare, declared by hand.
//!
//! Every signature here was checked against the installed headers of CPython
//! 3.11 (`cpython/code.h`, `cpython/pyerrors.h`, `cpython/sysmodule.h`), 3.12,
//! 3.13 and 3.14 (`cpython/code.h`, `cpython/pyerrors.h`): the code-object
//! part of those headers is identical from 3.12 to 3.14. Symbols that exist
//! only on some versions sit behind the matching `Py_3_*` cfg, so a build for
//! an older interpreter can never reference them.
#![allow(non_snake_case, non_camel_case_types)]

#[cfg(not(Py_3_12))]
use core::ffi::c_void;
use core::ffi::{c_char, c_int};
use pyo3::ffi::{PyCodeObject, PyObject};

/// `PyCodeEvent` (3.12+ `cpython/code.h`): a C enum generated from
/// `PY_FOREACH_CODE_EVENT(V) V(CREATE) V(DESTROY)`, so CREATE = 0, DESTROY = 1.
pub type PyCodeEvent = c_int;
pub const PY_CODE_EVENT_CREATE: PyCodeEvent = 0;
#[cfg_attr(not(Py_3_12), allow(dead_code))]
pub const PY_CODE_EVENT_DESTROY: PyCodeEvent = 1;

/// `typedef int (*PyCode_WatchCallback)(PyCodeEvent event, PyCodeObject *co)`.
#[cfg(Py_3_12)]
pub type PyCode_WatchCallback =
    unsafe extern "C" fn(event: PyCodeEvent, co: *mut PyCodeObject) -> c_int;

/// `typedef int (*Py_AuditHookFunction)(const char *, PyObject *, void *)`.
#[cfg(not(Py_3_12))]
pub type Py_AuditHookFunction = unsafe extern "C" fn(
    event: *const c_char,
    args: *mut PyObject,
    user_data: *mut c_void,
) -> c_int;

extern "C" {
    /// 3.12+: returns a watcher id, or -1 with an exception set when all
    /// eight slots of the interpreter are taken.
    #[cfg(Py_3_12)]
    pub fn PyCode_AddWatcher(callback: PyCode_WatchCallback) -> c_int;
    /// 3.12+: 0 on success, -1 with an exception set for an unknown id.
    #[cfg(Py_3_12)]
    pub fn PyCode_ClearWatcher(watcher_id: c_int) -> c_int;

    /// 3.11+: fills in the source span of the instruction at byte offset
    /// `addrq`; a missing value is -1. Returns 1.
    pub fn PyCode_Addr2Location(
        co: *mut PyCodeObject,
        addrq: c_int,
        start_line: *mut c_int,
        start_column: *mut c_int,
        end_line: *mut c_int,
        end_column: *mut c_int,
    ) -> c_int;
    /// 3.11+: `co.co_code` (new reference).
    pub fn PyCode_GetCode(co: *mut PyCodeObject) -> *mut PyObject;
    /// 3.11+: `co.co_varnames` (new reference).
    pub fn PyCode_GetVarnames(co: *mut PyCodeObject) -> *mut PyObject;
    /// 3.11+: `co.co_cellvars` (new reference).
    pub fn PyCode_GetCellvars(co: *mut PyCodeObject) -> *mut PyObject;
    /// 3.11+: `co.co_freevars` (new reference).
    pub fn PyCode_GetFreevars(co: *mut PyCodeObject) -> *mut PyObject;

    /// 3.8+; used by the 3.11 emulation of CREATE only.
    #[cfg(not(Py_3_12))]
    pub fn PySys_AddAuditHook(hook: Py_AuditHookFunction, user_data: *mut c_void) -> c_int;

    /// 3.8 to 3.12 (removed in 3.13): reports the current exception to
    /// `sys.unraisablehook` with the message "Exception ignored <err_msg>".
    #[cfg(not(Py_3_13))]
    pub fn _PyErr_WriteUnraisableMsg(err_msg: *const c_char, obj: *mut PyObject);
    /// 3.13+: reports the current exception to `sys.unraisablehook` with a
    /// message made by `PyUnicode_FromFormat`.
    #[cfg(Py_3_13)]
    pub fn PyErr_FormatUnraisable(format: *const c_char, ...);
}

/// `PyFunction_WatchEvent` (3.12+ `cpython/funcobject.h`): a C enum generated
/// from `PY_FOREACH_FUNC_EVENT(V) V(CREATE) V(DESTROY) V(MODIFY_CODE) ...`,
/// so CREATE = 0 (the same on 3.12, 3.13 and 3.14).
#[cfg(Py_3_12)]
pub type PyFunction_WatchEvent = c_int;
#[cfg(Py_3_12)]
pub const PY_FUNCTION_EVENT_CREATE: PyFunction_WatchEvent = 0;

/// `typedef int (*PyFunction_WatchCallback)(PyFunction_WatchEvent event,
/// PyFunctionObject *func, PyObject *new_value)`.
#[cfg(Py_3_12)]
pub type PyFunction_WatchCallback =
    unsafe extern "C" fn(event: PyFunction_WatchEvent, func: *mut PyObject, new_value: *mut PyObject) -> c_int;

#[cfg(Py_3_12)]
extern "C" {
    /// 3.12+: returns a watcher id, or -1 with an exception set when all
    /// eight function-watcher slots of the interpreter are taken.
    /// (The watcher stays for the life of the process: idle, it returns at
    /// once, so there is no PyFunction_ClearWatcher here.)
    pub fn PyFunction_AddWatcher(callback: PyFunction_WatchCallback) -> c_int;
}

#[cfg(Py_3_12)]
extern "C" {
    /// 3.12+ (`cpython/pyframe.h`): the byte offset of the instruction the
    /// interpreter frame last started (the one in flight in a caller).
    /// Does not raise. The frame is opaque here: any live frame pointer.
    pub fn PyUnstable_InterpreterFrame_GetLasti(frame: *mut core::ffi::c_void) -> c_int;
}
