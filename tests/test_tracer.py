"""Tracers: registration, what handlers receive, overrides and sentinels, stacking."""
import ast
import sys

import pytest

import spyglass


def test_handler_receives_ret_real_node_frame_and_event():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.after_binop
        def h(self, ret, node, frame, event, **kwargs):
            seen.append((self, ret, node, frame, event, kwargs))

    t = T.instance()
    with t:
        spyglass.exec("a = 2\nb = a * 21")
    ((tracer, ret, node, frame, event, kwargs),) = seen
    assert tracer is t
    assert ret == 42
    assert isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)
    assert (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset) == (2, 4, 2, 10)
    assert frame.f_globals["a"] == 2 and frame.f_code.co_name == "<module>"
    assert event is spyglass.after_binop
    assert kwargs == {}


def test_register_by_ast_class_and_tuple():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler((ast.Name, spyglass.after_int))
        def h(self, ret, node, frame, event, **_):
            seen.append((event.name, ret))

    with T:
        spyglass.exec("y = 5\nz = y")
    assert ("after_int", 5) in seen and ("load_name", 5) in seen


@pytest.mark.parametrize("bad", [ast.If, "after_binop", 42, object, (spyglass.after_binop, 3)])
def test_registering_something_that_is_not_an_event_is_a_typeerror_naming_it(bad):
    with pytest.raises(TypeError) as info:
        spyglass.register_handler(bad)
    shown = bad[1] if isinstance(bad, tuple) else bad
    name = f"ast.{shown.__name__}" if isinstance(shown, type) and issubclass(shown, ast.AST) else repr(shown)
    assert name in str(info.value)


def test_returned_value_overrides_none_does_not_null_does():
    class Inc(spyglass.BaseTracer):
        @spyglass.after_assign_rhs
        def h(self, ret, *_, **__):
            return None if ret == "keep" else ret + 1

    class NullIt(spyglass.BaseTracer):
        @spyglass.after_assign_rhs
        def h(self, *_, **__):
            return spyglass.Null

    with Inc:
        env = spyglass.exec("x = 42\ns = 'keep'")
    assert env["x"] == 43 and env["s"] == "keep"
    with NullIt:
        assert spyglass.exec("x = 42")["x"] is None


