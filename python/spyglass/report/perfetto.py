"""Chrome trace event format (loads in Perfetto and chrome://tracing).

Time is logical: each instruction lasts 1 µs, so the timeline shows where
the instructions went, frame by frame (a slice per frame activation, and a
slice per instruction inside it with its stack in `args`)."""
from __future__ import annotations

from spyglass.opcodes import Recording


def to_perfetto(rec: Recording, instructions: bool = True) -> dict:
    events: list[dict] = [
        dict(name="process_name", ph="M", pid=1, tid=1, args=dict(name=f"spyglass trace (Python {rec.python})")),
        dict(name="thread_name", ph="M", pid=1, tid=1, args=dict(name="traced thread")),
    ]
    t = 0
    open_frames: list[int] = []
    for ev in rec.events():
        kind = ev["kind"]
        if kind == "enter":
            code = rec.codes[ev["code"]]
            events.append(dict(name=code["qualname"], cat="frame", ph="B", ts=t, pid=1, tid=1,
                               args=dict(file=code["filename"], line=code["firstlineno"], how=ev["how"])))
            open_frames.append(ev["frame"])
        elif kind == "exit":
            if ev["frame"] in open_frames:
                # close any frames left open above it first (keeps B/E nested)
                while open_frames:
                    serial = open_frames.pop()
                    args = dict(how=ev["how"], value=ev.get("value")) if serial == ev["frame"] else dict(how="raise")
                    events.append(dict(ph="E", ts=t, pid=1, tid=1, args=args))
                    if serial == ev["frame"]:
                        break
        elif kind == "instr":
            if instructions:
                events.append(dict(name=ev["opname"], cat="instruction", ph="X", ts=t, dur=1, pid=1, tid=1,
                                   args=dict(offset=ev["offset"], arg=ev["arg"], argrepr=ev["argrepr"],
                                             line=ev["line"], depth=ev["depth"], stack=ev["stack"])))
            t += 1
    while open_frames:
        open_frames.pop()
        events.append(dict(ph="E", ts=t, pid=1, tid=1))
    return dict(traceEvents=events, displayTimeUnit="ns",
                otherData=dict(python=rec.python, time_unit="1 us = 1 instruction"))
