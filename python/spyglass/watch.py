"""Code-object watchers: be called when code objects are created or destroyed.

    from spyglass import watch

    def seen(event, code):
        print(event.name, code.co_qualname, code.co_filename)

    with watch.watching(seen):
        import json.tool          # CREATE for every code object of the module

    wid = watch.add(seen, events=("destroy",))
    ...
    watch.clear(wid)

On CPython 3.12+ this is `PyCode_AddWatcher`: CREATE fires right after a code
object is fully initialised, DESTROY right before it is freed. spyglass takes
one of the interpreter's 8 watcher slots and multiplexes any number of
callbacks on it. CPython 3.11 has no watcher API: spyglass emulates CREATE
from an audit hook and cannot report DESTROY. `EVENT_TABLE` (rendered in
docs/watch.md) says what fires where.

Callbacks run inside code creation and destruction, so keep them short. A
callback that raises is reported through `sys.unraisablehook`, naming the
callback, and the program goes on; an exception being propagated when the
event fires is left untouched. A callback is never re-entered on the same
thread: code objects created or freed while it runs (by it or by what it
calls) are not reported to it. Keeping a reference to the code object in a
DESTROY callback resurrects it (CPython reports DESTROY again when it dies).
"""
from __future__ import annotations

import atexit
import contextlib
import enum
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from types import CodeType
from typing import Any, Protocol

from spyglass import _native

__all__ = [
    "CodeEvent",
    "UnsupportedEvent",
    "add",
    "clear",
    "watching",
    "active",
    "release",
    "supported_events",
    "BACKEND",
    "EVENT_TABLE",
    "event_table_markdown",
    "CodeConsumer",
    "AutoInstrument",
    "auto_instrument",
]


class CodeEvent(enum.IntEnum):
    """What happened to a code object; the values are CPython's `PyCodeEvent`."""

    CREATE = 0
    DESTROY = 1


class UnsupportedEvent(NotImplementedError):
    """The running interpreter cannot report this event."""


_native.watch_setup(CodeEvent.CREATE, CodeEvent.DESTROY)

#: "PyCode_AddWatcher" (3.12+) or "audit hook" (the 3.11 emulation).
BACKEND: str
BACKEND, _, _SUPPORTED_MASK = _native.watch_backend()

_ALL_EVENTS = ("create", "destroy")


def supported_events() -> frozenset[CodeEvent]:
    """The events this interpreter can report."""
    return frozenset(e for e in CodeEvent if _SUPPORTED_MASK & (1 << e))


def _event(value: Any) -> CodeEvent:
    if isinstance(value, CodeEvent):
        return value
    if isinstance(value, str):
        try:
            return CodeEvent[value.upper()]
        except KeyError:
            pass
    names = ", ".join(repr(e.name.lower()) for e in CodeEvent)
    raise ValueError(f"unknown code event {value!r}: expected one of {names} or a CodeEvent")


def _mask(events: Any) -> int:
    """The native event mask for `events`; the default asks for every event
    this interpreter supports, an explicit request must be supported."""
    if events is _ALL_EVENTS:
        return _SUPPORTED_MASK
    if isinstance(events, (str, CodeEvent)):
        events = (events,)
    mask = 0
    for value in events:
        event = _event(value)
        if not _SUPPORTED_MASK & (1 << event):
            raise UnsupportedEvent(
                f"the code {event.name} event needs CPython 3.12+ (PyCode_AddWatcher); "
                f"on {sys.version.split()[0]} spyglass can only emulate "
                f"{', '.join(sorted(e.name for e in supported_events()))} (see docs/watch.md)"
            )
        mask |= 1 << event
    if not mask:
        raise ValueError("events must name at least one code event")
    return mask


def add(callback: Callable[[CodeEvent, CodeType], object], *, events: Iterable[str | CodeEvent] | str | CodeEvent = _ALL_EVENTS) -> int:
    """Call `callback(event, code)` for each code event; returns an id for `clear`.

    `events` selects "create" and/or "destroy" (strings or `CodeEvent`). By
    default every event the interpreter supports is reported (on 3.11, only
    CREATE); asking explicitly for one it cannot report raises
    `UnsupportedEvent`.
    """
    return _native.watch_add(callback, _mask(events))


def clear(watcher_id: int) -> None:
    """Stop calling the callback registered under `watcher_id`."""
    if not isinstance(watcher_id, int) or isinstance(watcher_id, bool) or watcher_id < 0 \
            or not _native.watch_clear(watcher_id):
        raise ValueError(f"no spyglass code watcher with id {watcher_id!r}")


