"""Turning source into instrumented code objects.

    source --ruff (native)--> plan per node --> instrumented text
           --compile()--> code --positions mapped back (native)--> code

Pay-as-you-go: an event is instrumented only where an active tracer has a
handler for it whose file filter and `when=` condition pass; with nothing to
instrument, the code is exactly what `compile()` makes.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import marshal
import os
import sys
import tempfile
import threading
import warnings
from typing import Iterable, Optional

from spyglass import _dispatch, _native, nodes
from spyglass.events import AST_EVENTS, EVENTS_BY_INDEX, TraceEvent

N_EVENTS = len(EVENTS_BY_INDEX)
VERSION = sys.version_info[:2]
SUPPORTED = ((3, 11), (3, 12), (3, 13), (3, 14))


class InstrumentationError(RuntimeError):
    """spyglass produced code CPython rejects (a bug in spyglass)."""


def check_version() -> None:
    if VERSION not in SUPPORTED:
        raise RuntimeError(
            f"spyglass source instrumentation supports CPython 3.11 to 3.14, not {sys.version.split()[0]}"
        )


class Plan:
    """Which events to instrument in one module, for some tracers."""

    def __init__(self, tracers: Iterable, filename: str, explicit: bool) -> None:
        self.enabled = [False] * N_EVENTS
        unconditional = [False] * N_EVENTS
        self.conditions: dict[TraceEvent, list] = collections.defaultdict(list)
        self.wants_module_node = []
        for tracer in tracers:
            if not (explicit or tracer._should_instrument_file(filename)):
                continue
            if type(tracer).static_init_module is not _base_static_init_module():
                self.wants_module_node.append(tracer)
            for event, specs in tracer._handlers.items():
                if event not in AST_EVENTS or not tracer.file_passes_filter_for_event(event.value, filename):
                    continue
                i = event.index
                self.enabled[i] = True
                for spec in specs:
                    if spec.predicate.is_true and spec.node_class is None:
                        unconditional[i] = True
                    else:
                        self.conditions[event].append(spec)
        self.predicated = [self.enabled[i] and not unconditional[i] and bool(self.conditions[EVENTS_BY_INDEX[i]]) for i in range(N_EVENTS)]

    @property
    def empty(self) -> bool:
        return not any(self.enabled)

    def fingerprint(self) -> Optional[str]:
        """A key for the code cache, or None when `when=` conditions decide
        (their verdicts are not known without running them)."""
        if any(self.predicated):
            return None
        return "".join("1" if e else "0" for e in self.enabled)


def _base_static_init_module():
    from spyglass.tracer import BaseTracer

    return BaseTracer.static_init_module


def _decide(source, holder, plan: Plan) -> dict:
    """Runs `when=` conditions on the candidate nodes."""
    decisions = {}
    for ev_index, addr, cls, pos in source.candidates(plan.enabled, plan.predicated, VERSION):
        event = EVENTS_BY_INDEX[ev_index]
        node = nodes.node_by_key(holder, cls, pos)
        verdict = False
        for spec in plan.conditions[event]:
            if spec.node_class is not None and not isinstance(node, spec.node_class):
                continue
            if spec.predicate.is_true or spec.predicate(node):
                verdict = True
                break
        decisions[(ev_index, addr)] = verdict
    return decisions


# ------------------------------------------------------------- disk cache

def cache_dir() -> Optional[str]:
    d = os.environ.get("SPYGLASS_CODE_CACHE")
    if d is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "spyglass", "instrumented")
    return d or None


def _build_id() -> str:
    """Identifies this build of the rewriter (a rebuilt extension must not
    reuse code the previous build instrumented)."""
    try:
        st = os.stat(_native.__file__)
        return f"{_native.__version__}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return _native.__version__


def _cache_key(source: str, filename: str, mode: str, fingerprint: str) -> str:
    h = hashlib.sha256()
    for part in (_build_id(), sys.version, sys.implementation.cache_tag or "", mode, filename, fingerprint):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    h.update(source.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _cache_load(key: str, source: str, filename: str):
    d = cache_dir()
    if not d:
        return None
    try:
        with open(os.path.join(d, key[:2], key), "rb") as f:
            blob = f.read()
        n_code = int.from_bytes(blob[:8], "little")
        n_text = int.from_bytes(blob[8:16], "little")
        code = marshal.loads(blob[16 : 16 + n_code])
        text = blob[16 + n_code : 16 + n_code + n_text].decode("utf-8", "surrogatepass")
        table = _native.ModuleTable.load(blob[16 + n_code + n_text :], filename, source, text)
    except (OSError, ValueError, EOFError, TypeError, UnicodeDecodeError):
        return None
    table.attach(code)
    return code, table


def _cache_store(key: str, code, table) -> None:
    d = cache_dir()
    if not d:
        return
    try:
        sub = os.path.join(d, key[:2])
        os.makedirs(sub, exist_ok=True)
        code_bytes = marshal.dumps(code)
        text = table.text.encode("utf-8", "surrogatepass")
        blob = len(code_bytes).to_bytes(8, "little") + len(text).to_bytes(8, "little") + code_bytes + text + table.dump()
        fd, tmp = tempfile.mkstemp(dir=sub)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, os.path.join(sub, key))
    except OSError:
        pass


# ---------------------------------------------------------------- compile

def _plain(source: str, filename: str, mode: str):
    return compile(source, filename, mode, dont_inherit=True)


def normalize_newlines(source: str) -> str:
    # CPython's tokenizer reads \r\n and \r as \n; spyglass's positions must agree
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    return source


_memo: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_MEMO_SIZE = 256


_making = threading.local()


def making_code() -> bool:
    """Is this thread inside compile_source? (auto_instrument must not take
    over the code objects spyglass itself makes.)"""
    return getattr(_making, "depth", 0) > 0


@contextlib.contextmanager
def own_code():
    """Code objects made in this block (on this thread) are spyglass's own."""
    _making.depth = getattr(_making, "depth", 0) + 1
    try:
        yield
    finally:
        _making.depth -= 1


