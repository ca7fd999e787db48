"""Bytecode-level tracing with the live value stack, on stock CPython 3.11-3.14.

    from spyglass.opcodes import Trace, trace, NULL

    def show(stack, frame, instr):
        print(instr.offset, instr.opname, instr.argrepr, stack)

    Trace(func, show).call(1, 2)        # one call, a callback per instruction
    t = trace(func, 1, 2)               # the same, collecting Step objects
    with Trace(callback=show):          # a block of the current function
        ...

Before each instruction the callback gets ``stack``, a new list of the values
on the frame's evaluation stack (bottom first; empty slots are ``NULL``), the
frame, and an ``Instr`` describing the instruction about to run as `dis` names
it on this version. ``follow=True`` also traces the Python functions called
from traced code, up to ``max_depth`` calls deep, where ``filter(code)`` is true.

How: no source rewriting, no bytecode patching. 3.11 uses a C trace function
(the frame's stack pointer is saved at opcode events); 3.12 and 3.13 use
`sys.monitoring` INSTRUCTION events on the traced code objects only, with the
depth from `spyglass.stackdepth`; 3.14 uses `sys.monitoring` and the stack
pointer it saves. The native side reads frames through layouts checked
against the running interpreter before first use; any other version or build
raises `UnsupportedVersion`.

`Recorder` / `record()` write every instruction to a compact file in Rust,
without calling Python per instruction; `read()` loads it for the reports in
`spyglass.report`.
"""
from __future__ import annotations

import dis
import functools
import inspect
import json
import os
import sys
import sysconfig
import threading
import types
from typing import Any, Callable, Iterator, NamedTuple

from spyglass import _native
from spyglass.stackdepth import JUMPS, nlocalsplus, stack_depths

__all__ = [
    "NULL", "Instr", "Step", "Trace", "trace", "Recorder", "record", "read", "Recording",
    "UnsupportedVersion", "suspended_stack", "supported", "SUPPORTED_VERSIONS",
]

_N = _native.opcodes
SUPPORTED_VERSIONS = ((3, 11), (3, 12), (3, 13), (3, 14))


class _Null:
    """The marker for an empty (NULL) stack slot, e.g. below a callable."""

    __slots__ = ()
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NULL"

    def __reduce__(self):
        return (_Null, ())


NULL = _Null()


class UnsupportedVersion(RuntimeError):
    """This interpreter (version or build) is not one spyglass.opcodes can read."""


class Instr:
    """One instruction, named as `dis` names it on this version."""

    __slots__ = ("offset", "opname", "opcode", "arg", "argval", "argrepr", "line", "positions", "code")

    def __init__(self, ins: dis.Instruction, code: types.CodeType):
        self.offset = ins.offset
        self.opname = ins.opname
        self.opcode = ins.opcode
        self.arg = ins.arg
        self.argval = ins.argval
        self.argrepr = ins.argrepr
        self.positions = ins.positions
        line = getattr(ins, "line_number", None)
        if line is None and ins.positions is not None:
            line = ins.positions.lineno
        self.line = line
        self.code = code

    def __repr__(self) -> str:
        arg = "" if self.arg is None else f" {self.arg}"
        rep = f" ({self.argrepr})" if self.argrepr else ""
        return f"<Instr {self.offset} {self.opname}{arg}{rep} line {self.line}>"


class Step(NamedTuple):
    """One instruction event collected by `trace()` / `Trace` without a callback."""

    stack: list
    frame: types.FrameType
    instr: Instr


# ---------------------------------------------------------------- support check

_support_error: str | None = None
_checked = False


def _describe_build() -> str:
    v = sys.version_info
    impl = sys.implementation.name
    extra = []
    if hasattr(sys, "gettotalrefcount"):
        extra.append("debug build")
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        extra.append("free-threaded build")
    return f"{impl} {v.major}.{v.minor}.{v.micro}" + (f" ({', '.join(extra)})" if extra else "")


def _probe_locals(a, b):
    _N.layout_check(sys.version_info[:2], sys._getframe(), _probe_caller.__code__, [a, b])


def _probe_caller():
    _probe_locals(_probe_caller, _probe_locals)


