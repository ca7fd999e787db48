"""spyglass.opcodes: per-instruction events with the live value stack."""
import asyncio
import dis
import gc
import sys
import threading
import types
import weakref

import pytest

from spyglass import opcodes as O
from spyglass.opcodes import NULL, Trace, trace


def lol(x):
    for i in range(10):
        if x == i:
            break


def test_supported_here():
    assert O.supported(), O._support_error


def test_seed_example_snapshots_match_instructions():
    t = trace(lol, 5)
    ops = [s.instr.opname for s in t.steps]
    assert "COMPARE_OP" in ops and "GET_ITER" in ops
    compares = [s for s in t.steps if s.instr.opname == "COMPARE_OP"]
    assert len(compares) == 6  # i = 0..5
    for n, s in enumerate(compares):
        assert s.stack[-2:] == [5, n]
        assert len(s.stack) == 3  # the range iterator below x and i
        assert type(s.stack[0]).__name__ == "range_iterator"
    (get_iter,) = [s for s in t.steps if s.instr.opname == "GET_ITER"]
    assert get_iter.stack[-1] == range(10)
    # the trace ends with the return of None
    last = t.steps[-1]
    assert last.instr.opname in ("RETURN_VALUE", "RETURN_CONST")
    assert t.result is None


def test_instr_matches_dis():
    t = trace(lol, 1)
    by_offset = {i.offset: i for i in dis.get_instructions(lol)}
    for s in t.steps:
        ref = by_offset[s.instr.offset]
        assert (s.instr.opname, s.instr.arg, s.instr.argrepr) == (ref.opname, ref.arg, ref.argrepr)
        assert s.instr.positions == ref.positions
        assert s.instr.line == ref.positions.lineno
        assert s.frame.f_code is lol.__code__
    lines = {s.instr.line for s in t.steps}
    first = lol.__code__.co_firstlineno
    assert lines == {first + 1, first + 2, first + 3}


def _call_args(a, b):
    return max(a, b)


def test_null_sentinel_and_call_stack():
    t = trace(_call_args, 3, 4)
    (call,) = [s for s in t.steps if s.instr.opname == "CALL"]
    assert call.stack[-2:] == [3, 4]
    assert max in call.stack and NULL in call.stack
    assert repr(NULL) == "NULL"


def test_exception_handler_stack():
    def f():
        try:
            raise KeyError("k")
        except KeyError as e:
            return str(e)

    t = trace(f)
    (push,) = [s for s in t.steps if s.instr.opname == "PUSH_EXC_INFO"]
    assert isinstance(push.stack[-1], KeyError)
    assert t.result == "'k'"


def test_trace_rejects_builtins_and_non_functions():
    with pytest.raises(TypeError, match="builtin"):
        Trace(len)
    with pytest.raises(TypeError, match="Python functions"):
        Trace(42)
    with pytest.raises(TypeError, match="Python functions"):
        trace(dict, a=1)


def test_exceptions_propagate_unchanged():
    class Boom(Exception):
        pass

    err = Boom("x")

    def f():
        raise err

    with pytest.raises(Boom) as info:
        trace(f)
    assert info.value is err
    assert not getattr(err, "__notes__", None)


def test_callback_error_stops_and_reraises_with_context():
    seen = []

    def cb(stack, frame, instr):
        seen.append(instr.opname)
        if len(seen) == 3:
            raise ValueError("from the callback")

    def f():
        total = 0
        for i in range(100):
            total += i
        return total

    with pytest.raises(ValueError, match="from the callback") as info:
        Trace(f, cb).call()
    assert len(seen) == 3
    assert any("spyglass.opcodes callback" in n for n in info.value.__notes__)


def test_callback_error_swallowed_by_traced_code_still_raised():
    def cb(stack, frame, instr):
        if instr.opname == "LOAD_CONST" or instr.opname == "LOAD_SMALL_INT":
            raise LookupError("stop")

    def f():
        try:
            x = 1
        except Exception:
            return "swallowed"
        return x

    with pytest.raises(LookupError):
        Trace(f, cb).call()
    # the next trace works normally
    assert trace(lol, 1).result is None


