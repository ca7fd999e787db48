"""Before-expression events: thunks, overrides, and operators as callables."""
import ast

import spyglass


def test_before_binop_receives_the_operator_and_can_replace_it():
    class Swap(spyglass.BaseTracer):
        @spyglass.before_binop(when=lambda n: isinstance(n.op, ast.Add))
        def h(self, ret, *_, **__):
            assert ret(2, 3) == 5
            return lambda a, b: a - b

    with Swap:
        assert spyglass.eval("10 + 4") == 6
        assert spyglass.eval("10 * 4") == 40


def test_before_compare_on_a_single_comparison():
    class Flip(spyglass.BaseTracer):
        @spyglass.before_compare
        def h(self, ret, *_, **__):
            return lambda a, b: not ret(a, b)

    with Flip:
        assert spyglass.eval("1 < 2") is False
        assert spyglass.eval("3 in [1, 2]") is True


def test_before_unaryop():
    class Abs(spyglass.BaseTracer):
        @spyglass.before_unaryop
        def h(self, ret, *_, **__):
            return abs

    with Abs:
        assert spyglass.eval("-(-5)") == 5


def test_returning_a_callable_replaces_the_expression_which_is_not_evaluated():
    evaluated = []

    class Guard(spyglass.BaseTracer):
        @spyglass.before_argument
        def h(self, ret, node, *_, **__):
            if isinstance(node, ast.Call):
                return lambda: "skipped"

    def boom():
        evaluated.append(1)
        raise AssertionError("must not run")

    with Guard:
        assert spyglass.eval("str(boom())") == "skipped"
    assert evaluated == []


def test_a_plain_value_replaces_the_expression():
    class Seven(spyglass.BaseTracer):
        @spyglass.before_assign_rhs
        def h(self, *_, **__):
            return 7

    with Seven:
        assert spyglass.exec("x = 1 / 0")["x"] == 7


def test_forcing_the_thunk_evaluates_once_and_keeps_the_value():
    calls = []

    def f():
        calls.append(1)
        return len(calls)

    class Peek(spyglass.BaseTracer):
        @spyglass.before_return
        def h(self, ret, *_, **__):
            assert ret() == 10 and ret() == 10  # forcing twice evaluates once
            return ret

    with Peek:
        env = spyglass.exec("def g():\n    return f() * 10\nr = g()")
    assert env["r"] == 10 and calls == [1]


def test_a_wrapper_that_forces_the_thunk_later():
    log = []

    class Wrap(spyglass.BaseTracer):
        @spyglass.before_boolop_arg
        def h(self, thunk, node, frame, event, is_last, **__):
            def wrapped():
                v = thunk()
                log.append(v)
                return v

            return wrapped

    with Wrap:
        assert spyglass.eval("0 or '' or 'x' or 1/0") == "x"
    assert log == [0, "", "x"]


def test_none_or_the_thunk_itself_evaluates_in_place():
    class Observe(spyglass.BaseTracer):
        @spyglass.before_tuple_literal
        def h(self, thunk, *_, **__):
            return thunk

        @spyglass.before_list_literal
        def g(self, thunk, *_, **__):
            return None

    with Observe:
        env = spyglass.exec("def gen():\n    x = (yield), [(yield)]\n    return x\ng = gen(); next(g); g.send(1)\ntry:\n    g.send(2)\nexcept StopIteration as e:\n    r = e.value")
    assert env["r"] == (1, [2])


def test_thunks_of_expressions_with_yield_cannot_be_forced():
    class Force(spyglass.BaseTracer):
        @spyglass.before_assign_rhs
        def h(self, thunk, *_, **__):
            return thunk()

        def should_propagate_handler_exception(self, evt, exc):
            return True

    import pytest

    with Force:
        with pytest.raises(spyglass.ThunkError, match="yield"):
            spyglass.exec("def gen():\n    x = yield 1\nnext(gen())")
