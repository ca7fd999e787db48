"""spyglass.watch: code-object watchers (native on 3.12+, emulated on 3.11)."""
import gc
import importlib
import os
import py_compile
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

from spyglass import watch
from spyglass.watch import CodeEvent

needs_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="code watchers need CPython 3.12+")
only_311 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="the audit-hook emulation is 3.11 only")


class Recorder:
    """A callback that records (event name, co_name, co_filename)."""

    def __init__(self, filename=None):
        self.filename = filename
        self.events = []

    def __call__(self, event, code):
        assert isinstance(event, CodeEvent)
        assert isinstance(code, types.CodeType)
        if self.filename is None or code.co_filename == self.filename:
            self.events.append((event.name, code.co_name, code.co_filename))

    def names(self, event="CREATE"):
        return [name for ev, name, _ in self.events if ev == event]


@pytest.fixture(autouse=True)
def no_leftover_watchers():
    assert watch.active() == []
    yield
    assert watch.active() == [], "a test left a spyglass watcher registered"


@pytest.fixture
def modules_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("spyglass_watch_probe")]:
        del sys.modules[name]
    importlib.invalidate_caches()


MODULE_SOURCE = textwrap.dedent("""
    def outer(x):
        def inner(y):
            return x + y
        return inner

    class K:
        def method(self):
            return [i for i in range(3)]

    VALUE = (lambda: 41)() + 1
""")

# code objects in MODULE_SOURCE besides <module>; comprehensions are inlined from 3.12
MODULE_CODE_NAMES = {"outer", "inner", "K", "method", "<lambda>"} | (
    {"<listcomp>"} if sys.version_info < (3, 12) else set())


def test_create_fires_for_exec_of_source_with_nested_code():
    rec = Recorder("<exec-probe>")
    with watch.watching(rec):
        exec(compile(MODULE_SOURCE, "<exec-probe>", "exec"), {})
    assert set(rec.names()) == MODULE_CODE_NAMES | {"<module>"}
    # children are reported before the code object that contains them
    assert rec.names()[-1] == "<module>"
    assert rec.names().index("inner") < rec.names().index("outer")


@needs_312
def test_create_fires_during_compile():
    rec = Recorder("<compile-probe>")
    with watch.watching(rec, events="create"):
        compile(MODULE_SOURCE, "<compile-probe>", "exec")
        assert set(rec.names()) == MODULE_CODE_NAMES | {"<module>"}


def test_create_fires_for_import_from_source(modules_dir):
    path = modules_dir / "spyglass_watch_probe_src.py"
    path.write_text(MODULE_SOURCE)
    rec = Recorder(str(path))
    with watch.watching(rec, events="create"):
        mod = importlib.import_module("spyglass_watch_probe_src")
    assert mod.VALUE == 42
    assert set(rec.names()) == MODULE_CODE_NAMES | {"<module>"}
    # running a def makes a function from an existing code object: no new CREATE
    before = len(rec.events)
    with watch.watching(rec, events="create"):
        assert mod.outer(1)(2) == 3
    assert len(rec.events) == before


def test_create_fires_for_import_from_pyc(modules_dir):
    # a sourceless .pyc, so the import cannot compile from source
    src = modules_dir / "spyglass_watch_probe_pyc_src.py"
    src.write_text(MODULE_SOURCE)
    pyc = modules_dir / "spyglass_watch_probe_pyc.pyc"
    py_compile.compile(str(src), cfile=str(pyc), dfile="probe-from-pyc.py", doraise=True)
    src.unlink()
    rec = Recorder("probe-from-pyc.py")
    with watch.watching(rec, events="create"):
        mod = importlib.import_module("spyglass_watch_probe_pyc")
    assert type(mod.__loader__).__name__ == "SourcelessFileLoader"
    assert mod.VALUE == 42
    assert set(rec.names()) == MODULE_CODE_NAMES | {"<module>"}


@needs_312
def test_create_fires_for_replace_and_codetype():
    base = compile("a + 1", "<replace-probe>", "eval")
    rec = Recorder("<replace-probe>")
    with watch.watching(rec):
        new = base.replace(co_name="renamed")
        assert rec.names() == ["renamed"]
    assert eval(new, {"a": 1}) == 2


