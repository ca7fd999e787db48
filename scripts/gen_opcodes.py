#!/usr/bin/env python3
"""Generate the opcode and magic-number tables of crates/pyc from real interpreters.

    scripts/gen_opcodes.py [--check] [PYTHON ...]

Each interpreter (default: every CPython 3.6-3.13 under `pyenv root`, plus 3.14
from $SPYGLASS_CACHE/pythons/3.14 as installed by scripts/test) is run with
`--dump`, which prints its own `opcode`/`dis` data as JSON, computed with that
version's own helpers (`dis._deoptop`, `_inline_cache_entries`, ...).  The magic
numbers come from the history comment that each version keeps in
`importlib/_bootstrap_external.py` (3.14: `internal/pycore_magic_number.h`);
3.0-3.5, which are not installed, are read from the same documented history.

The output, crates/pyc/src/generated/{opcodes,magic}.rs, is committed: it is the
single source of truth that the Rust crate compiles in.  `--check` regenerates
in memory and fails if the committed files differ.
"""
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "crates", "pyc", "src", "generated")
VERSIONS = ["3.%d" % m for m in range(6, 15)]

# ----------------------------------------------------------------------------
# --dump: runs inside each interpreter (keep it valid Python 3.6)


def dump():
    import dis
    import opcode

    names = list(getattr(dis, "_all_opname", opcode.opname))
    names = (names + ["<%d>" % i for i in range(len(names), 256)])[:256]
    deoptop = getattr(dis, "_deoptop", lambda op: op)
    deopt = [deoptop(op) if not names[op].startswith("<") else op for op in range(256)]

    def listed(name):
        return set(getattr(opcode, name, ()))

    hasarg = listed("hasarg")
    lists = {k: listed(k) for k in ("hasconst", "hasname", "hasjrel", "hasjabs", "haslocal",
                                    "hasfree", "hascompare", "hasexc", "hasjump")}
    entries = getattr(opcode, "_inline_cache_entries", None)

    def cache_count(op):
        if entries is None:
            return 0
        if isinstance(entries, dict):  # 3.13+: by name
            return entries.get(names[op], 0)
        return entries[op] if op < len(entries) else 0

    backward = getattr(dis, "_is_backward_jump", None)
    ops = []
    for op in range(256):
        flags = []
        if hasarg:  # 3.12+: dis tests `deop in hasarg`
            if op in hasarg:
                flags.append("ARG")
        elif op >= opcode.HAVE_ARGUMENT:
            flags.append("ARG")
        for k, v in lists.items():
            if op in v:
                flags.append(k[3:].upper())
        if backward is not None and not names[op].startswith("<") and backward(op):
            flags.append("BACKWARD")
        ops.append({"name": names[op], "deopt": deopt[op], "flags": flags,
                    "caches": cache_count(op) if deopt[op] == op else 0})
    cache_format = {name: list(fields.items())
                    for name, fields in getattr(opcode, "_cache_format", {}).items()}

    def descs(name):
        v = getattr(opcode, name, None)
        return None if v is None else [str(x) for x in v]

    common = getattr(opcode, "_common_constants", None)
    if common is not None:  # dis shows a type by its name, anything else by repr
        common = [c.__name__ if isinstance(c, type) else repr(c) for c in common]
    nb_ops = getattr(opcode, "_nb_ops", None)
    try:
        import importlib.util
        magic = importlib.util.MAGIC_NUMBER
    except ImportError:
        magic = None
    json.dump({
        "version": "%d.%d" % sys.version_info[:2],
        "full_version": sys.version.split()[0],
        "have_argument": opcode.HAVE_ARGUMENT,
        "extended_arg": opcode.EXTENDED_ARG,
        "ops": ops,
        "cmp_op": list(opcode.cmp_op),
        "nb_ops": None if nb_ops is None else [x[1] for x in nb_ops],
        "intrinsic1": descs("_intrinsic_1_descs"),
        "intrinsic2": descs("_intrinsic_2_descs"),
        "special_method_names": descs("_special_method_names"),
        "common_constants": common,
        "cache_format": cache_format,
        "magic": int.from_bytes(magic[:2], "little"),
        "unicode_version": __import__("unicodedata").unidata_version,
        "nonprintable": nonprintable_ranges(),
        "magic_history": magic_history_text(),
    }, sys.stdout)


def nonprintable_ranges():
    """[start, end] ranges of the code points that str.isprintable() rejects."""
    out = []
    for cp in range(0x110000):
        if not chr(cp).isprintable():
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
    return out


def magic_history_text():
    import importlib._bootstrap_external as be
    import sysconfig
    header = os.path.join(sysconfig.get_path("include"), "internal", "pycore_magic_number.h")
    if os.path.exists(header):
        with open(header, encoding="utf-8") as f:
            return f.read()
    with open(be.__file__, encoding="utf-8") as f:
        return f.read()


