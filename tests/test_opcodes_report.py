"""`spyglass trace` and the reports: text, JSON, Perfetto, HTML (in Chromium)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from spyglass import opcodes as O
from spyglass.cli import main
from spyglass.report import to_html, to_json, to_perfetto, write_text

SEED = textwrap.dedent("""\
    def lol(x):
        for i in range(10):
            if x == i:
                break
        return helper(x)

    def helper(v):
        return [v, str(v)]

    if __name__ == "__main__":
        print("result", lol(3))
    """)


@pytest.fixture
def seed(tmp_path):
    p = tmp_path / "seed.py"
    p.write_text(SEED)
    return p


def test_cli_text_report(seed, capsys):
    assert main(["trace", str(seed), "--function", "lol", "--call-args", "3", "--follow", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert ">>> enter lol" in out and ">>> enter helper" in out
    assert "<<< return from helper -> [3, '3']" in out
    assert "<<< return from lol -> [3, '3']" in out
    lines = [l for l in out.splitlines() if "COMPARE_OP" in l]
    assert len(lines) == 4
    assert lines[-1].rstrip().endswith("3, 3]")
    assert "\x1b[" not in out


def test_cli_runs_script_as_main_and_colours(seed, capsys):
    assert main(["trace", str(seed), "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "result [3, '3']" in out
    assert "\x1b[" in out and "<module>" in out
    # without --follow, lol itself is not traced
    assert ">>> enter lol" not in out


def test_cli_errors(tmp_path, seed, capsys):
    assert main(["trace", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["trace", str(seed), "--function", "nope", "-q"]) == 2
    assert "defines no 'nope'" in capsys.readouterr().err
    assert main(["trace", str(seed), "--function", "lol", "--call-args", "os.sep", "-q"]) == 2
    assert "literals" in capsys.readouterr().err
    boom = tmp_path / "boom.py"
    boom.write_text("def f():\n    raise KeyError('k')\nf()\n")
    assert main(["trace", str(boom), "--follow", "--color", "never"]) == 1
    captured = capsys.readouterr()
    assert "KeyError" in captured.err
    assert "<<< exception out of f" in captured.out


def test_json_and_perfetto(seed, tmp_path):
    js, pf = tmp_path / "t.json", tmp_path / "p.json"
    assert main(["trace", str(seed), "--function", "lol", "--call-args", "3", "--follow", "-q", "--json", str(js), "--perfetto", str(pf)]) == 0
    data = json.loads(js.read_text())
    assert data["python"].startswith("%d.%d" % sys.version_info[:2])
    names = {c["qualname"] for c in data["codes"]}
    assert names == {"lol", "helper"}
    instrs = [e for e in data["events"] if e["kind"] == "instr"]
    compares = [e for e in instrs if e["opname"] == "COMPARE_OP"]
    assert [e["stack"][-2:] for e in compares] == [["3", str(i)] for i in range(4)]
    trace = json.loads(pf.read_text())
    evs = trace["traceEvents"]
    begins = [e for e in evs if e.get("ph") == "B"]
    ends = [e for e in evs if e.get("ph") == "E"]
    assert [e["name"] for e in begins] == ["lol", "helper"] and len(ends) == 2
    xs = [e for e in evs if e.get("ph") == "X"]
    assert len(xs) == len(instrs)
    assert all(b["ts"] <= x["ts"] for b in begins[:1] for x in xs)


def test_cli_subprocess_entry_point(seed, tmp_path):
    out = subprocess.run([sys.executable, "-m", "spyglass", "trace", str(seed), "--function", "helper", "--call-args", "'x'", "--color", "never"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BUILD_LIST" in out.stdout


def _record_seed(tmp_path, seed):
    path = tmp_path / "seed.sgops"
    ns = {}
    exec(compile(seed.read_text(), str(seed), "exec"), ns)
    O.Recorder(path, follow=True).call(ns["lol"], 3)
    return O.read(path)


def test_html_is_self_contained(tmp_path, seed):
    page = to_html(_record_seed(tmp_path, seed))
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "src=" not in page.replace('id="src-title"', "")


def test_html_steps_in_chromium(tmp_path, seed):
    from chromium_pipe import Chromium, find_chromium

    exe = find_chromium()
    if exe is None:
        msg = "Chromium is not installed: the HTML report was NOT tested in a browser (scripts/test installs Debian's chromium)"
        print("\n!!! " + msg, file=sys.stderr)
        pytest.skip(msg)
    page = tmp_path / "trace.html"
    rec = _record_seed(tmp_path, seed)
    page.write_text(to_html(rec))
    steps = [e for e in rec.events() if e["kind"] == "instr"]
    browser = Chromium(exe)
    try:
        s = browser.open(page.as_uri())
        state = "JSON.stringify([document.getElementById('step-label').textContent, document.getElementById('current-instr').textContent, [...document.querySelectorAll('#stackbox .box')].map(b => b.textContent), document.querySelector('.ins.cur') && document.querySelector('.ins.cur').dataset.off, document.querySelector('.ln.cur') && document.querySelector('.ln.cur').dataset.line])"
        first = json.loads(browser.eval(s, state))
        assert first[0] == f"step 1 / {len(steps)}"
        assert first[1].startswith(f"{steps[0]['offset']} {steps[0]['opname']}")
        assert first[3] == str(steps[0]["offset"]) and first[4] == str(steps[0]["line"])
        # keyboard: walk to the first COMPARE_OP, checking each step
        k = next(i for i, e in enumerate(steps) if e["opname"] == "COMPARE_OP")
        for i in range(1, k + 1):
            browser.key(s, "ArrowRight", 39)
        now = json.loads(browser.eval(s, state))
        assert now[0] == f"step {k + 1} / {len(steps)}"
        assert now[1].startswith(f"{steps[k]['offset']} COMPARE_OP")
        # the stack boxes, top first on screen: the compared values 3 and 0
        assert now[2][-2:] == ["3", "0"], now[2]  # DOM order is bottom first (drawn top first)
        assert len(now[2]) == steps[k]["depth"]
        browser.key(s, "ArrowLeft", 37)
        back = json.loads(browser.eval(s, state))
        assert back[1].startswith(f"{steps[k - 1]['offset']} {steps[k - 1]['opname']}") and back != now
        # the slider jumps to the last step
        browser.eval(s, f"(() => {{ const e = document.getElementById('slider'); e.value = {len(steps) - 1}; e.dispatchEvent(new Event('input')); }})()")
        last = json.loads(browser.eval(s, state))
        assert last[0] == f"step {len(steps)} / {len(steps)}"
        assert last[1].split()[1] in ("RETURN_VALUE", "RETURN_CONST")
        assert browser.errors() == []
    finally:
        browser.close()


def test_text_report_api(tmp_path, seed):
    import io
    rec = _record_seed(tmp_path, seed)
    buf = io.StringIO()
    n = write_text(rec, buf)
    assert n == sum(e["kind"] == "instr" for e in rec.events())
    assert to_json(rec)["events"] and to_perfetto(rec)["traceEvents"]


def test_cli_runs_generator_and_coroutine_functions(tmp_path, capsys):
    p = tmp_path / "gens.py"
    p.write_text(
        "import asyncio\n"
        "def gen(n):\n"
        "    for i in range(n):\n"
        "        yield i * 7\n"
        "async def coro():\n"
        "    await asyncio.sleep(0)\n"
        "    return 99\n"
    )
    assert main(["trace", str(p), "--function", "gen", "--call-args", "2", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert out.count("<<< yield out of gen -> ") == 2 and "-> 7" in out
    assert main(["trace", str(p), "--function", "coro", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "<<< return from coro -> 99" in out


def test_depths_only_report_shows_depth_zero_as_a_depth(seed, capsys):
    assert main(["trace", str(seed), "--function", "helper", "--call-args", "3", "--repr", "none",
                 "--color", "never"]) == 0
    stacks = [l.split("stack: ")[1] for l in capsys.readouterr().out.splitlines() if "stack: " in l]
    assert stacks and all(s.startswith("depth ") for s in stacks), stacks
    assert "depth 0" in stacks
