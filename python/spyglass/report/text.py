"""The terminal report: frame entries and exits, then one line per
instruction with offset, opname, arg, argval and the stack before it."""
from __future__ import annotations

import os
from typing import IO

from spyglass.opcodes import Recording

_COLORS = dict(enter="\x1b[32m", exit="\x1b[33m", raise_="\x1b[31m", op="\x1b[1;36m",
               dim="\x1b[2m", line="\x1b[35m", reset="\x1b[0m")


def use_color(stream: IO, mode: str = "auto") -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def write_text(rec: Recording, out: IO, color: bool = False, max_stack_chars: int = 120) -> int:
    """Writes the report; returns the number of instruction lines."""
    c = _COLORS if color else {k: "" for k in _COLORS}
    lines = 0
    for ev in rec.events():
        kind = ev["kind"]
        indent = "  " * ev.get("call_depth", 0)
        if kind == "enter":
            code = rec.codes[ev["code"]]
            verb = {"start": "enter", "resume": "resume", "throw": "resume (throw)"}.get(ev["how"], ev["how"])
            out.write(f"{indent}{c['enter']}>>> {verb} {code['qualname']} "
                      f"({code['filename']}:{code['firstlineno']}){c['reset']}\n")
        elif kind == "exit":
            name = rec.codes[ev["code"]]["qualname"] if ev["code"] is not None else "?"
            how = ev["how"]
            value = f" -> {ev['value']}" if ev.get("value") is not None else ""
            col = c["raise_"] if how in ("raise",) else c["exit"]
            text = {"return": "return from", "yield": "yield out of", "raise": "exception out of",
                    "open": "still running at the end:"}.get(how, how)
            out.write(f"{indent}{col}<<< {text} {name}{value}{c['reset']}\n")
        elif kind == "instr":
            stack = ev["stack"]
            if stack is None:
                shown = f"depth {ev['depth']}"
            else:
                hidden = ev["depth"] - len(stack)
                shown = "[" + (f"...{hidden} more, " if hidden else "") + ", ".join(stack) + "]"
                if len(shown) > max_stack_chars:
                    shown = shown[: max_stack_chars - 4] + "...]"
            arg = "" if ev["arg"] is None else str(ev["arg"])
            argrepr = f"({ev['argrepr']})" if ev["argrepr"] else ""
            line = f"L{ev['line']}" if ev["line"] is not None else ""
            out.write(f"{indent}  {c['line']}{line:>5}{c['reset']} {ev['offset']:>5} "
                      f"{c['op']}{ev['opname']:<22}{c['reset']} {arg:>4} {argrepr:<24} "
                      f"{c['dim']}stack: {shown}{c['reset']}\n")
            lines += 1
        elif kind == "truncated":
            out.write(f"{c['raise_']}... recording truncated (max_events reached){c['reset']}\n")
    return lines
