"""Runs one of CPython's own test modules, plainly or with every instruction
of the test module's code traced by spyglass.opcodes with stack snapshots,
and prints the outcome of each test as JSON (used by
tests/test_opcodes_conformance.py, in a subprocess so that a crash is seen
as a crash).

    python opcodes_conformance_runner.py test_generators [--trace | --record PATH [--flow] | --compare-flow]

--trace delivers a stack snapshot to a Python callback at every instruction;
--record uses the native recorder (values rendered in Rust, no Python code
runs per instruction); with --flow it records control flow only and the
recording is read back (every instruction rebuilt) before the outcome is
printed. --compare-flow records the module's tests with both recorder
methods (depths only) and prints whether the rebuilt instructions equal the
per-instruction ones.
"""
import io
import json
import os
import sys
import unittest


def load(name):
    extra = os.environ.get("SPYGLASS_CPYTHON_TESTS")
    import test

    if extra and os.path.join(extra, "test") not in test.__path__:
        test.__path__.append(os.path.join(extra, "test"))
    mod = __import__(f"test.{name}", fromlist=["_"])
    return mod, unittest.defaultTestLoader.loadTestsFromModule(mod)


class Outcomes(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.outcome = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcome.setdefault(test.id(), "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcome[test.id()] = "fail"

    def addError(self, test, err):
        super().addError(test, err)
        self.outcome[str(test.id() if hasattr(test, "id") else test)] = "error"

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcome[test.id()] = "skip"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcome[test.id()] = "xfail"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcome[test.id()] = "xpass"

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.outcome[test.id()] = "fail"


def main():
    name = sys.argv[1]
    traced = "--trace" in sys.argv
    record = sys.argv[sys.argv.index("--record") + 1] if "--record" in sys.argv else None
    mod, suite = load(name)
    stream = io.StringIO()
    result = Outcomes(stream, descriptions=False, verbosity=0)
    counts = {"instructions": 0, "values": 0}

    def run():
        suite.run(result)

    test_file = os.path.realpath(mod.__file__)

    def in_test_module(code):
        f = code.co_filename
        return f.startswith("<doctest") or os.path.realpath(f) == test_file

    if "--compare-flow" in sys.argv:
        compare_flow(mod, in_test_module)
        return
    if record:
        from spyglass import opcodes

        flow = "--flow" in sys.argv
        r = opcodes.Recorder(record, follow=True, max_depth=400, filter=in_test_module, max_events=50_000_000,
                             reprs="none" if flow else "safe", method="control-flow" if flow else "instructions")
        r.call(run)
        counts["instructions"] = opcodes.read(record).stats["instructions"] if flow else r.stats["instructions"]
    elif traced:
        from spyglass import opcodes

        def snapshot(stack, frame, instr):
            counts["instructions"] += 1
            counts["values"] += len(stack)

        opcodes.Trace(run, snapshot, follow=True, max_depth=400, filter=in_test_module).call()
    else:
        run()
    json.dump(dict(outcome=result.outcome, counts=counts, details=stream.getvalue()[-4000:]), sys.stdout)


def compare_flow(mod, in_test_module):
    import tempfile

    from spyglass import opcodes

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
    from flow_workloads import events, first_difference

    streams = {}
    for method in ("control-flow", "instructions"):
        suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
        fd, path = tempfile.mkstemp(suffix=".sgops")
        os.close(fd)
        try:
            opcodes.Recorder(path, reprs="none", method=method, follow=True, max_depth=400,
                             filter=in_test_module, max_events=50_000_000).call(
                lambda: suite.run(unittest.TestResult()))
            streams[method] = events(opcodes.read(path))
        finally:
            os.unlink(path)
    a, b = streams["control-flow"], streams["instructions"]
    json.dump(dict(events=len(b), instructions=sum(1 for e in b if e[0] == "i"), exact=a == b,
                   diff="" if a == b else first_difference(a, b)), sys.stdout)


if __name__ == "__main__":
    main()
