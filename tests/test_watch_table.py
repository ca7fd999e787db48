"""watch.EVENT_TABLE, the documented table of what fires on each version, checked
cell by cell against the running interpreter (and against docs/watch.md)."""
import gc
import importlib
import itertools
import marshal
import pathlib
import py_compile
import sys
import types

import pytest

from spyglass import code as spy_code
from spyglass import watch

COLUMN = "py311" if sys.version_info < (3, 12) else "py312"
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "watch.md"
_unique = itertools.count()


def fresh_name(tag):
    return f"<table-{tag}-{next(_unique)}>"


class Seen:
    """Watches CREATE (and DESTROY where supported) for one file name."""

    def __init__(self, filename):
        self.filename = filename
        self.events = []

    def __call__(self, event, code):
        if code.co_filename == self.filename:
            self.events.append((event.name, code.co_name))

    def __enter__(self):
        self._id = watch.add(self)
        return self

    def __exit__(self, *exc):
        watch.clear(self._id)

    def created(self):
        return [name for ev, name in self.events if ev == "CREATE"]


def run(code):
    try:
        exec(code, {"a": 1})
    except AssertionError:  # the body of PyCode_NewEmpty's code objects
        pass


USES = {
    "exec": run,
    "FunctionType": lambda c: types.FunctionType(c, {}),
    "__code__": lambda c: setattr(lambda: None, "__code__", c),
}


def classify(make, uses=("exec", "FunctionType", "__code__")):
    """"created" if making the code object fires CREATE; "first-use" if only
    each of `uses` does; "none" if nothing fires."""
    kinds = set()
    for use in uses:
        filename = fresh_name("make")
        with Seen(filename) as seen:
            obj = make(filename)
            if seen.created():
                return "created"
            USES[use](obj)
            kinds.add("first-use" if seen.created() else "none")
    return kinds.pop() if len(kinds) == 1 else f"mixed {sorted(kinds)}"


def source_code(filename):
    return compile("a = 1\n", filename, "exec")


def prebuilt(filename):
    """A code object made before any watcher sees it."""
    return compile("a", filename, "eval")


def probe_compile():
    return classify(source_code)


def probe_exec_source():
    name = f"_table_exec_{next(_unique)}"
    with Seen("<string>") as seen:
        exec(f"def {name}(): pass", {})
    return "created" if name in seen.created() else "none"


def _import_probe(tmp_path, monkeypatch, sourceless):
    monkeypatch.syspath_prepend(str(tmp_path))
    modname = f"spyglass_table_probe_{next(_unique)}"
    src = tmp_path / f"{modname}.py"
    src.write_text("def f():\n    return 1\n")
    filename = str(src)
    if sourceless:
        filename = fresh_name("pyc")
        py_compile.compile(str(src), cfile=str(tmp_path / f"{modname}.pyc"), dfile=filename, doraise=True)
        src.unlink()
    importlib.invalidate_caches()
    try:
        with Seen(filename) as seen:
            importlib.import_module(modname)
        return "created" if sorted(seen.created()) == ["<module>", "f"] else f"got {seen.created()}"
    finally:
        sys.modules.pop(modname, None)


def probe_nested():
    src = "def outer():\n    def inner():\n        pass\n    return inner\n"
    filename = fresh_name("nested")
    with Seen(filename) as seen:
        module = compile(src, filename, "exec")
        at_compile = set(seen.created())
        ns = {}
        exec(module, ns)
        at_run = set(seen.created())
        before = len(seen.events)
        ns["outer"]()  # runs `def inner`: makes a function, no code object
        assert len(seen.events) == before
    assert at_run == {"<module>", "outer", "inner"}
    return "created" if at_compile == at_run else "first-use" if not at_compile else "mixed"


def probe_replace():
    base = prebuilt("<table-replace-base>")
    return classify(lambda filename: base.replace(co_filename=filename))


def probe_code_new():
    def make(filename):
        c = prebuilt(filename)
        args = [c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount, c.co_nlocals,
                c.co_stacksize, c.co_flags, c.co_code, c.co_consts, c.co_names,
                c.co_varnames, c.co_filename, c.co_name, c.co_qualname, c.co_firstlineno,
                c.co_linetable, c.co_exceptiontable, c.co_freevars, c.co_cellvars]
        return args
    # the arguments are built outside the watch so that only CodeType() is observed
    kinds = set()
    for use in USES:
        filename = fresh_name("codetype")
        args = make(filename)
        with Seen(filename) as seen:
            obj = types.CodeType(*args)
            if seen.created():
                return "created"
            USES[use](obj)
            kinds.add("first-use" if seen.created() else "none")
    return kinds.pop() if len(kinds) == 1 else f"mixed {sorted(kinds)}"


def probe_marshal():
    kinds = set()
    for use in USES:
        filename = fresh_name("marshal")
        data = marshal.dumps(prebuilt(filename))
        with Seen(filename) as seen:
            obj = marshal.loads(data)
            if seen.created():
                return "created"
            USES[use](obj)
            kinds.add("first-use" if seen.created() else "none")
    return kinds.pop() if len(kinds) == 1 else f"mixed {sorted(kinds)}"


def probe_new_empty():
    return classify(lambda filename: spy_code.empty(filename, "empty", 1))


def probe_destroy():
    filename = fresh_name("destroy")
    seen = Seen(filename)
    try:
        wid = watch.add(seen, events=("destroy",))
    except watch.UnsupportedEvent:
        return "unsupported"
    try:
        doomed = compile("1", filename, "eval")
        del doomed
        gc.collect()
    finally:
        watch.clear(wid)
    return "destroy" if seen.events == [("DESTROY", "<module>")] else f"got {seen.events}"


def probe_preexisting():
    filename = fresh_name("old")
    old = source_code(filename)
    with Seen(filename) as seen:
        exec(old, {})
        return "first-use" if seen.created() == ["<module>"] else "none" if not seen.events else f"got {seen.events}"


PROBES = {
    "compile": lambda tmp_path, mp: probe_compile(),
    "exec-source": lambda tmp_path, mp: probe_exec_source(),
    "import-source": lambda tmp_path, mp: _import_probe(tmp_path, mp, sourceless=False),
    "import-pyc": lambda tmp_path, mp: _import_probe(tmp_path, mp, sourceless=True),
    "nested": lambda tmp_path, mp: probe_nested(),
    "replace": lambda tmp_path, mp: probe_replace(),
    "code-new": lambda tmp_path, mp: probe_code_new(),
    "marshal": lambda tmp_path, mp: probe_marshal(),
    "new-empty": lambda tmp_path, mp: probe_new_empty(),
    "destroy": lambda tmp_path, mp: probe_destroy(),
    "preexisting": lambda tmp_path, mp: probe_preexisting(),
}


def test_every_row_has_a_probe():
    assert [row["key"] for row in watch.EVENT_TABLE] == list(PROBES)


@pytest.mark.parametrize("row", watch.EVENT_TABLE, ids=[row["key"] for row in watch.EVENT_TABLE])
def test_row_holds_on_this_interpreter(row, tmp_path, monkeypatch):
    expected_kind, text = row[COLUMN]
    assert PROBES[row["key"]](tmp_path, monkeypatch) == expected_kind, text
    assert watch.active() == []


def test_docs_embed_the_table():
    assert watch.event_table_markdown() in DOCS.read_text(encoding="utf-8")
