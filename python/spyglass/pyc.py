"""Read `.pyc` files of any CPython version (3.0-3.14 headers and marshal,
3.6-3.14 disassembly), independently of the running interpreter.

    >>> from spyglass import pyc
    >>> f = pyc.load("mod.cpython-38.pyc")          # or the file's bytes
    >>> f.header.version, f.code.co_qualname
    ((3, 8), '<module>')
    >>> for ins in pyc.instructions(f.code): ...

The parsing is done in Rust (crates/pyc); this module only wraps the results.
Instructions follow the *writing* version's `dis.get_instructions` (see
docs/pyc.md for the fields and the few places where a value cannot be a
property of the file).
"""
from __future__ import annotations

import importlib.util
import marshal
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

from spyglass import _native

__all__ = ["load", "instructions", "compile_source", "magic_table", "Pyc", "Code", "Header",
           "Instruction", "LayoutEntry", "PycError", "iter_instructions", "disassembly_versions"]


class PycError(ValueError):
    """A file that is not a readable .pyc: the message names the file, the
    offset and what was expected there."""


@dataclass(frozen=True)
class Header:
    """The .pyc header: magic number and what it means, flags, and the source
    mtime and size (timestamp .pyc) or hash (PEP 552 hash-based .pyc)."""
    magic: int
    magic_bytes: bytes
    version: tuple  # (3, minor) of the interpreter that wrote the file
    label: str  # the magic-number history's name for it, e.g. "Python 3.11b4"
    note: str
    flags: Optional[int]  # PEP 552 flags, 3.7+
    length: int  # header size: 8 (3.0-3.2), 12 (3.3-3.6) or 16 (3.7+)
    kind: str  # "timestamp" or "hash"
    mtime: Optional[int] = None
    source_size: Optional[int] = None
    source_hash: Optional[bytes] = None
    check_source: Optional[bool] = None


@dataclass(frozen=True)
class Instruction:
    """One instruction, as the writing version's `dis.get_instructions` has it."""
    offset: int
    start_offset: int
    opcode: int
    opname: str
    arg: Optional[int]
    argval: Any
    argrepr: str
    starts_line: bool
    line: Optional[int]
    positions: Optional[tuple]  # (lineno, end_lineno, col_offset, end_col_offset), 3.11+
    is_jump_target: bool
    label: Optional[int]  # 3.13+
    cache_count: int  # inline CACHE entries after it, 3.11+


@dataclass(frozen=True)
class LayoutEntry:
    """Where one marshalled object sits in the file."""
    offset: int
    end: int
    depth: int
    type_code: str  # marshal type code without FLAG_REF
    ref_index: Optional[int]  # stored in the reference table under this index
    ref_target: Optional[int]  # for 'r': the index it refers to
    field: Optional[str]  # the code-object field it fills, e.g. "co_consts"
    code_index: Optional[int]  # for 'c': index in Pyc.codes
    summary: str


class Code:
    """A code object of a .pyc. Fields (co_argcount, co_consts, co_qualname,
    ...) are read on first access; nested code objects in co_consts are Code."""

    def __init__(self, pyc: "Pyc", index: int):
        self._pyc = pyc
        self.index = index
        self.qualname, self.parent_index, self.depth, self.repeated = pyc._native.code_node(index)
        self._fields: Optional[dict] = None

    def _load(self) -> dict:
        if self._fields is None:
            self._fields = self._pyc._native.code_fields(self.index, self._pyc._code_or_none)
        return self._fields

    def __getattr__(self, name: str) -> Any:
        if name.startswith("co_") or name == "offset":
            fields = self._load()
            if name in fields:
                return fields[name]
        raise AttributeError(name)

    @property
    def fields(self) -> dict:
        return dict(self._load())

    @property
    def children(self) -> list:
        return [c for c in self._pyc.codes if c.parent_index == self.index]

    def instructions(self, mode: str = "get_instructions") -> list:
        """`mode="dis"` marks exception handlers as jump targets, as `dis.dis`
        does, and leaves positions out (dis.dis does not show them)."""
        return [Instruction(*t) for t in self._pyc._native.instructions(self.index, self._pyc._code_or_none, mode)]

    def lines(self) -> list:
        """`co_lines()`: (start, end, line) ranges."""
        return self._pyc._native.lines(self.index)

    def positions(self) -> list:
        """`co_positions()`, one per code unit (3.11+)."""
        return self._pyc._native.positions(self.index)

    def exception_table(self) -> list:
        """(start, end, target, depth, lasti) entries (3.11+)."""
        return self._pyc._native.exception_table(self.index)

    def __repr__(self) -> str:
        return "<Code %s #%d of %s>" % (self.qualname, self.index, self._pyc.filename)


