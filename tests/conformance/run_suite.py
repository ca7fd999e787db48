"""Runs one of CPython's own test modules and prints its outcome per test as JSON.

    python run_suite.py test_grammar            # plain
    python run_suite.py test_grammar --trace    # imported through spyglass's
                                                # hook, a no-op handler on every AST event

Used by test_cpython_suites.py, which compares the two.
"""
import json
import os
import sys
import unittest
import warnings

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "support"))


def use_test_package():
    """Debian's interpreters ship CPython's test package separately
    (scripts/get-cpython-tests.sh); make `test.<name>` importable from there."""
    extra = os.environ.get("SPYGLASS_CPYTHON_TESTS")
    if extra:
        import test

        test.__path__.insert(0, os.path.join(extra, "test"))


class Outcomes(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.setdefault(test.id(), "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = "FAIL: " + self._exc_info_to_string(err, test).strip().splitlines()[-1]

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes[test.id()] = "ERROR: " + self._exc_info_to_string(err, test).strip().splitlines()[-1]

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skipped"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes[test.id()] = "expected failure"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes[test.id()] = "unexpected success"

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self.outcomes[subtest.id()] = kind + ": " + self._exc_info_to_string(err, test).strip().splitlines()[-1]


def main():
    name = sys.argv[1]
    trace = "--trace" in sys.argv
    use_test_package()
    import importlib
    import importlib.util

    spec = importlib.util.find_spec(f"test.{name}")
    if spec is None:
        print(json.dumps({"missing": name}))
        return
    target = spec.origin
    tracer = None
    if trace:
        os.environ["SPYGLASS_STRICT"] = "1"
        import spyglass
        from alltracer import make_noop_tracer

        Tracer = make_noop_tracer(
            should_instrument_file=lambda self, filename: filename == target,
        )
        tracer = Tracer()
        tracer.__enter__()
    warnings.simplefilter("ignore")
    module = importlib.import_module(f"test.{name}")
    if trace:
        from spyglass import _dispatch

        instrumented = any(t.filename == target for t in list(_dispatch._tables_by_filename.values()))
        if not instrumented:
            print(json.dumps({"error": f"{target} was not instrumented"}))
            sys.exit(3)
    loader = unittest.TestLoader()
    if hasattr(module, "load_tests"):
        suite = loader.loadTestsFromModule(module)
    else:
        suite = loader.loadTestsFromModule(module)
    stream = open(os.devnull, "w")
    runner = unittest.TextTestRunner(stream=stream, resultclass=Outcomes, verbosity=0)
    result = runner.run(suite)
    if tracer is not None:
        tracer.__exit__(None, None, None)
    print(json.dumps({"module": name, "outcomes": result.outcomes}))


if __name__ == "__main__":
    main()
