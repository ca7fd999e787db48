"""spyglass.exec / eval, tracer.compile and tracer.instrumented."""
import ast
import types

import pytest

import spyglass


class Inc(spyglass.BaseTracer):
    @spyglass.after_assign_rhs
    def h(self, ret, *_, **__):
        return ret + 1 if type(ret) is int else ret


class ExactFloats(spyglass.BaseTracer):
    @spyglass.after_float
    def h(self, ret, *_, **__):
        from decimal import Decimal

        return Decimal(str(ret))


def test_pyccolos_documented_examples(capsys):
    with Inc:
        assert spyglass.exec("x = 42")["x"] == 43
    with ExactFloats:
        spyglass.exec("print(0.1 + 0.2)")
    assert capsys.readouterr().out == "0.3\n"


def test_exec_returns_the_namespace_and_runs_as_module_code():
    outer_value = 10
    with Inc:
        env = spyglass.exec(
            """
            import sys
            g = 1
            def bump():
                global g
                g += 1
                return g
            def counter():
                c = 0
                def inc():
                    nonlocal c
                    c += 1
                    return c
                return inc
            inc = counter()
            r = (bump(), inc(), inc(), outer_value)
            here = sorted(k for k in locals() if k in ('g', 'bump', 'r'))
            same = locals() is globals()
            """
        )
    # assignments are incremented by Inc; outer_value is read from the caller
    assert env["r"] == (3, 2, 3, 10)
    assert env["g"] == 3
    assert env["here"] == ["bump", "g", "r"] and env["same"] is True


def test_exec_in_given_namespaces():
    g = {}
    with Inc:
        assert spyglass.exec("x = 1", g) is g
        assert g["x"] == 2
        loc = {}
        out = spyglass.exec("y = x", g, loc)
    assert out is loc and loc == {"y": 3}


def test_eval_in_the_callers_namespace():
    a = 20

    class Plus(spyglass.BaseTracer):
        @spyglass.after_binop
        def h(self, ret, *_, **__):
            return ret + 1

    with Plus:
        assert spyglass.eval("a * 2") == 41
        assert spyglass.eval("a + b", {"b": 1}, {"a": 1}) == 3
    assert spyglass.eval("a * 2") == 40  # no tracer: nothing instrumented


def test_compile_returns_code_without_running_it():
    t = Inc.instance()
    code = t.compile("x = 1\nprint('ran')", filename="<mine>", mode="exec")
    assert isinstance(code, types.CodeType) and code.co_filename == "<mine>"
    ns = {}
    with t:
        exec(code, ns)
    assert ns["x"] == 2
    assert eval(t.compile("1 + 1", mode="eval")) == 2


def helper(n):
    total = 0
    for i in range(n):
        total = total + i
    return total


def test_instrumented_recompiles_a_function():
    f = Inc.instance().instrumented(helper)
    # total = 0 -> 1; each total = total + i -> +1
    assert f(3) == helper(3) + 4
    assert helper(3) == 3  # the original is untouched
    assert f.__name__ == "helper"


def test_instrumented_keeps_closures_and_super():
    scale = 3

    class Base:
        def val(self):
            return 1

    class Child(Base):
        def val(self):
            x = super().val() * scale
            return x

    f = Inc.instance().instrumented(Child.val)
    assert f(Child()) == 4  # 1 * 3 assigned +1


def test_ast_input_and_syntax_errors():
    with Inc:
        assert spyglass.exec(ast.parse("x = 5"))["x"] == 6
        with pytest.raises(SyntaxError) as info:
            spyglass.exec("x = = 1")
    try:
        compile("x = = 1", "<string>", "exec")
    except SyntaxError as e:
        expected = e
    assert info.value.msg == expected.msg and info.value.offset == expected.offset


def test_syntax_error_from_an_import_matches_cpython(tmp_path, monkeypatch):
    src = "def f(:\n    pass\n"
    (tmp_path / "broken_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))

    class T(spyglass.BaseTracer):
        def should_instrument_file(self, filename):
            return filename.endswith("broken_mod.py")

        @spyglass.after_int
        def h(self, *_):
            pass

    with pytest.raises(SyntaxError) as traced:
        with T:
            import broken_mod  # noqa: F401
    with pytest.raises(SyntaxError) as plain:
        compile(src, str(tmp_path / "broken_mod.py"), "exec")
    for attr in ("msg", "lineno", "offset", "filename", "text"):
        assert getattr(traced.value, attr) == getattr(plain.value, attr)
