#!/usr/bin/env python3
"""Regenerate crates/pyc/tests/data/sample-3.X.{pyc,jsonl}.

Each installed CPython 3.6-3.14 (found as scripts/gen_opcodes.py finds them)
compiles crates/pyc/tests/data/sample.py and writes its own
`dis.get_instructions` of the result with tests/conformance/pyc_dump.py: the
Rust tests (crates/pyc/tests/versions.rs) check the disassembler against
them without needing any interpreter; the fuzz targets use the .pyc files as
seeds.
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from gen_opcodes import find_interpreters  # noqa: E402

DATA = os.path.join(ROOT, "crates", "pyc", "tests", "data")
DUMPER = os.path.join(ROOT, "tests", "conformance", "pyc_dump.py")


DIS_TEXT = """
import dis, marshal, sys
data = open(sys.argv[1], "rb").read()
code = marshal.loads(data[16 if sys.version_info >= (3, 7) else 12:])
if sys.version_info < (3, 7):  # 3.6's dis.dis does not recurse; do what 3.7+ does
    def rec(co, first=True):
        if not first:
            print()
            print("Disassembly of %r:" % (co,))
        dis.disassemble(co)
        for c in co.co_consts:
            if hasattr(c, "co_code"):
                rec(c, False)
    rec(code)
else:
    dis.dis(code)
"""


def main():
    for version, python in sorted(find_interpreters().items(), key=lambda kv: int(kv[0].split(".")[1])):
        with tempfile.TemporaryDirectory() as tmp:
            listing = os.path.join(tmp, "files.txt")
            with open(listing, "w") as f:
                f.write("sample.py\n")  # relative: no machine path in the files
            subprocess.check_call([python, "-I", "-W", "ignore", DUMPER, tmp, listing], stdout=subprocess.DEVNULL,
                                  cwd=DATA)
            for ext in ("pyc", "jsonl"):
                shutil.copy(os.path.join(tmp, "0." + ext), os.path.join(DATA, "sample-%s.%s" % (version, ext)))
        # and the text of that version's dis.dis
        text = subprocess.check_output([python, "-I", "-c", DIS_TEXT, os.path.join(DATA, "sample-%s.pyc" % version)])
        with open(os.path.join(DATA, "sample-%s.txt" % version), "wb") as f:
            f.write(text)
        print("wrote sample-%s.{pyc,jsonl,txt}" % version)


if __name__ == "__main__":
    main()
