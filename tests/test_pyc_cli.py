"""`spyglass pyc`, `spyglass dis` and `spyglass explain`."""
import json
import py_compile
import subprocess
import sys

import pytest


def run(*args):
    r = subprocess.run([sys.executable, "-m", "spyglass", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("import sys\n\ndef f(x):\n    if x:\n        return sys.argv\n    return [y for y in x]\n")
    out = tmp_path / "mod.pyc"
    py_compile.compile(str(src), cfile=str(out))
    return src, out


def test_pyc_shows_header_and_tree(files):
    src, out = files
    text = run("pyc", str(out), "--source", str(src))
    assert "magic: " in text and "CPython %d.%d" % sys.version_info[:2] in text
    assert "source check against" in text and ": match" in text
    assert "\n<module>  line 1" in text and "\n  f  line 3" in text
    layout = run("pyc", str(out), "--layout")
    assert "marshal layout" in layout and "co_code =" in layout


def test_dis_jsonl_has_one_object_per_instruction(files):
    _, out = files
    lines = run("dis", str(out), "--format", "jsonl").splitlines()
    rows = [json.loads(x) for x in lines]
    assert {r["code"] for r in rows} >= {"<module>", "f"}
    keys = ["code", "offset", "opcode", "opname", "arg", "argval", "argrepr", "line", "starts_line",
            "positions", "is_jump_target"]
    assert all(list(r) == keys for r in rows)
    jumps = [r for r in rows if r["opname"].startswith("POP_JUMP")]
    assert jumps and all(isinstance(r["argval"], int) for r in jumps)
    assert any(r["argval"] == "argv" for r in rows)


def test_dis_of_a_py_file_compiles_it_here(files):
    src, out = files
    assert run("dis", str(src)) == run("dis", str(out))


def test_explain_text_and_html(files, tmp_path):
    src, _ = files
    text = run("explain", str(src))
    for stage in ("## 1. tokens", "## 2. abstract syntax tree", "## 3. bytecode", "## 4. the .pyc file",
                  "## 5. marshal layout"):
        assert stage in text
    page = tmp_path / "out.html"
    run("explain", str(src), "--html", str(page))
    html = page.read_text()
    assert 'id="L4"' in html and 'href="#L4"' in html and 'id="code1"' in html and 'href="#code1"' in html
