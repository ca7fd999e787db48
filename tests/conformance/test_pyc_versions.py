"""Headers and source hashes of .pyc files written by every CPython on the
machine (3.6-3.14), read by spyglass: magic number, PEP 552 flags, timestamp
and size, and SipHash (2-4 up to 3.10, 1-3 from 3.11) checked against each
interpreter's own `_imp.source_hash`. Runs in the 3.11 session (or with
SPYGLASS_PYC_CONFORMANCE=all), next to test_pyc_dis.py."""
import json
import os
import subprocess

import pytest

from spyglass import pyc
from test_pyc_dis import MINORS, find_interpreters, wanted_minors

WRITE = r"""
import importlib.util, json, py_compile, sys
src, out = sys.argv[1], sys.argv[2]
kw = {}
if sys.version_info >= (3, 7):
    kw["invalidation_mode"] = py_compile.PycInvalidationMode.CHECKED_HASH
py_compile.compile(src, cfile=out, doraise=True, **kw)
data = open(src, "rb").read()
h = importlib.util.source_hash(data).hex() if sys.version_info >= (3, 7) else None
print(json.dumps({"magic": importlib.util.MAGIC_NUMBER.hex(), "hash": h}))
"""


@pytest.mark.parametrize("minor", MINORS, ids=["3.%d" % m for m in MINORS])
def test_header_and_source_hash(minor, tmp_path):
    if minor not in wanted_minors():
        pytest.skip("cross-version checks run in the 3.11 session")
    python = find_interpreters().get(minor)
    if python is None:
        pytest.skip("CPython 3.%d is not installed here" % minor)
    src = tmp_path / "m.py"
    src.write_bytes("def f():\n    return 'caf\u00e9'\n".encode() * 3)
    out = tmp_path / "m.pyc"
    info = json.loads(subprocess.check_output([python, "-I", "-c", WRITE, str(src), str(out)]))
    f = pyc.load(out)
    h = f.header
    assert h.magic_bytes.hex() == info["magic"] and h.version == (3, minor)
    if minor >= 7:
        assert (h.kind, h.flags, h.check_source, h.length) == ("hash", 3, True, 16)
        assert h.source_hash.hex() == info["hash"]
        assert f.check_source(str(src))[0] == "match"
        assert f.check_source(src.read_bytes() + b" ")[0] == "mismatch"
    else:
        assert (h.kind, h.length, h.source_size) == ("timestamp", 12, os.path.getsize(src))
    assert [c.qualname for c in f.codes] == ["<module>", "f", "f", "f"]
    assert "caf\u00e9" in f.codes[1].co_consts