@needs_312
def test_destroy_fires_on_collection():
    rec = Recorder("<destroy-probe>")
    with watch.watching(rec, events="destroy"):
        ns = {}
        module_code = compile("def f():\n    return 1\n", "<destroy-probe>", "exec")
        exec(module_code, ns)
        assert rec.events == []
        del module_code
        assert rec.names("DESTROY") == ["<module>"]
        # a reference cycle: only the garbage collector frees it
        ns["f"].cycle = ns
        del ns
        assert rec.names("DESTROY") == ["<module>"]
        gc.collect()
    assert set(rec.names("DESTROY")) == {"<module>", "f"}


def test_events_are_filtered_and_default_to_all_supported():
    only_create, default = Recorder("<filter-probe>"), Recorder("<filter-probe>")
    with watch.watching(only_create, events=[CodeEvent.CREATE]), watch.watching(default):
        exec(compile("x = 1", "<filter-probe>", "exec"), {})
        gc.collect()
    assert {ev for ev, *_ in only_create.events} == {"CREATE"}
    assert {CodeEvent[ev] for ev, *_ in default.events} == watch.supported_events()


def test_context_manager_and_clear():
    rec = Recorder("<cm-probe>")
    with watch.watching(rec) as wid:
        assert watch.active() == [wid]
    assert watch.active() == []
    exec(compile("1", "<cm-probe>", "exec"), {})
    assert rec.events == []
    with pytest.raises(ValueError, match="no spyglass code watcher with id"):
        watch.clear(wid)
    with pytest.raises(ValueError, match="no spyglass code watcher"):
        watch.clear(-3)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="callback must be callable, not int"):
        watch.add(42)
    with pytest.raises(ValueError, match="unknown code event 'modify'"):
        watch.add(print, events=("create", "modify"))
    with pytest.raises(ValueError, match="at least one"):
        watch.add(print, events=())


@only_311
def test_destroy_is_unsupported_on_311():
    assert watch.BACKEND == "audit hook"
    assert watch.supported_events() == {CodeEvent.CREATE}
    with pytest.raises(watch.UnsupportedEvent, match="DESTROY event needs CPython 3.12"):
        watch.add(print, events=("create", "destroy"))
    with pytest.raises(NotImplementedError):
        watch.add(print, events=CodeEvent.DESTROY)


@needs_312
def test_backend_on_312():
    assert watch.BACKEND == "PyCode_AddWatcher"
    assert watch.supported_events() == set(CodeEvent)


def test_callbacks_called_in_order_and_many_at_once():
    calls = []
    ids = [watch.add(lambda e, c, i=i: calls.append(i) if c.co_filename == "<many>" else None)
           for i in range(20)]
    try:
        exec(compile("0", "<many>", "exec"), {})
    finally:
        for wid in ids:
            watch.clear(wid)
    assert calls[:20] == list(range(20))


