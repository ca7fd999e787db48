"""spyglass.opcodes + spyglass.watch.auto_instrument: code objects handed to
a trace's ``on_new_code`` are traced wherever they run while it is active."""
import dis
import gc
import importlib
import sys
import textwrap
import threading
import types
import weakref

import pytest

from spyglass import opcodes as O
from spyglass import watch

MOD = '''
import json

def straight(a, b):
    c = a + b
    return c * 2

def helper(x):
    return [y * 2 for y in range(x)]

def gen(n):
    for i in range(n):
        yield i * i

class Klass:
    attr = 3
    def meth(self):
        def inner(v):
            return v + 1
        f = lambda v: inner(v) + self.attr
        return f(1)

def outside(fn):
    return fn(2)

def main(other=None):
    total = sum(helper(3)) + straight(1, 2)
    g = gen(3)
    vals = [next(g), next(g), next(g)]
    k = Klass().meth()
    json.dumps({"a": 1})
    if other is not None:
        outside(other)
    return total, vals, k
'''

_counter = [0]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Writes a module (fresh name each time) under tmp_path/src and returns
    (directory, import function)."""
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    names = []

    def make(source=MOD):
        _counter[0] += 1
        name = f"sg_auto_mod{_counter[0]}"
        (src / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield src, make
    for n in names:
        sys.modules.pop(n, None)


class Collect:
    def __init__(self):
        self.steps = []

    def __call__(self, stack, frame, instr):
        self.steps.append((frame.f_code, instr.offset, instr.opname, len(stack), threading.get_ident()))


def other_file_function(x):  # a function from another file than the project's
    return x + 1


def _dis_ops(code):
    return {i.offset: i.opname for i in dis.get_instructions(code)}


def _by_name(steps):
    out = {}
    for code, off, op, depth, _ in steps:
        out.setdefault(code.co_qualname, []).append((off, op))
    return out


def _monitoring_events(codes):
    """(tool, code name, events) for every local event still enabled."""
    if sys.version_info < (3, 12):
        return []
    M = sys.monitoring
    return [(tool, c.co_qualname, M.get_local_events(tool, c))
            for c in codes for tool in range(6) if M.get_local_events(tool, c)]


def _all_codes(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _all_codes(c)


def test_imported_module_is_traced_roots_only(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with watch.auto_instrument(t, str(src)) as auto, t:
        mod = importlib.import_module(name)
        result = mod.main(other_file_function)
    assert result == (6 + 6, [0, 1, 4], 5)
    assert auto.handed >= 8 and len(t.roots) == auto.handed
    by_name = _by_name(cb.steps)
    # every function of the module ran traced; nothing of other files did,
    # not even the block that activated the trace (roots only)
    expected = {"<module>", "straight", "helper", "gen", "Klass", "Klass.meth",
                "Klass.meth.<locals>.inner", "Klass.meth.<locals>.<lambda>", "outside", "main"}
    assert expected <= set(by_name), set(by_name)
    assert {c.co_filename for c, *_ in cb.steps} == {mod.__file__}
    # each delivered instruction is the one dis shows at that offset
    codes = {c for c, *_ in cb.steps}
    for code in codes:
        ops = _dis_ops(code)
        for c, off, op, *_ in cb.steps:
            if c is code:
                assert ops[off] == op, (code.co_qualname, off, op)
    # a straight-line function: every instruction once, in order
    straight = [i for i in dis.get_instructions(mod.straight) if i.opname != "CACHE"]
    got = by_name["straight"]
    assert got == [(i.offset, i.opname) for i in straight][-len(got):]
    assert len(got) >= len(straight) - 1  # 3.11 may start after RESUME
    # the generator was resumed three times: its YIELD_VALUE ran three times
    # and instructions after each resumption were delivered
    gen_ops = [op for off, op in by_name["gen"]]
    assert gen_ops.count("YIELD_VALUE") == 3
    between = " ".join(gen_ops).split("YIELD_VALUE")[1:3]
    assert all("STORE_FAST" in seg and "BINARY_OP" in seg for seg in between), gen_ops
    # a class body
    assert any(op == "STORE_NAME" for off, op in by_name["Klass"])
    assert _monitoring_events(t.roots) == []


def test_codes_handed_while_inactive_are_traced_at_activation(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with watch.auto_instrument(t, str(src)):
        mod = importlib.import_module(name)
        assert mod.straight(1, 2) == 6
    assert cb.steps == []
    assert t.roots and all(c.co_filename == mod.__file__ for c in t.roots)
    assert _monitoring_events(t.roots) == []
    with t:
        assert mod.straight(2, 3) == 10
    assert set(_by_name(cb.steps)) == {"straight"}
    # after deactivation nothing more is delivered, no events stay enabled
    n = len(cb.steps)
    assert mod.main() == (12, [0, 1, 4], 5)
    assert len(cb.steps) == n
    assert _monitoring_events(t.roots) == []
    # only the code that ran was analysed (on_new_code itself is lazy)
    assert [c.co_qualname for c in t.codes] == ["straight"]


def test_code_created_by_traced_code_takes_effect_at_once(project):
    src, make = project
    inner = make("def late(x):\n    y = x * 3\n    return y\n")
    outer = make(f"""
        def run():
            import {inner}
            code = compile("def made(z):\\n    return z - 1\\n", __file__, "exec")
            ns = {{}}
            exec(code, ns)
            return {inner}.late(2) + ns["made"](5)
        """)
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with watch.auto_instrument(t, str(src)), t:
        mod = importlib.import_module(outer)
        assert mod.run() == 10
    names = _by_name(cb.steps)
    # `late` was created by an import made by a traced instruction, `made`
    # by compile() in traced code: both traced at their first call
    assert {"run", "late", "made"} <= set(names)
    assert [op for _, op in names["late"]][-1] in ("RETURN_VALUE",)
    assert _monitoring_events(t.roots) == []


def test_follow_from_roots(project):
    src, make = project
    name = make()
    for follow, max_depth, seen in ((False, 8, False), (True, 8, True), (True, 0, False)):
        sys.modules.pop(name, None)
        cb = Collect()
        t = O.Trace(callback=cb, block=False, follow=follow, max_depth=max_depth)
        with watch.auto_instrument(t, str(src)), t:
            mod = importlib.import_module(name)
            mod.outside(other_file_function)
        names = set(_by_name(cb.steps))
        assert "outside" in names
        assert ("other_file_function" in names) is seen, (follow, max_depth, names)


def test_roots_on_other_threads_are_not_traced(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    out = []
    with watch.auto_instrument(t, str(src)), t:
        mod = importlib.import_module(name)
        th = threading.Thread(target=lambda: out.append(mod.main()))
        th.start()
        th.join()
        mod.straight(0, 0)
    assert out == [(12, [0, 1, 4], 5)]
    assert {tid for *_, tid in cb.steps} == {threading.get_ident()}
    assert set(_by_name(cb.steps)) == {"<module>", "Klass", "straight"}


def test_block_true_traces_the_block_and_the_roots(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb)  # block=True is the default
    with watch.auto_instrument(t, str(src)):
        with t:
            mod = importlib.import_module(name)
            mod.straight(1, 1)
    names = set(_by_name(cb.steps))
    assert {"test_block_true_traces_the_block_and_the_roots", "<module>", "straight"} <= names


def test_recorder_records_roots(project, tmp_path):
    src, make = project
    name = make()
    rec_path = tmp_path / "auto.sgops"
    r = O.Recorder(rec_path, reprs="none", block=False)
    with watch.auto_instrument(r, str(src)), r:
        mod = importlib.import_module(name)
        mod.main(other_file_function)
    assert _monitoring_events(r.roots) == []
    rec = O.read(rec_path)
    instrs = [e for e in rec.events() if e["kind"] == "instr"]
    assert {rec.codes[e["code"]]["filename"] for e in instrs} == {mod.__file__}
    got = [(rec.codes[e["code"]]["qualname"], e["offset"], e["opname"], e["depth"]) for e in instrs]
    # the same run under a Trace delivers the same instructions and depths
    name2 = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with watch.auto_instrument(t, str(src)), t:
        mod2 = importlib.import_module(name2)
        mod2.main(other_file_function)
    want = [(c.co_qualname, off, op, depth) for c, off, op, depth, _ in cb.steps]
    assert got == want
    # frames of functions are entered by a start, generators also resumed
    enters = {}
    for e in rec.events():
        if e["kind"] == "enter":
            enters.setdefault(rec.codes[e["code"]]["qualname"], []).append(e["how"])
    assert enters["straight"] == ["start"] and enters["main"] == ["start"]
    # (then the close() when it is dropped: a resume on 3.11, a throw on 3.12+
    # where the interpreter runs the frame for it)
    assert enters["gen"][:3] == ["start", "resume", "resume"]
    assert set(enters["gen"][3:]) <= {"resume", "throw"}


def test_on_new_code_direct_refcounts_and_errors():
    ns = {}
    exec(compile("def f(a):\n    return a + 1\n", "<sg-auto-direct>", "exec"), ns)
    f = ns["f"]
    code = f.__code__
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with pytest.raises(TypeError, match="code object"):
        t.on_new_code(f)
    gc.collect()
    before = sys.getrefcount(code)
    t.on_new_code(code)
    t.on_new_code(code)  # twice is once
    assert t.roots == [code]
    with t:
        assert f(1) == 2
    assert {c for c, *_ in cb.steps} == {code}
    assert _monitoring_events([code]) == []
    del t, cb
    gc.collect()
    assert sys.getrefcount(code) == before
    # spyglass's own code is never a root
    t = O.Trace(callback=Collect(), block=False)
    t.on_new_code(O.Trace.__init__.__code__)
    assert t.roots == []


def test_handed_codes_are_released_with_the_trace(project):
    src, make = project
    name = make()
    t = O.Trace(callback=Collect(), block=False)
    with watch.auto_instrument(t, str(src)), t:
        mod = importlib.import_module(name)
        mod.main()
    refs = [weakref.ref(c) for c in _all_codes(mod.main.__globals__["main"].__code__)]
    refs += [weakref.ref(c) for c in t.roots]
    assert refs
    del mod, t
    sys.modules.pop(name)
    gc.collect()
    assert [r() for r in refs if r() is not None] == []


def test_clear_roots(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    with watch.auto_instrument(t, str(src)):
        mod = importlib.import_module(name)
    t.clear_roots()
    assert t.roots == []
    with t:
        mod.straight(1, 2)
    assert cb.steps == []


def test_codes_created_on_another_thread_are_roots(project):
    src, make = project
    name = make()
    cb = Collect()
    t = O.Trace(callback=cb, block=False)
    errors = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = errors.append
    try:
        with watch.auto_instrument(t, str(src)) as auto, t:
            th = threading.Thread(target=importlib.import_module, args=(name,))
            th.start()
            th.join()
            mod = sys.modules[name]
            assert mod.straight(1, 2) == 6
    finally:
        sys.unraisablehook = old_hook
    assert errors == []
    assert auto.handed and len(t.roots) == auto.handed
    # the module body ran on the other thread (not traced); `straight`,
    # created there, runs traced here
    assert set(_by_name(cb.steps)) == {"straight"}
    assert _monitoring_events(t.roots) == []
