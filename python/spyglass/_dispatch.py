"""The Python half of the dispatcher (the hot half is crates/native/src/dispatch.rs).

Python decides, once per site and tracer-stack generation, which handlers a
site's events go to (`plan_site`), and handles the rare paths: a handler
that raised, a statement a handler skipped, a thunk a handler forced.
"""
from __future__ import annotations

import ast
import builtins
import sys
import warnings
import weakref
from typing import Any

from spyglass import _native, _ops, nodes
from spyglass.events import EVENTS_BY_INDEX, TraceEvent
from spyglass.sentinels import Null, Pass, Skip, SkipAll

FORMS = dict(_native.site_forms())
_SUBSCRIPT = FORMS["subscript"]

# flags of a plan entry (crates/native/src/dispatch.rs)
F_REENTRANT_HANDLER = 1
F_TRACER_REENTRANT = 2
F_THREADS = 4


class HandlerExceptionWarning(RuntimeWarning):
    """A handler raised; the program went on with the value unchanged."""


#: the tracers whose handlers fire, bottom of the stack first
STACK: list = []

#: filename -> table of the code last instrumented under that name, for code
#: objects that lost their tie to a table (e.g. made by `code.replace`)
_tables_by_filename: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()

_reported: set = set()
_filter_cache: dict = {}
_filter_cache_generation = [0]


def remember_table(table) -> None:
    _tables_by_filename[table.filename] = table


def table_for_code(code):
    table = _tables_by_filename.get(code.co_filename)
    if table is not None:
        table.attach(code)
    return table


def tracer_applies(tracer, table, event: TraceEvent) -> bool:
    """Does `tracer` handle `event` in the table's module (its file filters)?"""
    gen = _native.generation()
    if _filter_cache_generation[0] != gen:
        _filter_cache.clear()
        _filter_cache_generation[0] = gen
    key = (id(tracer), table.filename, event)
    hit = _filter_cache.get(key)
    if hit is None:
        explicit = table.__dict__.get("explicit", False)
        filename = table.filename
        hit = bool(
            (explicit or tracer._should_instrument_file(filename))
            and tracer.file_passes_filter_for_event(event.value, filename)
        )
        _filter_cache[key] = hit
    return hit


def _kwarg(table, value):
    if type(value) is tuple and len(value) == 2 and value[0] == "node":
        return id(nodes.node(table, value[1]))
    return value


def entries_for(event: TraceEvent, pos: int, node_ref, kwargs: dict, tracers, table=None, dynamic_key=False, node_class=None):
    """Plan entries of `event` for `tracers`. `node_ref` is (table, node id)
    or None for events without a node."""
    out = []
    names = tuple(kwargs) + (("attr_or_subscript",) if dynamic_key else ())
    values = tuple(_kwarg(table, v) for v in kwargs.values())
    for tracer in tracers:
        specs = tracer._handlers.get(event)
        if not specs:
            continue
        if table is not None and not tracer_applies(tracer, table, event):
            continue
        flags = (F_TRACER_REENTRANT if tracer.allow_reentrant_events else 0) | (
            F_THREADS if tracer.multiple_threads_allowed else 0
        )
        for spec in specs:
            if node_ref is not None:
                # raw handlers get id(node): either way the node must exist
                node = nodes.node(*node_ref)
                if spec.node_class is not None and not isinstance(node, spec.node_class):
                    continue
                if spec.predicate.static and not spec.predicate.is_true and not spec.predicate(node):
                    continue
                node_arg = id(node) if spec.use_raw_node_id else node
            else:
                node = node_arg = None
            predicate = None if (spec.predicate.static or spec.predicate.is_true) else spec.predicate
            pred_arg = node
            out.append(
                (
                    pos,
                    event,
                    tracer._slot,
                    tracer,
                    spec.handler,
                    node_arg,
                    names or None,
                    values,
                    dynamic_key,
                    predicate,
                    pred_arg,
                    flags | (F_REENTRANT_HANDLER if spec.reentrant else 0),
                )
            )
    return out


def plan_site(table, k: int, gen: int):
    form, events, _after, _op = table.site(k)
    entries = []
    for pos, (ev_index, node_id, kwargs) in enumerate(events):
        event = EVENTS_BY_INDEX[ev_index]
        entries.extend(
            entries_for(
                event,
                pos,
                (table, node_id),
                kwargs,
                STACK,
                table=table,
                dynamic_key=form == _SUBSCRIPT,
            )
        )
    return _native.SitePlan(gen, entries)


