"""Tracers: `BaseTracer` subclasses whose decorated methods handle events.

    class Increment(spyglass.BaseTracer):
        @spyglass.after_assign_rhs
        def handle(self, ret, node, frame, event, **kwargs):
            return ret + 1

    with Increment:
        spyglass.exec("x = 42")   # binds 43

Tracers stack (`with A: with B:`); handlers run bottom of the stack first,
each receiving the value the previous one returned.
"""
from __future__ import annotations

import ast
import functools
import inspect
import linecache
import sys
import textwrap
import types
import warnings
from contextlib import contextmanager
from typing import Any, Callable, NamedTuple, Optional

from spyglass import _dispatch, _native, importer, instrument, nodes, systrace
from spyglass.events import ALIASES, AST_TO_EVENT, TraceEvent
from spyglass.predicate import Predicate
from spyglass.sentinels import Null, Pass, Skip, SkipAll  # noqa: F401  (re-exported)


class HandlerSpec(NamedTuple):
    handler: Callable[..., Any]
    use_raw_node_id: bool
    reentrant: bool
    predicate: Predicate
    #: the handler only applies to nodes of this class (event aliases)
    node_class: Optional[type]


def _resolve(event) -> list[tuple[TraceEvent, Optional[type]]]:
    items = event if isinstance(event, tuple) else (event,)
    if not items:
        raise TypeError("spyglass: register_handler needs at least one event")
    out = []
    for e in items:
        if isinstance(e, TraceEvent):
            out.append(ALIASES.get(e, (e, None)))
        elif isinstance(e, type) and issubclass(e, ast.AST):
            if e not in AST_TO_EVENT:
                known = ", ".join(sorted(f"ast.{c.__name__}" for c in AST_TO_EVENT))
                raise TypeError(f"spyglass: ast.{e.__name__} has no event of its own; use a TraceEvent or one of {known}")
            out.append((AST_TO_EVENT[e], None))
        else:
            raise TypeError(
                f"spyglass: cannot register a handler for {e!r}: expected a spyglass.TraceEvent, "
                "an ast node class, or a tuple of them"
            )
    return out


def register_handler(
    event,
    when=None,
    reentrant: bool = False,
    static: bool = False,
    use_raw_node_id: bool = False,
    guard=None,
    exempt_from_guards: bool = False,
):
    """Decorator: the method handles `event` (a TraceEvent, an `ast` node
    class, or a tuple of them) for the tracer class it is defined in."""
    events = _resolve(event)
    if when is None:
        predicate = Predicate.TRUE
    elif isinstance(when, Predicate):
        predicate = when.clone()
        if predicate is not Predicate.TRUE and predicate is not Predicate.FALSE:
            predicate.static = predicate.static or static
            predicate.use_raw_node_id = predicate.use_raw_node_id or use_raw_node_id
    elif callable(when):
        predicate = Predicate(when, use_raw_node_id=use_raw_node_id, static=static)
    else:
        raise TypeError(f"spyglass: when= must be callable or a Predicate, not {when!r}")
    if guard is not None:
        warnings.warn("spyglass does not implement Pyccolo's guards; guard= is ignored", RuntimeWarning, stacklevel=2)

    def decorate(func):
        if not callable(func):
            raise TypeError(f"spyglass: a handler must be callable, not {func!r}")
        specs = func.__dict__.setdefault("__spyglass_handlers__", [])
        for ev, node_class in events:
            specs.append((ev, HandlerSpec(func, use_raw_node_id, reentrant, predicate, node_class)))
        return func

    return decorate


def register_raw_handler(event, **kwargs):
    """Like register_handler, but the handler gets the node's id (`id(node)`)
    instead of the node."""
    return register_handler(event, use_raw_node_id=True, **kwargs)


def skip_when_tracing_disabled(handler):
    @functools.wraps(handler)
    def skipping(self, *args, **kwargs):
        if not self.is_tracing_enabled:
            return None
        return handler(self, *args, **kwargs)

    return skipping


_free_slots: list[int] = []
_next_slot = [0]


def _alloc_slot() -> int:
    if _free_slots:
        return _free_slots.pop()
    _next_slot[0] += 1
    return _next_slot[0] - 1


