"""The import hook: while tracers are active, modules whose file some tracer
instruments (`should_instrument_file`) are loaded instrumented.

Instrumented code never goes into `__pycache__` (plain imports must keep
getting plain code); spyglass keeps its own cache (see instrument.py).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

from spyglass import _dispatch, instrument
from spyglass.events import TraceEvent


def _tracers_for(filename: str) -> list:
    return [t for t in _dispatch.STACK if t._should_instrument_file(filename)]


class InstrumentingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        frame = sys._getframe(1)
        new_path = _dispatch.emit(TraceEvent.before_import, path, frame, path, qualified_module_name=fullname)
        if isinstance(new_path, str) and new_path != path:
            path = new_path
        source = importlib.util.decode_source(self.get_data(path))
        code, _ = instrument.compile_source(source, path, "exec", list(_dispatch.STACK), explicit=False)
        return code

    def exec_module(self, module):
        super().exec_module(module)
        _dispatch.emit(TraceEvent.after_import, None, sys._getframe(1), self.path, module=module)


class InstrumentingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not _dispatch.STACK:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader or not spec.origin:
            return None
        if not _tracers_for(spec.origin):
            return None
        spec.loader = InstrumentingLoader(fullname, spec.origin)
        return spec

    def invalidate_caches(self):
        pass


_FINDER = InstrumentingFinder()


def update() -> None:
    """Installs the hook while any tracer is active, removes it otherwise."""
    installed = _FINDER in sys.meta_path
    if _dispatch.STACK and not installed:
        sys.meta_path.insert(0, _FINDER)
    elif not _dispatch.STACK and installed:
        sys.meta_path.remove(_FINDER)
