#!/usr/bin/env python3
"""Source-level events: spyglass vs Pyccolo 0.0.96, side by side in one process.

    python benchmarks/source_events.py [--quick]

Runs a binop- and statement-heavy workload plain, under spyglass and under
Pyccolo, with no handlers; one no-op `after_binop` handler; no-op
`before_stmt` + `after_stmt`; a no-op `load_name`; and times instrumenting
`typing.py` with a no-op handler on every AST event, against `compile()`.
Prints ratios to plain.

Pyccolo is installed from PyPI into this benchmark's own virtual environment
(never into the project's), together with spyglass built from this checkout;
the script then re-runs itself there.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYCCOLO = "pyccolo==0.0.96"

# numeric Python with lists: every statement and binary operation is an event
WORKLOAD = '''
def workload(n):
    size = 12
    a = [[(i * size + j) % 7 for j in range(size)] for i in range(size)]
    b = [[(i + 2 * j) % 5 for j in range(size)] for i in range(size)]
    total = 0
    for step in range(n):
        i = step % size
        j = (step * 7) % size
        s = 0
        for k in range(size):
            s = s + a[i][k] * b[k][j]
        total = (total + s * step) % 1000003
    return total
'''


def venv_dir() -> str:
    base = os.environ.get("SPYGLASS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "spyglass")
    return os.path.join(base, f"bench-venv-{sys.version_info[0]}.{sys.version_info[1]}")


def ensure_env() -> str:
    venv = venv_dir()
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = dict(os.environ, MATURIN_NO_INSTALL_RUST="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([py, "-m", "pip", "install", "-q", PYCCOLO], check=True, env=env)
    subprocess.run([py, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", ROOT], check=True, env=env)
    return py


def best(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def inner(quick: bool) -> None:
    import ast
    import typing

    import pyccolo as pyc
    import spyglass
    from spyglass import instrument
    from spyglass.events import AST_EVENTS

    n = 1_000 if quick else 6_000
    repeat = 3 if quick else 5

    def spy_tracer(events):
        ns = {f"on_{e.name}": spyglass.register_handler(e)(lambda self, ret, *a, **k: None) for e in events}
        return type("SpyT", (spyglass.BaseTracer,), ns)()

    def pyc_tracer(events):
        ns = {}
        for e in events:
            ns[f"on_{e.name}"] = pyc.register_handler(getattr(pyc.TraceEvent, e.name))(lambda self, ret, *a, **k: None)
        return type("PycT", (pyc.BaseTracer,), ns)

    plain_ns: dict = {}
    exec(compile(WORKLOAD, "<workload>", "exec"), plain_ns)
    plain = best(lambda: plain_ns["workload"](n), repeat)

    cases = [
        ("no handlers", []),
        ("no-op after_binop", [spyglass.after_binop]),
        ("no-op before_stmt + after_stmt", [spyglass.before_stmt, spyglass.after_stmt]),
        ("no-op load_name", [spyglass.load_name]),
    ]
    rows = []
    for label, events in cases:
        t = spy_tracer(events)
        ns: dict = {}
        exec(t.compile(WORKLOAD, "<workload>"), ns)
        with t:
            assert ns["workload"](200) == plain_ns["workload"](200)
            spy = best(lambda: ns["workload"](n), repeat)
        P = pyc_tracer(events)
        with P:
            env = pyc.exec(WORKLOAD)
        f = env["workload"]
        with P.instance().tracing_enabled():
            assert f(200) == plain_ns["workload"](200)
            pyc_n = max(n // 50, 50) if events else n
            pyc_t = best(lambda: f(pyc_n), 1 if events else repeat) * (n / pyc_n)
        rows.append((label, spy / plain, pyc_t / plain))

    # instrumenting typing.py with a no-op handler on every AST event
    src = open(typing.__file__, encoding="utf-8").read()
    every = spy_tracer(sorted(AST_EVENTS, key=lambda e: e.index))
    base = best(lambda: compile(src, typing.__file__, "exec"), repeat)
    cold = best(
        lambda: instrument.compile_source(src, typing.__file__, "exec", [every], explicit=True, use_cache=False),
        repeat,
    )
    Pevery = pyc_tracer([e for e in sorted(AST_EVENTS, key=lambda e: e.index)])
    ptracer = Pevery.instance()

    def pyc_instrument():
        with ptracer.tracing_disabled():
            tree = ptracer.make_ast_rewriter(typing.__file__).visit(ast.parse(src))
            compile(tree, typing.__file__, "exec")

    pyc_inst = best(pyc_instrument, 1)
    floor_src = one_call_per_node(src)
    floor = best(lambda: compile(floor_src, typing.__file__, "exec"), repeat)
    instrument.compile_source(src, typing.__file__, "exec", [every], explicit=True)  # fills the cache
    instrument._memo.clear()
    warm = best(lambda: (instrument._memo.clear(), instrument.compile_source(src, typing.__file__, "exec", [every], explicit=True)), repeat)

    print(f"CPython {sys.version.split()[0]}; workload n={n}; plain {plain * 1e3:.2f} ms")
    print()
    print("| workload | spyglass / plain | Pyccolo 0.0.96 / plain |")
    print("|---|---|---|")
    for label, s, p in rows:
        print(f"| {label} | {s:.2f}x | {p:.1f}x |")
    print(f"| instrument typing.py, every AST event, vs compile() | {cold / base:.2f}x | {pyc_inst / base:.1f}x |")
    print(f"| the same, from spyglass's code cache (a later run) | {warm / base:.2f}x | - |")
    print(f"| floor: compile() of typing.py with one call per loaded expression and per statement | "
          f"{floor / base:.2f}x | - |")
    print()
    print(f"compile(typing.py) {base * 1e3:.1f} ms; spyglass instrumentation {cold * 1e3:.1f} ms cold, "
          f"{warm * 1e3:.1f} ms cached; Pyccolo {pyc_inst * 1e3:.0f} ms")


def one_call_per_node(src: str) -> str:
    """`src` with the least any source rewriting must insert for one event
    per loaded expression and per statement: `_f(k, expr)` around each
    loaded expression and `_s(k)` before each statement. Compiling it is a
    floor for instrumenting with every AST event (which has more events)."""
    import ast

    count = [0]

    def call(name, *args):
        count[0] += 1
        return ast.Call(ast.Name(name, ast.Load()), [ast.Constant(count[0]), *args], [])

    class Wrap(ast.NodeTransformer):
        def visit_JoinedStr(self, node):  # f-string parts stay as they are
            return call("_f", node)

        def generic_visit(self, node):
            super().generic_visit(node)
            for field in ("body", "orelse", "finalbody"):
                body = getattr(node, field, None)
                if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                    setattr(node, field, [x for st in body for x in (ast.Expr(call("_s")), st)])
            if isinstance(node, ast.expr) and isinstance(getattr(node, "ctx", ast.Load()), ast.Load) \
                    and not isinstance(node, (ast.Starred, ast.Slice)):
                return call("_f", node)
            return node

    tree = Wrap().visit(ast.parse(src))
    return ast.unparse(ast.fix_missing_locations(tree))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller workload, fewer repeats")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.quick)
        return 0
    py = ensure_env()
    cmd = [py, os.path.abspath(__file__), "--inner"] + (["--quick"] if args.quick else [])
    return subprocess.call(cmd, cwd=HERE)


if __name__ == "__main__":
    sys.exit(main())