def _stack_probe(a, b, c):
    return (a, b, c)


def _check() -> None:
    global _checked, _support_error
    if _checked:
        if _support_error:
            raise UnsupportedVersion(_support_error)
        return
    _checked = True
    build = _describe_build()
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in SUPPORTED_VERSIONS:
        _support_error = f"spyglass.opcodes supports CPython 3.11 to 3.14, not {build}"
    elif hasattr(sys, "gettotalrefcount") or sysconfig.get_config_var("Py_GIL_DISABLED"):
        _support_error = f"spyglass.opcodes supports release, GIL builds of CPython only, not {build}"
    elif _N.mirror_version() != tuple(sys.version_info[:2]):
        _support_error = f"spyglass.opcodes has no frame layout for {build} in this build of spyglass"
    else:
        try:
            _probe_caller()
        except RuntimeError as e:
            _support_error = f"{build}: {e}"
    if _support_error is None:
        # end to end: the values on the stack before BUILD_TUPLE must be a, b, c
        a, b, c = object(), object(), object()
        seen = []

        def cb(stack, frame, instr):
            if instr.opname == "BUILD_TUPLE":
                seen.append(list(stack))

        _checked = True
        try:
            Trace(_stack_probe, cb).call(a, b, c)
        except Exception as e:  # pragma: no cover - only on an unknown interpreter
            _support_error = f"{build}: the stack self-check failed: {e!r}"
        else:
            if len(seen) != 1 or seen[0][-3:] != [a, b, c] or any(x is not y for x, y in zip(seen[0][-3:], (a, b, c))):
                _support_error = f"{build}: the stack self-check read {seen!r}, not the three arguments"
    if _support_error:
        raise UnsupportedVersion(_support_error)


def supported() -> bool:
    """Whether this interpreter can be traced (runs the start-up check once)."""
    try:
        _check()
    except UnsupportedVersion:
        return False
    return True


# ---------------------------------------------------------------- code objects

def _code_of(func: Any) -> types.CodeType:
    target = func
    if isinstance(target, (types.MethodType, functools.partial)):
        target = target.__func__ if isinstance(target, types.MethodType) else target.func
    if isinstance(target, types.CodeType):
        return target
    if isinstance(target, types.FunctionType):
        return target.__code__
    kind = type(func).__name__
    raise TypeError(
        f"spyglass.opcodes traces Python functions; {func!r} is {'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
        + (" (a builtin has no bytecode)" if isinstance(func, (types.BuiltinFunctionType, types.BuiltinMethodType)) else "")
    )


_OWN_DIR = os.path.dirname(__file__) + os.sep


def _own_code(code: types.CodeType) -> bool:
    """Whether ``code`` comes from a module of this package's own directory
    (a prefix test: it runs in every ``on_new_code``)."""
    name = code.co_filename
    return name.startswith(_OWN_DIR) and os.sep not in name[len(_OWN_DIR):]


class _Codes:
    """The code objects a trace knows, with the ids the recorder uses."""

    def __init__(self, want_instrs: bool, check_depths: bool, flow: bool = False, keep: bool = False):
        self.want_instrs = want_instrs
        self.check_depths = check_depths
        self.flow = flow  # no instruction events: the native side needs no depths
        self.keep = keep  # a recording: its footer reads the instructions again
        self.codes: list[types.CodeType] = []
        self._instructions: dict[int, list] = {}

    def instructions(self, cid: int) -> list:
        """`dis.get_instructions` of code ``cid``."""
        got = self._instructions.get(cid)
        if got is None:
            got = list(dis.get_instructions(self.codes[cid]))
            if self.keep:
                self._instructions[cid] = got
        return got

    def info(self, code: types.CodeType) -> tuple:
        cid = len(self.codes)
        self.codes.append(code)
        need_depths = not self.flow and (self.check_depths or sys.version_info[:2] in ((3, 12), (3, 13)))
        depths = stack_depths(code) if need_depths else None
        n = len(code.co_code) // 2
        flags = bytearray(n)
        instrs: list | None = [None] * n if self.want_instrs else None
        for ins in self.instructions(cid):
            k = ins.offset // 2
            if ins.opname == "YIELD_VALUE":
                flags[k] |= 1
            if ins.opname == "RESUME" and (ins.arg or 0) & 3 == 0:
                flags[k] |= 2
            if instrs is not None:
                instrs[k] = Instr(ins, code)
        return (cid, nlocalsplus(code), code.co_stacksize, depths, instrs, bytes(flags))