class _TracerMeta(type):
    """Lets the class stand for its singleton: `with MyTracer:`."""

    def __enter__(cls):
        return cls.instance().__enter__()

    def __exit__(cls, *exc):
        return cls.instance().__exit__(*exc)

    def enable(cls, **kwargs):
        return cls.instance().enable_tracing(**kwargs)

    def disable(cls):
        return cls.instance().disable_tracing()


_sandbox_counter = [0]


class BaseTracer(metaclass=_TracerMeta):
    """Base class of source-level tracers (Pyccolo's model).

    Methods decorated with an event (`@spyglass.after_binop`,
    `@spyglass.register_handler(ast.Name, when=...)`) are called as
    `handler(self, ret, node, frame, event, **kwargs)` with the real `ast`
    node; a returned value replaces the expression (None: no change,
    `spyglass.Null`: None, `Skip`/`SkipAll`: stop this tracer's / every
    tracer's remaining handlers). Activate with `with MyTracer:` (class or
    instance); run code with `exec`/`eval`/`compile`/`instrumented`, or let
    the import hook instrument files `should_instrument_file` accepts. See
    docs/events.md for the events and docs/architecture.md for the design.
    """

    #: handle events that fire while another event is being handled
    allow_reentrant_events = False
    #: handle events from threads other than the main one
    multiple_threads_allowed = False
    #: instrument every file the import hook sees
    instrument_all_files = False

    # Pyccolo's bookkeeping: id(node) -> node / enclosing nodes, for every
    # module whose nodes handlers have seen
    ast_node_by_id = nodes.ast_node_by_id
    containing_ast_by_id = nodes.containing_ast_by_id
    containing_stmt_by_id = nodes.containing_stmt_by_id
    parent_stmt_by_id = nodes.parent_stmt_by_id

    _spyglass_own_handlers: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own: dict[TraceEvent, list[HandlerSpec]] = {}
        seen = set()
        for value in cls.__dict__.values():
            target = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            specs = getattr(target, "__dict__", {}).get("__spyglass_handlers__")
            if not specs or id(target) in seen:
                continue
            seen.add(id(target))
            for ev, spec in specs:
                own.setdefault(ev, []).append(spec)
        cls._spyglass_own_handlers = own
        cls._instance = None

    def __init__(self, *args, **kwargs) -> None:
        handlers: dict[TraceEvent, list[HandlerSpec]] = {}
        for klass in reversed(type(self).__mro__):
            for ev, specs in klass.__dict__.get("_spyglass_own_handlers", {}).items():
                handlers.setdefault(ev, []).extend(specs)
        self._handlers = handlers
        self._slot = _alloc_slot()
        self._depth = 0
        self._hard_disabled = 0
        self._tracing_enabled_files: set[str] = set()
        self._auto_filters: list = []
        self._twin_resolver = None

    def __del__(self):
        slot = getattr(self, "_slot", None)
        if slot is not None:
            _native.set_tracer_enabled(slot, False)
            _free_slots.append(slot)

    # ------------------------------------------------------- the singleton

    @classmethod
    def instance(cls, *args, **kwargs):
        inst = cls.__dict__.get("_instance")
        if inst is None:
            inst = cls(*args, **kwargs)
            cls._instance = inst
        return inst

    @classmethod
    def clear_instance(cls) -> None:
        cls._instance = None

    def make_stack(self):
        """A stack of this tracer's own state (see spyglass.TraceStack)."""
        from spyglass.trace_stack import TraceStack

        return TraceStack(self)

    @property
    def events_with_registered_handlers(self) -> frozenset:
        return frozenset(ev for ev, specs in self._handlers.items() if specs)

    # ---------------------------------------------------------- filtering

    def should_instrument_file(self, filename: str) -> bool:
        """Should the import hook instrument this file for this tracer?"""
        return False

    def file_passes_filter_for_event(self, evt: str, filename: str) -> bool:
        """Should `evt` (the event's value) be instrumented/fired in this file?"""
        return True

    def should_propagate_handler_exception(self, evt: TraceEvent, exc: Exception) -> bool:
        """True re-raises an exception a handler raised instead of reporting it."""
        return False

    def _should_instrument_file(self, filename: str) -> bool:
        return (
            self.instrument_all_files
            or filename in self._tracing_enabled_files
            or bool(self.should_instrument_file(filename))
            or any(accept(filename) for accept in self._auto_filters)
        )

    # ------------------------------------- spyglass.watch.auto_instrument

    def on_auto_instrument(self, accept: Callable[[str], bool]) -> None:
        """auto_instrument started: files `accept` passes are instrumented
        by the import hook while this tracer is active."""
        self._auto_filters.append(accept)
        importer.update()

    def on_auto_instrument_end(self, accept: Callable[[str], bool]) -> None:
        """auto_instrument stopped: no more files from it, no more takeovers."""
        if accept in self._auto_filters:
            self._auto_filters.remove(accept)
        if sys.version_info >= (3, 12) and self._twin_resolver is not None:
            _native.swap_forget(self._twin_resolver)

    def on_new_code(self, code: types.CodeType) -> None:
        """A new code object from a file auto_instrument watches (3.12+).
        Functions made from it from now on run its instrumented twin, compiled
        from the file's source the first time one is made (code with free
        variables excepted: it comes instrumented with its enclosing
        function's twin). Code spyglass compiled itself is left alone."""
        if sys.version_info < (3, 12) or instrument.making_code() or not _takeover_is_safe():
            return
        if self._twin_resolver is None:
            self._twin_resolver = self._resolve_twin
        _native.swap_on_create(code, self._twin_resolver)

    def _resolve_twin(self, code: types.CodeType) -> Optional[types.CodeType]:
        lines = linecache.getlines(code.co_filename)
        if not lines:
            return None
        source = "".join(lines)
        with instrument.own_code():
            # only code compiled from the file as it is now has a faithful twin
            if not _same(_find_code(_plain_module(source, code.co_filename), code), code, _SAME_CODE):
                return None
            twin = self._twin_in(source, code)
        return twin if _same(twin, code, _SAME_SHAPE) else None

    def _twin_in(self, source: str, code: types.CodeType) -> Optional[types.CodeType]:
        """`code`'s counterpart in `source` (its file's text) instrumented."""
        module_code, _ = instrument.compile_source(source, code.co_filename, "exec", self._compile_tracers(), explicit=True)
        return _find_code(module_code, code)

    # ------------------------------------------------------------ hooks

    def enter_tracing_hook(self) -> None:
        pass

    def exit_tracing_hook(self) -> None:
        pass

    def static_init_module(self, node: ast.Module) -> None:
        """Called with each module's ast when it is instrumented (only if
        overridden, since it needs the ast)."""

    def _static_init_module_impl(self, node) -> None:
        self.static_init_module(node)

    # -------------------------------------------------------- the stack

    @property
    def is_tracing_enabled(self) -> bool:
        return self._depth > 0 and not self._hard_disabled

    def __enter__(self):
        if self._depth == 0:
            _dispatch.STACK.append(self)
            _dispatch.sync()
            importer.update()
            systrace.update()
            self.enter_tracing_hook()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> bool:
        if self._depth == 0:
            raise RuntimeError(f"{type(self).__name__} is not active")
        self._depth -= 1
        if self._depth == 0:
            _dispatch.STACK.remove(self)
            _native.set_tracer_enabled(self._slot, False)
            _dispatch.sync()
            importer.update()
            systrace.update()
            self.exit_tracing_hook()
        return False

    def enable_tracing(self, **kwargs) -> None:
        self.__enter__()

    def disable_tracing(self) -> None:
        self.__exit__(None, None, None)

    @contextmanager
    def tracing_enabled(self, tracing_enabled_file: Optional[str] = None, **kwargs):
        added = tracing_enabled_file is not None and tracing_enabled_file not in self._tracing_enabled_files
        if added:
            self._tracing_enabled_files.add(tracing_enabled_file)
        try:
            with self:
                yield self
        finally:
            if added:
                self._tracing_enabled_files.discard(tracing_enabled_file)

    @contextmanager
    def tracing_disabled(self, **kwargs):
        self._hard_disabled += 1
        _dispatch.sync()
        try:
            yield self
        finally:
            self._hard_disabled -= 1
            _dispatch.sync()

    def _compile_tracers(self) -> list:
        stack = list(_dispatch.STACK)
        return stack if self in stack else stack + [self]

    # ------------------------------------------------------ running code

    def compile(self, source, filename: str = "<string>", mode: str = "exec"):
        """The instrumented code object of `source` (not run)."""
        code, _ = instrument.compile_source(_as_source(source), filename, mode, self._compile_tracers(), explicit=True)
        return code

    def parse(self, source, mode: str = "exec", filename: Optional[str] = None, instrument: bool = True):
        """The `ast` of the instrumented source (as spyglass would run it)."""
        source = _as_source(source)
        if not instrument:
            return ast.parse(source, filename or "<unknown>", mode)
        from spyglass import instrument as inst

        plan_tracers = self._compile_tracers()
        code, table = inst.compile_source(source, filename or _sandbox_name(source), mode, plan_tracers, explicit=True)
        return ast.parse(table.text if table is not None else source, mode=mode)

    def exec(self, code, global_env: Optional[dict] = None, local_env: Optional[dict] = None, *, instrument: bool = True, filename: Optional[str] = None, num_extra_lookback_frames: int = 0) -> dict:
        """Runs `code` instrumented, as module code, and returns its namespace.

        Without `global_env`, the code runs in a fresh namespace that starts
        as a copy of the caller's globals and locals; with `global_env` (and
        no `local_env`) it runs in that dict; with both, as `exec` would.
        """
        frame = sys._getframe(1 + num_extra_lookback_frames)
        source = _as_source(code, dedent=True)
        filename = filename or _sandbox_name(source)
        if global_env is None and local_env is None:
            namespace = dict(frame.f_globals)
            if frame.f_locals is not frame.f_globals:
                namespace.update(frame.f_locals)
            global_env = namespace
        _register_source(filename, source)
        compiled = self._compile_for_run(source, filename, "exec", instrument)
        with self.tracing_enabled(tracing_enabled_file=filename):
            if local_env is None:
                exec(compiled, global_env)
                return global_env
            exec(compiled, global_env, local_env)
            return local_env

    def eval(self, code, global_env: Optional[dict] = None, local_env: Optional[dict] = None, *, instrument: bool = True, filename: Optional[str] = None, num_extra_lookback_frames: int = 0) -> Any:
        """Evaluates the expression `code` instrumented, in the caller's
        namespace unless given one."""
        frame = sys._getframe(1 + num_extra_lookback_frames)
        if isinstance(code, ast.expr):
            code = ast.Expression(code)
        source = _as_source(code, dedent=True)
        filename = filename or _sandbox_name(source)
        if global_env is None:
            global_env = frame.f_globals
            if local_env is None:
                local_env = frame.f_locals
        _register_source(filename, source)
        compiled = self._compile_for_run(source, filename, "eval", instrument)
        with self.tracing_enabled(tracing_enabled_file=filename):
            return eval(compiled, global_env, local_env)

    def execute(self, *args, **kwargs):
        return self.exec(*args, num_extra_lookback_frames=kwargs.pop("num_extra_lookback_frames", 0) + 1, **kwargs)

    def _compile_for_run(self, source: str, filename: str, mode: str, instrument_it: bool):
        if not instrument_it:
            return compile(source, filename, mode, dont_inherit=True)
        code, _ = instrument.compile_source(source, filename, mode, self._compile_tracers(), explicit=True)
        return code

    def instrumented(self, func: Callable, mutate: bool = False) -> Callable:
        """A version of `func` compiled instrumented, which runs with this
        tracer enabled. The function's module source is instrumented and its
        code object taken from there, so closures, `super()` and positions are
        exactly those of the original."""
        target = inspect.unwrap(func)
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType):
            raise TypeError(f"spyglass: instrumented() needs a Python function, not {func!r}")
        filename = code.co_filename
        lines = linecache.getlines(filename, getattr(target, "__globals__", {}))
        if not lines:
            raise ValueError(f"spyglass: no source for {target.__qualname__} ({filename})")
        new_code = self._twin_in("".join(lines), code)
        if new_code is None:
            raise ValueError(
                f"spyglass: could not find {target.__qualname__} in {filename} (was the file changed after it was loaded?)"
            )
        if mutate:
            target.__code__ = new_code
            new_func = target
        else:
            new_func = types.FunctionType(new_code, target.__globals__, target.__name__, target.__defaults__, target.__closure__)
            new_func.__kwdefaults__ = target.__kwdefaults__
            new_func.__dict__.update(target.__dict__)
            new_func.__qualname__ = target.__qualname__
            new_func.__annotations__ = getattr(target, "__annotations__", {})
        tracer = self

        @functools.wraps(func)
        def run_instrumented(*args, **kwargs):
            with tracer.tracing_enabled(tracing_enabled_file=filename):
                return new_func(*args, **kwargs)

        return run_instrumented

    def __call__(self, code):
        if isinstance(code, (str, ast.AST)):
            return self.exec(code, num_extra_lookback_frames=1)
        return self.instrumented(code)

    # ----------------------------------------------------- bookkeeping

    @classmethod
    def stmt_only_has_ancestor_types(cls, node_or_id, ancestor_types) -> bool:
        node_id = node_or_id if isinstance(node_or_id, int) else id(node_or_id)
        containing = cls.containing_stmt_by_id.get(node_id)
        parent = cls.parent_stmt_by_id.get(node_id if containing is None else id(containing))
        while parent is not None and isinstance(parent, ancestor_types):
            parent = cls.parent_stmt_by_id.get(id(parent))
        return parent is None or isinstance(parent, ast.Module)

    @classmethod
    def is_outer_stmt(cls, node_or_id, exclude_outer_stmt_types=None) -> bool:
        types_ = tuple({ast.If, ast.Try, ast.With, ast.AsyncWith} - set(exclude_outer_stmt_types or ()))
        return cls.stmt_only_has_ancestor_types(node_or_id, types_)

    @classmethod
    def is_initial_frame_stmt(cls, node_or_id) -> bool:
        return cls.stmt_only_has_ancestor_types(
            node_or_id, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)
        )


