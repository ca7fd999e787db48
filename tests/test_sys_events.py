"""sys.settrace events (call, line, return, exception) in instrumented files."""
import spyglass


def test_call_line_return_in_files_the_tracer_traces():
    log = []

    class T(spyglass.BaseTracer):
        @spyglass.register_handler((spyglass.call, spyglass.line, spyglass.return_))
        def h(self, ret, node, frame, event, **_):
            if frame.f_code.co_name == "f":
                log.append((event.name, frame.f_lineno, ret if event is spyglass.return_ else None))

    with T:
        spyglass.exec("def f(x):\n    y = x + 1\n    return y\nf(1)")
    assert log == [("call", 1, None), ("line", 2, None), ("line", 3, None), ("return_", 3, 2)]


def test_sys_events_elsewhere_are_not_delivered():
    seen = set()

    class T(spyglass.BaseTracer):
        @spyglass.call
        def h(self, ret, node, frame, event, **_):
            seen.add(frame.f_code.co_filename)

    import json

    with T:
        spyglass.exec("import json\njson.dumps([1])")
    assert all(f.startswith("<spyglass-") for f in seen) and seen
    assert json.__file__ not in seen


def test_settrace_is_restored():
    import sys

    before = sys.gettrace()

    class T(spyglass.BaseTracer):
        @spyglass.line
        def h(self, *_, **__):
            pass

    with T:
        assert sys.gettrace() is not before
    assert sys.gettrace() is before