# ---------------------------------------------------------------- backends

_EVENTS_LOCAL = ("INSTRUCTION", "PY_START", "PY_RESUME", "PY_RETURN", "PY_YIELD")
_EVENTS_GLOBAL = ("PY_UNWIND", "PY_THROW")
# the control-flow recorder: no INSTRUCTION events (raise events are global-only)
_FLOW_LOCAL = ("PY_START", "PY_RESUME", "PY_RETURN", "PY_YIELD", "JUMP") + (
    ("BRANCH_LEFT", "BRANCH_RIGHT") if sys.version_info >= (3, 14) else ("BRANCH",))
_FLOW_GLOBAL = ("PY_UNWIND", "PY_THROW", "RAISE", "RERAISE", "EXCEPTION_HANDLED")


class _ToolId(int):
    """A tool id object of its own (never a cached small int), so that its
    identity tells the callbacks of one trace from another's."""


class _Session:
    """One installed trace: the native tracer and the interpreter hooks."""

    def __init__(self, roots: list[types.CodeType], *, callback=None, record=None, reprs="safe",
                 max_repr=80, max_values=8, max_events=10_000_000, follow=False, max_depth=8,
                 filter=None, check_depths=False, root_set=None, lock=None, flow=False):
        _check()
        if max_depth < 0:
            raise ValueError("max_depth must be >= 0")
        self.follow = follow
        self.flow = flow
        self.filter = filter
        self.table = _Codes(want_instrs=callback is not None, check_depths=check_depths, flow=flow,
                            keep=record is not None)
        self.tool: int | None = None
        self.installed = False
        self.finished = False
        self.root_set = root_set
        # held while the session's monitoring events change: `root_added`
        # may run on another thread (code objects are created anywhere)
        self._lock = lock if lock is not None else threading.RLock()
        kwargs = dict(follow=follow, max_depth=max_depth, roots=root_set)
        if record is not None:
            kwargs.update(record=os.fspath(record), reprs=reprs, max_repr=max_repr,
                          max_values=max_values, max_events=max_events, flow=flow)
        else:
            kwargs.update(callback=callback)
        self.tracer = _N.Tracer(self._prepare, NULL, **kwargs)
        for code in roots:
            self.tracer.add_root(code, self.table.info(code))

    # called by the native side when a code object first runs in the trace:
    # a root (handed to on_new_code) or one reached by following calls
    def _prepare(self, code: types.CodeType, depth: int, root: bool = False):
        if _own_code(code) or (not root and self.filter is not None and not self.filter(code)):
            return None
        info = self.table.info(code)
        if self.tool is not None:
            self._enable(code)
        return info

    def _enable(self, code: types.CodeType) -> None:
        """Turns this session's local events on for `code` (3.12+).

        CPython 3.12 to 3.14 deliver a code object's INSTRUCTION events only
        to the tool that enabled them there last: the tools that had them
        before lose them, for good. `restart_events()` instruments the code
        again with every tool's events, so when another tool has INSTRUCTION
        events on `code` (another trace on another thread, say), it is
        called. (It also re-enables the events tools turned off with
        DISABLE, which costs them time, not correctness.)"""
        M = sys.monitoring
        M.set_local_events(self.tool, code, self._local_mask)
        if self._local_mask & M.events.INSTRUCTION and _other_instruction_tools(self.tool, code):
            M.restart_events()

    def install(self) -> None:
        with self._lock:
            self._install()

    def _install(self) -> None:
        if self.installed:
            return
        if sys.version_info >= (3, 12):
            M = sys.monitoring
            for tool in (4, 3, 5, 2, 1, 0):
                if M.get_tool(tool) is None:
                    break
            else:
                raise RuntimeError("spyglass.opcodes: every sys.monitoring tool id is in use")
            M.use_tool_id(tool, "spyglass.opcodes")
            self.tool = tool
            E = M.events
            # the callbacks are bound to this object; events of other tools
            # (another trace on another thread) are ignored by identity
            tool_obj = _ToolId(tool)
            self.tracer.set_tool(tool_obj)
            local, glob = (_FLOW_LOCAL, _FLOW_GLOBAL) if self.flow else (_EVENTS_LOCAL, _EVENTS_GLOBAL)
            self._callback_names = []
            for name, fn in _N.callbacks(tool_obj).items():
                if name in local or name in glob:
                    M.register_callback(tool, getattr(E, name), fn)
                    self._callback_names.append(name)
            self._local_mask = functools.reduce(lambda a, b: a | b, (getattr(E, n) for n in local))
            glob = functools.reduce(lambda a, b: a | b, (getattr(E, n) for n in glob))
            if self.follow:
                glob |= E.PY_START
            M.set_events(tool, glob)
            for code in self.table.codes:
                self._enable(code)
            if self.root_set is not None:
                for code in self.root_set.codes():
                    self._enable(code)
        else:
            current = sys.gettrace()
            if current is not None and not isinstance(current, _N.Reinstall):
                raise RuntimeError(
                    f"spyglass.opcodes on CPython 3.11 needs the thread's trace function, "
                    f"but {current!r} is installed (a debugger or coverage?)"
                )
        self.installed = True

    def uninstall(self) -> None:
        with self._lock:
            self._uninstall()

    def _uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        if self.tool is not None:
            M = sys.monitoring
            tool, self.tool = self.tool, None
            for code in self.table.codes:
                M.set_local_events(tool, code, 0)
            if self.root_set is not None:
                for code in self.root_set.codes():
                    M.set_local_events(tool, code, 0)
            M.set_events(tool, 0)
            for name in self._callback_names:
                M.register_callback(tool, getattr(M.events, name), None)
            M.free_tool_id(tool)

    def root_added(self, code: types.CodeType) -> None:
        """A code object joined the root set: 3.12+ turns its events on now
        if this session is installed (3.11's trace function sees every call)."""
        with self._lock:
            if self.tool is not None and self.installed:
                self._enable(code)

    def activate(self, boundary) -> None:
        """`boundary`: the running frame that makes the traced call."""
        self.install()
        self.tracer.activate(boundary)

    def deactivate(self) -> None:
        self.tracer.deactivate()

    def take_error(self) -> BaseException | None:
        return self.tracer.take_error()


