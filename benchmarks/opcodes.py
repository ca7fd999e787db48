"""spyglass.opcodes side by side with its peer, in one process.

    python benchmarks/opcodes.py [--quick]

Prints three ratios (lower is better):

1. snapshot tracing: `Trace(work, callback)` delivering a stack snapshot,
   the frame and the instruction to a no-op Python callback at every
   instruction, vs the cheapest pure-Python opcode tracer
   (`sys.settrace` with `frame.f_trace_opcodes = True` and a local trace
   function that reads nothing). Target: at most 1.0x (the stack comes free).
   On 3.12+ a floor row shows what the interpreter's own dispatch of an
   INSTRUCTION event to a Python function costs, with no frame or stack.
2. native recorder: `Recorder(...).call(work)` vs running `work` plainly
   (depths only, and with safe reprs of the top 8 values). Target on 3.12+:
   at most 4x (depths only). Depths only uses the control-flow method on
   3.12+ (every instruction rebuilt by the reader); the per-instruction
   method is shown beside it.
3. untraced code while another function is traced: `other()` timed inside
   a traced call (only the caller's code is traced) vs plainly. Target on
   3.12+: at most 1.05x.
"""
from __future__ import annotations

import operator
import os
import sys
import tempfile
import time
import types

from spyglass import opcodes


def work(n):
    total = 0
    words = []
    table = {}
    for i in range(n):
        total += i * 3 % 7
        if i % 5 == 0:
            words.append(f"w{i}")
        table[i & 31] = table.get(i & 31, 0) + 1
    s = ",".join(words)
    return total, len(s), sorted(table.items())[:3]


def other(n):
    acc = 0
    for i in range(n):
        acc += (i * i) % 11
        acc ^= i
    return acc


def traced_outer(n, out):
    t0 = clock()
    other(n)
    out.append(clock() - t0)


# CPU time of this thread: steadier than wall time on a shared machine
clock = time.thread_time


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def pair(a, b, repeat):
    """Best times of a and b, measured alternately so that drift hits both."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t0 = clock()
            fn()
            out.append(clock() - t0)
    return min(ta), min(tb)


PEER_EVENTS = [0]
# The peer runs its own copy of `work` (same bytecode, another code object):
# on CPython 3.13 and 3.14, once any sys.monitoring tool has enabled and
# removed INSTRUCTION events on a code object, sys.settrace delivers no more
# opcode events for it (a CPython issue, reproducible without spyglass).
work_copy = types.FunctionType(work.__code__.replace(), globals(), "work_copy")


def settrace_peer(n, count=False):
    """The cheapest pure-Python opcode tracer: a local trace function that
    reads nothing. (`f_trace` and `f_trace_opcodes` are set on every frame
    at its call event, and on this frame before `sys.settrace`: some
    versions deliver no opcode events otherwise; the benchmark prints how
    many the peer received.)"""

    def local(frame, event, arg):
        return local

    def counting(frame, event, arg):
        PEER_EVENTS[0] += event == "opcode"
        return counting

    fn = counting if count else local

    def glob(frame, event, arg):
        frame.f_trace = fn
        frame.f_trace_opcodes = True
        return fn

    me = sys._getframe()
    me.f_trace, me.f_trace_opcodes = fn, True
    sys.settrace(glob)
    try:
        work_copy(n)
    finally:
        sys.settrace(None)
        me.f_trace_opcodes, me.f_trace = False, None


def noop(stack, frame, instr):
    pass


def floor_run(callback, n):
    """`work(n)` with `callback` as the INSTRUCTION callback of a
    sys.monitoring tool of its own: what any tool that takes an event at
    every instruction pays before doing anything."""
    M = sys.monitoring
    tool = next(t for t in (4, 3, 5, 2) if M.get_tool(t) is None)
    M.use_tool_id(tool, "floor")
    M.register_callback(tool, M.events.INSTRUCTION, callback)
    M.set_local_events(tool, work.__code__, M.events.INSTRUCTION)
    try:
        work(n)
    finally:
        M.set_local_events(tool, work.__code__, 0)
        M.register_callback(tool, M.events.INSTRUCTION, None)
        M.free_tool_id(tool)


def python_noop(code, offset):
    pass


def main() -> int:
    quick = "--quick" in sys.argv
    n = 3_000 if quick else 20_000
    repeat = 3 if quick else 7
    if not opcodes.supported():
        print(f"spyglass.opcodes unsupported here: {opcodes._support_error}")
        return 1
    v = "%d.%d.%d" % sys.version_info[:3]
    rows = []

    # 1. snapshots to a Python callback vs a pure-Python settrace opcode tracer
    settrace_peer(n, count=True)
    ours, peer = pair(lambda: opcodes.Trace(work, noop).call(n), lambda: settrace_peer(n), repeat)
    rows.append(("snapshots to a no-op callback / sys.settrace opcode tracer", ours, peer, 1.0))
    if sys.version_info >= (3, 12):
        rows.append(("  (floor: sys.monitoring INSTRUCTION to a no-op Python function)",
                     *pair(lambda: floor_run(python_noop, n), lambda: settrace_peer(n), repeat), None))

    # 2. native recorder vs plain
    fd, path = tempfile.mkstemp(suffix=".sgops")
    os.close(fd)
    try:
        rec_none, plain = pair(lambda: opcodes.Recorder(path, reprs="none").call(work, n), lambda: work(n), repeat)
        recording = opcodes.read(path)
        instructions = recording.stats.get("instructions", 0)
        method = recording.footer.get("method", "instructions")
        if method != "instructions":
            rec_instr = best(lambda: opcodes.Recorder(path, reprs="none", method="instructions").call(work, n),
                             repeat)
        rec_safe = best(lambda: opcodes.Recorder(path, reprs="safe").call(work, n), repeat)
    finally:
        os.unlink(path)
    target = 4.0 if sys.version_info >= (3, 12) else None
    rows.append((f"native recorder, depths only ({method}) / plain", rec_none, plain, target))
    if method != "instructions":
        rows.append(("  (depths only, one record per instruction) / plain", rec_instr, plain, None))
    if sys.version_info >= (3, 12):
        # a C builtin that accepts (code, offset) and returns at once
        rows.append(("  (floor: sys.monitoring INSTRUCTION, C no-op callback / plain)",
                     *pair(lambda: floor_run(operator.is_, n), lambda: work(n), repeat), None))
    rows.append(("native recorder, safe reprs of 8 values / plain", rec_safe, plain, None))

    # 3. untraced code while another function is traced
    m = n * 5
    inside = []
    _, plain_other = pair(lambda: opcodes.Trace(traced_outer, noop).call(m, inside), lambda: other(m), repeat)
    target = 1.05 if sys.version_info >= (3, 12) else None
    rows.append(("untraced code while another function is traced / plain", min(inside), plain_other, target))

    print(f"spyglass.opcodes benchmark on CPython {v} ({opcodes._N.BACKEND}); "
          f"work({n}): {instructions} instructions recorded, {PEER_EVENTS[0]} opcode events "
          f"to the settrace peer; best of {repeat}")
    print(f"{'measure (CPU time)':<66} {'spyglass':>10} {'peer':>10} {'ratio':>7}  target")
    for name, a, b, target in rows:
        ratio = a / b
        verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
        tgt = "-" if target is None else f"<= {target:g}x {verdict}"
        print(f"{name:<66} {a * 1e3:>8.2f}ms {b * 1e3:>8.2f}ms {ratio:>6.2f}x  {tgt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
