"""The recorder's control-flow method (3.12+): the instructions `read`
rebuilds from jumps, branches, exceptions and frame boundaries are exactly
the ones a per-instruction recording of the same run holds, with the same
stack depths (on 3.14 those come from the interpreter's saved stack
pointer, so the static depths are checked too)."""
import sys

import pytest

from spyglass import opcodes as O
from spyglass.flow_expand import FlowError

import flow_workloads
from flow_workloads import events, first_difference

FLOW = sys.version_info >= (3, 12)
needs_flow = pytest.mark.skipif(not FLOW, reason="control-flow recording needs sys.monitoring (3.12+)")


def stream(path, fn, method, **kw):
    """The events of a recording of fn(), code objects named portably."""
    kw.setdefault("follow", True)
    kw.setdefault("max_depth", 40)
    rec = O.Recorder(path, reprs="none", method=method, **kw)
    rec.call(fn)
    r = O.read(path)
    assert r.footer["method"] == method
    return events(r)


@needs_flow
@pytest.mark.parametrize("name", sorted(flow_workloads.WORKLOADS))
def test_flow_rebuilds_every_instruction(tmp_path, name):
    fn = flow_workloads.WORKLOADS[name]
    fn()  # warm caches and imports: both recordings then see the same run
    flow = stream(tmp_path / "flow", fn, "control-flow")
    ref = stream(tmp_path / "ref", fn, "instructions")
    assert sum(1 for e in ref if e[0] == "i") > 20
    assert flow == ref, first_difference(flow, ref)


@needs_flow
def test_flow_roots_only_and_untraced_callees(tmp_path):
    # without follow, calls out of the traced code run untraced: the caller's
    # instructions around them must still come out right
    fn = flow_workloads.WORKLOADS["callbacks"]
    fn()
    flow = stream(tmp_path / "flow", fn, "control-flow", follow=False)
    ref = stream(tmp_path / "ref", fn, "instructions", follow=False)
    assert flow == ref, first_difference(flow, ref)
    # a depth limit cuts a recursion that raises back through it
    fn = flow_workloads.WORKLOADS["big_recursion"]
    flow = stream(tmp_path / "flow", fn, "control-flow", max_depth=5)
    ref = stream(tmp_path / "ref", fn, "instructions", max_depth=5)
    assert flow == ref, first_difference(flow, ref)


def block_workload(n):
    total = 0
    for i in range(n):
        if i % 3:
            total += i
    return total


@needs_flow
def test_flow_block_form(tmp_path):
    def run(path, method):
        x = 0
        with O.Recorder(path, reprs="none", method=method):
            for i in range(4):
                x += block_workload(i)
            y = [x] * 2
        return y, events(O.read(path))

    a, flow = run(tmp_path / "flow", "control-flow")
    b, ref = run(tmp_path / "ref", "instructions")
    assert a == b
    assert any(e[0] == "i" and e[1][0].endswith("run") for e in ref)
    assert flow == ref, first_difference(flow, ref)


@needs_flow
def test_flow_generator_across_resumptions(tmp_path):
    def gen(n):
        for i in range(n):
            try:
                yield i
            except KeyError:
                yield "caught"

    def drive(path, method):
        g = O.Recorder(path, reprs="none", method=method).call(gen, 4)
        out = [next(g), next(g), g.throw(KeyError), next(g), list(g)]
        return out, events(O.read(path))

    a, flow = drive(tmp_path / "flow", "control-flow")
    b, ref = drive(tmp_path / "ref", "instructions")
    assert a == b == [0, 1, "caught", 2, [3]]
    assert flow == ref, first_difference(flow, ref)


@needs_flow
def test_flow_is_the_default_without_values(tmp_path):
    O.Recorder(tmp_path / "a", reprs="none").call(block_workload, 5)
    assert O.read(tmp_path / "a").footer["method"] == "control-flow"
    O.Recorder(tmp_path / "b", reprs="safe").call(block_workload, 5)
    assert O.read(tmp_path / "b").footer["method"] == "instructions"


def test_flow_method_errors(tmp_path):
    with pytest.raises(ValueError, match="method must be one of"):
        O.Recorder(tmp_path / "a", method="fast")
    with pytest.raises(ValueError, match="control-flow.*not available"):
        O.Recorder(tmp_path / "a", reprs="safe", method="control-flow")
    if not FLOW:
        with pytest.raises(ValueError, match=r"CPython 3\.11 has no sys.monitoring"):
            O.Recorder(tmp_path / "a", reprs="none", method="control-flow")
        O.Recorder(tmp_path / "b", reprs="none").call(block_workload, 5)
        assert O.read(tmp_path / "b").footer["method"] == "instructions"


@needs_flow
def test_flow_max_events_bounds_the_rebuilt_instructions(tmp_path):
    O.Recorder(tmp_path / "a", reprs="none", max_events=30).call(block_workload, 50)
    r = O.read(tmp_path / "a")
    ev = events(r)
    assert ev[-1] == ("truncated",)
    assert sum(1 for e in ev if e[0] == "i") <= 30
    assert r.stats["truncated"] is True
    # calls of straight-line code write frame records only: they count too
    O.Recorder(tmp_path / "b", reprs="none", max_events=30, follow=True).call(many_calls, 500)
    ev = events(O.read(tmp_path / "b"))
    assert ev[-1] == ("truncated",)
    assert sum(1 for e in ev if e[0] == "enter") <= 30
    raw, _ = O._N.decode_recording((tmp_path / "b").read_bytes(), sys.maxsize)
    assert sum(1 for rec in raw if rec[0] not in ("S", "T")) <= 30  # frame switches are not events


def straight(x):
    return x + 1


def many_calls(n):
    return [straight(i) for i in range(n)]


@needs_flow
def test_flow_missing_records_are_an_error_not_a_guess(tmp_path):
    path = tmp_path / "a"
    O.Recorder(path, reprs="none").call(block_workload, 6)
    r = O.read(path)
    assert r.stats["instructions"] == sum(1 for e in events(r) if e[0] == "i")
    raw, footer = O._N.decode_recording(path.read_bytes(), sys.maxsize)
    import json
    footer = json.loads(footer)
    # drop the loop's backward jumps: the path from the loop's end to its
    # head is then impossible
    jumps = [k for k, rec in enumerate(raw) if rec[0] == "J" and rec[3] < rec[2]]
    assert jumps
    broken = [rec for k, rec in enumerate(raw) if k != jumps[0]]
    with pytest.raises(FlowError, match="block_workload"):
        O.Recording(broken, footer)