def test_refcounts_unchanged():
    a, b = object(), object()

    def f(p, q):
        pair = [p, q, p]
        return (p, q, len(pair))

    before = sys.getrefcount(a), sys.getrefcount(b)
    t = trace(f, a, b)
    assert any(a in s.stack for s in t.steps)
    del t
    gc.collect()
    assert (sys.getrefcount(a), sys.getrefcount(b)) == before
    seen = []
    Trace(f, lambda st, fr, ins: seen.append(len(st))).call(a, b)
    Trace(f, lambda st, fr, ins: None).call(a, b)
    gc.collect()
    assert (sys.getrefcount(a), sys.getrefcount(b)) == before
    assert max(seen) >= 3


def _leaf(v):
    return v * 2


def _middle(v):
    return _leaf(v) + 1


def _top(v):
    return _middle(v) + _middle(v + 1)


def test_follow_depth_and_filter():
    names = lambda t: [s.frame.f_code.co_name for s in t.steps]
    assert set(names(trace(_top, 1))) == {"_top"}
    t = Trace(_top, follow=True)
    assert t.call(1) == 3 + 5
    assert set(names(t)) == {"_top", "_middle", "_leaf"}
    t = Trace(_top, follow=True, max_depth=1)
    t.call(1)
    assert set(names(t)) == {"_top", "_middle"}
    t = Trace(_top, follow=True, filter=lambda code: code.co_name != "_middle")
    t.call(1)
    assert set(names(t)) == {"_top", "_leaf"}


def test_follow_into_leaf_sees_arguments_on_callers_stack():
    t = Trace(_top, follow=True)
    t.call(10)
    leaf_steps = [s for s in t.steps if s.frame.f_code.co_name == "_leaf"]
    assert leaf_steps[0].stack == []
    mult = [s for s in leaf_steps if s.instr.opname == "BINARY_OP"]
    assert [s.stack for s in mult] == [[10, 2], [11, 2]]


def test_recursion_is_traced():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    t = trace(fact, 4)
    assert t.result == 24
    mults = [s.stack[-2:] for s in t.steps if s.instr.opname == "BINARY_OP" and s.instr.argrepr == "*"]
    assert mults == [[2, 1], [3, 2], [4, 6]]
    # every frame of the recursion saw its own n on the stack before the compare
    compares = [s.stack[-2:] for s in t.steps if s.instr.opname == "COMPARE_OP"]
    assert compares == [[4, 1], [3, 1], [2, 1], [1, 1]]


def _double(v):
    return v + v


def _sum_doubles(n):
    out = 0
    for i in range(n):
        out += _double(i)
    return out


def test_calls_in_a_loop_are_separate_frames():
    # each call of _double runs in a new frame at the address the last one
    # left: every one must be its own frame with its own stack, and the
    # caller's events after each return must show the caller's stack
    t = Trace(_sum_doubles, follow=True)
    assert t.call(5) == 20
    mine = [s for s in t.steps if s.frame.f_code is _double.__code__]
    assert [s.stack for s in mine if s.instr.opname == "BINARY_OP"] == [[i, i] for i in range(5)]
    assert len({id(s.frame) for s in mine}) == 5
    caller = [s for s in t.steps if s.frame.f_code is _sum_doubles.__code__ and s.instr.opname == "BINARY_OP"]
    running = [sum(2 * j for j in range(i)) for i in range(5)]
    assert [s.stack[-2:] for s in caller] == [[running[i], 2 * i] for i in range(5)]


def test_block_form():
    steps = []
    x = 2
    with Trace(callback=lambda st, fr, ins: steps.append((ins.opname, st[-2:]))):
        y = x * 21
    assert y == 42
    assert ("BINARY_OP", [2, 21]) in steps
    # events stop at the block's end
    assert steps[-1][0] in ("CALL", "POP_TOP", "LOAD_CONST")
    assert sys.gettrace() is None


def _plain_helper():
    return 5


def _saves_and_restores_the_trace_function():
    saved = sys.gettrace()
    sys.settrace(None)
    unseen = _plain_helper() * 7
    sys.settrace(saved)
    # the next call re-installs the trace (on 3.11 `saved` is a Python-level
    # trace function until then; 3.12+ does not trace through sys.settrace)
    _plain_helper()
    seen = unseen * 3
    return seen


def test_settrace_round_trip_keeps_the_trace():
    # code that saves and restores the trace function (debuggers,
    # test.support.no_tracing) must not end the trace
    ops = []
    t = Trace(_saves_and_restores_the_trace_function, lambda st, fr, ins: ops.append((ins.opname, st[-2:])))
    assert t.call() == 105
    assert ("BINARY_OP", [35, 3]) in ops
    if sys.version_info >= (3, 12):
        assert ("BINARY_OP", [5, 7]) in ops
    assert sys.gettrace() is None


