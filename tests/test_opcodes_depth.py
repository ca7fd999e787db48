"""The static stack-depth analysis (spyglass.stackdepth) against the interpreter.

3.12 and 3.13 read the stack with the analysed depth, so the analysis must be
exact at every instruction that runs. Where the interpreter saves its own
stack pointer we compare:
- 3.11 (stacktop at opcode trace events) and 3.14 (stackpointer at
  sys.monitoring events): at every traced instruction of a workload that runs
  a dozen stdlib modules;
- 3.12+: the caller's saved depth while a Python callee runs (3.11 leaves
  `stacktop` at -1 there after an opcode event);
- every version: a suspended generator's saved depth at each yield.
"""
import dis
import importlib
import sys
import types

import pytest

from spyglass import _native, opcodes as O
from spyglass.stackdepth import StackDepthError, nlocalsplus, stack_depths

from stdlib_workload import run as _workload

MODULES = [
    "json.decoder", "json.encoder", "re._parser", "re._compiler", "textwrap", "difflib", "argparse",
    "dataclasses", "email.feedparser", "email.message", "statistics", "fractions", "ipaddress",
    "pprint", "enum", "ast", "shlex", "string", "collections", "inspect", "typing", "asyncio.base_events",
    "tokenize", "configparser", "contextlib", "functools",
]


def _codes(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _codes(c)


def test_analysis_is_consistent_on_stdlib():
    n = 0
    for name in MODULES:
        mod = importlib.import_module(name)
        top = mod.__spec__.loader.get_code(mod.__name__)
        for code in _codes(top):
            depths = stack_depths(code)  # raises StackDepthError on any conflict
            assert max(depths) <= code.co_stacksize
            n += 1
    assert n > 1500


def test_analysis_refuses_inconsistent_code():
    def f(a):
        return a + 1

    code = f.__code__
    # co_stacksize too small for the code: refuse rather than guess
    small = code.replace(co_stacksize=1)
    with pytest.raises(StackDepthError, match="co_stacksize"):
        stack_depths(small)


def _direct_call_check(mismatches, checked):
    """A callback checking the caller's saved depth at each direct Python call."""
    seen = set()
    cache = {}

    def depths(code):
        if code not in cache:
            cache[code] = (stack_depths(code), {i.offset: i for i in dis.get_instructions(code)})
        return cache[code]

    def cb(stack, frame, instr):
        key = id(frame)
        if key in seen:
            return
        seen.add(key)
        caller = frame.f_back
        if sys.version_info < (3, 12) or caller is None or not _native.opcodes.direct_caller(frame):
            return
        code = caller.f_code
        table, instrs = depths(code)
        lasti = max(o for o in instrs if o <= caller.f_lasti)
        ins = instrs[lasti]
        if ins.opname != "CALL":
            return
        expected = table[lasti // 2] - (ins.arg + 2)
        got = _native.opcodes.raw_stacktop(caller) - nlocalsplus(code)
        checked.append(1)
        if got != expected:
            mismatches.append((code.co_qualname, lasti, expected, got))

    return cb


def test_depth_matches_interpreter_at_every_instruction_or_call():
    mismatches, checked = [], []
    t = O.Trace(_workload, _direct_call_check(mismatches, checked), follow=True, max_depth=60, _check_depths=True)
    t.call()
    if sys.version_info[:2] in ((3, 11), (3, 14)):
        # the interpreter's stack pointer at every traced instruction
        assert t.stats["checked"] > 50_000, t.stats["checked"]
        assert t.stats["mismatches"] == []
    if sys.version_info >= (3, 12):
        assert len(checked) > 100
    assert mismatches == []


def _gens():
    def plain(n):
        for i in range(n):
            yield i

    def in_expr(xs):
        total = [xs, (yield xs[0]), {"k": (yield xs[1])}]
        return total

    def in_with(lock):
        with lock:
            for k in {"a": 1, "b": 2}:
                yield k, (yield len(k))

    def in_try():
        try:
            yield 1
            raise KeyError
        except KeyError:
            yield 2
        finally:
            yield 3

    def delegating():
        yield from plain(2)
        x = [1, 2, (yield from in_try())]
        yield x

    def nested_call(f):
        return (yield f(*[(yield 1), (yield 2)]))

    import threading
    return [plain(3), in_expr("ab"), in_with(threading.Lock()), in_try(), delegating(), nested_call(max)]


def test_suspended_generator_depths_match_analysis():
    checked = 0
    for g in _gens():
        code = g.gi_code
        value = None
        while True:
            try:
                g.send(value)
            except StopIteration:
                break
            value = 7
            frame = g.gi_frame
            # the innermost suspended generator of a yield-from chain
            inner = g
            while getattr(inner, "gi_yieldfrom", None) is not None and isinstance(inner.gi_yieldfrom, types.GeneratorType):
                inner = inner.gi_yieldfrom
            for gen in {id(g): g, id(inner): inner}.values():
                f = gen.gi_frame
                table = stack_depths(gen.gi_code)
                instrs = {i.offset: i for i in dis.get_instructions(gen.gi_code)}
                # suspended at its YIELD_VALUE (3.11, 3.12) or at the RESUME after it (3.13+)
                offsets = sorted(instrs)
                lasti = max(o for o in offsets if o <= f.f_lasti)
                ins = instrs[lasti]
                if ins.opname == "RESUME":
                    before = [o for o in offsets if o < lasti]
                    if not before or instrs[before[-1]].opname != "YIELD_VALUE":
                        continue
                elif ins.opname != "YIELD_VALUE":
                    continue
                expected = table[lasti // 2] - 1
                assert len(O.suspended_stack(gen)) == expected, (gen.gi_code.co_name, lasti)
                checked += 1
        assert code
    assert checked >= 15