@contextlib.contextmanager
def watching(callback: Callable[[CodeEvent, CodeType], object], *, events: Iterable[str | CodeEvent] | str | CodeEvent = _ALL_EVENTS) -> Iterator[int]:
    """`add` for the duration of a `with` block; yields the watcher id."""
    watcher_id = add(callback, events=events)
    try:
        yield watcher_id
    finally:
        clear(watcher_id)


def active() -> list[int]:
    """Ids of the registered callbacks, in the order they are called."""
    return _native.watch_ids()


def release() -> None:
    """Give back spyglass's native watcher slot (3.12+).

    The slot is taken by the first `add` and kept afterwards, because
    clearing a watcher while another watcher's callback is running crashes
    CPython (it does not check for a cleared slot). Call this only when no
    callbacks are registered and no code-watcher callback of any tool is
    running (e.g. at the top level of a program); spyglass does it itself at
    interpreter exit. On 3.11 the audit hook cannot be removed and this does
    nothing beyond the checks.
    """
    _native.watch_release()


def _at_exit() -> None:
    # No Python callback may run while the interpreter tears modules down.
    _native.watch_clear_all()
    with contextlib.suppress(RuntimeError, ValueError):  # e.g. exit() from inside a callback
        _native.watch_release()


atexit.register(_at_exit)


# --------------------------------------------------------------------------
# What fires on each version. This table is the one source of truth: the
# docs embed `event_table_markdown()` and tests/test_watch_table.py checks
# every cell's kind against the running interpreter.
#
# Each cell is (kind, text). Kinds: "created" = CREATE before the call that
# makes the code object (compile(), exec(), import, replace()...) returns;
# "first-use" = CREATE only once the code object is run, made into a
# function or assigned to a function's __code__; "destroy" = DESTROY just
# before it is freed; "none" = nothing fires; "unsupported" = asking for the
# event raises UnsupportedEvent.

EVENT_TABLE: tuple[dict[str, Any], ...] = (
    dict(key="compile", case="`compile()` of source",
         py311=("first-use", "CREATE when the result first runs (`exec`/`eval`) or becomes a function"),
         py312=("created", "CREATE during `compile()`, nested code objects first")),
    dict(key="exec-source", case="`exec()`/`eval()` of a string",
         py311=("created", "CREATE as it starts running"),
         py312=("created", "CREATE while it is compiled")),
    dict(key="import-source", case="`import` from a `.py` file",
         py311=("created", "CREATE as the module body starts running"),
         py312=("created", "CREATE while the module is compiled")),
    dict(key="import-pyc", case="`import` from a `.pyc` file",
         py311=("created", "CREATE as the module body starts running"),
         py312=("created", "CREATE as `marshal` loads each code object")),
    dict(key="nested", case="nested code: functions, lambdas, classes, generator expressions, "
                             "comprehensions (3.11; 3.12 inlines them)",
         py311=("first-use", "CREATE with their enclosing code object"),
         py312=("created", "CREATE with their enclosing code object (a `def` running creates none)")),
    dict(key="replace", case="`code.replace()`",
         py311=("first-use", "CREATE when the result runs, goes to `types.FunctionType()` or to `function.__code__`"),
         py312=("created", "CREATE at once")),
    dict(key="code-new", case="`types.CodeType(...)`",
         py311=("first-use", "as `code.replace()`"),
         py312=("created", "CREATE at once")),
    dict(key="marshal", case="`marshal.loads()`",
         py311=("first-use", "as `code.replace()`"),
         py312=("created", "CREATE for each code object loaded")),
    dict(key="new-empty", case="`spyglass.code.empty()` (`PyCode_NewEmpty`)",
         py311=("first-use", "as `code.replace()`"),
         py312=("created", "CREATE at once")),
    dict(key="destroy", case="a code object is freed",
         py311=("unsupported", "no DESTROY: asking for it raises `UnsupportedEvent`"),
         py312=("destroy", "DESTROY just before it is freed; a reference kept by the callback resurrects it")),
    dict(key="preexisting", case="code created before the watcher was added",
         py311=("first-use", "CREATE the first time it is run or assigned afterwards"),
         py312=("none", "no CREATE (DESTROY when it is freed)")),
)


