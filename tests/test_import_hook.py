"""The import hook: instrumented imports while tracers are active."""
import importlib
import os
import sys

import pytest

import spyglass


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def make(name, source):
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return str(tmp_path / f"{name}.py")

    yield make
    for n in names:
        sys.modules.pop(n, None)


def tracer_for(*suffixes, events_filter=None):
    class T(spyglass.BaseTracer):
        imported = []

        def should_instrument_file(self, filename):
            return filename.endswith(suffixes)

        def file_passes_filter_for_event(self, evt, filename):
            return events_filter is None or evt in events_filter

        @spyglass.after_int
        def h(self, ret, *_, **__):
            return ret * 100

        @spyglass.after_string
        def s(self, ret, *_, **__):
            return ret.upper()

        @spyglass.register_handler((spyglass.before_import, spyglass.after_import))
        def imp(self, ret, node, frame, event, **kw):
            T.imported.append((event.name, kw.get("qualified_module_name") or kw["module"].__name__))

    return T


def test_instrumented_when_the_tracer_wants_the_file(pkg):
    pkg("hooked_a", "X = 1\nS = 'a'\n")
    pkg("hooked_b", "X = 1\n")
    T = tracer_for("hooked_a.py")
    with T:
        import hooked_a
        import hooked_b
    assert hooked_a.X == 100 and hooked_a.S == "A"
    assert hooked_b.X == 1
    assert ("before_import", "hooked_a") in T.imported and ("after_import", "hooked_a") in T.imported
    assert not any(name == "hooked_b" for _, name in T.imported)


def test_per_event_file_filter(pkg):
    pkg("hooked_c", "X = 1\nS = 'c'\n")
    T = tracer_for("hooked_c.py", events_filter={"after_string"})
    with T:
        import hooked_c
    assert hooked_c.X == 1 and hooked_c.S == "C"


def test_leaving_the_last_tracer_removes_the_hook(pkg):
    from spyglass.importer import _FINDER

    T = tracer_for("hooked_d.py")
    assert _FINDER not in sys.meta_path
    with T:
        assert sys.meta_path[0] is _FINDER
    assert _FINDER not in sys.meta_path
    pkg("hooked_d", "X = 1\n")
    import hooked_d

    assert hooked_d.X == 1


def test_no_instrumented_code_goes_to_pycache(pkg, tmp_path, code_cache):
    path = pkg("hooked_e", "X = 1\n")
    T = tracer_for("hooked_e.py")
    with T:
        importlib.import_module("hooked_e")
    pycache = tmp_path / "__pycache__"
    assert not pycache.exists() or not any(p.name.startswith("hooked_e") for p in pycache.iterdir())
    # spyglass's own cache has it
    assert any(code_cache.rglob("*"))
    sys.modules.pop("hooked_e")
    with T:
        mod = importlib.import_module("hooked_e")
    assert mod.X == 100 and mod.__file__ == path


def test_tracebacks_of_imported_code_show_the_file(pkg):
    pkg("hooked_f", "def boom():\n    return {}['k']\n")
    T = tracer_for("hooked_f.py")
    with T:
        import hooked_f
        with pytest.raises(KeyError) as info:
            hooked_f.boom()
    tb = info.traceback[-1]
    assert tb.path.name == "hooked_f.py" and tb.lineno == 1  # pytest lines count from 0
