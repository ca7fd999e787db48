//! Python's `repr()` of marshalled constants, as `dis` prints them.
//!
//! Output is capped (`MAX_REPR` bytes, then "...") because a hostile file can
//! share a tuple through references so that its expansion is exponential.
//! Where CPython's result is not a property of the file, this says so: a code
//! object shows its file offset where CPython shows its memory address, and
//! a frozenset lists its items in file order (CPython's order depends on the
//! string hashes of the running process).

use std::fmt::Write;

use crate::generated::printable;
use crate::object::{code_points, ObjId, Object};
use crate::pyc::Pyc;

/// the longest repr made for one object
pub const MAX_REPR: usize = 16 << 20;
/// deeper containers are shown as "..." (the compiler never nests constants
/// this deep; hostile files may, and the recursion must stay small)
const MAX_NESTING: usize = 500;
/// longer ints (in 15-bit digits) are not converted to decimal (CPython 3.11+
/// itself refuses ints of more than 4300 decimal digits)
const MAX_LONG_DIGITS: usize = 1000;

pub fn repr(pyc: &Pyc, id: ObjId) -> String {
    let mut out = String::new();
    repr_into(pyc, id, &mut out);
    out
}

pub fn repr_into(pyc: &Pyc, id: ObjId, out: &mut String) {
    repr_limited(pyc, id, out, MAX_REPR)
}

