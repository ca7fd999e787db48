//! `_sg_p(x)`: an operand of `and`/`or` whose truth CPython would test once
//! (the operator sits in a test, where CPython compiles it into jumps) but
//! which instrumented code tests twice: once in the operator, once when the
//! operator's value (this operand, if it decided) reaches the test. The
//! proxy tests `x` the first time it is asked and remembers the answer, so
//! `x.__bool__` runs exactly as often as in the plain program.
//!
//! A proxy only ever flows to a truth test, to value wrappers (which show
//! handlers the real value, see `unwrap`) and to `not`; the rewriter only
//! emits `_sg_p` where the result of the whole test is a truth value.

use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

const UNKNOWN: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;

#[pyclass(frozen, module = "spyglass._native", name = "RememberedTruth")]
pub struct RememberedTruth {
    value: Py<PyAny>,
    truth: AtomicU8,
}

#[pymethods]
impl RememberedTruth {
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.truth.load(Ordering::Relaxed) {
            FALSE => Ok(false),
            TRUE => Ok(true),
            _ => {
                // an exception is not remembered: it propagates from the
                // operator's own test, as in the plain program
                let t = self.value.bind(py).is_truthy()?;
                self.truth.store(if t { TRUE } else { FALSE }, Ordering::Relaxed);
                Ok(t)
            }
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let known = match self.truth.load(Ordering::Relaxed) {
            UNKNOWN => "untested",
            FALSE => "false",
            _ => "true",
        };
        Ok(format!("<spyglass truth of {} ({known})>", self.value.bind(py).repr()?))
    }
}

/// The proxy type, known once the module is registered: `unwrap` runs in
/// every `_sg_e` call, where a pointer comparison is all it can afford.
static TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// The value a handler should see for `v`: the operand behind a proxy.
#[inline]
pub fn unwrap<'py>(v: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if v.get_type_ptr() != TYPE.load(Ordering::Relaxed) {
        return None;
    }
    v.cast_exact::<RememberedTruth>().ok().map(|p| p.get().value.bind(v.py()).clone())
}

/// `_sg_p(x)`: `x` behind a proxy that remembers its truth (a proxy is kept).
#[pyfunction]
fn _sg_p<'py>(py: Python<'py>, x: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if x.is_exact_instance_of::<RememberedTruth>() {
        return Ok(x);
    }
    Ok(Bound::new(py, RememberedTruth { value: x.unbind(), truth: AtomicU8::new(UNKNOWN) })?.into_any())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RememberedTruth>()?;
    TYPE.store(m.py().get_type::<RememberedTruth>().as_type_ptr(), Ordering::Relaxed);
    m.add_function(wrap_pyfunction!(_sg_p, m)?)
}