def event_table_markdown() -> str:
    """`EVENT_TABLE` as the Markdown table docs/watch.md embeds."""
    lines = ["| what | 3.11 (audit-hook emulation) | 3.12, 3.13, 3.14 (`PyCode_AddWatcher`) |",
             "|---|---|---|"]
    for row in EVENT_TABLE:
        lines.append(f"| {row['case']} | {row['py311'][1]} | {row['py312'][1]} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# auto_instrument: the watcher side of "instrument every new code object"


class CodeConsumer(Protocol):
    """What `auto_instrument` needs from a tracer.

    `on_new_code(code)` receives each new code object whose file passed the
    filter, once. It runs inside code creation (3.12+) or just before the
    code object first runs (3.11), so it must not assume the code has run
    and should be quick. Its exceptions are reported as unraisable and do
    not reach the program. Code objects it creates itself are not handed
    back to it. The bytecode tracer (`spyglass.opcodes.Trace`, `Recorder`)
    makes the code object a root of the trace, traced wherever it runs while
    the trace is active; the source-level tracer (`BaseTracer`) makes the
    functions later created from it run its instrumented twin (3.12+). See
    docs/watch.md.

    Optional: `on_auto_instrument(accept)` / `on_auto_instrument_end(accept)`
    are called when auto_instrument starts and stops, with its file filter.
    """

    def on_new_code(self, code: CodeType) -> object: ...


_SPYGLASS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_VERDICT_CACHE_LIMIT = 4096


def _file_filter(filter: Callable[[str], bool] | str | Iterable[str] | None) -> Callable[[str], bool]:
    if filter is None:
        return lambda filename: True
    if callable(filter):
        return filter
    wrong = TypeError("filter must be a callable taking a file name, a path prefix, "
                      f"or an iterable of path prefixes, not {type(filter).__name__}")
    if isinstance(filter, str):
        prefixes: tuple[str, ...] = (filter,)
    else:
        try:
            prefixes = tuple(filter)
        except TypeError:
            raise wrong from None
    if not prefixes or not all(isinstance(p, str) for p in prefixes):
        raise wrong
    absolute = tuple(os.path.abspath(p) for p in prefixes)

    def accept(filename: str) -> bool:
        if filename.startswith("<"):  # "<string>", "<frozen os>", ...
            return filename.startswith(prefixes)
        path = os.path.abspath(filename)
        return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in absolute)

    return accept


class AutoInstrument:
    """Hands each new code object whose file passes a filter to a tracer.

    Made by `auto_instrument`; stops at `close()` or at the end of a `with`
    block. `handed` counts the code objects given to the tracer.
    """

    def __init__(self, tracer: CodeConsumer, filter: Callable[[str], bool] | str | Iterable[str] | None):
        on_new_code = getattr(tracer, "on_new_code", None)
        if not callable(on_new_code):
            raise TypeError(
                f"auto_instrument needs a tracer with an on_new_code(code) method; "
                f"{type(tracer).__name__} has none")
        self.tracer = tracer
        self.handed = 0
        self._on_new_code = on_new_code
        self._accept = _file_filter(filter)
        self._verdicts: dict[str, bool] = {}
        self._id: int | None = add(self._on_create, events=("create",))
        # optional: a tracer that also instruments files at import (the
        # source engine) is told which files, and when that stops
        self._started = getattr(tracer, "on_auto_instrument", None)
        self._ended = getattr(tracer, "on_auto_instrument_end", None)
        if callable(self._started):
            self._started(self._passes)

    def _passes(self, filename: str) -> bool:
        return not filename.startswith(_SPYGLASS_DIR) and bool(self._accept(filename))

    def _on_create(self, event: CodeEvent, code: CodeType) -> None:
        filename = code.co_filename
        ok = self._verdicts.get(filename)
        if ok is None:
            if len(self._verdicts) >= _VERDICT_CACHE_LIMIT:
                self._verdicts.clear()  # e.g. compile() with a fresh name each time
            ok = self._verdicts[filename] = self._passes(filename)
        if ok:
            self.handed += 1
            self._on_new_code(code)

    @property
    def active(self) -> bool:
        return self._id is not None

    def close(self) -> None:
        if self._id is not None:
            clear(self._id)
            self._id = None
            if callable(self._ended):
                self._ended(self._passes)

    def __enter__(self) -> AutoInstrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "active" if self.active else "closed"
        return f"<spyglass.watch.AutoInstrument {state} tracer={self.tracer!r} handed={self.handed}>"


def auto_instrument(tracer: CodeConsumer, filter: Callable[[str], bool] | str | Iterable[str] | None = None) -> AutoInstrument:
    """Give every new code object whose file passes `filter` to `tracer.on_new_code`.

    `filter` is a callable taking `code.co_filename`, a path prefix (a file
    or a directory), an iterable of path prefixes, or None for every file.
    spyglass's own code objects are never handed over. Returns a handle:
    `close()` it, or use it as a context manager.
    """
    return AutoInstrument(tracer, filter)
