"""Disassemble every .pyc of the CPython 3.11 stdlib with spyglass, CPython's
own `dis` and xdis, output to /dev/null, in one run; print times and ratios.

    $SPYGLASS_CACHE/venvs/3.11/bin/python benchmarks/pyc.py [--python PYTHON3.11]

Run it with a CPython 3.11 that has spyglass installed (scripts/test makes
one): `dis` can only read its own version's bytecode, so spyglass and `dis`
are timed in this process on the same files. xdis (from PyPI, pinned below)
lives in a venv of its own under $SPYGLASS_CACHE/bench, never in the
project's dependencies, and is timed in a subprocess of the same interpreter.

Every tool gets the same work per file: read the .pyc, load it, and write the
text disassembly of every code object (recursively) to /dev/null. Files a
tool fails on are counted, not timed out.
"""
from __future__ import annotations

import argparse
import json
import marshal
import os
import subprocess
import sys
import tempfile
import time

XDIS = "xdis==6.3.0"
CACHE = os.environ.get("SPYGLASS_CACHE", os.path.expanduser("~/.cache/spyglass"))

COMPILE = r"""
import os, py_compile, sys, sysconfig
out = sys.argv[1]
stdlib = sysconfig.get_path("stdlib")
n = 0
for root, dirs, files in os.walk(stdlib):
    dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
    for f in sorted(files):
        if f.endswith(".py"):
            try:
                py_compile.compile(os.path.join(root, f), cfile=os.path.join(out, "%05d.pyc" % n), doraise=True)
                n += 1
            except Exception:
                pass
print(n)
"""

XDIS_RUN = r"""
import json, os, sys, time, io, contextlib
from xdis.disasm import disassemble_file
files = sys.argv[1:]
failed = 0
with open(os.devnull, "w") as null:
    t = time.perf_counter()
    for p in files:
        try:
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                disassemble_file(p, outstream=null)
        except Exception:
            failed += 1
    elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "failed": failed}))
"""


def xdis_python(base: str) -> str:
    venv = os.path.join(CACHE, "bench", "xdis-venv")
    py = os.path.join(venv, "bin", "python")
    ok = os.path.exists(py) and subprocess.run(
        [py, "-c", "import xdis, sys; sys.exit(xdis.__version__ != %r)" % XDIS.split("==")[1]]).returncode == 0
    if not ok:
        subprocess.check_call([base, "-m", "venv", "--clear", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", XDIS])
    return py


def time_spyglass(files: list) -> tuple:
    from spyglass import _native

    failed = 0
    with open(os.devnull, "wb") as null:
        t = time.perf_counter()
        for p in files:
            try:
                null.write(_native.pyc_dis_file(p, "text", True))
            except ValueError:
                failed += 1
        return time.perf_counter() - t, failed


def time_dis(files: list) -> tuple:
    import dis

    failed = 0
    with open(os.devnull, "w") as null:
        t = time.perf_counter()
        for p in files:
            try:
                with open(p, "rb") as f:
                    data = f.read()
                dis.dis(marshal.loads(data[16:]), file=null)
            except Exception:
                failed += 1
        return time.perf_counter() - t, failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the CPython 3.11 whose stdlib is compiled")
    args = ap.parse_args()
    if sys.version_info[:2] != (3, 11):
        print("run this benchmark with CPython 3.11 (dis reads only its own version)", file=sys.stderr)
        return 2
    base = getattr(sys, "_base_executable", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        n = int(subprocess.check_output([args.python, "-c", COMPILE, tmp]).decode())
        files = sorted(os.path.join(tmp, f) for f in os.listdir(tmp))
        size = sum(os.path.getsize(f) for f in files)
        xpy = xdis_python(base)
        # warm the file cache, then time each tool
        for f in files:
            with open(f, "rb") as fh:
                fh.read()
        s_time, s_failed = time_spyglass(files)
        d_time, d_failed = time_dis(files)
        r = subprocess.run([xpy, "-c", XDIS_RUN, *files], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        x = json.loads(r.stdout.strip().splitlines()[-1])
    print("disassembling %d .pyc files of the CPython %d.%d stdlib (%.1f MB) to /dev/null"
          % (n, *sys.version_info[:2], size / 1e6))
    print("%-10s %10s %8s %14s" % ("tool", "seconds", "failed", "vs spyglass"))
    for name, t, failed in (("spyglass", s_time, s_failed), ("dis", d_time, d_failed),
                            ("xdis " + XDIS.split("==")[1], x["seconds"], x["failed"])):
        print("%-10s %10.2f %8d %13.1fx" % (name, t, failed, t / s_time))
    print("spyglass is %.1fx faster than dis (target: 10x) and %.1fx faster than xdis"
          % (d_time / s_time, x["seconds"] / s_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
