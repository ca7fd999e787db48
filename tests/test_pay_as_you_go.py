"""Pay-as-you-go: only what an active handler can fire on is rewritten."""
import ast
import types

import spyglass
from spyglass import _dispatch


def code_tree(code):
    out = [(code.co_code, code.co_names, code.co_linetable, code.co_exceptiontable)]
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out.extend(code_tree(c))
        else:
            out.append(repr(c))
    return out


SOURCE = "def f(a, b):\n    return [a + b, a * 2, b]\nx = f(1, 2)\n"


def test_no_handlers_gives_exactly_plain_compile():
    class Empty(spyglass.BaseTracer):
        pass

    t = Empty()
    assert code_tree(t.compile(SOURCE, "<pay>")) == code_tree(compile(SOURCE, "<pay>", "exec", dont_inherit=True))


def test_handlers_that_cannot_fire_here_change_nothing():
    class OnlyWhile(spyglass.BaseTracer):
        @spyglass.after_while_test
        def h(self, *_):
            pass

    t = OnlyWhile()
    assert code_tree(t.compile(SOURCE, "<pay2>")) == code_tree(compile(SOURCE, "<pay2>", "exec", dont_inherit=True))


def test_only_matching_nodes_are_rewritten():
    class Mult(spyglass.BaseTracer):
        @spyglass.after_binop(when=lambda node: isinstance(node.op, ast.Mult))
        def h(self, ret, *_, **__):
            return ret

    t = Mult()
    code = t.compile(SOURCE, "<pay3>")  # noqa: F841  (keeps the table alive)
    table = _dispatch._tables_by_filename["<pay3>"]
    assert table.text.count("_sg_") == 1
    assert "_sg_e(0, a * 2)" in table.text and "a + b" in table.text


def test_a_file_filter_keeps_modules_plain():
    class NotHere(spyglass.BaseTracer):
        def file_passes_filter_for_event(self, evt, filename):
            return filename != "<pay4>"

        @spyglass.after_binop
        def h(self, *_):
            pass

    t = NotHere()
    assert code_tree(t.compile(SOURCE, "<pay4>")) == code_tree(compile(SOURCE, "<pay4>", "exec", dont_inherit=True))
