"""Deterministic workloads for tests/test_opcodes_flow.py: each exercises a
way control can move (loops, exceptions across frames, generators and
coroutines resumed and thrown into, `with`, callbacks from C, dunders,
`match`, stdlib code), and the helpers that compare recordings of them."""
import collections
import dataclasses
import functools
import json
import re
import string
import textwrap

from stdlib_workload import run as stdlib_mix

def forelse(xs):
    out = 0
    for x in xs:
        if x == 7:
            break
        out += x
    else:
        out = -1
    while out > 3:
        out -= 2
        if out == 5:
            continue
    return out

def tryfinally(n):
    try:
        if n > 2:
            return n
        raise ValueError(n)
    except ValueError as e:
        return -1
    finally:
        n += 1

def deep_raise(n):
    if n == 0:
        raise KeyError("x")
    return deep_raise(n - 1) + 1

def catch_across():
    total = 0
    for i in range(4):
        try:
            deep_raise(i)
        except KeyError:
            total += i
        else:
            total -= 1
    try:
        try:
            1 / 0
        finally:
            total += 100
    except ZeroDivisionError:
        pass
    return total

class Ctx:
    def __enter__(self):
        return self
    def __exit__(self, *a):
        return a[0] is KeyError

def withs():
    r = []
    with Ctx() as c:
        r.append(1)
    with Ctx():
        raise KeyError(2)
    try:
        with Ctx():
            raise ValueError(3)
    except ValueError:
        r.append(3)
    return r

def gen(n):
    for i in range(n):
        try:
            x = yield i
        except GeneratorExit:
            raise
        if x:
            yield x
    return n

def delegating(n):
    r = yield from gen(n)
    yield r

def gens():
    g = gen(5)
    out = [next(g), g.send(9), next(g)]
    out += list(delegating(3))
    g2 = gen(3); next(g2)
    try:
        g2.throw(RuntimeError("t"))
    except RuntimeError:
        out.append("thrown")
    g3 = gen(3); next(g3); g3.close()
    out += [x * 2 for x in gen(4)]
    out.append(sum(x for x in range(5) if x % 2))
    return out

class Tick:
    def __await__(self):
        yield "tick"
        return 1

async def co_inner(x):
    await Tick()
    if x == 2:
        raise ValueError(x)
    return x

async def co_main():
    res = []
    for i in range(4):
        try:
            res.append(await co_inner(i))
        except ValueError:
            res.append(None)
    async def agen():
        for i in range(3):
            yield i
    async for v in agen():
        res.append(v)
    async with AsyncCtx():
        res.append("in")
    return res

class AsyncCtx:
    async def __aenter__(self):
        return self
    async def __aexit__(self, *a):
        return False

def run_async():
    c = co_main()
    ticks = 0
    try:
        while True:
            c.send(None)
            ticks += 1
    except StopIteration as e:
        return ticks, e.value

def rec(n):
    return 1 if n <= 1 else n * rec(n - 1)

class Weird:
    def __init__(self, v):
        self.v = v
    def __eq__(self, other):
        return isinstance(other, Weird) and self.v % 3 == other.v % 3
    def __hash__(self):
        return self.v % 3
    def __getattr__(self, name):
        if name == "boom":
            raise AttributeError(name)
        return len(name)
    def __lt__(self, other):
        return self.v < other.v
    def __iter__(self):
        return iter(range(self.v))
    def __add__(self, other):
        return Weird(self.v + getattr(other, "v", 0))

def callbacks():
    ws = [Weird(i) for i in (5, 3, 8, 1)]
    s = sorted(ws, key=lambda w: -w.v)
    m = list(map(lambda w: w.v * 2, ws))
    d = {w: w.v for w in ws}
    eq = ws[0] == Weird(8)
    a = ws[0].abc + getattr(ws[1], "boom", 7)
    t = ws[0] + ws[1]
    srt = sorted(ws)
    unpack = [*Weird(3)]
    f = functools.reduce(lambda x, y: x + y, range(6))
    return len(s), m, len(d), eq, a, t.v, [w.v for w in srt], unpack, f

