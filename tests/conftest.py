import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))

# spyglass must never turn valid code into invalid code: fail loudly in tests
os.environ.setdefault("SPYGLASS_STRICT", "1")


@pytest.fixture(autouse=True)
def _no_tracer_leaks():
    """Every test leaves the tracer stack as it found it."""
    from spyglass import _dispatch

    before = list(_dispatch.STACK)
    yield
    leaked = [t for t in _dispatch.STACK if t not in before]
    for t in leaked:
        while t._depth:
            t.__exit__(None, None, None)
    assert not leaked, f"tracers left active: {leaked}"


@pytest.fixture
def code_cache(tmp_path, monkeypatch):
    """A private on-disk cache of instrumented code."""
    monkeypatch.setenv("SPYGLASS_CODE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