def emit(event: TraceEvent, ret, frame, filename: str, **kwargs):
    """Fires an event that has no site (imports, sys trace events)."""
    tracers = [
        t for t in STACK
        if t._handlers.get(event) and t._should_instrument_file(filename) and t.file_passes_filter_for_event(event.value, filename)
    ]
    if not tracers:
        return ret
    entries = entries_for(event, 0, None, kwargs, tracers)
    if not entries:
        return ret
    return _native.emit_plan(_native.SitePlan(_native.generation(), entries), frame, ret)


def handler_failed(tracer, func, event, frame, exc) -> bool:
    """A handler raised `exc`: True re-raises it, False reports it (once per
    handler and event) and goes on with the value unchanged."""
    if tracer.should_propagate_handler_exception(event, exc):
        return True
    key = (getattr(func, "__qualname__", repr(func)), event)
    if key not in _reported:
        _reported.add(key)
        name = getattr(func, "__qualname__", None) or repr(func)
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        warnings.warn_explicit(
            f"spyglass: handler {name} raised {type(exc).__name__}: {exc} on event {event.value} at {where}; "
            "the value was left unchanged (return True from should_propagate_handler_exception to raise instead)",
            HandlerExceptionWarning,
            frame.f_code.co_filename,
            frame.f_lineno,
        )
    return False


def exec_statement(table, k: int, ret, frame) -> bool:
    """A before_stmt handler returned `ret` (not None): True if the statement
    is skipped (after running `ret` as its replacement)."""
    if ret is Pass:
        return True
    if isinstance(ret, (str, ast.AST)):
        source = ret if isinstance(ret, str) else ast.unparse(ret)
        exec(compile(source, table.filename, "exec", dont_inherit=True), frame.f_globals, frame.f_locals)
        return True
    key = ("statement", table.filename, k)
    if key not in _reported:
        _reported.add(key)
        warnings.warn_explicit(
            f"spyglass: a before_stmt handler returned {ret!r}; expected None, spyglass.Pass, "
            "or replacement source text or ast; the statement ran as written",
            HandlerExceptionWarning,
            frame.f_code.co_filename,
            frame.f_lineno,
        )
    return False


class ThunkError(RuntimeError):
    """A handler forced a thunk whose expression cannot run out of place."""


def force_thunk(table, k: int, frame):
    """Evaluates the expression of Before site `k` in `frame`'s namespace."""
    cache = table.__dict__.setdefault("_thunks", {})
    code = cache.get(k)
    if code is None:
        text, line, col = table.thunk_source(k)
        # the expression goes where it is in the instrumented module (inside
        # parentheses, so indentation does not matter), so that its positions
        # map back like the module's own
        source = "(" + "\n" * (line - 1) + " " * max(col - (1 if line == 1 else 0), 0) + text + ")"
        try:
            code = compile(source, table.filename, "eval", dont_inherit=True)
        except SyntaxError as exc:
            raise ThunkError(
                f"spyglass: the expression at {table.filename}:{line} cannot be evaluated by a handler "
                f"out of place ({exc.msg}); yield, await and other constructs that need the frame itself "
                "cannot run from a thunk"
            ) from None
        code = table.adopt(code)
        cache[k] = code
    return eval(code, frame.f_globals, frame.f_locals)


def install() -> None:
    """Gives the dispatcher its Python half and the instrumented code its builtins."""
    cb = type("Callbacks", (), {})()
    cb.plan_site = plan_site
    cb.handler_failed = handler_failed
    cb.exec_statement = exec_statement
    cb.force_thunk = force_thunk
    cb.table_for_code = table_for_code
    cb.chain_compare = _ops.chain_compare
    cb.Null, cb.Skip, cb.SkipAll = Null, Skip, SkipAll
    cb.BINARY_OPERATORS = _ops.BINARY_OPERATORS
    cb.UNARY_OPERATORS = _ops.UNARY_OPERATORS
    cb.COMPARISON_OPERATORS = _ops.COMPARISON_OPERATORS
    _native.install(cb)
    for name in ("_sg_e", "_sg_b", "_sg_o", "_sg_c", "_sg_s", "_sg_n", "_sg_x", "_sg_l", "_sg_t", "_sg_w", "_sg_p"):
        setattr(builtins, name, getattr(_native, name))
    builtins._sg_slice = slice


def sync() -> None:
    """The stack or some tracer's state changed."""
    _native.set_active(len(STACK))
    for t in STACK:
        _native.set_tracer_enabled(t._slot, not t._hard_disabled)
    _native.bump_generation()


install()
del sys
