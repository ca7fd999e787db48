"""The event table: Pyccolo 0.0.96's 104 events, same names, values and order."""
import ast
import os
import subprocess
import sys

import pytest

import spyglass
from spyglass.events import AST_TO_EVENT, EVENT_INFO

# Pyccolo 0.0.96's TraceEvent, in order (the specification spyglass follows)
PYCCOLO_EVENTS = """
before_import init_module exit_module after_import before_stmt after_stmt after_module_stmt
after_expr_stmt _load_saved_expr_stmt_ret load_name after_bool after_bytes after_complex
after_float after_int after_none after_string before_fstring after_fstring before_for_loop_body
after_for_loop_iter before_while_loop_body after_while_loop_iter before_for_iter after_for_iter
before_attribute_load before_attribute_store before_attribute_del after_attribute_load
before_subscript_load before_subscript_store before_subscript_del after_subscript_load
before_subscript_slice after_subscript_slice _load_saved_slice before_load_complex_symbol
after_load_complex_symbol after_if_test after_while_test before_lambda after_lambda decorator
before_call after_call before_argument after_argument before_return after_return
before_dict_literal after_dict_literal before_list_literal after_list_literal before_set_literal
after_set_literal before_tuple_literal after_tuple_literal dict_key dict_value list_elt set_elt
tuple_elt before_assign_rhs after_assign_rhs before_augassign_rhs after_augassign_rhs
before_assert after_assert before_function_body after_function_execution before_lambda_body
after_lambda_body before_left_binop_arg after_left_binop_arg before_right_binop_arg
after_right_binop_arg before_binop after_binop before_unaryop_arg after_unaryop_arg
before_unaryop after_unaryop before_boolop_arg after_boolop_arg before_boolop after_boolop
left_compare_arg compare_arg before_compare after_compare after_comprehension_if
after_comprehension_elt after_dict_comprehension_key after_dict_comprehension_value
exception_handler_type ellipsis line call return_ exception opcode c_call c_return c_exception
""".split()


def test_same_104_events_names_values_and_order():
    assert len(PYCCOLO_EVENTS) == 104
    assert [e.name for e in spyglass.TraceEvent] == PYCCOLO_EVENTS
    for e in spyglass.TraceEvent:
        assert e.value == ("return" if e.name == "return_" else e.name)
        assert str(e) == e.value
        assert spyglass.TraceEvent(e.value) is e


def test_every_event_is_reexported():
    for e in spyglass.TraceEvent:
        assert getattr(spyglass, e.name) is e
    assert spyglass.event is spyglass.TraceEvent
    assert "after_binop" in spyglass.__all__


def test_events_decorate_with_and_without_arguments():
    class T(spyglass.BaseTracer):
        @spyglass.after_binop
        def bare(self, ret, *_, **__):
            return ret * 10

        @spyglass.after_int(when=lambda node: node.value == 2)
        def with_args(self, ret, *_, **__):
            return ret + 100

    with T:
        env = spyglass.exec("x = 1 + 2")
    # 2 -> 102; 1 + 102 = 103; the binop result *10
    assert env["x"] == 1030


def test_keyword_arguments_need_the_call_form():
    with pytest.raises(ValueError):
        spyglass.after_binop(lambda *a: None, when=lambda n: True)


def test_ast_classes_map_to_events():
    assert AST_TO_EVENT[ast.BinOp] is spyglass.after_binop
    assert AST_TO_EVENT[ast.Name] is spyglass.load_name
    assert AST_TO_EVENT[ast.stmt] is spyglass.after_stmt
    assert AST_TO_EVENT[ast.Module] is spyglass.init_module


def test_every_event_is_documented():
    for e in spyglass.TraceEvent:
        info = EVENT_INFO[e.name]
        assert info.fires and info.ret and info.kind


def test_docs_events_md_is_generated_from_the_table():
    root = os.path.join(os.path.dirname(__file__), "..")
    script = os.path.join(root, "scripts", "gen_events_doc.py")
    if not os.path.exists(os.path.join(root, "docs", "events.md")):
        pytest.skip("not run from a checkout")
    r = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
