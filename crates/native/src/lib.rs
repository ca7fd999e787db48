//! The `spyglass._native` extension module.
//!
//! Each capability registers its own submodule-level functions from its own
//! file; this file only wires them together.
use pyo3::prelude::*;

mod pyc_bindings;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    pyc_bindings::register(m)?;
    Ok(())
}
