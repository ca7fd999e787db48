"""spyglass.code.info / empty: CPython's C API answers, checked against Python's own."""
import importlib
import sys
import types

import pytest

from spyglass import code as spy_code

CORPUS_MODULES = ["json.decoder", "dataclasses", "typing", "re._parser", "asyncio.base_events",
                  "email._header_value_parser", "argparse", "inspect"]


def all_code_objects(root):
    stack, out = [root], []
    while stack:
        c = stack.pop()
        out.append(c)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return out


def module_code(name):
    spec = importlib.util.find_spec(name)
    return spec.loader.get_code(name)


@pytest.fixture(scope="module")
def corpus():
    codes = []
    for name in CORPUS_MODULES:
        codes.extend(all_code_objects(module_code(name)))
    assert len(codes) > 1000
    return codes


def expected_lines(code):
    lines = {}
    for start, end, line in code.co_lines():
        for offset in range(start, end, 2):
            lines[offset] = line
    return lines


def test_line_and_location_match_cpython_for_every_instruction(corpus):
    checked = 0
    for code in corpus:
        info = spy_code.info(code)
        lines = expected_lines(code)
        positions = list(code.co_positions())
        assert len(positions) == len(info.offsets())
        for offset, position in zip(info.offsets(), positions):
            assert info.line(offset) == lines[offset], (code, offset)
            assert tuple(info.location(offset)) == position, (code, offset)
            checked += 1
    assert checked > 50_000


def test_names_bytecode_and_free_variables(corpus):
    for code in corpus:
        info = spy_code.info(code)
        assert info.bytecode == code.co_code
        assert info.varnames == code.co_varnames
        assert info.cellvars == code.co_cellvars
        assert info.freevars == code.co_freevars
        assert info.nfreevars == len(code.co_freevars)
        assert (info.filename, info.name, info.qualname, info.firstlineno) == (
            code.co_filename, code.co_name, code.co_qualname, code.co_firstlineno)


def test_closures():
    def outer(a, *args, b, **kw):
        c = 1

        def inner(d):
            return a + c + d

        return inner

    o, i = spy_code.info(outer), spy_code.info(outer(1, b=2))
    assert o.varnames == ("a", "b", "args", "kw", "inner")
    assert o.cellvars == ("a", "c") and o.freevars == () and o.nfreevars == 0
    assert i.varnames == ("d",) and i.freevars == ("a", "c") and i.nfreevars == 2
    # bound methods and functions are accepted for their code
    assert spy_code.info(test_closures).code is test_closures.__code__


def test_bad_input_is_named():
    info = spy_code.info(test_bad_input_is_named)
    size = len(info.bytecode)
    for offset in (-2, size, size + 2, 1):
        with pytest.raises(ValueError, match=rf"offset {offset} is not an instruction offset .*< {size}"):
            info.line(offset)
        with pytest.raises(ValueError, match=rf"offset {offset} is not"):
            info.location(offset)
    with pytest.raises(TypeError, match="expected a code object or a function, not int"):
        spy_code.info(3)
    from spyglass import _native
    with pytest.raises(TypeError, match="expected a code object, not str"):
        _native.code_addr2line("x", 0)


def test_empty_matches_pycode_newempty():
    empty = spy_code.empty("fake.c", "c_function", 42)
    assert isinstance(empty, types.CodeType)
    assert (empty.co_filename, empty.co_name, empty.co_firstlineno) == ("fake.c", "c_function", 42)
    with pytest.raises(AssertionError):
        exec(empty)  # CPython's empty code objects are `assert(0)`
    _testcapi = pytest.importorskip("_testcapi")
    reference = _testcapi.code_newempty("fake.c", "c_function", 42)
    for attr in ("co_code", "co_consts", "co_names", "co_varnames", "co_linetable",
                 "co_exceptiontable", "co_flags", "co_stacksize", "co_qualname"):
        assert getattr(empty, attr) == getattr(reference, attr), attr
    assert empty == reference


def test_empty_rejects_nul():
    with pytest.raises(ValueError, match="filename must not contain a NUL"):
        spy_code.empty("a\0b", "f", 1)
