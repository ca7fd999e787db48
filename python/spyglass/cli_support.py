"""What the command-line front ends share: one-line messages for the user's
mistakes, and running a user's program the way `python script.py` reports
it (its traceback without spyglass's frames, its exit status, death by
SIGINT on Ctrl-C).

A command raises `UsageError` for anything the user can fix (a missing
file, a bad option value, a script that does not compile); `spyglass.cli`
prints it as one line, `spyglass COMMAND: message`, with no traceback.
"""
from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
from types import CodeType, TracebackType

_SPYGLASS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_RUNPY = (os.path.abspath(runpy.__file__), "<frozen runpy>")


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status `status`
    (2 for the command line itself, as argparse uses; 1 for a script that
    does not compile, as Python uses)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


class KilledBySigint(int):
    """The exit status (130) of a program stopped by Ctrl-C. Run as a
    program, `spyglass` then ends itself with SIGINT, as Python does, so
    that a calling shell sees the interrupt."""


# ---------------------------------------------------------------------------
# messages


def os_error(path: str, e: OSError) -> str:
    """`path: no such file or directory` (the path as the user gave it)."""
    reason = e.strerror or str(e)
    return f"{path}: {reason[:1].lower()}{reason[1:]}"


def syntax_error(e: SyntaxError, path: str | None = None) -> str:
    """`file:line:column: message`: where the source is wrong, on one line."""
    where = path or e.filename or "<source>"
    if e.lineno:
        where += f":{e.lineno}"
        if e.offset:
            where += f":{e.offset}"
    msg = e.msg or str(e)
    if msg.startswith("(unicode error) "):  # compile() of undecodable bytes
        msg = "cannot decode the source (see its coding cookie, PEP 263): " + msg[len("(unicode error) "):]
    return f"{where}: {type(e).__name__}: {msg}"


# ---------------------------------------------------------------------------
# checking paths before anything runs


def check_input_file(path: str, what: str = "file") -> None:
    """Raises UsageError unless `path` is a readable regular file."""
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a {what}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied")


def check_output_file(path: str, option: str) -> None:
    """Raises UsageError if `path` cannot be written: checked before the
    program runs, so that a long run is not lost to a typo."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: no such directory {os.path.dirname(path) or folder}")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: permission denied")


def write_output(path: str, option: str, content: str) -> None:
    """Writes a report; a failure is a one-line UsageError (status 1)."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
    except OSError as e:
        raise UsageError(f"{option} {os_error(path, e)}", status=1) from None


def stdout_for_report():
    """sys.stdout, or a fresh writer on file descriptor 1 if the program
    closed sys.stdout (as `json.tool` does)."""
    if not sys.stdout.closed:
        return sys.stdout
    return open(1, "w", encoding="utf-8", closefd=False)


def compile_script(path: str, display: str) -> CodeType:
    """Reads and compiles a script as Python does for `python script.py`
    (coding cookie honoured, `co_filename` = `path`). A script that cannot
    be read or compiled is a UsageError naming `display` (the path as the
    user typed it)."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise UsageError(os_error(display, e)) from None
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise UsageError(syntax_error(e, display if e.filename in (path, None) else None), status=1) from None
    except ValueError as e:  # null bytes, on some versions
        raise UsageError(f"{display}: SyntaxError: {e}", status=1) from None
    except (RecursionError, MemoryError) as e:  # nesting too deep for the compiler
        raise UsageError(f"{display}: {type(e).__name__}: {e}", status=1) from None


def non_negative(text: str) -> int:
    """argparse type: an int >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, not {text}")
    return value


# ---------------------------------------------------------------------------
# the program's own ending, as Python reports it


def _internal(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename.startswith(_SPYGLASS_DIR) or filename in _RUNPY


def program_frames(exc: BaseException) -> TracebackType | None:
    """The traceback of `exc` without the leading frames of spyglass and
    runpy that ran the program: what `python script.py` would show."""
    tb = exc.__traceback__
    while tb is not None and _internal(tb):
        tb = tb.tb_next
    return tb


def exit_status(e: SystemExit) -> int:
    """The status Python exits with for `sys.exit(code)`; like Python, a code
    that is neither None nor an int is printed to stderr (status 1)."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    try:
        print(e.code, file=sys.stderr)
    except Exception:
        pass
    return 1


def report_exception(exc: BaseException) -> int:
    """Reports a program's uncaught exception through `sys.excepthook` (the
    program may have set its own), without spyglass's frames; returns the
    exit status Python would give."""
    tb = program_frames(exc)
    exc.__traceback__ = tb
    try:
        sys.excepthook(type(exc), exc, tb)
    except Exception:
        sys.__excepthook__(type(exc), exc, tb)
    return KilledBySigint(130) if isinstance(exc, KeyboardInterrupt) else 1


def startup_error(exc: BaseException) -> str | None:
    """A one-line message if `exc` means the program never started (runpy
    could not find or compile it: no frame of the program is in the
    traceback), else None."""
    if program_frames(exc) is not None:
        return None
    if isinstance(exc, SyntaxError):
        return syntax_error(exc)
    if isinstance(exc, (RecursionError, MemoryError)):  # nesting too deep for the compiler
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):  # "No module named x", "can't find '__main__' module in 'dir'"
        return str(exc)
    if isinstance(exc, OSError):
        return os_error(exc.filename or "", exc) if exc.filename else str(exc)
    return None


def exit_by_sigint() -> None:
    """Ends the process by SIGINT, as Python does after an uncaught
    KeyboardInterrupt (POSIX only; elsewhere the caller exits with 130)."""
    if not hasattr(signal, "SIGINT") or not hasattr(os, "kill") or sys.platform == "win32":
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except (OSError, ValueError):  # not the main thread, or no such signal
        pass
