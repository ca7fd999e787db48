//! The `spyglass._native` extension module.
//!
//! Each capability registers its own functions from its own file; this file
//! only wires them together.
use pyo3::prelude::*;

mod cache;
pub mod dispatch;
pub mod events;
pub mod rewrite;
pub mod table;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    table::register(m)?;
    dispatch::register(m)?;
    Ok(())
}
