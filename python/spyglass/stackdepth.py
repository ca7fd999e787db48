"""Static stack-depth analysis of a code object.

For every instruction, the depth of the value stack just before it runs, as
the running interpreter's own compiler models it: `dis.stack_effect` of this
interpreter gives each instruction's effect on its fall-through and jump
edges, the exception table gives the depth at each handler, and a worklist
propagates depths from the first `RESUME` (depth 0) and from every handler.

CPython 3.12 and 3.13 do not save the stack pointer at `sys.monitoring`
INSTRUCTION events, so `spyglass.opcodes` reads that many slots of the frame
on those versions. The analysis therefore refuses rather than guesses: two
paths that reach an instruction with different depths, a negative depth, or
a depth above `co_stacksize` raise `StackDepthError`.

Where the interpreter's execution differs from the compiler's model it does
so only at instructions that never run in that state (3.12-3.14 `FOR_ITER`
skips the `END_FOR` its jump targets), so the depth at every instruction
that does run is the modelled one. tests/test_opcodes_depth.py checks this
against the interpreter's own saved stack pointer (3.11 and 3.14 at every
instruction; 3.12 and 3.13 where they save it).
"""
from __future__ import annotations

import dis
import types

__all__ = ["StackDepthError", "stack_depths", "nlocalsplus"]

# the instructions that can jump (to `argval`). 3.14's END_ASYNC_FOR has a
# "jump" argument that only names the END_SEND its branch event reports as
# the source; it falls through to the code after the loop and never jumps
JUMPS = frozenset(set(dis.hasjrel) | set(dis.hasjabs)) - {
    dis.opmap[name] for name in ("END_ASYNC_FOR", "INSTRUMENTED_END_ASYNC_FOR") if name in dis.opmap
}
# instructions after which control never falls through to the next one
_NO_FALLTHROUGH = frozenset(
    dis.opmap[name]
    for name in (
        "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE",
        "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP", "JUMP_NO_INTERRUPT",
    )
    if name in dis.opmap
)
_RESUME = dis.opmap["RESUME"]
# 3.11 compiles a call as PRECALL n; CALL n and the compiler's model pops the
# arguments at PRECALL, but the interpreter pops everything at CALL.
_PRECALL = dis.opmap.get("PRECALL")
_CALL = dis.opmap["CALL"]


def _effect(op: int, arg: int | None, jump: bool | None = None) -> int:
    if op == _PRECALL:
        return 0
    if op == _CALL and _PRECALL is not None:
        return -arg - 1
    return dis.stack_effect(op, arg, jump=jump)


class StackDepthError(ValueError):
    """The analysis cannot give one exact depth for some instruction."""


def nlocalsplus(code: types.CodeType) -> int:
    """Number of fast-local slots (locals, cells, free vars) before the stack.

    Cells of arguments share the argument's slot (3.11+).
    """
    varnames = code.co_varnames
    cells = [c for c in code.co_cellvars if c not in varnames]
    return len(varnames) + len(cells) + len(code.co_freevars)


def _where(code: types.CodeType, offset: int) -> str:
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({code.co_filename}:{code.co_firstlineno}) at offset {offset}"


def stack_depths(code: types.CodeType) -> list[int]:
    """Depth before each instruction, indexed by ``offset // 2``.

    -1 marks offsets that are not instructions (inline caches), code that is
    unreachable, and the prologue before the first `RESUME` (no event is
    ever delivered there).
    """
    instrs = list(dis.get_instructions(code))
    n = len(code.co_code) // 2
    depths = [-1] * n
    if not instrs:
        return depths
    index = {ins.offset: k for k, ins in enumerate(instrs)}
    start = next((ins.offset for ins in instrs if ins.opcode == _RESUME), instrs[0].offset)
    work: list[tuple[int, int, int]] = [(start, 0, -1)]
    for entry in dis._parse_exception_table(code):
        work.append((entry.target, entry.depth + int(entry.lasti) + 1, -1))
    limit = code.co_stacksize
    while work:
        offset, depth, came_from = work.pop()
        k = index.get(offset)
        if k is None:
            raise StackDepthError(f"{_where(code, offset)}: jump into the middle of an instruction")
        if depth < 0 or depth > limit:
            raise StackDepthError(
                f"{_where(code, offset)}: depth {depth} outside 0..co_stacksize={limit}"
                f" (reached from offset {came_from})"
            )
        seen = depths[offset // 2]
        if seen == depth:
            continue
        if seen != -1:
            raise StackDepthError(
                f"{_where(code, offset)}: paths meet with depths {seen} and {depth}"
                f" (the latter from offset {came_from})"
            )
        depths[offset // 2] = depth
        ins = instrs[k]
        op, arg = ins.opcode, ins.arg
        if op < dis.HAVE_ARGUMENT:
            arg = None
        if op in JUMPS:
            work.append((ins.argval, depth + _effect(op, arg, jump=True), offset))
            if op not in _NO_FALLTHROUGH and k + 1 < len(instrs):
                work.append((instrs[k + 1].offset, depth + _effect(op, arg, jump=False), offset))
        elif op not in _NO_FALLTHROUGH and k + 1 < len(instrs):
            work.append((instrs[k + 1].offset, depth + _effect(op, arg), offset))
    return depths
