"""`when=` conditions of handlers (Pyccolo's `Predicate`).

A condition is evaluated on the `ast` node (or its id, for raw handlers)
when the code is instrumented, to decide whether the node is instrumented at
all, and, unless `static=True`, again every time the event fires.
"""
from __future__ import annotations

import ast
from typing import Any, Callable, Iterable


class Predicate:
    TRUE: "Predicate"
    FALSE: "Predicate"

    def __init__(self, condition: Callable[[Any], bool], use_raw_node_id: bool = False, static: bool = False) -> None:
        if not callable(condition):
            raise TypeError(f"a Predicate condition must be callable, not {condition!r}")
        self.condition = condition
        self.use_raw_node_id = use_raw_node_id
        self.static = static

    def clone(self) -> "Predicate":
        if self is Predicate.TRUE or self is Predicate.FALSE:
            return self
        return Predicate(self.condition, self.use_raw_node_id, self.static)

    @property
    def is_true(self) -> bool:
        return self is Predicate.TRUE

    def __call__(self, node: Any) -> bool:
        if self.use_raw_node_id and isinstance(node, ast.AST):
            node = id(node)
        return bool(self.condition(node))

    def dynamic_call(self, node: Any) -> bool:
        return True if self.static else self(node)

    @classmethod
    def any(cls, predicates: Iterable["Predicate"]) -> "Predicate":
        preds = list(predicates)
        if not preds or any(p is cls.TRUE for p in preds):
            return cls.TRUE
        return CompositePredicate(preds, any)

    @classmethod
    def all(cls, predicates: Iterable["Predicate"]) -> "Predicate":
        preds = list(predicates)
        if any(p is cls.FALSE for p in preds):
            return cls.FALSE
        if all(p is cls.TRUE for p in preds):
            return cls.TRUE
        return CompositePredicate(preds, all)


class CompositePredicate(Predicate):
    def __init__(self, predicates: list[Predicate], reducer: Callable[[Iterable[bool]], bool]) -> None:
        self.predicates = list(predicates)
        self.reducer = reducer
        self.static = all(p.static for p in self.predicates)
        self.use_raw_node_id = all(p.use_raw_node_id for p in self.predicates)
        self.condition = self.__call__

    def clone(self) -> "CompositePredicate":
        return CompositePredicate(self.predicates, self.reducer)

    def __call__(self, node: Any) -> bool:
        return self.reducer(p(node) for p in self.predicates)


Predicate.TRUE = Predicate(lambda *_: True, static=True)
Predicate.FALSE = Predicate(lambda *_: False, static=True)
