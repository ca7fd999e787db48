"""A deterministic workload over a dozen stdlib modules, shared by
tests/test_opcodes_depth.py and tests/test_opcodes_flow.py."""
import argparse
import ast
import collections
import dataclasses
import difflib
import email.parser
import enum
import fractions
import ipaddress
import json
import pprint
import re
import shlex
import statistics
import string
import textwrap


def run():
    """Runs code of a dozen stdlib modules, and async for / async with."""
    data = {"a": [1, 2.5, None, True, "x" * 3], "b": {"c": [{"d": i} for i in range(5)]}}
    assert json.loads(json.dumps(data, indent=1, sort_keys=True)) == data
    rx = re.compile(r"(?P<w>\w+)\s*=\s*(\d+|'[^']*')")
    assert rx.findall("a = 1, bb='two'")
    textwrap.fill("lorem ipsum dolor sit amet " * 8, width=30)
    list(difflib.unified_diff(["a\n", "b\n", "c\n"], ["a\n", "c\n", "d\n"]))
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("files", nargs="*")
    assert p.parse_args(["--n", "4", "f1", "f2"]).n == 4
    Point = dataclasses.make_dataclass("Point", [("x", int), ("y", int, dataclasses.field(default=0))])
    assert Point(1) == Point(1, 0)
    msg = email.parser.Parser().parsestr("From: a@b\nSubject: hi\n\nbody\n")
    assert msg["subject"] == "hi"
    assert statistics.median([3, 1, 2]) == 2
    statistics.stdev([1.0, 2.0, 4.0])
    assert fractions.Fraction(3, 6) + fractions.Fraction(1, 3) == fractions.Fraction(5, 6)
    net = ipaddress.ip_network("10.0.0.0/29")
    assert len(list(net.hosts())) == 6
    pprint.pformat({"k": list(range(30)), "n": {"x": (1, 2)}}, width=20)
    Color = enum.Enum("Color", "RED GREEN")
    assert Color.RED.name == "RED"
    tree = ast.parse("def f(a, *b, c=1):\n    return [x async for x in a] if b else {c: a}\n")
    ast.unparse(tree)
    assert shlex.split("a 'b c' \"d\"") == ["a", "b c", "d"]
    string.Template("$a-$b").substitute(a=1, b=2)
    collections.Counter("mississippi").most_common(2)
    collections.OrderedDict(a=1).move_to_end("a")
    # async for, async with and async comprehensions (3.14 compiles the end
    # of an async for with END_ASYNC_FOR's pseudo-jump)
    c = _async_main()
    try:
        c.send(None)
    except StopIteration as e:
        assert e.value == [0, 1, 2, 0, 1, 2, "in"]


async def _agen():
    for i in range(3):
        yield i


class _ACtx:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        return False


async def _async_main():
    out = [v async for v in _agen()]
    async for v in _agen():
        out.append(v)
    async with _ACtx():
        out.append("in")
    return out
