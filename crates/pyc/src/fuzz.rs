//! What the fuzz target (crates/pyc/fuzz) runs on each input: every decoder
//! of the crate, end to end. Any panic, hang or runaway allocation here is a
//! bug; errors are the expected outcome for most inputs.

use crate::{exceptions, format, lines, marshal, Pyc};

pub fn exercise(data: &[u8]) {
    // the raw table decoders, on the input itself
    let firstline = data.first().copied().unwrap_or(1) as i32;
    let _ = lines::findlinestarts(7, data, firstline, data.len());
    let _ = lines::findlinestarts(9, data, firstline, data.len());
    let _ = lines::linetable_310(data, firstline);
    let _ = lines::location_lines(data, firstline, true);
    let _ = lines::location_positions(data, firstline);
    let _ = exceptions::parse(data);
    // the marshal reader under each code layout, without a header
    for layout in [
        marshal::CodeLayout::Py30,
        marshal::CodeLayout::Py38,
        marshal::CodeLayout::Py311,
    ] {
        let _ = marshal::read(data, 0, layout, true);
    }
    // a whole file: header, marshal, every code object disassembled and printed
    if let Ok(pyc) = Pyc::parse_with_layout(data.to_vec()) {
        let mut out = String::new();
        let _ = format::text(&pyc, &mut out);
        out.clear();
        let _ = format::jsonl(&pyc, &mut out);
    }
}
