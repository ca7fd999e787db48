"""spyglass.code.extra: per-code-object storage on CPython's code extra slots."""
import gc
import subprocess
import sys
import textwrap
import weakref

import pytest

from spyglass import code as spy_code
from spyglass import watch

needs_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="DESTROY needs CPython 3.12+")


class Box:
    def __init__(self, value=None):
        self.value = value


def fresh_code(tag="x"):
    return compile(f"{tag} + 1", f"<extra-{tag}>", "eval")


def test_mapping_operations():
    store = spy_code.extra("test-mapping")
    c, other = fresh_code("a"), fresh_code("b")
    assert c not in store and store.get(c) is None and store.get(c, 5) == 5
    with pytest.raises(KeyError):
        store[c]
    with pytest.raises(KeyError):
        del store[c]
    store[c] = "one"
    assert c in store and store[c] == "one" and other not in store
    store[c] = "two"
    assert store[c] == "two"
    assert store.setdefault(c, "ignored") == "two"
    assert store.setdefault(other) is None and other in store
    assert store.pop(c) == "two" and c not in store
    assert store.pop(c, "default") == "default"
    with pytest.raises(KeyError):
        store.pop(c)
    del store[other]
    assert other not in store
    assert repr(store) == f'<spyglass.code.extra "test-mapping" (code extra index {store.index})>'
    assert store.name == "test-mapping"


def test_names_are_cached_and_independent():
    a, b = spy_code.extra("test-a"), spy_code.extra("test-b")
    assert spy_code.extra("test-a") is a and a.index != b.index
    c = fresh_code()
    a[c], b[c] = 1, 2
    assert (a[c], b[c]) == (1, 2)
    del a[c]
    assert c not in a and b[c] == 2


def test_keys_must_be_code_objects():
    store = spy_code.extra("test-keys")
    with pytest.raises(TypeError, match="keys are code objects, not function"):
        store[test_keys_must_be_code_objects] = 1
    with pytest.raises(TypeError, match="not int"):
        store[3]
    assert 3 not in store
    with pytest.raises(TypeError, match="takes a str name"):
        spy_code.extra(3)


def test_each_value_is_released_exactly_once():
    store = spy_code.extra("test-refs")
    c = fresh_code()
    first, second = Box(), Box()
    base1, base2 = sys.getrefcount(first), sys.getrefcount(second)
    store[c] = first
    assert sys.getrefcount(first) == base1 + 1
    store[c] = second  # CPython releases `first` through our free function, once
    assert sys.getrefcount(first) == base1
    assert sys.getrefcount(second) == base2 + 1
    store[c] = second  # same value again
    assert sys.getrefcount(second) == base2 + 1
    del store[c]
    assert sys.getrefcount(second) == base2


def test_value_is_freed_with_its_code_object():
    store = spy_code.extra("test-free")
    c = fresh_code()
    value = Box()
    ref = weakref.ref(value)
    store[c] = value
    del value
    assert ref() is not None
    del c
    gc.collect()
    assert ref() is None


def test_replaced_value_finalizer_sees_the_new_value():
    """The old value's finalizer runs after the slot holds the new one."""
    store = spy_code.extra("test-finalizer")
    c = fresh_code()
    observed = []

    class Spy:
        def __del__(self):
            observed.append(store.get(c))
            store.get(c)  # reading again is harmless

    store[c] = Spy()
    store[c] = "new"
    assert observed == ["new"]
    store[c] = Spy()
    del store[c]
    assert observed == ["new", None]


@needs_312
def test_destroy_callback_reads_the_value():
    store = spy_code.extra("test-destroy-read")
    seen = []

    def on_destroy(event, code):
        if code.co_filename == "<extra-destroyed>":
            seen.append(store.get(code))

    with watch.watching(on_destroy, events="destroy"):
        c = fresh_code("destroyed")
        store[c] = "still here"
        del c
    assert seen == ["still here"]


def test_no_leak_over_100k_codes():
    store = spy_code.extra("test-leak")
    alive = [0]

    class Counted:
        __slots__ = ()

        def __init__(self):
            alive[0] += 1

        def __del__(self):
            alive[0] -= 1

    base = fresh_code()

    def cycle(i):
        c = base.replace(co_firstlineno=1 + i % 5)
        store[c] = Counted()
        if i % 3 == 0:
            store[c] = Counted()  # overwrite
        if i % 7 == 0:
            del store[c]

    for i in range(5_000):
        cycle(i)
    gc.collect()
    blocks = sys.getallocatedblocks()
    for i in range(100_000):
        cycle(i)
    gc.collect()
    assert alive[0] == 0
    assert sys.getallocatedblocks() - blocks < 1_000


def test_store_limit_has_a_clear_error():
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from spyglass import code
        made = 0
        try:
            for i in range(100):
                code.extra(f"n{i}")
                made += 1
        except RuntimeError as e:
            print(made, e)
    """)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("32 spyglass.code.extra: at most 32 stores per process")
