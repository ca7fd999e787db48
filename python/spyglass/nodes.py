"""The real `ast` nodes that handlers receive, built lazily.

A module table names its nodes by CPython class and position. The first time
a handler (or a `when=` condition) needs a node of a module, the module's
original source is parsed once with `ast.parse` and every node is found by
its class and position; the nodes then stay with the table.
"""
from __future__ import annotations

import ast
from typing import Any, Optional

#: id(node) -> node, and the statement containment maps, for every
#: materialized module (Pyccolo's bookkeeping names).
ast_node_by_id: dict[int, ast.AST] = {}
containing_ast_by_id: dict[int, ast.AST] = {}
containing_stmt_by_id: dict[int, ast.stmt] = {}
parent_stmt_by_id: dict[int, ast.stmt] = {}


class NodeNotFound(LookupError):
    pass


def _key(node: ast.AST):
    if isinstance(node, (ast.Module, ast.Expression, ast.Interactive)):
        return (type(node).__name__, None)
    if not hasattr(node, "lineno") or getattr(node, "end_lineno", None) is None:
        return None
    return (type(node).__name__, (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset))


def _bookkeep(tree: ast.AST) -> None:
    def visit(node: ast.AST, parent: Optional[ast.AST], stmt: Optional[ast.stmt]) -> None:
        nid = id(node)
        ast_node_by_id[nid] = node
        if parent is not None:
            containing_ast_by_id[nid] = parent
        if isinstance(node, ast.stmt):
            if stmt is not None:
                parent_stmt_by_id[nid] = stmt
            stmt = node
        elif stmt is not None:
            containing_stmt_by_id[nid] = stmt
        for child in ast.iter_child_nodes(node):
            visit(child, node, stmt)

    import sys

    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(limit, 10000))
        visit(tree, None, None)
    finally:
        sys.setrecursionlimit(limit)


def tree(table) -> ast.AST:
    """The `ast` of the table's module (parsed once)."""
    t = table.__dict__.get("_tree")
    if t is None:
        mode = table.__dict__.get("mode", "exec")
        t = ast.parse(table.source, table.filename, mode=mode)
        table.__dict__["_tree"] = t
        _bookkeep(t)
    return t


def nodes(table) -> list[Optional[ast.AST]]:
    """The table's nodes, by node id."""
    found = table.__dict__.get("_nodes")
    if found is None:
        index: dict[Any, ast.AST] = {}
        for n in ast.walk(tree(table)):
            k = _key(n)
            if k is not None:
                index.setdefault(k, n)
        found = [index.get((cls, tuple(pos) if pos else None)) for cls, pos in table.node_keys()]
        table.__dict__["_nodes"] = found
    return found


def node(table, node_id: int) -> ast.AST:
    n = nodes(table)[node_id]
    if n is None:
        cls, pos = table.node_keys()[node_id]
        raise NodeNotFound(f"spyglass: no ast.{cls} at {pos} in {table.filename}")
    return n


def node_by_key(table, cls: str, pos) -> Optional[ast.AST]:
    """The node with this class and position (for deciding `when=` before
    the table exists)."""
    index = table.__dict__.get("_index")
    if index is None:
        index = {}
        for n in ast.walk(tree(table)):
            k = _key(n)
            if k is not None:
                index.setdefault(k, n)
        table.__dict__["_index"] = index
    return index.get((cls, tuple(pos) if pos else None))


class _SourceOnly:
    """Stands in for a table while deciding `when=` conditions, before the
    rewrite made the table."""

    def __init__(self, source: str, filename: str, mode: str) -> None:
        self.source = source
        self.filename = filename
        self.__dict__["mode"] = mode
