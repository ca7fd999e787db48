"""spyglass: watch and steer running CPython programs.

Source-level events follow Pyccolo's model: subclass `BaseTracer`, decorate
methods with events (`@spyglass.after_binop`), enter the tracer (`with
MyTracer:`), and run code through `spyglass.exec`/`eval` or the import hook.
A Pyccolo tracer ports by changing `import pyccolo as pyc` to
`import spyglass as pyc`.
"""
from __future__ import annotations

import sys as _sys
from contextlib import ExitStack as _ExitStack
from contextlib import contextmanager as _contextmanager
from typing import Any as _Any

from spyglass import _native

__version__ = _native.__version__

from spyglass import _dispatch  # noqa: E402  (installs the dispatcher and its builtins)
from spyglass._dispatch import HandlerExceptionWarning, ThunkError  # noqa: E402
from spyglass.events import TraceEvent  # noqa: E402
from spyglass.instrument import InstrumentationError  # noqa: E402
from spyglass.predicate import Predicate  # noqa: E402
from spyglass.sentinels import Null, Pass, Skip, SkipAll  # noqa: E402
from spyglass.trace_stack import TraceStack  # noqa: E402
from spyglass.tracer import (  # noqa: E402
    BaseTracer,
    NoopTracer,
    register_handler,
    register_raw_handler,
    skip_when_tracing_disabled,
)

event = TraceEvent

#: code run by spyglass.exec/eval without a filename gets a name with this prefix
SANDBOX_FNAME_PREFIX = "<spyglass-"
SANDBOX_FNAME = "<spyglass>"
#: the active tracers, bottom of the stack first (Pyccolo's name)
_TRACER_STACK = _dispatch.STACK

# every event, as `spyglass.<name>` (a decorator too)
for _ev in TraceEvent:
    globals()[_ev.name] = _ev
del _ev
ellipses = TraceEvent.ellipsis  # Pyccolo's alias


def tracer() -> BaseTracer:
    """The innermost active tracer, or the NoopTracer."""
    return _dispatch.STACK[-1] if _dispatch.STACK else NoopTracer.instance()


def instance() -> BaseTracer:
    return tracer()


def exec(source, globals: dict | None = None, locals: dict | None = None, **kwargs) -> dict:
    """Runs `source` instrumented for the active tracers, as module code;
    returns its namespace (see BaseTracer.exec)."""
    kwargs["num_extra_lookback_frames"] = kwargs.get("num_extra_lookback_frames", 0) + 1
    return tracer().exec(source, globals, locals, **kwargs)


def execute(*args, **kwargs) -> dict:
    kwargs["num_extra_lookback_frames"] = kwargs.get("num_extra_lookback_frames", 0) + 1
    return exec(*args, **kwargs)


def eval(source, globals: dict | None = None, locals: dict | None = None, **kwargs) -> _Any:
    """Evaluates the expression `source` instrumented for the active tracers."""
    kwargs["num_extra_lookback_frames"] = kwargs.get("num_extra_lookback_frames", 0) + 1
    return tracer().eval(source, globals, locals, **kwargs)


def parse(source: str, mode: str = "exec", instrument: bool = True):
    return tracer().parse(source, mode=mode, instrument=instrument)


def instrumented(tracers, mutate: bool = False):
    """Decorator: run the function instrumented for `tracers`."""
    tracers = list(tracers) if isinstance(tracers, (list, tuple)) else [tracers]

    def decorate(func):
        out = func
        for t in tracers:
            out = (t.instance() if isinstance(t, type) else t).instrumented(out if out is func else func, mutate)
        return out

    return decorate


@_contextmanager
def tracing_enabled(tracers=None, **kwargs):
    tracers = list(_dispatch.STACK) if tracers is None else tracers
    if not tracers:
        raise ValueError("Expected at least one tracer to enable")
    with _ExitStack() as stack:
        for t in tracers:
            stack.enter_context(t.tracing_enabled(**kwargs))
        yield


tracing_context = tracing_enabled


@_contextmanager
def tracing_disabled(tracers=None, **kwargs):
    tracers = list(_dispatch.STACK) if tracers is None else tracers
    with _ExitStack() as stack:
        for t in tracers:
            stack.enter_context(t.tracing_disabled(**kwargs))
        yield


@_contextmanager
def allow_reentrant_event_handling():
    previous = _native.set_allow_reentrant(True)
    try:
        yield
    finally:
        _native.set_allow_reentrant(previous)


is_outer_stmt = BaseTracer.is_outer_stmt

__all__ = [
    "BaseTracer",
    "HandlerExceptionWarning",
    "InstrumentationError",
    "NoopTracer",
    "Null",
    "Pass",
    "Predicate",
    "SANDBOX_FNAME",
    "SANDBOX_FNAME_PREFIX",
    "Skip",
    "SkipAll",
    "ThunkError",
    "TraceStack",
    "TraceEvent",
    "allow_reentrant_event_handling",
    "eval",
    "event",
    "exec",
    "execute",
    "instance",
    "instrumented",
    "is_outer_stmt",
    "parse",
    "register_handler",
    "register_raw_handler",
    "skip_when_tracing_disabled",
    "tracer",
    "tracing_context",
    "tracing_disabled",
    "tracing_enabled",
] + [e.name for e in TraceEvent if not e.name.startswith("_")]
del _sys