/// The repr, cut after `max` bytes (then "..." marks the cut).
pub fn repr_limited(pyc: &Pyc, id: ObjId, out: &mut String, max: usize) {
    let limit = out.len() + max;
    write_obj(pyc, id, out, limit, 0);
    if out.len() > limit {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
}

fn write_obj(pyc: &Pyc, id: ObjId, out: &mut String, limit: usize, depth: usize) {
    if out.len() > limit {
        return;
    }
    if depth > MAX_NESTING {
        out.push_str("...");
        return;
    }
    match pyc.obj(id) {
        Object::None => out.push_str("None"),
        Object::True => out.push_str("True"),
        Object::False => out.push_str("False"),
        Object::Ellipsis => out.push_str("Ellipsis"),
        Object::StopIteration => out.push_str("<class 'StopIteration'>"),
        Object::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Object::Long { negative, digits } => out.push_str(&long_repr(*negative, digits)),
        Object::Float(f) => out.push_str(&float_repr(*f, true)),
        Object::Complex(re, im) => out.push_str(&complex_repr(*re, *im)),
        Object::Bytes(_) => bytes_repr(pyc.bytes(id), out),
        Object::Str(s) => str_repr(pyc.minor(), code_points(pyc.str_raw(s), s.kind), out),
        Object::Tuple(items) => {
            out.push('(');
            write_items(pyc, items, out, limit, depth);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Object::List(items) => {
            out.push('[');
            write_items(pyc, items, out, limit, depth);
            out.push(']');
        }
        Object::Set(items) => {
            if items.is_empty() {
                out.push_str("set()");
            } else {
                out.push('{');
                write_items(pyc, items, out, limit, depth);
                out.push('}');
            }
        }
        Object::FrozenSet(items) => {
            if items.is_empty() {
                out.push_str("frozenset()");
            } else {
                out.push_str("frozenset({");
                write_items(pyc, items, out, limit, depth);
                out.push_str("})");
            }
        }
        Object::Dict(items) => {
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if out.len() > limit {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                write_obj(pyc, *k, out, limit, depth + 1);
                out.push_str(": ");
                write_obj(pyc, *v, out, limit, depth + 1);
            }
            out.push('}');
        }
        Object::Slice(parts) => {
            out.push_str("slice(");
            write_items(pyc, &parts[..], out, limit, depth);
            out.push(')');
        }
        Object::Code(code) => {
            out.push_str("<code object ");
            out.push_str(&pyc.text(code.name));
            let _ = write!(out, " at 0x{:x}, file \"", code.offset);
            out.push_str(&pyc.text(code.filename));
            let _ = write!(out, "\", line {}>", code.firstlineno);
        }
    }
}

fn write_items(pyc: &Pyc, items: &[ObjId], out: &mut String, limit: usize, depth: usize) {
    for (i, item) in items.iter().enumerate() {
        if out.len() > limit {
            return;
        }
        if i > 0 {
            out.push_str(", ");
        }
        write_obj(pyc, *item, out, limit, depth + 1);
    }
}

/// Decimal text of a big int given as 15-bit digits, least significant first.
pub fn long_repr(negative: bool, digits: &[u16]) -> String {
    if digits.len() > MAX_LONG_DIGITS {
        let bits = (digits.len() - 1) * 15
            + (16 - digits.last().map_or(0, |d| d.leading_zeros()) as usize);
        return format!("<int of {bits} bits>");
    }
    // repeated division by 10**4 of the most-significant-first digit list
    let mut mag: Vec<u32> = digits.iter().rev().map(|&d| d as u32).collect();
    let mut chunks = Vec::new();
    while !mag.is_empty() {
        let mut rem = 0u32;
        for d in mag.iter_mut() {
            let cur = (rem << 15) | *d;
            *d = cur / 10_000;
            rem = cur % 10_000;
        }
        chunks.push(rem);
        while mag.first() == Some(&0) {
            mag.remove(0);
        }
    }
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    let mut it = chunks.iter().rev();
    if let Some(first) = it.next() {
        let _ = write!(s, "{first}");
    }
    for c in it {
        let _ = write!(s, "{c:04}");
    }
    s
}

/// `repr(float)` ("r" format, shortest round-trip digits). `add_dot_0` is
/// false for the parts of a complex number.
pub fn float_repr(x: f64, add_dot_0: bool) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0{}", if add_dot_0 { ".0" } else { "" });
    }
    // Rust's `{:e}` gives the shortest round-trip digit count; Python then
    // takes the correctly rounded (half-even) digits of that length, which
    // `{:.N$e}` gives (they differ on exact ties such as 2**-25)
    let shortest = format!("{:e}", x.abs());
    let n_digits = shortest
        .split_once('e')
        .expect("exponent")
        .0
        .chars()
        .filter(|c| c.is_ascii_digit())
        .count();
    let rounded = format!("{:.*e}", n_digits - 1, x.abs());
    let e = if rounded.parse::<f64>() == Ok(x.abs()) {
        rounded
    } else {
        shortest
    };
    let (mant, exp) = e.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        let mut s = format!("{sign}{}", &digits[..1]);
        if n > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(s, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
        s
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!(
            "{sign}{digits}{}{}",
            "0".repeat((decpt - n) as usize),
            if add_dot_0 { ".0" } else { "" }
        )
    } else {
        format!(
            "{sign}{}.{}",
            &digits[..decpt as usize],
            &digits[decpt as usize..]
        )
    }
}

pub fn complex_repr(re: f64, im: f64) -> String {
    let imag = |with_sign: bool| {
        let s = float_repr(im, false);
        if with_sign && !s.starts_with('-') {
            format!("+{s}")
        } else {
            s
        }
    };
    if re == 0.0 && re.is_sign_positive() {
        format!("{}j", imag(false))
    } else {
        format!("({}{}j)", float_repr(re, false), imag(true))
    }
}

