"""Rebuilds every instruction of a control-flow recording (3.12+).

A control-flow recording holds no per-instruction records. It holds the
events at which control can go more than one way: jumps and branches with
their destinations, where each frame starts or resumes, where it returns or
yields, where an exception is raised or comes out of a call, where a
handler takes it, and, when a callee starts, the instruction its traced
caller is in. Between two of those, a frame runs straight through
instructions that fire none of them, so the path between them is the only
one in the code that avoids every such instruction. `expand` walks those
paths in the code table of the footer and yields the same ("I", offset,
depth, None) records a per-instruction recording has, the depth coming from
the static analysis (`spyglass.stackdepth`).

A path that is not unique would mean the recording lacks an event; the
reader then stops with `FlowError` rather than guess.
"""
from __future__ import annotations

from typing import Iterator

# instructions that fire one of the recorded events whenever they run: a run
# of silent instructions ends at one of them
_EVENTED = frozenset({
    "JUMP_FORWARD", "JUMP_BACKWARD", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_FALSE", "POP_JUMP_IF_NONE",
    "POP_JUMP_IF_NOT_NONE", "FOR_ITER", "RETURN_VALUE", "RETURN_CONST", "YIELD_VALUE",
    "RAISE_VARARGS", "RERAISE",
})
# silent jumps: always taken, or taken either way without an event
_ALWAYS = frozenset({"JUMP_BACKWARD_NO_INTERRUPT"})
_EITHER = frozenset({"SEND"})


class FlowError(ValueError):
    """The control-flow records do not determine the instructions."""


class _Code:
    """One code object's table: instruction offsets, names, jump targets
    and static depths (byte offsets)."""

    def __init__(self, entry: dict):
        rows = entry["instructions"]
        flow = entry.get("flow") or {}
        self.name = entry.get("qualname", "?")
        self.offsets = [r[0] for r in rows]
        self.opname = {r[0]: r[1] for r in rows}
        self.next = {a: b for a, b in zip(self.offsets, self.offsets[1:])}
        self.prev = {b: a for a, b in zip(self.offsets, self.offsets[1:])}
        self.depth = dict(zip(self.offsets, flow.get("depths") or [None] * len(rows)))
        self.target = dict(zip(self.offsets, flow.get("targets") or [None] * len(rows)))
        self._paths: dict = {}

    def start(self, offset: int) -> int:
        """The instruction containing byte `offset` (events may name a cache
        entry of an instruction)."""
        if offset in self.opname:
            return offset
        best = None
        for o in self.offsets:
            if o > offset:
                break
            best = o
        if best is None:
            raise FlowError(f"{self.name}: no instruction at offset {offset}")
        return best

    def succ(self, off: int) -> tuple:
        name = self.opname[off]
        if name in _ALWAYS:
            return (self.target[off],)
        n = self.next.get(off)
        if name in _EITHER:
            return tuple(o for o in (n, self.target[off]) if o is not None)
        return () if n is None else (n,)

    def path(self, starts: tuple, target: int) -> list:
        """The instructions from one of `starts` to `target` inclusive that
        pass no evented instruction before `target`: exactly one must exist."""
        key = (starts, target)
        hit = self._paths.get(key)
        if hit is not None:
            return hit
        found: list = []
        for s in starts:
            # depth-first over silent instructions; a run is a few branches at most
            todo = [(s, (s,))]
            while todo and len(found) < 2:
                off, acc = todo.pop()
                if off == target:
                    found.append(list(acc))
                    continue
                if off not in self.opname or self.opname[off] in _EVENTED:
                    continue
                for n in self.succ(off):
                    if n is not None and n not in acc:
                        todo.append((n, acc + (n,)))
        if len(found) != 1:
            raise FlowError(f"{self.name}: {len(found) or 'no'} paths from {list(starts)} to offset {target}")
        self._paths[key] = found[0]
        return found[0]


class _Frame:
    __slots__ = ("code", "pos", "inflight", "thrown")

    def __init__(self, code: _Code, thrown: bool):
        self.code = code
        self.thrown = thrown  # entered by a throw into a suspended generator
        self.pos: tuple = ()  # where the next instruction may be
        self.inflight = None  # the instruction last reached, still running


