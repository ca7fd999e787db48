"""Operators as callables, in the order of the native operator codes
(crates/native/src/rewrite/walk.rs: binop_code, unary_code, cmp_code)."""
from __future__ import annotations

import operator


def _in(a, b):
    return a in b


def _not_in(a, b):
    return a not in b


BINARY_OPERATORS = (
    operator.add, operator.sub, operator.mul, operator.matmul, operator.truediv, operator.mod,
    operator.pow, operator.lshift, operator.rshift, operator.or_, operator.xor, operator.and_,
    operator.floordiv,
)
UNARY_OPERATORS = (operator.invert, operator.not_, operator.pos, operator.neg)
COMPARISON_OPERATORS = (
    operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
    operator.is_, operator.is_not, _in, _not_in,
)


def chain_compare(codes: tuple[int, ...]):
    """`a < b < c ...` as a function of all operands (given all, it cannot
    short-circuit their evaluation, only the comparisons)."""
    ops = [COMPARISON_OPERATORS[c] for c in codes]

    def compare(*operands):
        if len(operands) != len(ops) + 1:
            raise TypeError(f"this comparison takes {len(ops) + 1} operands, not {len(operands)}")
        result = True
        for op, a, b in zip(ops, operands, operands[1:]):
            result = op(a, b)
            if not result:
                return result
        return result

    return compare
