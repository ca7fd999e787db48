"""What a user sees when something is wrong: a one-line message naming the
thing and a non-zero status, never a traceback of spyglass; and a program's
own exception, exit status and Ctrl-C pass through as `python script.py`
gives them."""
import os
import signal
import subprocess
import sys
import time

import pytest

import spyglass
import spyglass.pyc


def spyglass_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "spyglass", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def python(*args, cwd):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def one_line(result, *needles, status=None):
    """The command failed with one line on stderr that mentions every needle."""
    err = result.stderr
    assert result.returncode != 0, (result.stdout, err)
    if status is not None:
        assert result.returncode == status, err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "syn.py").write_text("x = (\n")
    (tmp_path / "raise.py").write_text("def f():\n    raise ValueError('boom')\nf()\n")
    (tmp_path / "exit3.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "exitmsg.py").write_text("import sys\nsys.exit('bye now')\n")
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "ran.py").write_text("open('RAN', 'w').close()\n")
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\ns = '\xe9\xe8'\nprint(len(s), s)\n")
    (tmp_path / "bad_utf8.py").write_bytes(b"s = '\xe9'\n")
    (tmp_path / "deep.py").write_text("x = " + "1+" * 100_000 + "1\n")
    (tmp_path / "wide.py").write_text("x = [" + "1," * 100_000 + "1]\nprint(len(x))\n")
    (tmp_path / "a_dir").mkdir()
    return tmp_path


COMMANDS = [["trace", "-q"], ["watch", "--no-live", "-q"], ["dis"], ["explain"]]
ALL = COMMANDS + [["pyc"]]


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c[0])
def test_missing_file(files, cmd):
    one_line(spyglass_cli(*cmd, "nope.py", cwd=files), "nope.py")


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c[0])
def test_directory(files, cmd):
    one_line(spyglass_cli(*cmd, "a_dir", cwd=files), "a_dir")


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_syntax_error_is_one_line_with_position(files, cmd):
    err = one_line(spyglass_cli(*cmd, "syn.py", cwd=files), "syn.py:1:5", "SyntaxError", status=1)
    assert "never closed" in err


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_source_too_deep_to_compile(files, cmd):
    assert python("deep.py", cwd=files).returncode == 1  # Python itself refuses it
    one_line(spyglass_cli(*cmd, "deep.py", cwd=files), status=1)


@pytest.mark.parametrize("cmd", COMMANDS[:2], ids=lambda c: c[0])
def test_undecodable_source(files, cmd):
    one_line(spyglass_cli(*cmd, "bad_utf8.py", cwd=files), "bad_utf8.py", status=1)


@pytest.mark.parametrize("cmd", COMMANDS[:2], ids=lambda c: c[0])
def test_coding_cookie_and_long_lines_run_as_python_runs_them(files, cmd):
    for script in ("latin.py", "wide.py"):
        expected = python(script, cwd=files)
        result = spyglass_cli(*cmd, script, cwd=files)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(expected.stdout), result.stdout[:200]


@pytest.mark.parametrize("cmd", COMMANDS[:2], ids=lambda c: c[0])
def test_program_exception_and_exit_status_pass_through(files, cmd):
    result = spyglass_cli(*cmd, "raise.py", cwd=files)
    assert result.returncode == 1
    err = result.stderr
    assert err.startswith("Traceback (most recent call last):\n"), err
    assert "ValueError: boom" in err and "line 2, in f" in err
    # only the program's frames, as `python raise.py` shows them
    assert "spyglass" not in err.split("ValueError: boom")[0] and "runpy" not in err, err
    assert spyglass_cli(*cmd, "exit3.py", cwd=files).returncode == 3
    result = spyglass_cli(*cmd, "exitmsg.py", cwd=files)
    assert result.returncode == 1 and result.stderr.startswith("bye now\n"), result.stderr


def test_empty_files(files):
    assert spyglass_cli("trace", "-q", "empty.py", cwd=files).returncode == 0
    assert spyglass_cli("dis", "empty.py", cwd=files).returncode == 0
    (files / "empty.pyc").write_bytes(b"")
    one_line(spyglass_cli("pyc", "empty.pyc", cwd=files), "empty.pyc", "truncated", status=1)


