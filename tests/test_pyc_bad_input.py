"""Truncated, corrupt and hostile .pyc files: a PycError naming the file,
the offset and what was expected; never a crash or a hang."""
import random
import subprocess
import sys

import pytest

from spyglass import pyc

SOURCE = "def f(a, *b, **c):\n    return [x for x in a if x not in {'p', 1.5, b'q'}]\nclass C:\n    z = f\n"


def header(magic=None):
    import importlib.util
    m = importlib.util.MAGIC_NUMBER if magic is None else magic.to_bytes(2, "little") + b"\r\n"
    return m + bytes(12)


def error_of(data, name="bad.pyc"):
    with pytest.raises(pyc.PycError) as e:
        f = pyc.load(data, filename=name)
        f.dis("text")
    return str(e.value)


def test_every_truncation_is_an_error_naming_file_and_offset():
    data = pyc.compile_source(SOURCE, "t.py")
    for n in range(len(data)):
        msg = error_of(data[:n], "cut.pyc")
        assert msg.startswith("cut.pyc: offset "), msg
        assert "truncated" in msg or "needs at least" in msg, msg


@pytest.mark.parametrize("data, expected", [
    (b"", "truncated header"),
    (b"\x00\x01\x02\x03" + bytes(20), "bad magic number 00010203"),
    (header(3999) + b"N", "unknown magic number 3999"),
    (header(62211) + b"N", "only CPython 3 files can be read"),
    (header() + b"r\x07\x00\x00\x00", "reference 7 out of range"),
    (header() + b"(\xff\xff\xff\x7f", "needs at least 2147483647 bytes"),
    (header() + b"s\xff\xff\xff\xff", "negative length"),
    (header() + b")\x01" * 3000 + b"N", "nesting deeper than 2000"),
    (header() + b"\xa8\x01\x00\x00\x00r\x00\x00\x00\x00", "still being read"),
    (header() + b"Q", "unknown type code 'Q'"),
    (header() + b"u\x01\x00\x00\x00\xff", "invalid UTF-8"),
    (header() + b"c" + bytes(20) + b"N", "co_code must be bytes, found None"),
])
def test_hostile_inputs(data, expected):
    msg = error_of(data)
    assert msg.startswith("bad.pyc: offset ") and expected in msg, msg


def test_old_versions_read_but_do_not_disassemble():
    # 3.6's marshalled module under a 3.4 header (12 bytes; same code layout as 3.0-3.7)
    import os
    sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "pyc", "tests", "data",
                          "sample-3.6.pyc")
    with open(sample, "rb") as fh:
        body = fh.read()[12:]
    f = pyc.load((3310).to_bytes(2, "little") + b"\r\n" + bytes(8) + body, filename="old.pyc")
    assert f.header.version == (3, 4) and f.header.length == 12 and f.header.label == "Python 3.4rc2"
    assert f.code.co_posonlyargcount is None and "outer" in [c.co_name for c in f.codes]
    with pytest.raises(pyc.PycError, match="old.pyc: .*disassembly supports CPython 3.6-3.14"):
        f.dis()
    # 3.0-3.2: 8-byte header
    f = pyc.load((3131).to_bytes(2, "little") + b"\r\n" + bytes(4) + body)
    assert f.header.version == (3, 0) and f.header.length == 8 and f.header.source_size is None


def test_random_mutations_never_crash():
    rng = random.Random(1234)
    base = pyc.compile_source(SOURCE * 3, "m.py")
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(16, len(data))
            data[i] = rng.randrange(256)
        try:
            f = pyc.load(bytes(data))
            f.dis("text")
            f.dis("jsonl")
        except pyc.PycError as e:
            assert "offset" in str(e)


def test_cli_reports_errors_with_exit_status_1(tmp_path):
    bad = tmp_path / "broken.pyc"
    bad.write_bytes(header() + b"(\x05\x00\x00\x00N")
    r = subprocess.run([sys.executable, "-m", "spyglass", "dis", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert str(bad) in r.stderr and "offset" in r.stderr and "Traceback" not in r.stderr


def test_deeply_nested_constants_convert():
    import marshal
    deep = None
    for _ in range(1900):
        deep = (deep,)
    code = compile("x = (1, 2)", "d.py", "exec")
    consts = list(code.co_consts)
    consts[consts.index((1, 2))] = deep
    code = code.replace(co_consts=tuple(consts))
    import importlib.util
    data = importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)
    f = pyc.load(data)
    value = next(c for c in f.code.co_consts if isinstance(c, tuple))
    depth = 0
    while isinstance(value, tuple):
        value, depth = value[0], depth + 1
    assert depth == 1900
    assert "(((((" in f.dis()
