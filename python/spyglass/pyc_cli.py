"""CLI: `spyglass pyc`, `spyglass dis`, `spyglass explain`."""
from __future__ import annotations

import argparse
import datetime
import os
import sys

from spyglass import pyc
from spyglass.cli_support import UsageError, check_output_file, os_error, syntax_error, write_output

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


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise UsageError(os_error(path, e), status=1) from None


def _compile(source: bytes, path: str) -> bytes:
    """The .pyc bytes of `source` as this interpreter writes them; a source
    that does not compile is a one-line UsageError (file, line, column)."""
    try:
        return pyc.compile_source(source, path)
    except SyntaxError as e:
        raise UsageError(syntax_error(e, path), status=1) from None
    except ValueError as e:  # null bytes, on some versions
        raise UsageError("%s: SyntaxError: %s" % (path, e), status=1) from None
    except (RecursionError, MemoryError) as e:  # nesting too deep for the compiler
        raise UsageError("%s: %s: %s" % (path, type(e).__name__, e), status=1) from None


def _looks_like_pyc(data: bytes) -> bool:
    return len(data) >= 4 and data[2:4] == b"\r\n" and data[:2] != b"\r\n"


def load_or_compile(path: str, layout: bool = False) -> pyc.Pyc:
    if path.endswith(".py") or path.endswith(".pyw"):
        return pyc.load(_compile(_read(path), path), filename=path + " (compiled by this interpreter)",
                        layout=layout)
    return _load(path, layout)


def _load(path: str, layout: bool = False) -> pyc.Pyc:
    data = _read(path)
    try:
        return pyc.load(data, layout=layout, filename=path)
    except pyc.PycError as e:
        hint = ""
        if path.endswith((".py", ".pyw")) or (
                not path.endswith(".pyc") and not _looks_like_pyc(data) and b"\0" not in data[:512]):
            hint = " (a source file? `spyglass dis` and `spyglass explain` take .py files)"
        raise UsageError("%s%s" % (e, hint), status=1) from None


def run_pyc(args: argparse.Namespace) -> int:
    f = _load(args.file, layout=args.layout)
    lines = header_lines(f)
    status = None
    if args.source:
        status, expected, found = f.check_source(_read(args.source))
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

    if args.html:
        check_output_file(args.html, "--html")
    source = _read(args.file)
    if _looks_like_pyc(source) and not args.file.endswith((".py", ".pyw")):
        raise UsageError("%s is a .pyc file; explain takes Python source (see `spyglass pyc` and "
                         "`spyglass dis` for .pyc files)" % args.file)
    _compile(source, args.file)  # a source that does not compile: one line, before any stage runs
    ex = pipeline.explain(source, args.file)
    if args.html:
        write_output(args.html, "--html", pipeline.to_html(ex))
        print("wrote %s" % args.html)
    else:
        sys.stdout.write(pipeline.to_text(ex))
    return 0


def guarded(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            try:
                return fn(args)
            finally:
                sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader went away
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0
        except OSError as e:
            raise UsageError(os_error(e.filename, e) if e.filename else str(e), status=1) from None
        except SyntaxError as e:
            raise UsageError(syntax_error(e), status=1) from None
        except pyc.PycError as e:
            raise UsageError(str(e), status=1) from None
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
