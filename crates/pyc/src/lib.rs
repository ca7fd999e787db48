//! Reading CPython `.pyc` files of any version, without a live interpreter.
//!
//! * [`header`]: magic number (3.0-3.14, [`magic`]), PEP 552 flags,
//!   timestamp + size or SipHash source hash ([`siphash`]);
//! * [`marshal`]: every type code of marshal versions 0-5, references, code
//!   objects in each version's field order ([`object`]);
//! * [`lines`], [`exceptions`]: line/location tables and exception tables;
//! * [`dis`], [`opcodes`]: disassembly as each version's own `dis` does it;
//! * [`format`]: text and JSON-lines output; [`repr`]: Python's `repr`.
//!
//! Bad input never panics: every function returns an [`Error`] naming the
//! offset and what was expected.

pub mod dis;
pub mod error;
pub mod exceptions;
pub mod format;
pub mod fuzz;
mod generated;
pub mod header;
pub mod lines;
pub mod magic;
pub mod marshal;
pub mod object;
pub mod opcodes;
pub mod pyc;
pub mod repr;
pub mod siphash;

pub use error::{Error, Result};
pub use pyc::{CodeNode, Pyc};
