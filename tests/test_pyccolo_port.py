"""Tracers written for Pyccolo run unchanged but for the import
(`import spyglass as pyc`): the shapes of Pyccolo's documentation and examples."""
import ast
from collections import Counter

import spyglass as pyc


def test_coverage_style_tracer_counts_statements():
    class CoverageTracer(pyc.BaseTracer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen_stmts = set()
            self.stmt_count_by_fname = Counter()

        @pyc.register_raw_handler(pyc.before_stmt)
        def handle_stmt(self, _ret, stmt_id, frame, *_, **__):
            fname = frame.f_code.co_filename
            assert fname.startswith(pyc.SANDBOX_FNAME_PREFIX)
            if stmt_id not in self.seen_stmts:
                self.stmt_count_by_fname[fname] += 1
                self.seen_stmts.add(stmt_id)

    tracer = CoverageTracer.instance()
    with tracer:
        pyc.exec("def f(x):\n    if x:\n        return 1\n    return 2\nf(1)\nf(1)\n")
    # def, f(1), f(1), the if, return 1: the second return never ran
    assert len(tracer.seen_stmts) == 5
    assert all(isinstance(CoverageTracer.ast_node_by_id[i], ast.stmt) for i in tracer.seen_stmts)
    assert tracer in pyc._TRACER_STACK or not pyc._TRACER_STACK


def test_optional_chaining_style_overrides():
    class NoneSafe(pyc.BaseTracer):
        # `a.b` on None gives None instead of raising, as Pyccolo's example does
        @pyc.register_handler(pyc.before_attribute_load)
        def handle(self, obj, node: ast.Attribute, *_, **__):
            if obj is None:
                return type("Nothing", (), {"__getattr__": lambda s, name: None})()
            return obj

    with NoneSafe:
        assert pyc.eval("None.foo") is None
        assert pyc.eval("'x'.upper()") == "X"


def test_universal_style_handler_sees_every_event_kind():
    seen = Counter()

    class Everything(pyc.BaseTracer):
        @pyc.register_handler(tuple(e for e in pyc.TraceEvent if not e.name.startswith("_")))
        def h(self, ret, node, frame, event, *_, **__):
            seen[event] += 1

    with Everything:
        pyc.exec("x = [1, 2.0, 'a']\ny = {k: v for k, v in zip('ab', x)}\nassert x")
    for ev in (pyc.before_stmt, pyc.after_stmt, pyc.load_name, pyc.after_int, pyc.after_float, pyc.after_string,
               pyc.list_elt, pyc.after_list_literal, pyc.after_call, pyc.after_dict_comprehension_key,
               pyc.before_assert, pyc.init_module):
        target = {pyc.before_assert: pyc.before_stmt}.get(ev, ev)
        assert seen[target] > 0, ev


def test_trace_stack_saves_and_restores_tracer_state():
    class Calls(pyc.BaseTracer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.stack = self.make_stack()
            with self.stack.register_stack_state():
                self.callee = None
                self.args = []
                with self.stack.needing_manual_initialization():
                    self.depth = 0
            self.log = []

        @pyc.before_call
        def enter(self, func, node, *_, **__):
            with self.stack.push():
                self.depth = len(self.stack)
            self.callee = getattr(func, "__name__", "?")

        @pyc.after_call
        def leave(self, ret, *_, **__):
            self.log.append((self.callee, self.depth, list(self.args)))
            self.stack.pop()

    t = Calls.instance()
    with t:
        pyc.exec("def f(x): return x\ndef g(y): return f(y)\ng(f(1))")
    # g is entered first (its callee is evaluated before the argument f(1))
    assert t.log == [("f", 2, []), ("f", 2, []), ("g", 1, [])]
    assert len(t.stack) == 0 and t.callee is None and t.depth == 0
    with t.stack.push():
        t.depth = 5
    assert t.stack.get_field("depth") == 0