def _other_instruction_tools(tool: int, code: types.CodeType) -> bool:
    """Whether a sys.monitoring tool other than `tool` has INSTRUCTION
    events on `code`, locally or globally."""
    M = sys.monitoring
    return any(
        t != tool and M.get_tool(t) is not None
        and (M.get_events(t) | M.get_local_events(t, code)) & M.events.INSTRUCTION
        for t in range(6)
    )


def _raise_callback_error(err: BaseException, pending: BaseException | None) -> None:
    note = "raised in a spyglass.opcodes callback; the trace was stopped"
    if note not in getattr(err, "__notes__", ()):
        err.add_note(note)
    if pending is not None and pending is not err and err.__context__ is None:
        err.__context__ = pending
    raise err


class _Roots:
    """Roots handed over by `spyglass.watch.auto_instrument` (``on_new_code``),
    shared by `Trace` and `Recorder`."""

    def _init_roots(self, block: bool) -> None:
        self.block = block
        self._root_set = _N.RootSet()
        self._live: list[_Session] = []  # sessions not finished yet
        self._lock = threading.RLock()  # guards `_live` and the sessions' events

    def on_new_code(self, code: types.CodeType) -> None:
        """Makes ``code`` a root of this trace: wherever it runs on the
        tracing thread while the trace is active, its instructions are
        delivered (and, with ``follow``, its callees'). It takes effect at
        once if the trace is active (3.12+ enables the code's events now),
        else at the next activation. Cheap: the analysis of the code waits
        until it first runs traced. The trace keeps a reference to the code
        object until the trace is dropped or `clear_roots()` is called.
        """
        if not isinstance(code, types.CodeType):
            raise TypeError(f"on_new_code expects a code object, not {type(code).__name__}")
        if _own_code(code) or not self._root_set.add(code):
            return
        with self._lock:
            for session in self._live:
                session.root_added(code)

    def clear_roots(self) -> None:
        """Forgets the roots handed to `on_new_code` (sessions already
        running keep tracing the ones they have met)."""
        self._root_set.clear()

    @property
    def roots(self) -> list[types.CodeType]:
        """The code objects handed to `on_new_code`, in no particular order."""
        return self._root_set.codes()

    def _started(self, session: "_Session") -> "_Session":
        with self._lock:
            self._live.append(session)
        return session


