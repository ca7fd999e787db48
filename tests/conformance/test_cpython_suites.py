"""CPython's own test modules, imported through spyglass's import hook with a
no-op handler on every AST event, give the same results as run plainly.

Each module runs twice in a subprocess (run_suite.py): plainly, and traced.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

SUITES = """
test_grammar test_patma test_scope test_generators test_coroutines test_fstring
test_named_expressions test_super test_class test_with test_exceptions test_unpack
test_unpack_ex test_keywordonlyarg test_decorators test_augassign test_unary test_bool
test_binop test_string_literals test_raise test_opcodes test_contextlib test_except_star
test_exception_group test_dictcomps test_positional_only_arg test_extcall test_global
""".split()

# Differences that are understood and documented (docs/architecture.md,
# "Known differences"): the test id and why.
KNOWN = {
    "test.test_patma.TestSourceLocations.test_jump_threading": (
        "spyglass's own statement-level calls have no source location, so a jump that "
        "CPython places right after them has none either (3.13+ checks that every jump has one)"
    ),
}


def run(module, *extra):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "run_suite.py"), module, *extra],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=HERE,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"{module} {' '.join(extra)} crashed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


@pytest.mark.parametrize("module", SUITES)
def test_suite_gives_the_same_results_traced(module):
    plain = run(module)
    if "missing" in plain:
        pytest.skip(f"CPython's {module} is not installed with this interpreter")
    traced = run(module, "--trace")
    assert "outcomes" in traced, traced
    a, b = plain["outcomes"], traced["outcomes"]
    assert len(a) > 0
    differ = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    unexpected = {k: v for k, v in differ.items() if k not in KNOWN}
    assert unexpected == {}, f"{len(unexpected)} of {len(a)} tests differ"
    print(f"{module}: {len(a)} tests, same results ({len(differ)} known differences)")
