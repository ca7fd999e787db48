# A module that exercises most of the compiler (valid Python 3.6 to 3.14).
import os
from collections import OrderedDict as OD

BIG = -1267650600228229401496703205376, 1180591620717411303424, -(1 << 40)
FLOATS = 0.1, 1e16, 2.9802322387695312e-08, -0.0, 1.5e300, 3 - 4j
TEXT = "caf\u00e9", "\ud800 lone surrogate", b"\x00\xff'", "it's", 'say "hi"', "\u0d00\u2ffc\U00014000"
SETS = frozenset({"a", "b"}), {1: "x", 2: "y"}
counter = 0


def outer(a, b=1, *args, c, d=2, **kw):
    """Closures, comprehensions and loops."""
    total = 0

    def inner(x):
        nonlocal total
        total += x
        return [y * 2 for y in range(x) if y % 3 and y not in (4, 5)]

    for i in range(a):
        if i > 10:
            break
        elif i < 0:
            continue
        inner(i)
    else:
        total -= 1
    while total > 100:
        total //= 2
    return {k: v for k, v in kw.items()}, {s for s in args}, (z for z in args), total


def handlers(path):
    global counter
    try:
        with open(path) as f:
            data = f.read()
    except (OSError, ValueError) as e:
        raise RuntimeError("failed: %s" % e) from e
    except Exception:
        data = None
    else:
        counter += 1
    finally:
        counter -= 1
    return data if data else f"{path!r:>10} {counter:{counter}}"


class Base(object):
    attr = 3

    def method(self, *, key=None):
        return super().__init__() or self.attr

    @staticmethod
    def static(a, b):
        return a < b <= a ** 2 != b and not a is b

    @property
    def prop(self):
        return lambda q=1: q + self.attr


async def coroutine(items):
    async with items as it:
        async for x in it:
            await x
    return [y async for y in items]


def generator(n):
    yield n
    x = yield from range(n)
    del x
    assert n, "message"
    return OD(a=1, **{"b": 2})[1:2:3]
