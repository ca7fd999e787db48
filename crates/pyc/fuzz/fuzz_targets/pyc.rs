//! Every decoder of spyglass-pyc on arbitrary bytes: header, marshal reader
//! (all code layouts), line/location/exception tables, disassembly and output.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spyglass_pyc::fuzz::exercise(data);
});