def test_pyc_of_the_wrong_kind(files):
    (files / "py27.pyc").write_bytes(b"\x03\xf3\r\n" + b"\0" * 4 + b"c" + b"\0" * 40)
    for cmd in ("pyc", "dis"):
        one_line(spyglass_cli(cmd, "py27.pyc", cwd=files), "py27.pyc", "2.7", status=1)
    full = spyglass.pyc.compile_source(b"def f(x):\n    return x + 1\n", "t.py")
    (files / "trunc.pyc").write_bytes(full[: len(full) // 2])
    one_line(spyglass_cli("dis", "trunc.pyc", cwd=files), "trunc.pyc", "truncated", "offset", status=1)
    # a source file given to `pyc`, a .pyc given to `explain`: say what to use instead
    one_line(spyglass_cli("pyc", "raise.py", cwd=files), "raise.py", "spyglass dis", status=1)
    (files / "ok.pyc").write_bytes(full)
    one_line(spyglass_cli("explain", "ok.pyc", cwd=files), "ok.pyc", "spyglass pyc")


@pytest.mark.parametrize("args, needle", [
    (["trace", "--max-events", "0", "ran.py"], "--max-events"),
    (["trace", "--max-depth", "-1", "ran.py"], "--max-depth"),
    (["trace", "--repr", "everything", "ran.py"], "--repr"),
    (["watch", "--top", "-3", "ran.py"], "--top"),
    (["watch", "--interval", "nan", "ran.py"], "--interval"),
])
def test_bad_option_values(files, args, needle):
    result = spyglass_cli(*args, cwd=files)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert needle in result.stderr.splitlines()[-1], result.stderr
    assert not (files / "RAN").exists()


@pytest.mark.parametrize("args", [
    ["trace", "--call-args", "1", "ran.py"],
    ["trace", "--function", "f", "--call-args", "os.sep", "ran.py"],
])
def test_bad_combinations(files, args):
    one_line(spyglass_cli(*args, cwd=files), "--call-args", status=2)


def test_trace_function_errors(files):
    (files / "lib.py").write_text("x = 3\ndef f(n):\n    return n\n")
    one_line(spyglass_cli("trace", "lib.py", "--function", "x", cwd=files), "lib.py", "not a Python function",
             status=2)
    # the program fails before its first traced instruction: its error only, no word about the recording
    result = spyglass_cli("trace", "lib.py", "--function", "f", "--call-args", "1, 2", cwd=files)
    assert result.returncode == 1
    assert result.stderr == "TypeError: f() takes 1 positional argument but 2 were given\n", result.stderr
    result = spyglass_cli("trace", "raise.py", "--function", "f", "-q", cwd=files)
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("ValueError: boom") and "recording" not in result.stderr


@pytest.mark.parametrize("args", [
    ["trace", "-q", "--json", "missing/t.json", "ran.py"],
    ["trace", "-q", "--html", "a_dir", "ran.py"],
    ["watch", "--no-live", "--json", "missing/w.json", "ran.py"],
    ["explain", "--html", "missing/e.html", "ran.py"],
])
def test_unwritable_output_is_refused_before_the_program_runs(files, args):
    option = next(a for a in args if a.startswith("--") and a not in ("--no-live",))
    one_line(spyglass_cli(*args, cwd=files), option, status=2)
    assert not (files / "RAN").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("cmd", COMMANDS[:2], ids=lambda c: c[0])
def test_ctrl_c_ends_like_python(files, cmd):
    (files / "loop.py").write_text(
        "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.01)\n")
    proc = subprocess.Popen([sys.executable, "-m", "spyglass", *cmd, "loop.py"], cwd=files,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT, err  # as `python loop.py` ends
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt" or "\nKeyboardInterrupt\n" in err, err
    assert "spyglass/" not in err.split("KeyboardInterrupt")[0].replace(os.sep, "/"), err


def test_trace_reports_to_stdout(files):
    result = spyglass_cli("trace", "-q", "--json", "-", "exit3.py", cwd=files)
    assert result.returncode == 3 and not (files / "-").exists()
    import json
    assert json.loads(result.stdout)["events"]


def test_version():
    result = subprocess.run([sys.executable, "-m", "spyglass", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith(f"spyglass {spyglass.__version__} (CPython ")
    from importlib import metadata
    try:
        assert spyglass.__version__ == metadata.version("spyglass")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, not an installed wheel
        pass


def test_python_m_spyglass_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "spyglass", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("trace", "watch", "pyc", "dis", "explain", "--version"):
        assert command in result.stdout