# ----------------------------------------------------------------------------
# driver


def find_interpreters():
    found = {}
    try:
        root = subprocess.check_output(["pyenv", "root"], universal_newlines=True).strip()
    except (OSError, subprocess.CalledProcessError):
        root = None
    for v in VERSIONS:
        cands = []
        if root:
            cands += sorted(glob.glob(os.path.join(root, "versions", v + ".*", "bin", "python" + v)))
        cache = os.environ.get("SPYGLASS_CACHE", os.path.expanduser("~/.cache/spyglass"))
        cands.append(os.path.join(cache, "pythons", v, "bin", "python" + v))
        for c in cands:
            if os.path.exists(c):
                found[v] = c
    return found


HISTORY_LINE = re.compile(r"^[#\s]*(Python\s+(3000|[23]\.\d+)(\S*?)\s*:?\s+)?(\d{4,5})\b\s*(.*)$")


def parse_history(text):
    """(magic, release, label, note) for every entry of a magic-number history."""
    start = text.find("Python 1.5")
    if start < 0:
        start = text.find("Python 2.")
    end = text.find("MAGIC must change")
    if end < 0:
        end = len(text)
    out = []
    current = None
    for line in text[start:end].splitlines():
        m = HISTORY_LINE.match(line)
        if not m:
            continue
        if m.group(1):
            major = m.group(2)
            current = "3.0" if major == "3000" else major
            label = "Python " + (major + m.group(3)).rstrip(":")
        elif current == "3.0" and re.match(r"^\s*#\s+\d{4}\s+\(", line):
            label = "Python 3000"  # bare entries of the 3.0 development line
        else:
            continue
        magic = int(m.group(4))
        if magic < 3000 and not 20000 <= magic < 63000:
            continue
        out.append((magic, current, label, m.group(5).strip().strip("()")))
    return out


def rust_str(s):
    return json.dumps(s)


def gen_opcodes(dumps):
    lines = [
        "// @generated by scripts/gen_opcodes.py from each interpreter's own `opcode` and",
        "// `dis` modules (`dis._deoptop`, `opcode._inline_cache_entries`, ...). Do not edit.",
        "// Interpreters: " + ", ".join("%s" % d["full_version"] for d in dumps),
        "use crate::opcodes::{OpData, VersionData};",
        "",
    ]
    flag_names = ["ARG", "CONST", "NAME", "JREL", "JABS", "LOCAL", "FREE", "COMPARE", "EXC", "JUMP", "BACKWARD"]

    def opt_list(v):
        if v is None:
            return "None"
        return "Some(&[" + ", ".join(rust_str(x) for x in v) + "])"

    for d in dumps:
        minor = int(d["version"].split(".")[1])
        lines.append("pub static V3_%d: VersionData = VersionData {" % minor)
        lines.append("    minor: %d," % minor)
        lines.append("    magic: %d," % d["magic"])
        lines.append("    have_argument: %d," % d["have_argument"])
        lines.append("    extended_arg: %d," % d["extended_arg"])
        lines.append("    ops: [")
        for op in d["ops"]:
            flags = " | ".join("OpData::" + f for f in op["flags"] if f in flag_names) or "0"
            lines.append("        OpData { name: %s, deopt: %d, flags: %s, caches: %d }," % (
                rust_str(op["name"]), op["deopt"], flags, op["caches"]))
        lines.append("    ],")
        lines.append("    cmp_op: &[" + ", ".join(rust_str(x) for x in d["cmp_op"]) + "],")
        lines.append("    nb_ops: " + opt_list(d["nb_ops"]) + ",")
        lines.append("    intrinsic1: " + opt_list(d["intrinsic1"]) + ",")
        lines.append("    intrinsic2: " + opt_list(d["intrinsic2"]) + ",")
        lines.append("    special_method_names: " + opt_list(d["special_method_names"]) + ",")
        lines.append("    common_constants: " + opt_list(d["common_constants"]) + ",")
        lines.append("    cache_format: &[")
        for name, fields in sorted(d["cache_format"].items()):
            lines.append("        (%s, &[%s])," % (rust_str(name), ", ".join(
                "(%s, %d)" % (rust_str(f), n) for f, n in fields)))
        lines.append("    ],")
        lines.append("};")
        lines.append("")
    lines.append("pub static ALL: &[&VersionData] = &[" + ", ".join(
        "&V3_%d" % int(d["version"].split(".")[1]) for d in dumps) + "];")
    return "\n".join(lines) + "\n"