def test_callback_that_ends_its_own_trace():
    # the callback and the Instr object are borrowed from the trace's state
    # while a callback runs: a state dropped meanwhile keeps them until the
    # callback returns, then releases them
    seen = []

    class Ender:
        def __call__(self, stack, frame, instr):
            seen.append(instr.opname)
            if len(seen) == 3:
                t.callback = None
                t.__exit__(None, None, None)  # drops the native trace state

    t = Trace(callback=Ender())
    ender = weakref.ref(t.callback)
    t.__enter__()
    a = len(seen)
    b = a + 1
    c = b * 2
    d = [a, b, c]
    assert len(seen) == 3
    assert d == [3, 4, 8]
    assert sys.gettrace() is None
    gc.collect()
    assert ender() is None


def test_generator_traced_across_resumptions():
    def gen(n):
        for i in range(n):
            got = yield i * 10
            if got:
                yield got

    t = Trace(gen)
    g = t.call(3)
    assert next(g) == 0
    assert g.send("hi") == "hi"
    assert list(g) == [10, 20]
    yields = [s.stack[-1] for s in t.steps if s.instr.opname == "YIELD_VALUE"]
    assert yields == [0, "hi", 10, 20]


def test_no_frame_keeps_trace_flags():
    def gen():
        yield 1
        yield 2

    def make():
        g = gen()
        next(g)
        return g

    g = Trace(make, follow=True).call()
    assert g.gi_frame.f_trace_opcodes is False
    assert g.gi_frame.f_trace_lines is True
    assert sys.gettrace() is None


def test_coroutine_traced_across_resumptions():
    async def coro(n):
        total = 0
        for i in range(n):
            await asyncio.sleep(0)
            total += i
        return total

    t = Trace(coro)
    assert asyncio.run(t.call(4)) == 6
    adds = [s.stack[-2:] for s in t.steps if s.instr.opname == "BINARY_OP"]
    assert adds == [[0, 0], [0, 1], [1, 2], [3, 3]]


def test_suspended_stack():
    def gen(items):
        for x in items:
            yield x

    g = gen(["a", "b"])
    next(g)
    st = O.suspended_stack(g)
    assert len(st) == 1 and type(st[0]).__name__ == "list_iterator"
    with pytest.raises(ValueError):
        O.suspended_stack(iter([]))


def test_other_threads_not_traced():
    seen_threads = set()
    done = threading.Event()

    def work():
        for _ in range(20000):
            lol(3)
        done.set()

    th = threading.Thread(target=work)
    th.start()

    def cb(stack, frame, instr):
        seen_threads.add(threading.get_ident())

    for _ in range(50):
        Trace(lol, cb).call(2)
    th.join()
    assert seen_threads == {threading.get_ident()}


def test_nested_trace_refused():
    def inner():
        return trace(lol, 1)

    def cb(stack, frame, instr):
        pass

    def outer():
        return inner()

    with pytest.raises(RuntimeError, match="already active"):
        Trace(outer, cb, follow=False).call()
    assert trace(lol, 1).result is None


def test_unsupported_version_message(monkeypatch):
    monkeypatch.setattr(O, "_checked", False)
    monkeypatch.setattr(O, "_support_error", None)
    monkeypatch.setattr(O, "SUPPORTED_VERSIONS", ())
    with pytest.raises(O.UnsupportedVersion, match=r"CPython 3\.11 to 3\.14, not cpython %d\.%d" % sys.version_info[:2]):
        trace(lol, 1)
    monkeypatch.setattr(O, "_checked", False)
    monkeypatch.setattr(O, "_support_error", None)
    monkeypatch.undo()
    assert O.supported()


def test_recorder_round_trip(tmp_path):
    path = tmp_path / "lol.sgops"
    assert O.record(path, lol, 3) is None
    rec = O.read(path)
    events = list(rec.events())
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "enter" and kinds[-1] == "exit"
    instrs = [e for e in events if e["kind"] == "instr"]
    ref = trace(lol, 3).steps
    assert [(e["offset"], e["depth"]) for e in instrs] == [(s.instr.offset, len(s.stack)) for s in ref]
    compares = [e for e in instrs if e["opname"] == "COMPARE_OP"]
    assert [e["stack"][-2:] for e in compares] == [["3", str(i)] for i in range(4)]
    assert rec.codes[0]["qualname"] == "lol"
    assert "def lol(x):" in rec.files[rec.codes[0]["filename"]]


