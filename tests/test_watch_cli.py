"""`spyglass watch`: run a program, count code objects per module."""
import json
import subprocess
import sys
import textwrap

import pytest

HAS_DESTROY = sys.version_info >= (3, 12)

HELPER = textwrap.dedent("""
    def a():
        def b():
            pass
        return b

    class C:
        def m(self):
            pass
""")

SCRIPT = textwrap.dedent("""
    import sys
    import spyglass_cli_helper
    for i in range(40):
        exec(compile(f"x = {i}", "<cli-loop>", "exec"), {})
    print("argv", sys.argv[1:])
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
""")


@pytest.fixture
def program(tmp_path):
    (tmp_path / "spyglass_cli_helper.py").write_text(HELPER)
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    return tmp_path


def spyglass(*args, cwd):
    return subprocess.run([sys.executable, "-m", "spyglass", "watch", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_json_report_counts_per_module(program):
    result = spyglass("--json", "report.json", "prog.py", "3", "--flag", cwd=program)
    assert result.returncode == 3, result.stderr  # the program's exit status
    assert result.stdout == "argv ['3', '--flag']\n"
    report = json.loads((program / "report.json").read_text())
    assert report["target"] == "prog.py" and report["exit_status"] == 3
    assert report["python"] == sys.version.split()[0]
    modules = {row["module"]: row for row in report["modules"]}

    helper = modules["spyglass_cli_helper"]
    assert helper["files"] == [str(program / "spyglass_cli_helper.py")]
    assert helper["created"] == 5  # <module>, a, b, C, m
    assert helper["created_bytes"] > 5 * 100
    loop = modules["<cli-loop>"]
    assert loop["created"] == 40
    main = modules["__main__"]
    assert main["created"] == 1
    if HAS_DESTROY:
        assert report["events"] == ["CREATE", "DESTROY"]
        assert loop["destroyed"] == 40 and loop["net"] == 0 and loop["net_bytes"] == 0
        # the helper's module code and class body die after import; a, b, m live on
        assert helper["destroyed"] == 2 and helper["net"] == 3
    else:
        assert report["events"] == ["CREATE"]
        assert loop["destroyed"] is None and "net" not in loop
    totals = report["totals"]
    assert totals["created"] == sum(row["created"] for row in report["modules"])
    # the text summary goes to stderr
    assert "spyglass watch: prog.py" in result.stderr
    assert "spyglass_cli_helper" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].split()[:2] == ["total", str(totals["created"])]


def test_module_mode_and_json_to_stdout(program):
    result = spyglass("-q", "--json", "-", "-m", "spyglass_cli_helper", cwd=program)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["target"] == "-m spyglass_cli_helper"
    modules = {row["module"]: row for row in report["modules"]}
    assert modules["__main__"]["created"] == 5


def test_failing_program_still_gets_a_summary(program):
    (program / "boom.py").write_text("def f():\n    raise ValueError('boom')\nf()\n")
    result = spyglass("--top", "0", "boom.py", cwd=program)
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr
    assert "__main__" in result.stderr and "total" in result.stderr


def test_live_view_redraws_and_then_prints_the_summary(program):
    (program / "slow.py").write_text("import time\nfor i in range(5):\n    exec('x = 1')\n    time.sleep(0.05)\n")
    result = spyglass("--live", "--interval", "0.02", "slow.py", cwd=program)
    assert result.returncode == 0, result.stderr
    assert "(live)" in result.stderr  # drawn at least once
    assert "\x1b[F\x1b[2K" in result.stderr  # and erased
    assert result.stderr.rstrip().splitlines()[-1].startswith("total")


def test_usage_errors(program):
    assert spyglass("missing.py", cwd=program).returncode == 2
    assert "no such file: missing.py" in spyglass("missing.py", cwd=program).stderr
    assert spyglass(cwd=program).returncode == 2
    result = spyglass("-m", cwd=program)
    assert result.returncode == 2 and "-m needs a module name" in result.stderr


def test_help_lists_the_command():
    result = subprocess.run([sys.executable, "-m", "spyglass", "--help"], capture_output=True, text=True)
    assert "watch" in result.stdout
