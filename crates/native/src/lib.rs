//! The `spyglass._native` extension module.
//!
//! Each capability registers its own functions from its own file; this file
//! only wires them together.
use pyo3::prelude::*;

mod cache;
mod code_extra;
mod code_info;
pub mod dispatch;
pub mod events;
mod ffi_extra;
mod func_swap;
mod opcodes;
mod pyc_bindings;
pub mod rewrite;
pub mod table;
mod truth;
mod watch;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    table::register(m)?; // source instrumentation: Source, ModuleTable, events()
    dispatch::register(m)?; // the _sg_* builtins and tracer state
    truth::register(m)?; // _sg_p, truth remembered for tests
    watch::register(m)?; // watch_* functions
    func_swap::register(m)?; // swap_* functions: new functions run instrumented code
    code_extra::register(m)?; // CodeExtra
    code_info::register(m)?; // code_* functions
    opcodes::register(m)?; // the `opcodes` submodule: bytecode tracing
    pyc_bindings::register(m)?; // .pyc reading (crates/pyc)
    Ok(())
}