def stdlib():
    d = {"a": [1, 2, {"b": None}], "c": "x" * 3}
    s = json.dumps(d, indent=1, sort_keys=True)
    back = json.loads(s)
    m = re.findall(r"(\w+)=(\d+)", "a=1 b=22 c=333")
    w = textwrap.fill("word " * 30, width=20)
    @dataclasses.dataclass
    class P:
        x: int
        y: int = 2
    p = P(1)
    c = collections.Counter("abracadabra").most_common(2)
    t = string.Template("$a-$b").substitute(a=1, b=2)
    return back == d, m, len(w), dataclasses.asdict(p), c, t

def matchy(v):
    match v:
        case [1, *rest]:
            return rest
        case {"k": x}:
            return x
        case int(n) if n > 3:
            return n
        case _:
            return None

def big_recursion():
    def down(n):
        if n == 0:
            raise LookupError
        try:
            return down(n - 1)
        finally:
            n += 1
    try:
        down(300)
    except LookupError:
        return "ok"

def gen_exc():
    def g():
        try:
            yield 1
            yield 2
        finally:
            yield 3
    out = []
    it = g()
    out.append(next(it))
    out.append(it.throw(ValueError) if False else next(it))
    out.append(next(it))
    try:
        next(it)
    except StopIteration:
        out.append("stop")
    def h():
        with open(__file__) as f:
            for line in f:
                if "big_recursion" in line:
                    return line
    out.append(h())
    return out


def unpack_and_comprehensions():
    a, *b = range(5)
    d = {k: v for k, v in zip("abc", range(3)) if v}
    s = {x % 3 for x in range(10)}
    g = list(x for x in range(6) if x & 1)
    nested = [[y for y in range(x)] for x in range(4)]
    try:
        x, y = [1, 2, 3]
    except ValueError:
        pass
    return a, b, d, s, g, nested

def while_else_and_assert(n):
    i = 0
    while i < n:
        i += 1
        if i == 100:
            break
    else:
        i = -i
    try:
        assert i > 0, "negative"
    except AssertionError as e:
        return str(e)
    return i


WORKLOADS = {
    "forelse_break": lambda: forelse(range(10)),
    "forelse_else": lambda: forelse([1, 2]),
    "tryfinally": lambda: [tryfinally(i) for i in range(4)],
    "catch_across": catch_across,
    "withs": withs,
    "gens": gens,
    "run_async": run_async,
    "recursion": lambda: rec(30),
    "callbacks": callbacks,
    "stdlib": stdlib,
    "match": lambda: [matchy(v) for v in ([1, 2, 3], {"k": 5}, 7, 2)],
    "stdlib_mix": stdlib_mix,
    "big_recursion": big_recursion,
    "gen_exc": gen_exc,
    "unpack_and_comprehensions": unpack_and_comprehensions,
    "while_else_and_assert": lambda: [while_else_and_assert(n) for n in (0, 3)],
}


# generators closed while suspended in a loop over another generator
def _inner_gen(n):
    for i in range(n):
        yield i


def _outer_gen():
    for x in _inner_gen(5):
        yield x


def closing_generators():
    g = _outer_gen()
    out = [next(g), next(g)]
    g.close()
    h = _outer_gen()
    for v in h:
        if v == 2:
            break
    del h
    return out


# an async comprehension over an async generator that raises
async def _agen_raises():
    yield 1
    yield 2
    raise KeyError("aaa")


async def _async_listcomp():
    return [i async for i in _agen_raises()]


def async_comprehension_raises():
    c = _async_listcomp()
    try:
        while True:
            c.send(None)
    except KeyError as e:
        return str(e)


WORKLOADS["closing_generators"] = closing_generators
WORKLOADS["async_comprehension_raises"] = async_comprehension_raises


# ---------------------------------------------------------------- comparing recordings

def events(r):
    """A recording's events, code objects named by (qualname, first line) so
    that two recordings compare equal when they ran the same instructions."""
    out = []
    for e in r.events():
        c = r.codes[e["code"]] if e.get("code") is not None else {}
        key = (c.get("qualname"), c.get("firstlineno"))
        if e["kind"] == "instr":
            out.append(("i", key, e["offset"], e["opname"], e["depth"], e["call_depth"]))
        elif e["kind"] == "enter":
            out.append(("enter", key, e["how"], e["call_depth"]))
        elif e["kind"] == "exit":
            out.append(("exit", key, e["how"]))
        else:
            out.append((e["kind"],))
    return out


def first_difference(a, b):
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"at event {k} of {len(a)}/{len(b)}:\n  flow {a[max(0, k - 3):k + 3]}\n  ref  {b[max(0, k - 3):k + 3]}"
