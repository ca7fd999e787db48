"""The public names of the offline and watcher modules: `__all__` lists
every public class and function a module defines, each exists and has a
docstring (what `help()` shows)."""
import importlib
import inspect

import pytest

MODULES = ["spyglass.pyc", "spyglass.pipeline", "spyglass.code", "spyglass.watch"]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_the_public_definitions(name):
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicates in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr}, which does not exist"
    defined = {attr for attr, value in vars(module).items()
               if not attr.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
               and getattr(value, "__module__", None) == name}
    assert defined <= exported, f"public in {name} but not in __all__: {sorted(defined - exported)}"


@pytest.mark.parametrize("name", MODULES)
def test_public_names_have_docstrings(name):
    module = importlib.import_module(name)
    for attr in module.__all__:
        value = getattr(module, attr)
        if inspect.isclass(value) or callable(value):
            doc = inspect.getdoc(value) or ""
            assert doc and not doc.startswith(f"{attr}("), f"{name}.{attr} has no docstring"


def test_pyc_instructions_refuses_a_live_code_object():
    from spyglass import pyc

    with pytest.raises(TypeError, match="dis.get_instructions"):
        pyc.instructions(test_pyc_instructions_refuses_a_live_code_object.__code__)
    code = pyc.load(pyc.compile_source("x = 1")).code
    assert all(isinstance(i, pyc.Instruction) for i in pyc.instructions(code)) and pyc.instructions(code)


def test_opcodes_trace_repr_and_type_error():
    from spyglass import opcodes

    def f(x):
        return x + 1

    assert repr(opcodes.Trace(f)) == "<spyglass.opcodes.Trace of test_opcodes_trace_repr_and_type_error.<locals>.f>"
    assert repr(opcodes.Trace(callback=print, block=False)) == "<spyglass.opcodes.Trace of a block, roots only>"
    with pytest.raises(TypeError, match=r"3 is an int$"):
        opcodes.Trace(3)