class NoopTracer(BaseTracer):
    """A tracer with no handlers."""


# a twin must take the same arguments and variables as the code it replaces
_SAME_SHAPE = (
    "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_flags",
    "co_varnames", "co_cellvars", "co_freevars",
)


_takeover_verdict: Optional[bool] = None


def _takeover_is_safe() -> bool:
    """Tier-2 code (the JIT, 3.13+) finds functions by version, and a taken
    over function keeps its original code's version: with it on, spyglass
    does not take functions over (imports are still instrumented)."""
    global _takeover_verdict
    if _takeover_verdict is None:
        import sysconfig

        tier2 = "_Py_TIER2" in (sysconfig.get_config_var("PY_CORE_CFLAGS") or "")
        jit = getattr(sys, "_jit", None)
        on = tier2 and (jit.is_enabled() if jit is not None else True)
        if on:
            warnings.warn(
                "spyglass: this interpreter runs tier-2 code (the JIT); auto_instrument "
                "instruments imports only and does not take over new functions",
                RuntimeWarning,
                stacklevel=3,
            )
        _takeover_verdict = not on
    return _takeover_verdict


# the same compiled code: a file's code as it is now is the code in hand
_SAME_CODE = _SAME_SHAPE + ("co_code", "co_names", "co_firstlineno")