/// `str.isprintable()` of one code point, as CPython 3.`minor` (its Unicode
/// database) has it.
pub fn is_printable(minor: u8, cp: u32) -> bool {
    printable::for_minor(minor)
        .binary_search_by(|&(a, b)| {
            if cp < a {
                std::cmp::Ordering::Greater
            } else if cp > b {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

pub fn str_repr(minor: u8, chars: impl Iterator<Item = u32> + Clone, out: &mut String) {
    let (mut single, mut double) = (false, false);
    for c in chars.clone() {
        single |= c == '\'' as u32;
        double |= c == '"' as u32;
    }
    let quote = if single && !double { '"' } else { '\'' };
    out.push(quote);
    for c in chars {
        match c {
            _ if c == quote as u32 || c == '\\' as u32 => {
                out.push('\\');
                out.push(char::from_u32(c).expect("ascii"));
            }
            0x09 => out.push_str("\\t"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0..=0x1f | 0x7f => {
                let _ = write!(out, "\\x{c:02x}");
            }
            0x20..=0x7e => out.push(char::from_u32(c).expect("ascii")),
            _ if is_printable(minor, c) => out.push(char::from_u32(c).unwrap_or('\u{fffd}')),
            0x80..=0xff => {
                let _ = write!(out, "\\x{c:02x}");
            }
            0x100..=0xffff => {
                let _ = write!(out, "\\u{c:04x}");
            }
            _ => {
                let _ = write!(out, "\\U{c:08x}");
            }
        }
    }
    out.push(quote);
}

pub fn bytes_repr(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    out.push('b');
    out.push(quote);
    for &c in b {
        match c {
            _ if c == quote as u8 || c == b'\\' => {
                out.push('\\');
                out.push(c as char);
            }
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(c as char),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (123456789.125, "123456789.125"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (5e-324, "5e-324"),
            (0.3333333333333333, "0.3333333333333333"),
            (2.9802322387695312e-08, "2.9802322387695312e-08"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x, true), want, "{x}");
        }
    }

    #[test]
    fn complex_like_python() {
        assert_eq!(complex_repr(0.0, 1.0), "1j");
        assert_eq!(complex_repr(1.0, 2.0), "(1+2j)");
        assert_eq!(complex_repr(-0.0, -1.0), "(-0-1j)");
        assert_eq!(complex_repr(0.0, 1e16), "1e+16j");
        assert_eq!(complex_repr(1.5, f64::NAN), "(1.5+nanj)");
    }

    #[test]
    fn strings_and_bytes_like_python() {
        let r = |s: &str| {
            let mut o = String::new();
            str_repr(14, s.chars().map(|c| c as u32), &mut o);
            o
        };
        assert_eq!(r("it's"), "\"it's\"");
        assert_eq!(r("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(
            r("tab\t\x01é\u{a0}€\u{200b}"),
            "'tab\\t\\x01é\\xa0€\\u200b'"
        );
        let mut o = String::new();
        str_repr(14, [0xd800u32].into_iter(), &mut o);
        assert_eq!(o, "'\\ud800'");
        // U+2FFC was assigned in Unicode 15.1 (CPython 3.13)
        assert!(is_printable(13, 0x2ffc) && !is_printable(12, 0x2ffc));
        let mut o = String::new();
        bytes_repr(b"a'\x00\xff\\", &mut o);
        assert_eq!(o, "b\"a'\\x00\\xff\\\\\"");
    }

    #[test]
    fn deep_nesting_is_cut_within_a_small_stack() {
        let mut data = b"\xe3\x0d\x0d\x0a".to_vec(); // 3.11's magic number 3495
        data[0] = 0xa7;
        data.extend_from_slice(&[0; 12]);
        for _ in 0..1999 {
            data.extend_from_slice(b")\x01");
        }
        data.push(b'N');
        let pyc = Pyc::parse(data).unwrap();
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || repr(&pyc, pyc.root))
            .unwrap()
            .join()
            .unwrap();
        assert!(r.starts_with("((((") && r.contains("..."));
    }

    #[test]
    fn big_ints() {
        // 2**64 = digits of 15 bits: 0, 0, 0, 0, 16
        assert_eq!(long_repr(false, &[0, 0, 0, 0, 16]), "18446744073709551616");
        assert_eq!(long_repr(true, &[1, 1]), "-32769");
        assert!(long_repr(false, &vec![1u16; 2000]).starts_with("<int of"));
    }
}