class Pyc:
    """A loaded .pyc file: `header`, `version`, `code` (the module) and `codes`
    (every code object, depth first, in the order `dis` shows them)."""

    def __init__(self, native: Any):
        self._native = native
        self.filename: str = native.filename
        self.version: tuple = native.version
        h = native.header()
        self.header: Optional[Header] = Header(**h) if h is not None else None
        self.codes = [Code(self, i) for i in range(native.code_count())]
        self.code: Optional[Code] = self.codes[0] if self.codes else None

    def _code_or_none(self, index: Optional[int]) -> Optional[Code]:
        return None if index is None else self.codes[index]

    def dis(self, format: str = "text", *, binary: bool = False) -> Union[str, bytes]:
        """The whole file disassembled: "text" (laid out as the writing
        version's `dis.dis`) or "jsonl" (one JSON object per instruction);
        UTF-8 bytes with binary=True."""
        if format not in ("text", "jsonl"):
            raise ValueError("format must be 'text' or 'jsonl'")
        try:
            return self._native.dis(format, binary)
        except ValueError as e:
            raise PycError(str(e)) from None

    def layout(self) -> list:
        """The marshal layout (load with layout=True)."""
        return [LayoutEntry(*t) for t in self._native.layout()]

    def check_source(self, source: Union[bytes, str, os.PathLike]) -> tuple:
        """Check source bytes (or a path) against the header: SipHash for
        hash-based files, the size for timestamp-based ones. Returns
        ("match" | "mismatch" | "unchecked", expected, found)."""
        if not isinstance(source, (bytes, bytearray)):
            with open(source, "rb") as f:
                source = f.read()
        return self._native.check_source(bytes(source))

    @property
    def size(self) -> int:
        return self._native.size

    @property
    def end(self) -> int:
        """Offset where the marshalled data ends (what follows is ignored)."""
        return self._native.end

    def __repr__(self) -> str:
        return repr(self._native)


def load(source: Union[str, os.PathLike, bytes, bytearray], *, layout: bool = False,
         filename: Optional[str] = None) -> Pyc:
    """Load a .pyc from a path or from its bytes. Raises PycError (a
    ValueError) naming the file, the offset and what was expected."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = filename or "<bytes>"
    else:
        name = filename or os.fspath(source)
        with open(source, "rb") as f:
            data = f.read()
    try:
        return Pyc(_native.PycFile(data, name, layout))
    except ValueError as e:
        raise PycError(str(e)) from None


def instructions(code: Code, mode: str = "get_instructions") -> list:
    """The instructions of a code object of a loaded .pyc."""
    if not isinstance(code, Code):
        hint = " (for a live code object, use dis.get_instructions)" if hasattr(code, "co_code") else ""
        raise TypeError(f"pyc.instructions takes a pyc.Code from pyc.load(...).codes, "
                        f"not {type(code).__name__}{hint}")
    return code.instructions(mode)


def iter_instructions(pyc_file: Pyc) -> Iterator[tuple]:
    """(code, instruction) for every code object of the file, in dis order."""
    for code in pyc_file.codes:
        if not code.repeated:
            for ins in code.instructions():
                yield code, ins


def compile_source(source: Union[str, bytes], filename: str = "<string>", *, hash_based: bool = False) -> bytes:
    """The .pyc bytes the running interpreter writes for `source`."""
    code = compile(source, filename, "exec", dont_inherit=True)
    raw = source.encode("utf-8") if isinstance(source, str) else source
    data = bytearray(importlib.util.MAGIC_NUMBER)
    if hash_based:
        data += (3).to_bytes(4, "little")  # hash-based, check_source
        data += importlib.util.source_hash(raw)
    else:
        data += (0).to_bytes(4, "little")
        data += (0).to_bytes(4, "little")
        data += (len(raw) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(data) + marshal.dumps(code)


def magic_table() -> list:
    """Every magic number known: (magic, major, minor, label, note)."""
    return _native.pyc_magic_table()


def disassembly_versions() -> list:
    """Minor versions (3.x) the disassembler has opcode tables for."""
    return [(3, m) for m in _native.pyc_dis_versions()]


if sys.version_info < (3, 11):  # pragma: no cover - the package needs 3.11+
    raise ImportError("spyglass needs CPython 3.11+")
