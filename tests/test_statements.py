"""Statement events: skipping statements, module, function and loop events."""
import ast

import spyglass


def test_pass_skips_a_statement_and_source_replaces_it():
    class Veto(spyglass.BaseTracer):
        @spyglass.before_stmt(
            when=spyglass.Predicate(
                lambda n: isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", "") == "print",
                static=True,
            )
        )
        def veto(self, *_, **__):
            return spyglass.Pass

        @spyglass.before_stmt(when=lambda n: isinstance(n, ast.Assign) and n.targets[0].id == "y")
        def replace(self, *_, **__):
            return "y = 'replaced'"

    with Veto:
        env = spyglass.exec("print('never shown')\nkept = 5\ny = 1")
    assert env["kept"] == 5 and env["y"] == "replaced"


def test_module_function_and_loop_events_fire_in_order():
    log = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler(
            (
                spyglass.init_module,
                spyglass.exit_module,
                spyglass.before_function_body,
                spyglass.after_function_execution,
                spyglass.before_for_loop_body,
                spyglass.after_for_loop_iter,
                spyglass.before_while_loop_body,
                spyglass.after_while_loop_iter,
            )
        )
        def h(self, ret, node, frame, event, **_):
            log.append((event.name, type(node).__name__))

    with T:
        spyglass.exec(
            "def f(n):\n    for i in range(n):\n        if i: continue\n    return n\n"
            "f(2)\nk = 0\nwhile k < 1:\n    k += 1\n"
        )
    assert log == [
        ("init_module", "Module"),
        ("before_function_body", "FunctionDef"),
        ("before_for_loop_body", "For"),
        ("after_for_loop_iter", "For"),
        ("before_for_loop_body", "For"),
        ("after_for_loop_iter", "For"),
        ("after_function_execution", "FunctionDef"),
        ("before_while_loop_body", "While"),
        ("after_while_loop_iter", "While"),
        ("exit_module", "Module"),
    ]


def test_after_stmt_and_after_module_stmt_carry_expression_values():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler((spyglass.after_stmt, spyglass.after_module_stmt))
        def h(self, ret, node, frame, event, **_):
            seen.append((event.name, type(node).__name__, ret))

    with T:
        spyglass.exec("1 + 1\nx = 3\nif x:\n    x\n")
    assert ("after_stmt", "Expr", 2) in seen and ("after_module_stmt", "Expr", 2) in seen
    assert ("after_stmt", "Assign", None) in seen
    assert ("after_stmt", "Expr", None) in seen  # a nested expression statement gives no value
    assert ("after_module_stmt", "If", None) in seen


def test_elif_gets_before_and_after_stmt():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler((spyglass.before_stmt, spyglass.after_stmt), when=lambda n: isinstance(n, ast.If))
        def h(self, ret, node, frame, event, **_):
            seen.append((event.name, node.lineno))

    with T:
        spyglass.exec("x = 2\nif x == 1:\n    pass\nelif x == 2:\n    pass\nelif x == 3:\n    pass\n")
    assert seen == [("before_stmt", 2), ("before_stmt", 4), ("after_stmt", 4), ("after_stmt", 2)]


def test_assert_aliases():
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.before_assert
        def h(self, ret, node, *_, **__):
            seen.append(type(node).__name__)

    with T:
        spyglass.exec("x = 1\nassert x\nassert x, 'm'")
    assert seen == ["Assert", "Assert"]


def test_one_line_case_bodies_are_instrumented(recwarn):
    # a case body on the case's own line becomes a block nested under the case
    seen = []

    class T(spyglass.BaseTracer):
        @spyglass.before_stmt
        def h(self, ret, node, frame, event, **_):
            seen.append(type(node).__name__)

    with T:
        env = spyglass.exec("match 2:\n    case 1: x = 1\n    case 2: x = 2; y = 3\n")
    assert not [w for w in recwarn if "failed to instrument" in str(w.message)]
    assert (env["x"], env["y"]) == (2, 3)
    assert seen == ["Match", "Assign", "Assign"]
