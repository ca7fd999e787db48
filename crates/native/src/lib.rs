//! The `spyglass._native` extension module.
//!
//! Each capability registers its own submodule-level functions from its own
//! file; this file only wires them together.
use pyo3::prelude::*;

mod code_extra;
mod code_info;
mod ffi_extra;
mod watch;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    watch::register(m)?; // watch_* functions
    code_extra::register(m)?; // CodeExtra
    code_info::register(m)?; // code_* functions
    Ok(())
}