def test_tracers_stack_in_order_threading_the_value():
    order = []

    class Double(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            order.append("double")
            return ret * 2

    class AddOne(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            order.append("add")
            return ret + 1

    with Double:
        with AddOne:
            assert spyglass.exec("x = 5")["x"] == 11
    assert order == ["double", "add"]
    order.clear()
    with AddOne:
        with Double:
            assert spyglass.exec("x = 5")["x"] == 12
    assert order == ["add", "double"]


def test_skip_stops_this_tracers_handlers_skipall_every_tracer():
    calls = []

    class A(spyglass.BaseTracer):
        @spyglass.after_int
        def first(self, ret, *_, **__):
            calls.append("A1")
            return spyglass.Skip if ret == 1 else (spyglass.SkipAll if ret == 2 else None)

        @spyglass.after_int
        def second(self, ret, *_, **__):
            calls.append("A2")

    class B(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            calls.append("B")

    with A, B:
        spyglass.exec("x = 1")
        assert calls == ["A1", "B"]
        calls.clear()
        spyglass.exec("x = 2")
        assert calls == ["A1"]
        calls.clear()
        spyglass.exec("x = 3")
        assert calls == ["A1", "A2", "B"]


def test_with_on_class_and_instance_and_singleton():
    class T(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            return ret + 1

    assert T.instance() is T.instance()
    with T:
        assert T.instance().is_tracing_enabled
        assert spyglass.exec("x = 1")["x"] == 2
    assert not T.instance().is_tracing_enabled
    other = T()
    assert other is not T.instance()
    with other as entered:
        assert entered is other
        assert spyglass.tracer() is other
        assert spyglass.exec("x = 1")["x"] == 2
    assert spyglass.exec("x = 1")["x"] == 1  # no tracer: no instrumentation


def test_tracing_disabled_and_enabled():
    class T(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            return ret + 1

    t = T.instance()
    code = t.compile("x = 1")
    with t.tracing_enabled():
        ns = {}
        exec(code, ns)
        assert ns["x"] == 2
        with t.tracing_disabled():
            exec(code, ns)
            assert ns["x"] == 1
        with spyglass.tracing_disabled():
            exec(code, ns)
            assert ns["x"] == 1
        exec(code, ns)
        assert ns["x"] == 2
    exec(code, ns)
    assert ns["x"] == 1  # instrumented code without an active tracer runs plainly


def test_handlers_of_base_classes_are_inherited_in_mro_order():
    calls = []

    class Base(spyglass.BaseTracer):
        @spyglass.after_int
        def base(self, *_, **__):
            calls.append("base")

    class Derived(Base):
        @spyglass.after_int
        def derived(self, *_, **__):
            calls.append("derived")

    with Derived:
        spyglass.exec("x = 1")
    assert calls == ["base", "derived"]


def test_when_predicates_static_and_dynamic():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler(spyglass.load_name, when=lambda node: node.id.startswith("a"))
        def dynamic(self, ret, node, *_, **__):
            seen.append(node.id)

        @spyglass.register_handler(spyglass.after_int, when=spyglass.Predicate(lambda n: n.value > 5, static=True))
        def static(self, ret, *_, **__):
            return -ret

    with T:
        env = spyglass.exec("apple = 3\nbanana = 10\nc = apple + banana")
    assert seen == ["apple"]
    assert env["banana"] == -10 and env["c"] == 3 - 10


def test_raw_handlers_get_ids_that_name_real_nodes():
    ids = []

    class T(spyglass.BaseTracer):
        @spyglass.register_raw_handler(spyglass.after_binop)
        def h(self, ret, node_id, *_, **__):
            ids.append(node_id)

    with T:
        spyglass.exec("x = 1 + 2")
    (node_id,) = ids
    assert isinstance(node_id, int)
    node = T.ast_node_by_id[node_id]
    assert isinstance(node, ast.BinOp)
    assert T.instance().is_outer_stmt(node_id)


def test_kwargs_of_container_and_call_events():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler((spyglass.list_elt, spyglass.after_argument))
        def h(self, ret, node, frame, event, **kwargs):
            seen.append((event.name, ret, kwargs))

    with T:
        spyglass.exec("def f(*a, **k): pass\nf(*[1, 2], key=3)")
    by_event = {}
    for name, ret, kwargs in seen:
        by_event.setdefault(name, []).append((ret, kwargs))
    (l1, k1), (l2, k2) = by_event["list_elt"]
    assert (l1, l2) == (1, 2) and (k1["index"], k2["index"]) == (0, 1)
    assert isinstance(spyglass.BaseTracer.ast_node_by_id[k1["container_node_id"]], ast.List)
    args = by_event["after_argument"]
    assert args[0][1]["is_starred"] and args[0][0] == [1, 2]
    assert args[1][1]["key"] == "key" and args[1][1]["is_last"] and args[1][0] == 3


def test_events_from_other_threads_need_multiple_threads_allowed():
    import threading

    hits = []

    class MainOnly(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, ret, *_, **__):
            hits.append(("main", threading.current_thread() is threading.main_thread()))

    class Any(spyglass.BaseTracer):
        multiple_threads_allowed = True

        @spyglass.after_int
        def h(self, ret, *_, **__):
            hits.append(("any", threading.current_thread() is threading.main_thread()))

    with MainOnly, Any:
        code = MainOnly.instance().compile("x = 1")
        th = threading.Thread(target=exec, args=(code, {}))
        th.start()
        th.join()
    assert hits == [("any", False)]


def test_reentrant_events_only_for_tracers_that_allow_them():
    inner = []

    class T(spyglass.BaseTracer):
        @spyglass.after_binop
        def h(self, ret, *_, **__):
            # runs instrumented code from inside a handler
            inner.append(spyglass.eval("100 + 1"))

    with T:
        spyglass.exec("x = 1 + 1")
    assert inner == [101]  # the nested binop fired no handler (else infinite recursion)