_plain_modules: dict = {}


def _plain_module(source: str, filename: str) -> types.CodeType:
    key = (filename, source)
    code = _plain_modules.get(key)
    if code is None:
        if len(_plain_modules) >= 32:
            _plain_modules.clear()
        code = _plain_modules[key] = instrument._plain(source, filename, "exec")
    return code


def _same(a: Optional[types.CodeType], b: types.CodeType, attrs: tuple) -> bool:
    return a is not None and all(getattr(a, x) == getattr(b, x) for x in attrs)


def _find_code(root: types.CodeType, like: types.CodeType) -> Optional[types.CodeType]:
    todo = [root]
    while todo:
        c = todo.pop()
        if c.co_name == like.co_name and c.co_firstlineno == like.co_firstlineno and c.co_qualname == like.co_qualname:
            return c
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    return None


def _as_source(code, dedent: bool = False) -> str:
    if isinstance(code, ast.AST):
        if isinstance(code, ast.stmt):
            code = ast.Module([code], [])
        return ast.unparse(ast.fix_missing_locations(code))
    if isinstance(code, bytes):
        code = code.decode("utf-8")
    if not isinstance(code, str):
        raise TypeError(f"spyglass: expected source text or an ast node, not {type(code).__name__}")
    if dedent:
        code = textwrap.dedent(code).strip()
    return code


def _sandbox_name(source: str) -> str:
    import hashlib

    return f"<spyglass-{hashlib.sha1(source.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}>"


def _register_source(filename: str, source: str) -> None:
    """So that tracebacks and inspect show the source of exec'd code."""
    if filename.startswith("<") and filename not in linecache.cache:
        lines = source.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[filename] = (len(source), None, lines, filename)
