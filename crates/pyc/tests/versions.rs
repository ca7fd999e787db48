//! The disassembly of tests/data/sample-3.X.pyc, written by each CPython
//! 3.6-3.14, against that interpreter's own `dis.get_instructions` (the
//! .jsonl next to it; regenerate both with scripts/gen_pyc_fixtures.py).

use spyglass_pyc::{format, Pyc};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// CPython prints a code object's address where spyglass prints its offset.
fn without_code_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" at 0x") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 6..];
        let hex = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        if tail[hex..].starts_with(", file ") {
            out.push_str(" at ?");
        } else {
            out.push_str(&rest[i..i + 6 + hex]);
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

#[test]
fn sample_disassembly_matches_each_versions_dis() {
    for minor in 6..=14 {
        let pyc = std::fs::read(format!("{DATA}/sample-3.{minor}.pyc")).unwrap();
        let expected = std::fs::read_to_string(format!("{DATA}/sample-3.{minor}.jsonl")).unwrap();
        let parsed = Pyc::parse(pyc).unwrap_or_else(|e| panic!("3.{minor}: {e}"));
        assert_eq!(parsed.version, (3, minor));
        let mut got = String::new();
        format::jsonl(&parsed, &mut got).unwrap();
        let (got, expected) = (
            without_code_addresses(&got),
            without_code_addresses(&expected),
        );
        for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
            if e.contains("frozenset(") {
                continue; // CPython's set order depends on the process's string hashes
            }
            assert_eq!(g, e, "3.{minor}, instruction {i}");
        }
        assert_eq!(got.lines().count(), expected.lines().count(), "3.{minor}");
    }
}

#[test]
fn headers_of_each_version() {
    for minor in 6..=14u8 {
        let pyc =
            Pyc::parse(std::fs::read(format!("{DATA}/sample-3.{minor}.pyc")).unwrap()).unwrap();
        let h = pyc.header.as_ref().unwrap();
        assert_eq!((h.info.major, h.info.minor), (3, minor));
        assert_eq!(h.len, if minor >= 7 { 16 } else { 12 });
        let source = std::fs::read(format!("{DATA}/sample.py")).unwrap();
        assert_eq!(
            h.check_source(&source),
            spyglass_pyc::header::SourceCheck::Match
        );
        // every code object of the tree, qualnames rebuilt before 3.11
        let names: Vec<String> = pyc.code_objects().into_iter().map(|n| n.qualname).collect();
        assert!(
            names.contains(&"outer.<locals>.inner".to_string()),
            "3.{minor}: {names:?}"
        );
        assert!(
            names.contains(&"Base.method".to_string()),
            "3.{minor}: {names:?}"
        );
    }
}

#[test]
fn text_output_is_produced_for_every_version() {
    for minor in 6..=14 {
        let pyc =
            Pyc::parse(std::fs::read(format!("{DATA}/sample-3.{minor}.pyc")).unwrap()).unwrap();
        let mut out = String::new();
        format::text(&pyc, &mut out).unwrap();
        assert!(
            out.contains("Disassembly of <code object outer at 0x"),
            "3.{minor}"
        );
        assert_eq!(out.contains("ExceptionTable:"), minor >= 11, "3.{minor}");
    }
}

#[test]
fn text_matches_each_versions_dis_dis() {
    for minor in 6..=14 {
        let pyc =
            Pyc::parse(std::fs::read(format!("{DATA}/sample-3.{minor}.pyc")).unwrap()).unwrap();
        let expected = std::fs::read_to_string(format!("{DATA}/sample-3.{minor}.txt")).unwrap();
        let mut got = String::new();
        format::text(&pyc, &mut got).unwrap();
        let (got, expected) = (
            without_code_addresses(&got),
            without_code_addresses(&expected),
        );
        for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
            if e.contains("frozenset(") {
                continue;
            }
            assert_eq!(g, e, "3.{minor}, line {}", i + 1);
        }
        assert_eq!(got.lines().count(), expected.lines().count(), "3.{minor}");
    }
}
