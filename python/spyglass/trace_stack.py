"""`TraceStack`: a stack of a tracer's own state, for handlers that nest
(Pyccolo's `tracer.make_stack()`).

    self.call_stack = self.make_stack()
    with self.call_stack.register_stack_state():
        self.current_call = None        # fields saved and reset by push()
        self.depth = 0

    with self.call_stack.push():        # saves current_call and depth, resets them
        ...
    self.call_stack.pop()               # restores them
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Optional

_IMMUTABLE = (int, bool, str, float, bytes, tuple, frozenset, complex, type(None))


class TraceStack:
    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._frames: list[tuple] = []
        self._init: dict[str, Callable[[], Any]] = {}  # field -> how to reset it on push
        self._manual: list[str] = []  # fields the handler sets itself after each push
        self._registering = False

    def _fields(self) -> list[str]:
        return list(self._init) + self._manual

    @contextmanager
    def register_stack_state(self):
        """Attributes the block assigns on the tracer become fields of the stack."""
        before = set(vars(self._owner))
        self._registering = True
        try:
            yield
        finally:
            self._registering = False
        for name in vars(self._owner):
            if name in before or name in self._manual or name in self._init:
                continue
            self._init[name] = self._initializer(getattr(self._owner, name))

    @contextmanager
    def needing_manual_initialization(self):
        """Fields assigned in this block are not reset by push(): the handler
        must set them itself before the push block ends."""
        if not self._registering:
            raise RuntimeError("needing_manual_initialization() belongs inside register_stack_state()")
        before = set(vars(self._owner))
        yield
        self._manual.extend(n for n in vars(self._owner) if n not in before and n not in self._manual)

    @staticmethod
    def _initializer(value: Any) -> Callable[[], Any]:
        if isinstance(value, TraceStack):
            return value._fresh
        if isinstance(value, _IMMUTABLE):
            return lambda: value
        return type(value)

    def _fresh(self) -> "TraceStack":
        other = TraceStack(self._owner)
        other._init = dict(self._init)
        other._manual = list(self._manual)
        return other

    @contextmanager
    def push(self):
        state = vars(self._owner)
        self._frames.append(tuple(state.get(name) for name in self._fields()))
        for name, make in self._init.items():
            state[name] = make()
        for name in self._manual:
            state.pop(name, None)
        yield
        missing = [name for name in self._manual if name not in state]
        if missing:
            raise ValueError(f"stack field(s) {missing} need manual initialization after push()")

    def pop(self) -> "TraceStack":
        if not self._frames:
            raise IndexError("pop from an empty TraceStack")
        state = vars(self._owner)
        for name, value in zip(self._fields(), self._frames.pop()):
            state[name] = value
        return self

    def get_field(self, field: str, depth: Optional[int] = None, height: Optional[int] = None) -> Any:
        """A saved value: `depth` counts from the top (1 = last pushed),
        `height` indexes from the bottom."""
        index = height if height is not None else -(1 if depth is None else depth)
        return self._frames[index][self._fields().index(field)]

    def clear(self) -> None:
        """Back to the state before the first push."""
        if self._frames:
            del self._frames[1:]
            self.pop()

    def __len__(self) -> int:
        return len(self._frames)