def test_raising_callback_is_unraisable_and_others_still_run(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    def faulty_callback(event, code):
        if code.co_filename == "<raise-probe>":
            raise ZeroDivisionError("from the callback")

    after = Recorder("<raise-probe>")
    with watch.watching(faulty_callback, events="create"), watch.watching(after, events="create"):
        ns = {}
        exec(compile("y = 6 * 7", "<raise-probe>", "exec"), ns)
    assert ns["y"] == 42  # the program went on
    assert after.names() == ["<module>"]
    assert len(reports) == 1
    report = reports[0]
    assert report.exc_type is ZeroDivisionError
    assert str(report.exc_value) == "from the callback"
    assert report.err_msg.startswith("Exception ignored in spyglass code watcher callback <function ")
    assert "faulty_callback" in report.err_msg
    assert " on CREATE of <code object <module>" in report.err_msg
    assert report.object is None  # never the code object: that could resurrect it


@needs_312
def test_pending_exception_is_preserved():
    """DESTROY fires while an exception propagates out of a frame."""
    seen = []

    def busy_callback(event, code):
        # runs Python code that raises and handles its own exception
        try:
            int("not a number")
        except ValueError:
            pass
        seen.append(code.co_filename)

    def explode():
        raise KeyError("original")

    def victim():
        # the code object lives only on the value stack; unwinding pops and
        # frees it while the KeyError is the pending exception
        return [compile("1", "<pending-probe>", "eval"), explode()]

    with watch.watching(busy_callback, events="destroy"):
        with pytest.raises(KeyError) as raised:
            victim()
    assert raised.value.args == ("original",)
    assert raised.value.__context__ is None
    assert "<pending-probe>" in seen


@needs_312
def test_pending_exception_is_preserved_when_callback_raises(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    def raising(event, code):
        if code.co_filename == "<pending-raise>":
            raise RuntimeError("callback failure")

    def explode():
        raise KeyError("original")

    def victim():
        return [compile("1", "<pending-raise>", "eval"), explode()]

    with watch.watching(raising, events="destroy"):
        with pytest.raises(KeyError) as raised:
            victim()
    assert raised.value.args == ("original",)
    assert [r.exc_type for r in reports] == [RuntimeError]


@needs_312
def test_destroy_callback_can_resurrect():
    kept, later = [], []

    def keep_once(event, code):
        if code.co_filename == "<resurrect>" and not kept:
            kept.append(code)

    with watch.watching(keep_once, events="destroy"), \
            watch.watching(lambda e, c: later.append(c.co_filename), events="destroy"):
        doomed = compile("41 + 1", "<resurrect>", "eval")
        address = id(doomed)
        del doomed
        resurrected_ids = [id(c) for c in kept]
        value = eval(kept[0])  # the resurrected code object still works
        assert resurrected_ids == [address] and value == 42
        later.clear()
        kept.clear()  # dies again: DESTROY fires again, and this time it is freed
        assert "<resurrect>" in later
        gc.collect()


@needs_312
def test_callback_is_not_reentered():
    own, other = [], []

    def compiling(event, code):
        if code.co_filename == "<outer>":
            compile("2", "<inner>", "eval")  # CREATE and DESTROY of <inner> while we run
        own.append((event.name, code.co_filename))

    def observer(event, code):
        other.append((event.name, code.co_filename))

    with watch.watching(observer), watch.watching(compiling):
        compile("1", "<outer>", "eval")
    assert ("CREATE", "<outer>") in own
    assert not any(f == "<inner>" for _, f in own)
    assert ("CREATE", "<inner>") in other and ("DESTROY", "<inner>") in other


def test_callbacks_may_add_and_clear_watchers_while_running():
    calls, added = [], []

    def self_clearing(event, code):
        if code.co_filename == "<mutate>":
            calls.append(code.co_name)
            watch.clear(own_id)
            added.append(watch.add(late))

    late = Recorder("<mutate>")
    own_id = watch.add(self_clearing, events="create")
    try:
        exec(compile("def a(): pass\ndef b(): pass\n", "<mutate>", "exec"), {})
    finally:
        for wid in added:
            watch.clear(wid)
    assert len(calls) == 1  # cleared itself at the first event
    # the callback added during the first dispatch saw the later events only
    assert 0 < len(late.names()) < 3


def test_events_from_other_threads():
    seen = set()
    lock = threading.Lock()

    def record(event, code):
        if code.co_filename.startswith("<thread-"):
            with lock:
                seen.add(code.co_filename)

    def work(i):
        exec(compile(f"v = {i}", f"<thread-{i}>", "exec"), {})

    with watch.watching(record, events="create"):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen == {f"<thread-{i}>" for i in range(8)}


def _run(code, *args):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=120)


@needs_312
def test_one_native_slot_for_any_number_of_callbacks_with_cpython_watchers():
    _testcapi = pytest.importorskip("_testcapi")
    result = _run("""
        import _testcapi
        from spyglass import watch
        # CPython's own test watcher, registered before spyglass
        cpython_id = _testcapi.add_code_watcher(0)
        hits = [0] * 12
        def make(i):
            def cb(event, code):
                if code.co_filename == "<slots>":
                    hits[i] += 1
            return cb
        ids = [watch.add(make(i)) for i in range(12)]
        # fill every remaining slot: spyglass must have taken exactly one
        others = []
        while True:
            try:
                others.append(_testcapi.add_code_watcher(1))
            except RuntimeError:  # "no more code watcher IDs available"
                break
        assert len(others) == 6, others
        # spyglass callbacks can still be added with all 8 slots in use
        ids.append(watch.add(make(0)))
        compile("x", "<slots>", "eval")
        assert hits == [4] + [2] * 11, hits  # CREATE + DESTROY each, callback 0 twice
        assert _testcapi.get_code_watcher_num_created_events(0) >= 1
        for wid in ids:
            watch.clear(wid)
        for wid in others + [cpython_id]:
            _testcapi.clear_code_watcher(wid)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@needs_312
def test_clear_error_when_all_slots_are_taken():
    pytest.importorskip("_testcapi")
    result = _run("""
        import _testcapi
        from spyglass import watch
        taken = []
        while True:
            try:
                taken.append(_testcapi.add_code_watcher(0))
            except RuntimeError:
                break
        try:
            watch.add(print)
        except RuntimeError as e:
            print(e)
        for wid in taken:
            _testcapi.clear_code_watcher(wid)
        watch.clear(watch.add(print))  # works once a slot is free
    """)
    assert result.returncode == 0, result.stderr
    assert "8 code watcher slots" in result.stdout


@needs_312
def test_release_gives_the_slot_back():
    pytest.importorskip("_testcapi")
    result = _run("""
        import _testcapi
        from spyglass import watch
        wid = watch.add(print)
        try:
            watch.release()
        except ValueError as e:
            print("refused:", e)
        watch.clear(wid)
        watch.release()
        taken = []
        while True:
            try:
                taken.append(_testcapi.add_code_watcher(0))
            except RuntimeError:
                break
        print("free slots after release:", len(taken))
        for t in taken:
            _testcapi.clear_code_watcher(t)
        got = []
        wid = watch.add(lambda e, c: got.append(c.co_filename))
        compile("1", "<again>", "eval")
        watch.clear(wid)
        print("<again>" in got)
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused: cannot release the code watcher while 1 callback")
    assert lines[1] == "free slots after release: 8"
    assert lines[2] == "True"


def test_release_refused_inside_a_callback():
    errors = []

    def releasing(event, code):
        if code.co_filename == "<release-inside>":
            try:
                watch.release()
            except (RuntimeError, ValueError) as e:
                errors.append(e)

    with watch.watching(releasing, events="create"):
        exec(compile("1", "<release-inside>", "exec"), {})
    assert errors  # registered callbacks (and the running one) forbid it


def test_exit_with_callbacks_registered_is_clean():
    result = _run("""
        from spyglass import watch
        import json, email.parser
        seen = []
        watch.add(lambda e, c: seen.append(c))  # keeps code objects alive to the end
        watch.add(lambda e, c: None)
        import decimal
        exec("def f(): pass")
        print(len(seen) > 0)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr == ""


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_no_leak_over_100k_create_destroy_cycles():
    count = [0]

    def counter(event, code):
        count[0] += 1

    base = compile("a + b", "<leak>", "eval")
    if sys.version_info >= (3, 12):
        def cycle(i):
            base.replace(co_firstlineno=1 + i % 7)  # CREATE, then DESTROY at once
        per_cycle = 2
    else:
        ns = {}

        def cycle(i):
            exec(base.replace(co_firstlineno=1 + i % 7), ns, {"a": 1, "b": 2})  # CREATE
        per_cycle = 1

    gc.collect()
    refs_before = (sys.getrefcount(counter), sys.getrefcount(CodeEvent.CREATE), sys.getrefcount(CodeEvent.DESTROY))
    with watch.watching(counter):
        for i in range(10_000):  # warm up allocator pools
            cycle(i)
        gc.collect()
        blocks, rss = sys.getallocatedblocks(), _rss_kib()
        count[0] = 0
        for i in range(100_000):
            cycle(i)
        gc.collect()
        blocks_after, rss_after = sys.getallocatedblocks(), _rss_kib()
    assert count[0] == 100_000 * per_cycle
    refs_after = (sys.getrefcount(counter), sys.getrefcount(CodeEvent.CREATE), sys.getrefcount(CodeEvent.DESTROY))
    assert refs_after == refs_before
    # a leak of one object per cycle would be 100k blocks and several MiB
    assert blocks_after - blocks < 1_000, (blocks, blocks_after)
    assert rss_after - rss < 2_048, (rss, rss_after)


def test_adding_and_clearing_while_other_threads_make_code():
    """Registry updates race with dispatches on other threads: no crash,
    no deadlock, and every callback still registered at the end is called."""
    stop = threading.Event()
    made = [0]

    def churn(i):
        while not stop.is_set():
            exec(compile(f"v = {i}", f"<churn-{i}>", "exec"), {})
            made[0] += 1

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    calls = []
    deadline = time.monotonic() + 0.5
    try:
        while time.monotonic() < deadline:
            ids = [watch.add(lambda e, c: calls.append(1)) for _ in range(3)]
            time.sleep(0)  # let the other threads dispatch to them
            for wid in ids:
                watch.clear(wid)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert made[0] > 0 and calls
    last = Recorder("<after-churn>")
    with watch.watching(last, events="create"):
        exec(compile("1", "<after-churn>", "exec"), {})
    assert last.names() == ["<module>"]
