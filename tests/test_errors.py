"""Handlers that raise, and bad input."""
import warnings

import pytest

import spyglass


class Boom(spyglass.BaseTracer):
    @spyglass.after_int
    def explode(self, ret, *_, **__):
        raise ValueError(f"bad {ret}")


def test_a_raising_handler_is_reported_once_and_the_value_is_unchanged():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Boom:
            env = spyglass.exec("a = 1\nb = 2\nfor i in range(3): c = 3")
    assert (env["a"], env["b"], env["c"]) == (1, 2, 3)
    reports = [w for w in caught if issubclass(w.category, spyglass.HandlerExceptionWarning)]
    assert len(reports) == 1  # once per handler and event
    msg = str(reports[0].message)
    assert "Boom.explode" in msg and "ValueError: bad 1" in msg and "after_int" in msg
    assert reports[0].filename.startswith("<spyglass-") and reports[0].lineno == 1
    assert ":1" in msg


def test_should_propagate_handler_exception_reraises():
    class Strict(Boom):
        def should_propagate_handler_exception(self, evt, exc):
            assert evt is spyglass.after_int
            return isinstance(exc, ValueError)

    with Strict:
        with pytest.raises(ValueError, match="bad 7"):
            spyglass.exec("x = 7")


def test_base_exceptions_always_propagate():
    class Interrupt(spyglass.BaseTracer):
        @spyglass.after_int
        def h(self, *_, **__):
            raise KeyboardInterrupt

    with Interrupt:
        with pytest.raises(KeyboardInterrupt):
            spyglass.exec("x = 1")


def test_the_programs_own_exceptions_propagate_unchanged():
    class Noop(spyglass.BaseTracer):
        @spyglass.after_binop
        def h(self, *_, **__):
            pass

    with Noop:
        with pytest.raises(ZeroDivisionError):
            spyglass.exec("x = 1 / 0")


def test_before_stmt_with_an_unusable_return_value_is_reported():
    class Weird(spyglass.BaseTracer):
        @spyglass.before_stmt
        def h(self, *_, **__):
            return 42

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Weird:
            assert spyglass.exec("x = 1")["x"] == 1
    assert any("before_stmt handler returned 42" in str(w.message) for w in caught)


def test_unsupported_python_version_gives_a_clear_error(monkeypatch):
    from spyglass import instrument

    monkeypatch.setattr(instrument, "VERSION", (3, 10))
    with pytest.raises(RuntimeError, match="3.11 to 3.14"):
        instrument.check_version()
