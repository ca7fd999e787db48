"""`TraceEvent`: the source-level events, built from the native event table.

The table (names, values and order as in Pyccolo 0.0.96) lives in Rust
(crates/native/src/events.rs); this module only gives it its Python shape.
Each member is also a decorator: ``@spyglass.after_binop`` or
``@spyglass.load_name(when=...)`` registers the decorated method as a handler.
"""
from __future__ import annotations

import ast
import enum
from typing import NamedTuple

from spyglass import _native


class EventInfo(NamedTuple):
    name: str
    value: str
    group: str
    kind: str
    ast_class: str | None
    fires: str
    ret: str
    kwargs: str


EVENT_INFO: dict[str, EventInfo] = {row[0]: EventInfo(*row) for row in _native.events()}


class _EventMethods:
    """Behaviour shared by every TraceEvent member."""

    __slots__ = ()

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"<{self.value}>"

    @property
    def info(self) -> EventInfo:
        return EVENT_INFO[self.name]

    @property
    def index(self) -> int:
        return _INDEX[self]

    def __call__(self, handler=None, **kwargs):
        """Use the event as a decorator, bare or with registration options."""
        from spyglass.tracer import register_handler

        if handler is None:
            return lambda f: register_handler(self, **kwargs)(f)
        if kwargs:
            raise ValueError("keyword arguments need the form @event(...)")
        return register_handler(self)(handler)


#: One member per source-level event, in the native table's order.
TraceEvent = enum.Enum(
    "TraceEvent",
    [(row[0], row[1]) for row in _native.events()],
    type=_EventMethods,
    module=__name__,
    qualname="TraceEvent",
)

_INDEX: dict[TraceEvent, int] = {e: i for i, e in enumerate(TraceEvent)}
EVENTS_BY_INDEX: tuple[TraceEvent, ...] = tuple(TraceEvent)

KIND = {e: EVENT_INFO[e.name].kind for e in TraceEvent}
SYS_EVENTS = frozenset(e for e in TraceEvent if KIND[e] == "sys")
IMPORT_EVENTS = frozenset(e for e in TraceEvent if KIND[e] == "import")
#: events the source rewriter emits
AST_EVENTS = frozenset(e for e in TraceEvent if KIND[e] in ("after", "before", "operator", "statement", "notify"))

#: `register_handler(ast.X)` registers a handler for this event
AST_TO_EVENT: dict[type, TraceEvent] = {
    getattr(ast, EVENT_INFO[e.name].ast_class): e for e in TraceEvent if EVENT_INFO[e.name].ast_class
}

#: events that register as another event, restricted to some statements
ALIASES: dict[TraceEvent, tuple[TraceEvent, type]] = {
    TraceEvent.before_assert: (TraceEvent.before_stmt, ast.Assert),
    TraceEvent.after_assert: (TraceEvent.after_stmt, ast.Assert),
}
