"""CPython's own test_generators, test_coroutines, test_with and
test_exceptions, run plainly and with every instruction of the test code
traced (stack snapshots to a Python callback; test_generators also through
the native recorder, with both of its methods); on 3.12+ the control-flow
recorder's rebuilt instructions equal the per-instruction recorder's over
test_coroutines and test_with. Each run is a subprocess, so a crash shows as one.

Expected difference, with the Python callback only:
SignalAndYieldFromTest.test_raise_and_yield_from raises SIGINT just before
resuming a `yield from` chain and checks that KeyboardInterrupt surfaces in
the innermost generator (bpo-30039). A Python callback runs Python code
before the outer generator's first instruction, and the pending signal's
handler runs there. The native recorder runs no Python code per instruction
and must match exactly.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "opcodes_conformance_runner.py")
SIGNAL_TEST = "test.test_generators.SignalAndYieldFromTest.test_raise_and_yield_from"


def _run(module, *mode):
    proc = subprocess.run([sys.executable, RUNNER, module, *mode], capture_output=True, text=True,
                          timeout=900, cwd=HERE)
    assert proc.returncode == 0, f"{module} {mode}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("module", ["test_generators", "test_coroutines", "test_with", "test_exceptions"])
def test_cpython_suite_same_results_under_tracing(module):
    plain = _run(module)
    traced = _run(module, "--trace")
    assert len(plain["outcome"]) > 30
    assert traced["counts"]["instructions"] > 5000
    assert traced["counts"]["values"] > 0
    diff = {k: (plain["outcome"].get(k), traced["outcome"].get(k))
            for k in set(plain["outcome"]) | set(traced["outcome"])
            if plain["outcome"].get(k) != traced["outcome"].get(k)}
    diff.pop(SIGNAL_TEST, None)
    assert diff == {}, traced["details"]


def test_generators_same_results_under_native_recorder(tmp_path):
    plain = _run("test_generators")
    recorded = _run("test_generators", "--record", str(tmp_path / "gen.sgops"))
    assert recorded["counts"]["instructions"] > 5000
    assert recorded["outcome"] == plain["outcome"], recorded["details"]
    from spyglass import opcodes
    rec = opcodes.read(tmp_path / "gen.sgops", limit=100_000)
    assert any(e["kind"] == "instr" for e in rec.events())
    if sys.version_info >= (3, 12):
        # the control-flow method: the whole run's instructions rebuilt on reading
        flow = _run("test_generators", "--record", str(tmp_path / "flow.sgops"), "--flow")
        assert flow["counts"]["instructions"] > 100_000
        assert flow["outcome"] == plain["outcome"], flow["details"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="control-flow recording needs 3.12+")
@pytest.mark.parametrize("module", ["test_coroutines", "test_with"])
def test_control_flow_recording_rebuilds_cpython_suites_exactly(module):
    # (test_generators is left out: its generators in reference cycles are
    # finalized whenever the garbage collector runs, which differs between
    # any two recordings)
    out = _run(module, "--compare-flow")
    assert out["instructions"] > 5000
    assert out["exact"], out["diff"]