class Trace(_Roots):
    """Trace one call (``.call``) or a block (``with``) instruction by instruction.

    ``callback(stack, frame, instr)`` runs before every traced instruction;
    without one, ``Step`` tuples are collected in ``.steps``. ``follow``
    also traces called Python functions up to ``max_depth`` calls below the
    traced one (or below a root), where ``filter(code)`` is true.

    Code objects handed to ``on_new_code`` (see `spyglass.watch.auto_instrument`)
    are traced wherever they run while the trace is active. With
    ``block=False``, ``with trace:`` traces only those, not the block itself.
    """

    def __init__(self, func: Any = None, callback: Callable | None = None, *, follow: bool = False,
                 max_depth: int = 8, filter: Callable[[types.CodeType], bool] | None = None,
                 block: bool = True, _check_depths: bool = False):
        self._init_roots(block)
        self.func = func
        self.code = _code_of(func) if func is not None else None
        self.steps: list[Step] = []
        self.callback = callback if callback is not None else self._collect
        self.follow = follow
        self.max_depth = max_depth
        self.filter = filter
        self.result: Any = None
        self.stats: dict = {}
        self._check_depths = _check_depths
        self._block: _Session | None = None
        self._block_frame = None

    def _collect(self, stack, frame, instr):
        self.steps.append(Step(stack, frame, instr))

    def __repr__(self) -> str:
        what = getattr(self.func, "__qualname__", None) or ("a block" if self.func is None else repr(self.func))
        opts = [f"follow, max_depth={self.max_depth}" if self.follow else "", "" if self.block else "roots only",
                f"{len(self.roots)} roots" if self.roots else "", f"{len(self.steps)} steps" if self.steps else ""]
        return f"<spyglass.opcodes.Trace of {what}{''.join(', ' + o for o in opts if o)}>"

    def _session(self, roots):
        return self._started(_Session(roots, callback=self.callback, follow=self.follow, max_depth=self.max_depth,
                                      filter=self.filter, check_depths=self._check_depths,
                                      root_set=self._root_set, lock=self._lock))

    def call(self, *args, **kwargs):
        """Calls ``func(*args, **kwargs)`` under the trace and returns its result.

        A generator or coroutine function returns a wrapper that traces each
        resumption of the underlying generator/coroutine.
        """
        if self.func is None:
            raise TypeError("this Trace has no function; use it as a context manager")
        session = self._session([self.code])
        result = _run(session, self.func, args, kwargs, self)
        self.result = result
        return result

    def __enter__(self):
        frame = sys._getframe(1)
        session, boundary = _enter_block(self, frame)
        self._block, self._block_frame = session, frame
        session.activate(boundary)
        return self

    def __exit__(self, et, ev, tb):
        session, frame = self._block, self._block_frame
        self._block = self._block_frame = None
        try:
            session.deactivate()
        finally:
            if self.block and sys.version_info < (3, 12):
                frame.f_trace_opcodes = False
        err = session.take_error()
        _finish(session, self)
        if err is not None:
            _raise_callback_error(err, ev)
        return False


def _enter_block(owner, frame):
    """The session of a ``with`` block and its boundary frame. With ``block``
    the frame running the ``with`` is traced from here on; without, only
    the roots are, and the frame running the ``with`` is the boundary."""
    if not owner.block:
        session = owner._session([])
        session.install()
        return session, frame
    session = owner._session([frame.f_code])
    session.install()
    session.tracer.adopt(frame)
    return session, frame.f_back


