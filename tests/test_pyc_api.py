"""spyglass.pyc on files written by the running interpreter: header, code
tree, constants and instructions against what the interpreter itself says."""
import dis
import importlib.util
import marshal
import py_compile
import re
import sys

import pytest

from spyglass import pyc

SAMPLE = '''
import os as _os

X = -1267650600228229401496703205376, 1180591620717411303424, -5, 1.5e300, 2.9802322387695312e-08, 3 - 4j, b"\\x00'", "caf\\u00e9 \\ud800"

def outer(a, /, b=1, *args, c, **kw):
    """doc"""
    def inner(x):
        nonlocal b
        b += x
        return {k: v for k, v in kw.items() if k in frozenset({"p", "q"})}
    for i in range(a):
        if i % 2:
            continue
        try:
            inner(i)
        except (KeyError, ValueError) as e:
            raise RuntimeError from e
        finally:
            pass
    return lambda: super

class K(object):
    attr: int = 3
    def method(self):
        return super().method() + self.attr

async def coro():
    async with _os as f:
        async for x in f:
            await x
'''


@pytest.fixture(scope="module")
def compiled():
    code = compile(SAMPLE, "sample.py", "exec", dont_inherit=True)
    data = pyc.compile_source(SAMPLE, "sample.py")
    return code, data, pyc.load(data, filename="sample.pyc")


def walk(code):
    yield code
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            yield from walk(c)


def test_header_of_this_interpreter(compiled):
    _, data, f = compiled
    h = f.header
    assert h.magic_bytes == importlib.util.MAGIC_NUMBER
    assert h.version == sys.version_info[:2] == f.version
    assert (h.flags, h.length, h.kind, h.source_size) == (0, 16, "timestamp", len(SAMPLE.encode()))
    assert f.end == len(data)
    assert "sample.pyc" in repr(f)


def test_code_tree_and_fields_match_the_interpreter(compiled):
    code, data, f = compiled
    real = list(walk(marshal.loads(data[16:])))
    assert [c.qualname for c in f.codes] == [c.co_qualname for c in real]
    for mine, theirs in zip(f.codes, real):
        for field in ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize",
                      "co_flags", "co_code", "co_names", "co_varnames", "co_cellvars", "co_freevars",
                      "co_filename", "co_name", "co_qualname", "co_firstlineno", "co_linetable",
                      "co_exceptiontable"):
            assert getattr(mine, field) == getattr(theirs, field), (mine.qualname, field)
        assert mine.lines() == list(theirs.co_lines())
        assert mine.positions() == list(theirs.co_positions())
        consts = [c for c in mine.co_consts]
        assert len(consts) == len(theirs.co_consts)
        for a, b in zip(consts, theirs.co_consts):
            if isinstance(a, pyc.Code):
                assert a.qualname == b.co_qualname
            else:
                assert type(a) is type(b) and (a == b or a != a), (a, b)


def test_constants_of_every_kind(compiled):
    _, _, f = compiled
    consts = f.code.co_consts
    x = next(c for c in consts if isinstance(c, tuple) and len(c) == 8)
    assert x[0] == -(2 ** 100) and x[1] == 2 ** 70 and x[2] == -5
    assert x[4] == 2.9802322387695312e-08 and x[5] == 3 - 4j and x[6] == b"\x00'"
    assert x[7] == "caf\u00e9 \ud800"  # lone surrogate kept (surrogatepass)


def test_instructions_match_dis(compiled):
    _, data, f = compiled
    real = list(walk(marshal.loads(data[16:])))
    for mine, theirs in zip(f.codes, real):
        got = pyc.instructions(mine)
        want = list(dis.get_instructions(theirs))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert (g.offset, g.opcode, g.opname, g.arg, normalise(g.argrepr), g.is_jump_target) == \
                   (w.offset, w.opcode, w.opname, w.arg, normalise(w.argrepr), w.is_jump_target)
            assert g.positions == tuple(w.positions)
            if w.opcode not in dis.hasconst:
                assert g.argval == w.argval, (g, w)
            if sys.version_info >= (3, 13):
                assert (g.starts_line, g.line, g.label) == (w.starts_line, w.line_number, w.label)
            else:
                assert g.starts_line == (w.starts_line is not None)


def normalise(text):
    return re.sub(r"(<code object .*? at )0x[0-9a-f]+", r"\1?", text)


def test_text_is_the_versions_dis_dis(compiled, capsys):
    code, data, f = compiled
    dis.dis(marshal.loads(data[16:]))
    want = capsys.readouterr().out
    assert normalise(f.dis("text")) == normalise(want)


def test_a_py_compile_file(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    return 42\n")
    out = py_compile.compile(str(src), cfile=str(tmp_path / "m.pyc"))
    f = pyc.load(out)
    assert f.header.mtime == int(src.stat().st_mtime) and f.header.source_size == src.stat().st_size
    assert [c.qualname for c in f.codes] == ["<module>", "f"]
    assert f.check_source(str(src))[0] == "match"
    assert f.check_source(b"other")[0] == "mismatch"


def test_hash_based_pyc_is_checked_with_the_versions_siphash(tmp_path):
    source = b"x = 1\ny = 'two'\n"
    data = pyc.compile_source(source, "h.py", hash_based=True)
    f = pyc.load(data)
    assert f.header.kind == "hash" and f.header.check_source is True
    assert f.header.source_hash == importlib.util.source_hash(source)
    assert f.check_source(source) == ("match", None, None)
    status, expected, found = f.check_source(source + b"#")
    assert status == "mismatch" and expected == importlib.util.source_hash(source).hex()


def test_magic_table_covers_3_0_to_3_14():
    table = pyc.magic_table()
    releases = {(major, minor) for _, major, minor, _, _ in table}
    assert {(3, m) for m in range(15)} <= releases
    own = int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")
    assert any(m == own and (3, mi) == sys.version_info[:2] for m, _, mi, _, _ in table)
    assert pyc.disassembly_versions() == [(3, m) for m in range(6, 15)]


def test_layout_records_every_object(compiled):
    _, data, _ = compiled
    f = pyc.load(data, layout=True)
    layout = f.layout()
    assert layout[0].offset == 16 and layout[0].type_code == "c" and layout[0].code_index == 0
    fields = {e.field for e in layout}
    assert {"co_code", "co_consts", "co_names", "co_linetable", "co_qualname"} <= fields
    refs = [e for e in layout if e.ref_target is not None]
    assert refs and all(e.type_code == "r" for e in refs)
    assert max(e.end for e in layout) == len(data)