def test_recorder_safe_reprs_run_no_python(tmp_path):
    calls = []

    class Loud:
        def __repr__(self):
            calls.append(1)
            return "LOUD"

    def f(o):
        return [o, "s" * 500, 2**100, (1, "a")]

    O.Recorder(tmp_path / "a", reprs="safe", max_repr=20).call(f, Loud())
    assert calls == []
    rec = O.read(tmp_path / "a")
    stacks = [e["stack"] for e in rec.events() if e["kind"] == "instr" and e["opname"] == "BUILD_LIST"]
    (stack,) = stacks
    assert stack[0].startswith("<") and "Loud" in stack[0]
    assert stack[1].endswith("...") and len(stack[1]) <= 20
    assert stack[2] == "<big int>" and stack[3] == "(1, 'a')"
    O.Recorder(tmp_path / "b", reprs="full").call(f, Loud())
    assert calls
    exits = [e for e in O.read(tmp_path / "b").events() if e["kind"] == "exit"]
    assert exits[-1]["how"] == "return" and "LOUD" in exits[-1]["value"]


def test_recorder_max_events_and_bad_files(tmp_path):
    p = tmp_path / "t"
    O.Recorder(p, max_events=5).call(lol, 9)
    rec = O.read(p)
    ev = list(rec.events())
    assert sum(e["kind"] == "instr" for e in ev) == 5 and ev[-1]["kind"] == "truncated"
    data = p.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut"):
            O.read(tmp_path / "cut")


def test_concurrent_traces_on_two_threads():
    # both traces enable INSTRUCTION events on one code object (a fresh
    # one: see test_other_instruction_tool_keeps_its_events)
    fresh = types.FunctionType(lol.__code__.replace(), globals())
    alone = len(trace(lol, 7).steps)
    results = {}
    barrier = threading.Barrier(2)

    def worker(name):
        counts = []
        def cb(stack, frame, instr):
            counts.append(instr.offset)
            if len(counts) == 3:
                barrier.wait(timeout=30)  # both traces are active now
        Trace(fresh, cb).call(7)
        results[name] = len(counts)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": alone, "b": alone}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_other_instruction_tool_keeps_its_events():
    # CPython 3.12-3.14 deliver a code object's INSTRUCTION events only to
    # the tool that enabled them there last: tracing the code must not take
    # them from a tool that was there first, during the trace or after it
    # (a code object of its own: no earlier test has instrumented it)
    fresh = types.FunctionType(lol.__code__.replace(), globals())
    M = sys.monitoring
    tool = next(t for t in range(6) if M.get_tool(t) is None)
    seen = []
    M.use_tool_id(tool, "another tool")
    M.register_callback(tool, M.events.INSTRUCTION, lambda code, offset: seen.append(offset))
    M.set_local_events(tool, fresh.__code__, M.events.INSTRUCTION)
    try:
        fresh(7)
        alone = list(seen)
        assert alone
        seen.clear()
        t = trace(fresh, 7)
        assert seen == alone
        assert [s.instr.offset for s in t.steps] == alone
        seen.clear()
        fresh(7)
        assert seen == alone
    finally:
        M.set_local_events(tool, fresh.__code__, 0)
        M.register_callback(tool, M.events.INSTRUCTION, None)
        M.free_tool_id(tool)


def test_with_handler_stack_holds_lasti_as_int():
    # the handler of a `with` block keeps the raising instruction's offset
    # (lasti) on the stack: a tagged int on 3.14, decoded to a Python int
    class Suppress:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return True

    def f():
        with Suppress():
            raise ValueError("x")
        return "after"

    t = trace(f)
    assert t.result == "after"
    (push,) = [s for s in t.steps if s.instr.opname == "PUSH_EXC_INFO"]
    assert isinstance(push.stack[-1], ValueError)
    lasti = push.stack[-2]
    assert type(lasti) is int
    raising = [s.instr.offset for s in t.steps if s.instr.opname == "RAISE_VARARGS"]
    assert lasti in (raising[0], raising[0] // 2)  # bytes or code units, per version


def test_recorder_keeps_no_references(tmp_path):
    a = object()

    def f(p):
        return [p, p, (p,)]

    before = sys.getrefcount(a)
    for reprs in ("none", "safe", "full"):
        O.Recorder(tmp_path / reprs, reprs=reprs).call(f, a)
    gc.collect()
    assert sys.getrefcount(a) == before