def compile_source(source: str, filename: str, mode: str, tracers: list, *, explicit: bool, use_cache: bool = True):
    """Instrumented code for `source`, or plain code when nothing applies.
    `use_cache=False` instruments afresh (no memo, no disk cache).

    Returns (code, table or None)."""
    with own_code():
        return _compile_source(source, filename, mode, tracers, explicit=explicit, use_cache=use_cache)


def _compile_source(source: str, filename: str, mode: str, tracers: list, *, explicit: bool, use_cache: bool):
    check_version()
    source = normalize_newlines(source)
    plan = Plan(tracers, filename, explicit)
    if plan.empty and not plan.wants_module_node:
        return _plain(source, filename, mode), None

    fingerprint = plan.fingerprint()
    memo_key = None
    if fingerprint is not None and use_cache:
        memo_key = (source, filename, mode, fingerprint, explicit)
        hit = _memo.get(memo_key)
        if hit is not None:
            _memo.move_to_end(memo_key)
            return hit
    disk_key = None
    if fingerprint is not None and use_cache and not filename.startswith("<") and not plan.wants_module_node:
        disk_key = _cache_key(source, filename, mode, fingerprint)
        hit = _cache_load(disk_key, source, filename)
        if hit is not None:
            code, table = hit
            _finish_table(table, mode, explicit)
            return _memoize(memo_key, (code, table))

    try:
        parsed = _native.Source(source, mode)
    except ValueError:
        # CPython's own error, as plain compile() raises it
        code = _plain(source, filename, mode)
        warnings.warn(
            f"spyglass could not parse {filename}, which CPython compiles; it runs uninstrumented",
            RuntimeWarning,
            stacklevel=3,
        )
        return code, None

    holder = nodes._SourceOnly(source, filename, mode)
    decisions = _decide(parsed, holder, plan) if any(plan.predicated) else {}
    table = parsed.rewrite(filename, plan.enabled, plan.predicated, decisions, VERSION)
    if table is None:
        code = _plain(source, filename, mode)
        for tracer in plan.wants_module_node:
            tracer._static_init_module_impl(nodes.tree(holder))
        return _memoize(memo_key, (code, None))
    if "_tree" in holder.__dict__:
        table.__dict__["_tree"] = holder.__dict__["_tree"]
        table.__dict__["_index"] = holder.__dict__.get("_index")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = compile(table.text, filename, mode, dont_inherit=True)
        except SyntaxError as exc:
            code = None
            failure = exc
    if code is None:
        # a real error in the source is raised as CPython raises it
        plain = _plain(source, filename, mode)
        if os.environ.get("SPYGLASS_STRICT"):
            raise InstrumentationError(
                f"spyglass instrumented {filename} into invalid code: {failure}\n--- instrumented text ---\n{table.text}"
            ) from failure
        warnings.warn(
            f"spyglass failed to instrument {filename} ({failure.msg}, line {failure.lineno}); it runs uninstrumented. "
            "Please report this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return plain, None
    for w in caught:
        line = table.original_line(w.lineno) if w.filename == filename and w.lineno else w.lineno
        warnings.warn_explicit(w.message, w.category, w.filename, line)

    code = table.adopt(code)
    _finish_table(table, mode, explicit)
    for tracer in plan.wants_module_node:
        tracer._static_init_module_impl(nodes.tree(table))
    if disk_key is not None:
        _cache_store(disk_key, code, table)
    return _memoize(memo_key, (code, table))


def _finish_table(table, mode: str, explicit: bool) -> None:
    table.__dict__["mode"] = mode
    table.__dict__["explicit"] = explicit
    _dispatch.remember_table(table)


def _memoize(key, value):
    if key is not None:
        _memo[key] = value
        if len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return value
