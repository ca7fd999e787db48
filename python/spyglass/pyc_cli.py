"""CLI: `spyglass pyc`, `spyglass dis`, `spyglass explain`."""
from __future__ import annotations

import argparse
import datetime
import os
import sys

from spyglass import pyc

CO_FLAGS = [
    (0x1, "OPTIMIZED"), (0x2, "NEWLOCALS"), (0x4, "VARARGS"), (0x8, "VARKEYWORDS"), (0x10, "NESTED"),
    (0x20, "GENERATOR"), (0x40, "NOFREE"), (0x80, "COROUTINE"), (0x100, "ITERABLE_COROUTINE"),
    (0x200, "ASYNC_GENERATOR"),
]


def pretty_flags(flags: int) -> str:
    names = [n for bit, n in CO_FLAGS if flags & bit]
    rest = flags & ~sum(bit for bit, _ in CO_FLAGS)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def header_lines(f: pyc.Pyc) -> list:
    h = f.header
    out = ["file: %s (%d bytes)" % (f.filename, f.size)]
    if h is None:
        out.append("raw marshal data of CPython %d.%d" % f.version)
        return out
    out.append("magic: %d (%s) %s -> CPython %d.%d%s" % (
        h.magic, h.magic_bytes.hex(), h.label, h.version[0], h.version[1],
        " (%s)" % h.note if h.note else ""))
    out.append("header: %d bytes" % h.length)
    if h.flags is not None:
        out.append("flags: 0x%x (%s)" % (h.flags, "hash-based, %s" % (
            "check source" if h.check_source else "unchecked") if h.kind == "hash" else "timestamp-based"))
    if h.kind == "hash":
        out.append("source hash: %s (SipHash-%s of the source keyed with the magic number)" % (
            h.source_hash.hex(), "1-3" if h.version >= (3, 11) else "2-4"))
    else:
        when = datetime.datetime.fromtimestamp(h.mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.append("source mtime: %d (%s)" % (h.mtime, when))
        if h.source_size is not None:
            out.append("source size: %d bytes (mod 2**32)" % h.source_size)
    marshal_len = f.end - h.length
    trailing = f.size - f.end
    out.append("marshal: %d bytes at offset %d, %d references stored%s" % (
        marshal_len, h.length, f._native.ref_count, ", %d trailing bytes ignored" % trailing if trailing else ""))
    return out


def code_line(code: pyc.Code) -> str:
    if code.repeated:
        return "%s%s  (the same code object again, through a marshal reference)" % ("  " * code.depth, code.qualname)
    posonly = code.co_posonlyargcount
    args = "args %d%s, kwonly %d" % (code.co_argcount, "" if posonly is None else " (posonly %d)" % posonly,
                                     code.co_kwonlyargcount)
    return "%s%s  line %d, %s, locals %d, stack %d, flags %s, %d bytes of bytecode, %d consts, %d names" % (
        "  " * code.depth, code.qualname, code.co_firstlineno, args, code.co_nlocals, code.co_stacksize,
        pretty_flags(code.co_flags), len(code.co_code), len(code.co_consts), len(code.co_names))


def layout_lines(f: pyc.Pyc) -> list:
    out = ["marshal layout (offset, type code, reference, field, value):"]
    for e in f.layout():
        ref = " ref#%d" % e.ref_index if e.ref_index is not None else ""
        if e.ref_target is not None:
            ref = " -> ref#%d" % e.ref_target
        field = " %s =" % e.field if e.field else ""
        out.append("%8d %s%r%s%s %s" % (e.offset, "  " * e.depth, e.type_code, ref, field, e.summary))
    return out


def load_or_compile(path: str, layout: bool = False) -> pyc.Pyc:
    if path.endswith(".py") or path.endswith(".pyw"):
        with open(path, "rb") as fh:
            source = fh.read()
        return pyc.load(pyc.compile_source(source, path), filename=path + " (compiled by this interpreter)",
                        layout=layout)
    return pyc.load(path, layout=layout)


def run_pyc(args: argparse.Namespace) -> int:
    f = pyc.load(args.file, layout=args.layout)
    lines = header_lines(f)
    status = None
    if args.source:
        status, expected, found = f.check_source(args.source)
        detail = "" if status != "mismatch" else " (file says %s, source gives %s)" % (expected, found)
        lines.append("source check against %s: %s%s" % (args.source, status, detail))
    lines.append("code objects: %d" % len(f.codes))
    lines += [code_line(c) for c in f.codes]
    if args.layout:
        lines += layout_lines(f)
    print("\n".join(lines))
    return 1 if status == "mismatch" else 0


def run_dis(args: argparse.Namespace) -> int:
    f = load_or_compile(args.file)
    out = f.dis(args.format, binary=True)
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from spyglass import pipeline

    with open(args.file, "rb") as fh:
        source = fh.read()
    ex = pipeline.explain(source, args.file)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as fh:
            fh.write(pipeline.to_html(ex))
        print("wrote %s" % args.html)
    else:
        sys.stdout.write(pipeline.to_text(ex))
    return 0


def guarded(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (pyc.PycError, OSError, SyntaxError) as e:
            print("spyglass %s: %s" % (args.command, e), file=sys.stderr)
            return 1
        except BrokenPipeError:  # pragma: no cover - `| head`
            return 0
    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pyc", help="show a .pyc file's header and code-object tree (any CPython 3.0-3.14)")
    p.add_argument("file", help="a .pyc file")
    p.add_argument("--source", metavar="FILE.py", help="check this source against the header (hash or size)")
    p.add_argument("--layout", action="store_true", help="also list every marshalled object with its offset")
    p.set_defaults(func=guarded(run_pyc))

    p = sub.add_parser("dis", help="disassemble a .pyc (CPython 3.6-3.14) or a .py (this interpreter)")
    p.add_argument("file", help="a .pyc file, or a .py file to compile with this interpreter")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text: as the writing version's dis.dis; jsonl: one JSON object per instruction")
    p.set_defaults(func=guarded(run_dis))

    p = sub.add_parser("explain", help="show each stage of compiling a .py: tokens, AST, bytecode, .pyc")
    p.add_argument("file", help="a .py file")
    p.add_argument("--html", metavar="OUT.html", help="write a cross-linked HTML page instead of text")
    p.set_defaults(func=guarded(run_explain))
