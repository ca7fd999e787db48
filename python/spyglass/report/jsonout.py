"""The JSON report: the code table and every event, normalised."""
from __future__ import annotations

from spyglass.opcodes import Recording


def to_json(rec: Recording) -> dict:
    codes = [
        dict(id=c["id"], qualname=c["qualname"], filename=c["filename"], firstlineno=c["firstlineno"],
             instructions=[dict(offset=r[0], opname=r[1], arg=r[2], argrepr=r[3], line=r[4]) for r in c["instructions"]])
        for c in rec.codes
    ]
    return dict(format="spyglass-opcodes-trace", version=1, python=rec.python, backend=rec.footer.get("backend"),
                meta=rec.meta, stats=rec.stats, codes=codes, events=list(rec.events()))
