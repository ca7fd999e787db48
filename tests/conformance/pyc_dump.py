"""Run by every interpreter under test (keep it valid Python 3.6).

    python3.X pyc_dump.py OUT_DIR FILES_LIST

For each source file named in FILES_LIST (one path per line), compile it with
this interpreter, write the .pyc to OUT_DIR/<n>.pyc, and write this
interpreter's own `dis.get_instructions` for every code object (depth first,
in co_consts order) to OUT_DIR/<n>.jsonl, normalised exactly as spyglass's
jsonl is: see spyglass.pyc.JSONL_FIELDS and docs/pyc.md. Prints one JSON
summary line: files compiled, files skipped (syntax errors), instructions.
"""
import dis
import importlib.util
import json
import marshal
import opcode
import os
import sys

HASCONST = set(opcode.hasconst)
MINOR = sys.version_info[1]


def header(source_size):
    h = bytearray(importlib.util.MAGIC_NUMBER)
    if MINOR >= 7:
        h += (0).to_bytes(4, "little")
    h += (0).to_bytes(4, "little")  # mtime
    h += (source_size & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(h)


def argval_json(ins):
    v = ins.argval
    if ins.arg is None or ins.opcode in HASCONST:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, str)):
        return v
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v):
        return list(v)
    return None


def walk(code, depth, parent_qual, parent_is_function, out):
    """Qualified names before 3.11 are rebuilt as spyglass does: the module's
    children keep their name; a function's children get `<locals>`."""
    if MINOR >= 11:
        qual = code.co_qualname
    elif depth <= 1:
        qual = code.co_name
    elif parent_is_function:
        qual = parent_qual + ".<locals>." + code.co_name
    else:
        qual = parent_qual + "." + code.co_name
    line = None
    for ins in dis.get_instructions(code):
        if MINOR >= 13:
            starts = bool(ins.starts_line)
            line = ins.line_number
        else:
            starts = ins.starts_line is not None
            if starts:
                line = ins.starts_line
        pos = getattr(ins, "positions", None)
        out.append({
            "code": qual,
            "offset": ins.offset,
            "opcode": ins.opcode,
            "opname": ins.opname,
            "arg": ins.arg,
            "argval": argval_json(ins),
            "argrepr": ins.argrepr,
            "line": line,
            "starts_line": starts,
            "positions": None if MINOR < 11 else list(pos),
            "is_jump_target": ins.is_jump_target,
        })
    is_function = bool(code.co_flags & 1)  # CO_OPTIMIZED
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            walk(c, depth + 1, qual, is_function, out)


def main():
    out_dir, files_list = sys.argv[1], sys.argv[2]
    with open(files_list, encoding="utf-8") as f:
        files = [line.rstrip("\n") for line in f if line.strip()]
    done = skipped = count = 0
    for n, path in enumerate(files):
        try:
            with open(path, "rb") as f:
                source = f.read()
            code = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            skipped += 1
            continue
        data = marshal.dumps(code)
        with open(os.path.join(out_dir, "%d.pyc" % n), "wb") as f:
            f.write(header(len(source)) + data)
        code = marshal.loads(data)  # disassemble what the .pyc holds
        rows = []
        walk(code, 0, None, False, rows)
        with open(os.path.join(out_dir, "%d.jsonl" % n), "w", encoding="utf-8", errors="surrogatepass") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=True, separators=(",", ":")) + "\n")
        done += 1
        count += len(rows)
    print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "files": done, "skipped": skipped, "instructions": count}))


if __name__ == "__main__":
    main()