def _run(session: _Session, func, args, kwargs, owner):
    """Runs one call under the session; wraps generators/coroutines."""
    err = result = None
    session.activate(sys._getframe())
    try:
        result = func(*args, **kwargs)
    except BaseException as e:
        err = e
        raise
    finally:
        session.deactivate()
        cerr = session.take_error()
        if cerr is not None or not _resumable(result):
            _finish(session, owner)
        if cerr is not None:
            _raise_callback_error(cerr, err)
    if _resumable(result):
        return _wrap(session, result, owner)
    return result


def _finish(session: _Session, owner) -> None:
    if session.finished:
        return
    session.finished = True
    with owner._lock:
        if session in owner._live:
            owner._live.remove(session)
    try:
        owner.stats = session.tracer.stats()
        if session.flow:
            owner.stats["instructions"] = None  # not known until `read` rebuilds them
        owner.codes = session.table.codes
        if isinstance(owner, Recorder):
            owner._write_footer(session)
    finally:
        session.uninstall()
        session.tracer = None  # drop the callback and code tables now


def _resumable(obj) -> bool:
    return isinstance(obj, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType))


def _step(session: _Session, owner, fn, *args):
    if session.finished:
        return fn(*args)
    session.activate(sys._getframe())
    err = None
    try:
        return fn(*args)
    except BaseException as e:
        err = e
        raise
    finally:
        session.deactivate()
        cerr = session.take_error()
        if cerr is not None:
            _finish(session, owner)
            _raise_callback_error(cerr, err)


class _TracedGenerator:
    """Forwards the generator protocol, tracing each resumption."""

    def __init__(self, session, gen, owner):
        self._session, self._gen, self._owner = session, gen, owner

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        try:
            return _step(self._session, self._owner, self._gen.send, value)
        except BaseException:
            _finish(self._session, self._owner)
            raise

    def throw(self, *exc):
        try:
            return _step(self._session, self._owner, self._gen.throw, *exc)
        except BaseException:
            _finish(self._session, self._owner)
            raise

    def close(self):
        try:
            return _step(self._session, self._owner, self._gen.close)
        finally:
            _finish(self._session, self._owner)

    def __del__(self):
        if not self._session.finished:
            try:
                self.close()
            except Exception:
                pass

    def __getattr__(self, name):
        return getattr(self._gen, name)


class _TracedCoroutine(_TracedGenerator):
    def __await__(self):
        return self


class _TracedAsyncGenerator:
    def __init__(self, session, agen, owner):
        self._session, self._agen, self._owner = session, agen, owner

    def __aiter__(self):
        return self

    def _drive(self, awaitable):
        return _TracedCoroutine(self._session, awaitable.__await__(), self._owner)

    def __anext__(self):
        return self._drive(self._agen.__anext__())

    def asend(self, value):
        return self._drive(self._agen.asend(value))

    def athrow(self, *exc):
        return self._drive(self._agen.athrow(*exc))

    def aclose(self):
        return self._drive(self._agen.aclose())


def _wrap(session, obj, owner):
    if isinstance(obj, types.GeneratorType):
        return _TracedGenerator(session, obj, owner)
    if isinstance(obj, types.CoroutineType):
        return _TracedCoroutine(session, obj.__await__(), owner)
    return _TracedAsyncGenerator(session, obj, owner)


def trace(func: Any, *args, **kwargs) -> Trace:
    """Runs ``func(*args, **kwargs)`` under a `Trace` that collects every
    instruction as a `Step`; returns the Trace (``.result``, ``.steps``)."""
    t = Trace(func)
    t.call(*args, **kwargs)
    return t


def suspended_stack(gen: Any) -> list:
    """The values a suspended generator or coroutine keeps on its stack
    (e.g. the iterator of the ``for`` loop it is suspended in), bottom first."""
    _check()
    frame = getattr(gen, "gi_frame", None) or getattr(gen, "cr_frame", None) or getattr(gen, "ag_frame", None)
    if frame is None:
        raise ValueError(f"{gen!r} has no frame (finished?)")
    running = getattr(gen, "gi_running", None) or getattr(gen, "cr_running", None) or getattr(gen, "ag_running", None)
    suspended = getattr(gen, "gi_suspended", None)
    if suspended is None:
        suspended = getattr(gen, "cr_suspended", None)
    if running or not suspended:
        raise ValueError(f"{gen!r} is not suspended")
    code = frame.f_code
    return _N.suspended_stack(frame, nlocalsplus(code), code.co_stacksize, NULL)