def gen_magic(dumps):
    entries = {}
    # oldest first, so that the newest history's wording wins
    for d in dumps:
        for magic, release, label, note in parse_history(d["magic_history"]):
            entries[magic] = (release, label, note)
    for d in dumps:  # every interpreter's own number must be in the table, under its version
        rel = entries.get(d["magic"])
        if rel is None or rel[0] != d["version"]:
            raise SystemExit("magic %d of %s is not in the history as %s (found %r)" % (
                d["magic"], d["full_version"], d["version"], rel))
    lines = [
        "// @generated by scripts/gen_opcodes.py. Do not edit.",
        "//",
        "// Source: the magic-number history that CPython keeps in",
        "// Lib/importlib/_bootstrap_external.py (3.6-3.13) and",
        "// Include/internal/pycore_magic_number.h (3.14), read from the installed",
        "// interpreters " + ", ".join(d["full_version"] for d in dumps) + ".",
        "// Versions 3.0-3.5 are not installed: their numbers are the documented",
        "// entries of that same history (3000-3351).",
        "// (magic, release \"3.X\", label from the history, note)",
        "pub static MAGIC_HISTORY: &[(u16, &str, &str, &str)] = &[",
    ]
    for magic in sorted(entries):
        release, label, note = entries[magic]
        if magic >= 20000:  # Python 1.x/2.x numbers: recognised, never read
            pass
        lines.append("    (%d, %s, %s, %s)," % (magic, rust_str(release), rust_str(label), rust_str(note)))
    lines.append("];")
    lines.append("")
    lines.append("// the number each installed release wrote (its final magic)")
    lines.append("pub static RELEASE_MAGIC: &[(&str, u16)] = &[" + ", ".join(
        "(%s, %d)" % (rust_str(d["version"]), d["magic"]) for d in dumps) + "];")
    return "\n".join(lines) + "\n"


def gen_printable(dumps):
    """One table per Unicode database version, and which version uses which."""
    tables = []  # (unicode version, ranges)
    for d in dumps:
        if not tables or tables[-1][0] != d["unicode_version"]:
            tables.append((d["unicode_version"], d["nonprintable"]))
    lines = [
        "// @generated by scripts/gen_opcodes.py. Do not edit.",
        "// Code points that `str.isprintable()` rejects (so `repr` escapes them),",
        "// per Unicode database of the installed interpreters.",
    ]
    for uv, ranges in tables:
        lines.append("static UNICODE_%s: &[(u32, u32)] = &[" % uv.replace(".", "_"))
        row = []
        for a, b in ranges:
            row.append("(0x%x, 0x%x)," % (a, b))
            if len(row) == 6:
                lines.append("    " + " ".join(row))
                row = []
        if row:
            lines.append("    " + " ".join(row))
        lines.append("];")
    lines.append("")
    lines.append("/// The table of CPython 3.`minor` (the newest one for versions not listed).")
    lines.append("pub fn for_minor(minor: u8) -> &'static [(u32, u32)] {")
    lines.append("    match minor {")
    for d in dumps:
        lines.append("        // %s" % d["full_version"])
        lines.append("        %d => UNICODE_%s," % (int(d["version"].split(".")[1]), d["unicode_version"].replace(".", "_")))
    lines.append("        _ => UNICODE_%s," % tables[-1][0].replace(".", "_"))
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv):
    if argv[:1] == ["--dump"]:
        dump()
        return 0
    check = "--check" in argv
    pythons = [a for a in argv if not a.startswith("--")]
    if not pythons:
        found = find_interpreters()
        missing = [v for v in VERSIONS if v not in found]
        if missing:
            raise SystemExit("gen_opcodes: interpreters missing for %s (pass them as arguments)" % missing)
        pythons = [found[v] for v in VERSIONS]
    dumps = []
    for py in pythons:
        out = subprocess.check_output([py, "-I", os.path.abspath(__file__), "--dump"])
        dumps.append(json.loads(out.decode("utf-8")))
    dumps.sort(key=lambda d: int(d["version"].split(".")[1]))
    files = {"opcodes.rs": gen_opcodes(dumps), "magic.rs": gen_magic(dumps),
             "printable.rs": gen_printable(dumps)}
    status = 0
    for name, text in files.items():
        path = os.path.join(OUT_DIR, name)
        if check:  # comments name the interpreters' patch versions: not compared
            def strip(t):
                return [line for line in t.splitlines() if not line.lstrip().startswith("//")]
            with open(path, encoding="utf-8") as f:
                if strip(f.read()) != strip(text):
                    print("gen_opcodes: %s is out of date" % path, file=sys.stderr)
                    status = 1
        else:
            os.makedirs(OUT_DIR, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print("wrote", os.path.relpath(path, ROOT))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
