"""spyglass.watch.auto_instrument: the watcher side of instrumenting new code."""
import importlib
import os
import sys

import pytest

from spyglass import watch


class TestTracer:
    """Follows the CodeConsumer protocol: records what it is handed."""

    __test__ = False  # not a pytest class

    def __init__(self):
        self.codes = []

    def on_new_code(self, code):
        self.codes.append(code)

    def names(self):
        return sorted(c.co_name for c in self.codes)


@pytest.fixture
def package(tmp_path, monkeypatch):
    root = tmp_path / "autopkg_root"
    (root / "spyglass_auto_pkg").mkdir(parents=True)
    (root / "spyglass_auto_pkg" / "__init__.py").write_text("def pkg_func():\n    return 1\n")
    (root / "spyglass_auto_pkg" / "mod.py").write_text("def mod_func():\n    def nested():\n        pass\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "spyglass_auto_outside.py").write_text("def outside_func():\n    pass\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(outside))
    yield root / "spyglass_auto_pkg"
    for name in [n for n in sys.modules if n.startswith("spyglass_auto_")]:
        del sys.modules[name]


def test_hands_new_code_under_a_path_prefix_once(package):
    tracer = TestTracer()
    with watch.auto_instrument(tracer, str(package)) as handle:
        importlib.import_module("spyglass_auto_pkg.mod")
        importlib.import_module("spyglass_auto_outside")
        assert handle.active
    assert not handle.active
    assert tracer.names() == ["<module>", "<module>", "mod_func", "nested", "pkg_func"]
    assert {os.path.dirname(c.co_filename) for c in tracer.codes} == {str(package)}
    assert handle.handed == 5
    assert len({id(c) for c in tracer.codes}) == 5  # each code object once
    assert watch.active() == []


def test_callable_filter_and_iterable_of_prefixes(package, tmp_path):
    by_name = TestTracer()
    both = TestTracer()
    with watch.auto_instrument(by_name, lambda f: f.endswith("mod.py")), \
            watch.auto_instrument(both, [str(package), str(tmp_path / "outside")]):
        importlib.import_module("spyglass_auto_pkg.mod")
        importlib.import_module("spyglass_auto_outside")
    assert by_name.names() == ["<module>", "mod_func", "nested"]
    assert "outside_func" in both.names() and "pkg_func" in both.names()


def test_no_filter_takes_everything_but_spyglass_itself():
    tracer = TestTracer()
    handle = watch.auto_instrument(tracer, None)
    try:
        exec(compile("def anywhere(): pass", "<auto-any>", "exec"), {})
        import spyglass
        spyglass_dir = os.path.dirname(spyglass.__file__)
        # spyglass's own code objects are never handed over, even with no filter
        exec(compile("def inside(): pass", os.path.join(spyglass_dir, "fake.py"), "exec"), {})
    finally:
        handle.close()
        handle.close()  # idempotent
    assert "anywhere" in tracer.names() and "inside" not in tracer.names()


def test_tracer_compiling_code_is_not_handed_its_own_code():
    class Compiling(TestTracer):
        def on_new_code(self, code):
            super().on_new_code(code)
            if code.co_name == "trigger":
                exec(compile("def made_by_tracer(): pass", "<auto-own>", "exec"), {})

    tracer = Compiling()
    with watch.auto_instrument(tracer, lambda f: f.startswith("<auto-")):
        exec(compile("def trigger(): pass", "<auto-trigger>", "exec"), {})
    assert "trigger" in tracer.names() and "made_by_tracer" not in tracer.names()


def test_tracer_errors_are_unraisable(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    class Broken:
        def on_new_code(self, code):
            raise RuntimeError("tracer bug")

    with watch.auto_instrument(Broken(), lambda f: f == "<auto-broken>"):
        ns = {}
        exec(compile("z = 1", "<auto-broken>", "exec"), ns)
    assert ns["z"] == 1
    assert [r.exc_type for r in reports] == [RuntimeError]
    assert "AutoInstrument" in reports[0].err_msg and "Broken" in reports[0].err_msg


def test_protocol_errors_are_named():
    with pytest.raises(TypeError, match="needs a tracer with an on_new_code\\(code\\) method; object has none"):
        watch.auto_instrument(object(), None)
    with pytest.raises(TypeError, match="filter must be"):
        watch.auto_instrument(TestTracer(), 42)
    assert watch.active() == []