def expand(records: list, codes: list[dict], limit: int) -> Iterator[tuple]:
    """The records with every instruction rebuilt (at most `limit` of them)."""
    tables = [_Code(c) for c in codes]
    frames: dict[int, _Frame] = {}
    state = dict(rec=None, out=None, emitted=0)  # frame of the records; of the output

    def upto(serial, target) -> list:
        """Runs frame `serial` up to `target` (now in flight)."""
        f = frames.get(serial)
        if f is None:
            return []
        c = f.code
        target = c.start(target)
        if f.inflight == target:
            return []  # the same instruction still (a callee returned or raised)
        if c.opname[target] == "RESUME" and c.prev.get(target) == f.inflight:
            # 3.13+: a generator thrown into is positioned after its yield
            # while the exception unwinds it
            return []
        if not f.pos:
            raise FlowError(f"{c.name}: no known position before offset {target}")
        p = c.path(f.pos, target)
        f.pos = c.succ(target)
        f.inflight = target
        # RESUME fires no instruction event: per-instruction recordings lack it too
        return [("I", o, c.depth[o], None) for o in p if c.opname[o] != "RESUME"]

    def emit(serial, items):
        if not items:
            return
        if serial != state["out"]:
            state["out"] = serial
            yield ("S", serial)
        for it in items:
            if state["emitted"] >= limit:
                raise _Full
            state["emitted"] += 1
            yield it

    try:
        for rec in records:
            tag = rec[0]
            if tag == "E":
                serial, cid = rec[1], rec[2]
                if not 0 <= cid < len(tables):
                    raise FlowError(f"code id {cid} is not in the code table")
                frames[serial] = _Frame(tables[cid], thrown=rec[5] == 2)
                state["rec"] = state["out"] = serial
                yield rec
            elif tag == "S":
                state["rec"] = rec[1]
            elif tag == "B":
                _, serial, in_flight, off = rec
                f = frames.get(serial)
                if f is None:
                    continue
                c = f.code
                off = c.start(off)
                if in_flight and f.thrown:
                    # a throw raises at the suspended yield (3.12 names the
                    # yield, 3.13+ the instruction after it); a handler or
                    # the frame's exit comes next
                    if c.opname[off] != "YIELD_VALUE" and c.opname.get(c.prev.get(off)) == "YIELD_VALUE":
                        off = c.prev[off]
                    f.pos, f.inflight = (), off
                elif in_flight:
                    # adopted in the middle of the call that adopts it
                    f.pos, f.inflight = c.succ(off), off
                else:
                    f.pos, f.inflight = (off,), None
            elif tag == "R":
                yield from emit(rec[1], upto(rec[1], rec[2]))
            elif tag == "J":
                _, how, src, dest = rec
                serial = state["rec"]
                f = frames.get(serial)
                if f is None:
                    continue
                c = f.code
                before_dest = c.prev.get(dest)
                if how == 2 and before_dest is not None and c.opname[before_dest] == "END_ASYNC_FOR":
                    # 3.14: an async for's exit names the END_SEND as its
                    # source, from the END_ASYNC_FOR handler; the event comes
                    # before the handler knows whether the exception ends the
                    # loop, so END_ASYNC_FOR stays in flight (it may re-raise)
                    yield from emit(serial, upto(serial, before_dest))
                    f.pos = (dest,)
                    continue
                yield from emit(serial, upto(serial, src))
                src = c.start(src)
                after = c.next.get(src)
                # 3.14: the destination skips a NOT_TAKEN (branch not taken)
                # or a POP_ITER (exhausted FOR_ITER) that still runs
                if how == 1 and after is not None and c.opname[after] == "NOT_TAKEN":
                    f.pos = (after,)
                elif how == 2 and c.opname[src] == "FOR_ITER" and before_dest is not None \
                        and c.opname[before_dest] == "POP_ITER":
                    f.pos = (before_dest,)
                else:
                    f.pos = (dest,)
                f.inflight = None
            elif tag == "A":
                yield from emit(state["rec"], upto(state["rec"], rec[1]))
            elif tag == "H":
                f = frames.get(state["rec"])
                if f is not None:
                    f.pos, f.inflight = (f.code.start(rec[1]),), None
            elif tag == "X":
                frames.pop(rec[1], None)
                yield rec
            else:
                yield rec
    except _Full:
        yield ("T",)


class _Full(Exception):
    pass