# ---------------------------------------------------------------- recorder

class Recorder(_Roots):
    """Records every instruction of a call or block to ``path`` natively.

    ``reprs``: "none" (depths only), "safe" (values of built-in types, no
    Python code runs; others as ``<Type object>``) or "full" (``repr()`` of
    every value, which may run the program's own ``__repr__``). At most
    ``max_values`` top-of-stack values of at most ``max_repr`` characters
    are kept per instruction; recording stops after ``max_events``.
    Roots handed to ``on_new_code`` are recorded as `Trace` traces them;
    with ``block=False``, ``with recorder:`` records only those.

    ``method``: "instructions" writes a record per instruction;
    "control-flow" (3.12+, ``reprs="none"`` only) writes only jumps,
    branches, exceptions and frame starts and ends, and `read` rebuilds
    every instruction from them (``max_events`` then bounds both the
    records written, frame records included, and the instructions
    rebuilt). "auto", the default,
    picks "control-flow" where it applies.
    """

    METHODS = ("auto", "instructions", "control-flow")

    def __init__(self, path, *, reprs: str = "safe", max_repr: int = 80, max_values: int = 8,
                 max_events: int = 10_000_000, follow: bool = False, max_depth: int = 8,
                 filter: Callable[[types.CodeType], bool] | None = None, meta: dict | None = None,
                 block: bool = True, method: str = "auto"):
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, self.METHODS))}, not {method!r}")
        flow_ok = sys.version_info >= (3, 12) and reprs == "none"
        if method == "control-flow" and not flow_ok:
            why = (f"CPython {sys.version_info[0]}.{sys.version_info[1]} has no sys.monitoring"
                   if sys.version_info < (3, 12) else f"it keeps no values (reprs={reprs!r} needs 'none')")
            raise ValueError(f"method='control-flow' is not available: {why}")
        self._init_roots(block)
        self.path = os.fspath(path)
        self.method = "control-flow" if method == "control-flow" or (method == "auto" and flow_ok) else "instructions"
        self.options = dict(reprs=reprs, max_repr=max_repr, max_values=max_values, max_events=max_events,
                            follow=follow, max_depth=max_depth, filter=filter,
                            flow=self.method == "control-flow")
        self.meta = dict(meta or {})
        self.stats: dict = {}
        self.result = None
        self._block = None

    def _session(self, roots):
        return self._started(_Session(roots, record=self.path, root_set=self._root_set, lock=self._lock,
                                      **self.options))

    def call(self, func, *args, **kwargs):
        session = self._session([_code_of(func)])
        self.result = _run(session, func, args, kwargs, self)
        return self.result

    def run_code(self, code: types.CodeType, globals_: dict):
        """Executes a module-level code object under the recorder."""
        session = self._session([code])
        self.result = _run(session, exec, (code, globals_), {}, self)
        return self.result

    def __enter__(self):
        frame = sys._getframe(1)
        session, boundary = _enter_block(self, frame)
        self._block = (session, frame)
        session.activate(boundary)
        return self

    def __exit__(self, et, ev, tb):
        session, frame = self._block
        self._block = None
        if session.flow:
            session.tracer.reach(frame)  # the with-frame's last instructions
        session.deactivate()
        if self.block and sys.version_info < (3, 12):
            frame.f_trace_opcodes = False
        _finish(session, self)
        return False

    def _write_footer(self, session: _Session) -> None:
        codes = []
        files: dict[str, str | None] = {}
        table = session.table
        for cid, code in enumerate(table.codes):
            rows = []
            for ins in table.instructions(cid):
                p = ins.positions
                line = getattr(ins, "line_number", None) or (p.lineno if p else None)
                rows.append([ins.offset, ins.opname, ins.arg, ins.argrepr, line,
                             p.col_offset if p else None, p.end_lineno if p else None,
                             p.end_col_offset if p else None])
            entry = dict(id=cid, name=code.co_name, qualname=getattr(code, "co_qualname", code.co_name),
                         filename=code.co_filename, firstlineno=code.co_firstlineno, instructions=rows)
            if session.flow:
                depths = stack_depths(code)
                entry["flow"] = dict(
                    depths=[depths[ins.offset // 2] for ins in table.instructions(cid)],
                    targets=[ins.argval if ins.opcode in JUMPS else None for ins in table.instructions(cid)])
            codes.append(entry)
            if code.co_filename not in files:
                files[code.co_filename] = _source_text(code.co_filename)
        footer = dict(format=2 if session.flow else 1, python=".".join(map(str, sys.version_info[:3])),
                      backend=_N.BACKEND, codes=codes, files=files, stats=session.tracer.stats(),
                      meta=self.meta, reprs=self.options["reprs"], method=self.method,
                      max_events=self.options["max_events"])
        session.tracer.finish(json.dumps(footer).encode())



def _source_text(filename: str) -> str | None:
    import linecache
    lines = linecache.getlines(filename)
    return "".join(lines) if lines else None


def record(path, func, *args, **kwargs):
    """Records ``func(*args, **kwargs)`` to ``path`` with the default options;
    returns the call's result."""
    return Recorder(path).call(func, *args, **kwargs)


class Recording:
    """A recording read back: code table, sources, and the event records."""

    ENTER_KINDS = ("start", "resume", "throw")
    EXIT_KINDS = ("return", "yield", "raise", "open")

    def __init__(self, records: list, footer: dict):
        if footer.get("method") == "control-flow":
            from spyglass.flow_expand import expand
            limit = footer.get("max_events") or sys.maxsize
            records = list(expand(records, footer["codes"], limit))
            stats = footer.setdefault("stats", {})
            stats["instructions"] = sum(1 for r in records if r[0] == "I")
            stats["truncated"] = stats.get("truncated", False) or any(r[0] == "T" for r in records)
        self.records = records
        self.footer = footer
        self.python: str = footer.get("python", "?")
        self.codes: list[dict] = footer["codes"]
        self.files: dict = footer.get("files", {})
        self.stats: dict = footer.get("stats", {})
        self.meta: dict = footer.get("meta", {})
        # depths only: no stack values, not even the empty list of depth 0
        self._values = footer.get("reprs") != "none"
        self._instr_index = [{row[0]: row for row in c["instructions"]} for c in self.codes]

    def events(self) -> Iterator[dict]:
        """Normalised events: {"kind": "enter"|"instr"|"exit"|"truncated", ...}."""
        frames: dict[int, dict] = {}
        current = None
        for rec in self.records:
            tag = rec[0]
            if tag == "I":
                _, offset, depth, values = rec
                if current is None:
                    continue
                code = current["code"]
                row = self._instr_index[code].get(offset)
                yield dict(kind="instr", frame=current["serial"], code=code, offset=offset, depth=depth,
                           opname=row[1] if row else "?", arg=row[2] if row else None,
                           argrepr=row[3] if row else "", line=row[4] if row else None,
                           stack=values if self._values else None, call_depth=current["depth"])
            elif tag == "E":
                _, serial, code, parent, depth, kind = rec
                current = frames[serial] = dict(serial=serial, code=code, parent=parent, depth=depth)
                yield dict(kind="enter", frame=serial, code=code, parent=parent, call_depth=depth,
                           how=self.ENTER_KINDS[kind] if kind < 3 else "?")
            elif tag == "X":
                _, serial, kind, value = rec
                f = frames.get(serial)
                yield dict(kind="exit", frame=serial, code=f["code"] if f else None,
                           call_depth=f["depth"] if f else 0,
                           how=self.EXIT_KINDS[kind] if kind < 4 else "?", value=value)
            elif tag == "S":
                current = frames.get(rec[1])
            elif tag == "T":
                yield dict(kind="truncated")


def read(path, limit: int | None = None) -> Recording:
    """Reads a recording written by `Recorder` (at most ``limit`` records)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        records, footer = _N.decode_recording(data, limit if limit is not None else sys.maxsize)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        meta = json.loads(footer)
    except ValueError as e:
        raise ValueError(f"{path}: bad footer: {e}") from None
    try:
        return Recording(records, meta)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot rebuild the recorded instructions: {e}") from None
