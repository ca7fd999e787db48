"""The `sys` events (call, line, return, exception, opcode; c_call, c_return,
c_exception) through `sys.settrace`/`sys.setprofile`, for tracers that have
handlers for them, in files they instrument."""
from __future__ import annotations

import sys
import threading

from spyglass import _dispatch
from spyglass.events import SYS_EVENTS, TraceEvent

_TRACE = {
    "call": TraceEvent.call,
    "line": TraceEvent.line,
    "return": TraceEvent.return_,
    "exception": TraceEvent.exception,
    "opcode": TraceEvent.opcode,
}
_PROFILE = {"c_call": TraceEvent.c_call, "c_return": TraceEvent.c_return, "c_exception": TraceEvent.c_exception}

_state = {"trace": None, "profile": None, "previous_trace": None, "previous_profile": None}


def _wanted() -> set:
    return {ev for t in _dispatch.STACK for ev, specs in t._handlers.items() if specs and ev in SYS_EVENTS}


def _interested(event, filename) -> bool:
    return any(
        t._handlers.get(event) and t._should_instrument_file(filename) and t.file_passes_filter_for_event(event.value, filename)
        for t in _dispatch.STACK
    )


def _trace(frame, what, arg):
    event = _TRACE.get(what)
    filename = frame.f_code.co_filename
    if event is not None and _interested(event, filename):
        if event is TraceEvent.opcode:
            pass
        _dispatch.emit(event, arg, frame, filename)
    if what == "call":
        frame.f_trace_opcodes = TraceEvent.opcode in _wanted()
    return _trace


def _profile(frame, what, arg):
    event = _PROFILE.get(what)
    if event is not None:
        filename = frame.f_code.co_filename
        if _interested(event, filename):
            _dispatch.emit(event, arg, frame, filename)


def update() -> None:
    wanted = _wanted()
    want_trace = bool(wanted & set(_TRACE.values()))
    want_profile = bool(wanted & set(_PROFILE.values()))
    if want_trace and _state["trace"] is None:
        _state["previous_trace"] = sys.gettrace()
        _state["trace"] = _trace
        sys.settrace(_trace)
        threading.settrace(_trace)
    elif not want_trace and _state["trace"] is not None:
        sys.settrace(_state["previous_trace"])
        threading.settrace(_state["previous_trace"])
        _state["trace"] = None
    if want_profile and _state["profile"] is None:
        _state["previous_profile"] = sys.getprofile()
        _state["profile"] = _profile
        sys.setprofile(_profile)
    elif not want_profile and _state["profile"] is not None:
        sys.setprofile(_state["previous_profile"])
        _state["profile"] = None
