"""Steer a running program: every float literal becomes an exact Decimal,
and every binary operation is reported as it happens.

    python examples/exact_floats.py
"""
import ast
from decimal import Decimal

import spyglass


class ExactFloats(spyglass.BaseTracer):
    @spyglass.after_float
    def to_decimal(self, ret, node, frame, event, **kwargs):
        return Decimal(str(ret))

    @spyglass.after_binop
    def report(self, ret, node, frame, event, **kwargs):
        op = type(node.op).__name__
        print(f"  line {node.lineno}, col {node.col_offset}: {ast.unparse(node)} -> {ret!r} ({op})")


PROGRAM = """
price = 0.1 + 0.2
total = price * 3
print("total:", total)
"""

print("plain Python:")
exec(PROGRAM, {})
print("under spyglass:")
with ExactFloats:
    spyglass.exec(PROGRAM)
