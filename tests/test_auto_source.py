"""auto_instrument with a source-level tracer (BaseTracer): files passing the
filter are instrumented by the import hook while the tracer is active, and
(3.12+) functions made from their code later run the instrumented twin."""
import importlib
import sys
import traceback

import pytest

import spyglass
from spyglass import watch

needs_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="function watchers are 3.12+")

MODULE = '''\
top = 2 + 3

def add(a, b):
    return a + b

def outer(n):
    def inner(k):
        return k * n
    return inner(n + 1)

class Box:
    size = 4 + 4
    def grow(self, by):
        return self.size + by

def fails():
    x = 1 + 1
    raise ValueError(x)

class Big(Box):
    def grow(self, by):
        return super().grow(by) * 10
'''


class Binops(spyglass.BaseTracer):
    def __init__(self):
        super().__init__()
        self.seen = []

    @spyglass.after_binop
    def binop(self, ret, node, frame, event, **_):
        self.seen.append((frame.f_code.co_name, ret))


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    inside = tmp_path / "inside"
    outside = tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "sg_auto_src_in.py").write_text(MODULE)
    (inside / "sg_auto_src_later.py").write_text("def later(a):\n    return a + 100\n")
    (outside / "sg_auto_src_out.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(inside))
    monkeypatch.syspath_prepend(str(outside))
    yield inside
    for name in [n for n in sys.modules if n.startswith("sg_auto_src_")]:
        del sys.modules[name]


def test_import_hook_instruments_the_files_while_the_tracer_is_active(pkg):
    t = Binops()
    with watch.auto_instrument(t, str(pkg)), t:
        mod = importlib.import_module("sg_auto_src_in")
        out = importlib.import_module("sg_auto_src_out")
        assert mod.add(1, 2) == 3 and out.add(1, 2) == 3
    # module code ran instrumented (top = 2 + 3); the outside file did not
    assert ("<module>", 5) in t.seen and ("add", 3) in t.seen
    assert t.seen.count(("add", 3)) == 1
    # after close, new imports from the files are plain again
    t.seen.clear()
    with t:
        later = importlib.import_module("sg_auto_src_later")
        assert later.later(1) == 101
    assert t.seen == []


@needs_312
def test_functions_made_while_the_tracer_is_inactive_run_instrumented(pkg):
    t = Binops()
    with watch.auto_instrument(t, str(pkg)):
        mod = importlib.import_module("sg_auto_src_in")  # plain: t is not active
    assert t.seen == []
    with t:
        assert mod.add(2, 5) == 7
        assert mod.outer(3) == 12
        assert mod.Box().grow(1) == 9
        assert mod.Big().grow(1) == 90  # zero-argument super() keeps working
    assert ("add", 7) in t.seen
    assert ("outer", 4) in t.seen and ("inner", 12) in t.seen  # the closure came with its twin
    assert ("grow", 9) in t.seen and ("grow", 90) in t.seen
    assert ("<module>", 5) not in t.seen  # module code had run before: it cannot be taken over
    # outside the tracer the instrumented functions behave as before and fire nothing
    t.seen.clear()
    assert mod.add(1, 1) == 2 and t.seen == []


@needs_312
def test_tracebacks_of_taken_over_functions_point_at_the_source(pkg):
    t = Binops()
    with watch.auto_instrument(t, str(pkg)):
        mod = importlib.import_module("sg_auto_src_in")
    with t, pytest.raises(ValueError) as info:
        mod.fails()
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.name == "fails" and frame.lineno == 18 and frame.line == "raise ValueError(x)"
    assert ("fails", 2) in t.seen


@needs_312
def test_after_close_new_functions_are_left_alone(pkg):
    t = Binops()
    handle = watch.auto_instrument(t, str(pkg))
    mod = importlib.import_module("sg_auto_src_in")
    handle.close()
    assert spyglass._native.swap_count() == 0
    importlib.reload(mod)  # makes new functions from new code: not taken over
    with t:
        assert mod.add(1, 2) == 3
    assert t.seen == []


@needs_312
def test_code_of_a_changed_file_is_not_replaced(pkg):
    t = Binops()
    with watch.auto_instrument(t, str(pkg)):
        code = compile("def add(a, b):\n    return a - b\n", str(pkg / "sg_auto_src_in.py"), "exec")
        ns = {}
        exec(code, ns)  # `add` exists in the file, with another body: shapes match, bodies do not
    with t:
        assert ns["add"](5, 2) == 3
    assert t.seen == []  # its own code ran, not the file's


def test_a_bytecode_style_consumer_is_not_told_about_files():
    class Plain:
        def __init__(self):
            self.codes = []

        def on_new_code(self, code):
            self.codes.append(code)

    with watch.auto_instrument(Plain(), lambda f: False) as h:
        assert h.active
