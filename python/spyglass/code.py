"""Code objects through CPython's C API: per-code extra data and introspection.

    from spyglass import code

    hits = code.extra("hits")          # code object -> any Python object
    hits[f.__code__] = 0               # freed when the code object dies

    info = code.info(f)                # PyCode_* answers about f.__code__
    info.line(0), info.location(0), info.freevars, info.bytecode

`extra(name)` stores values in a code extra slot
(`PyUnstable_Eval_RequestCodeExtraIndex`): lookups cost a C call, nothing is
kept alive beyond the code object, and a DESTROY watcher callback can still
read the value. A value that refers back to its own code object keeps both
alive forever (the garbage collector does not see code extra data): store
weak references or plain data. Works on 3.11 to 3.14.
"""
from __future__ import annotations

from collections.abc import Iterator
from types import CodeType, FunctionType, MethodType
from typing import Any, NamedTuple

from spyglass import _native

__all__ = ["extra", "CodeExtra", "info", "CodeInfo", "Location", "empty"]

#: The store type returned by `extra`: `store[code]`, `store[code] = value`,
#: `del store[code]`, `code in store`, `get`, `setdefault`, `pop`. It cannot
#: list its keys (CPython keeps no index of code objects).
CodeExtra = _native.CodeExtra

_stores: dict[str, CodeExtra] = {}


def extra(name: str) -> CodeExtra:
    """The per-code-object store called `name` (made on first use).

    Each name takes one of the interpreter's code extra indexes, which are
    shared with other tools and never given back; spyglass allows 32 names.
    """
    if not isinstance(name, str):
        raise TypeError(f"extra() takes a str name, not {type(name).__name__}")
    store = _stores.get(name)
    if store is None:
        store = _stores[name] = CodeExtra(name)
    return store


class Location(NamedTuple):
    """Source span of one instruction; None where CPython has no value. The
    fields are those of `dis.Positions`, in the order `co_positions()` uses."""

    lineno: int | None
    end_lineno: int | None
    col_offset: int | None
    end_col_offset: int | None


def _none(value: int) -> int | None:
    return None if value < 0 else value


def _as_code(obj: Any) -> CodeType:
    if isinstance(obj, CodeType):
        return obj
    if isinstance(obj, MethodType):
        obj = obj.__func__
    if isinstance(obj, FunctionType):
        return obj.__code__
    raise TypeError(f"expected a code object or a function, not {type(obj).__name__}")


class CodeInfo:
    """What CPython's C API says about one code object (see `info`)."""

    __slots__ = ("code", "bytecode", "varnames", "cellvars", "freevars")

    def __init__(self, code: CodeType):
        self.code = code
        #: `PyCode_GetCode`: the bytecode, as `co_code`.
        self.bytecode: bytes
        #: `PyCode_GetVarnames`, `PyCode_GetCellvars`, `PyCode_GetFreevars`.
        self.varnames: tuple[str, ...]
        self.cellvars: tuple[str, ...]
        self.freevars: tuple[str, ...]
        self.bytecode, self.varnames, self.cellvars, self.freevars = _native.code_parts(code)

    @property
    def filename(self) -> str:
        return self.code.co_filename

    @property
    def name(self) -> str:
        return self.code.co_name

    @property
    def qualname(self) -> str:
        return self.code.co_qualname

    @property
    def firstlineno(self) -> int:
        return self.code.co_firstlineno

    @property
    def nfreevars(self) -> int:
        """`PyCode_GetNumFree`: the number of free variables."""
        return len(self.freevars)

    def offsets(self) -> range:
        """Byte offsets of the instruction slots (every 2 bytes)."""
        return range(0, len(self.bytecode), 2)

    def line(self, offset: int) -> int | None:
        """`PyCode_Addr2Line`: the line of the instruction at byte `offset`."""
        return _none(_native.code_addr2line(self.code, offset))

    def location(self, offset: int) -> Location:
        """`PyCode_Addr2Location`: the source span of the instruction at `offset`."""
        start_line, start_column, end_line, end_column = _native.code_addr2location(self.code, offset)
        return Location(_none(start_line), _none(end_line), _none(start_column), _none(end_column))

    def locations(self) -> Iterator[Location]:
        """`location` of every instruction slot, as `co_positions()` lists them."""
        return (self.location(offset) for offset in self.offsets())

    def __repr__(self) -> str:
        return f"<spyglass.code.CodeInfo {self.qualname!r} {self.filename}:{self.firstlineno}>"


def info(code: CodeType | FunctionType | MethodType) -> CodeInfo:
    """Introspect a code object (or a function's) through CPython's C API."""
    return CodeInfo(_as_code(code))


def empty(filename: str, funcname: str, firstlineno: int) -> CodeType:
    """`PyCode_NewEmpty`: the minimal code object C extensions use for frames
    and tracebacks of C code, placed at `filename:firstlineno`. Like
    CPython's, its body is an `assert(0)`: running it raises AssertionError."""
    return _native.code_new_empty(filename, funcname, firstlineno)
