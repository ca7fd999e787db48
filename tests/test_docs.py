"""The docs stay true: every ```python block of README.md and docs/*.md runs
(in a fresh interpreter, in an empty folder), the output shown after a block
is what it prints, and each command synopsis lists exactly the options its
`--help` has.

Markers, an HTML comment on the line just before a block:
- `<!-- not-runnable: reason -->` a fragment (it must still compile);
- `<!-- output -->` the block that follows shows what the previous python
  block prints; `<!-- output: CPython 3.12 -->` on that version only. In it,
  `0x...` stands for any address and a line `...` for any lines.
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(not-runnable|output)\s*(?::\s*(.*?))?\s*-->\s*$")


class Block:
    def __init__(self, path, line, lang, text, marker, note):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.marker, self.note = marker, note
        self.output = None  # the block showing what this one prints

    def where(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mk = MARKER.match(lines[k]) if k >= 0 else None
        found.append(Block(path, i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n",
                           mk and mk.group(1), mk and mk.group(2)))
        i = j + 1
    for prev, block in zip(found, found[1:]):
        if block.marker == "output" and prev.lang == "python":
            prev.output = block
    return found


ALL = [b for path in DOCS for b in blocks(path)]
PYTHON = [b for b in ALL if b.lang in ("python", "py", "python3")]


def test_the_docs_have_python_blocks():
    assert len(PYTHON) >= 5 and any(b.marker is None for b in PYTHON)
    for b in ALL:
        if b.marker == "output":
            assert any(p.output is b for p in PYTHON), f"{b.where()}: an output block must follow a python block"


def version_matches(note):
    if not note:
        return True
    m = re.fullmatch(r"CPython (\d+)\.(\d+)", note)
    assert m, f"output marker note must be 'CPython 3.X', not {note!r}"
    return sys.version_info[:2] == (int(m.group(1)), int(m.group(2)))


def matches(expected, actual):
    """`actual` fits `expected`: line by line, `0x...` any hex number, a
    line `...` any number of lines; trailing spaces ignored."""
    pattern = ""
    for line in expected.rstrip("\n").splitlines():
        if line.strip() == "...":
            pattern += r"(?:.*\n)*?"
        else:
            pattern += "0x[0-9a-fA-F]+".join(re.escape(part) for part in line.rstrip().split("0x...")) + r"\n"
    actual = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return re.fullmatch(pattern, actual) is not None


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.where())
def test_python_block(block, tmp_path):
    if block.marker == "not-runnable":
        assert block.note, f"{block.where()}: say why the block cannot run: <!-- not-runnable: reason -->"
        compile(block.text, block.where(), "exec")  # a fragment is still valid Python
        return
    result = subprocess.run([sys.executable, "-c", block.text], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, (
        f"{block.where()}: the example fails (if it is a fragment, put <!-- not-runnable: reason --> "
        f"just before it):\n{result.stderr}")
    if block.output is not None and version_matches(block.output.note):
        assert matches(block.output.text, result.stdout), (
            f"{block.output.where()}: the output shown is not what {block.where()} prints:\n{result.stdout}")


def test_matches():
    assert matches("a 0x...\n...\n", "a 0x7f1\nb\nc\n")
    assert matches("a\n...\nc\n", "a\nb\nc\n")
    assert not matches("a 0x...\nb\n", "a 0x7f1\nc\n")
    assert not matches("a\n", "a\nb\n")


# ---------------------------------------------------------------------------
# command synopses: `spyglass CMD ...` lines in plain blocks


def subcommand_options():
    from spyglass.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {opt for a in p._actions for opt in a.option_strings if opt not in ("-h", "--help")}
            for name, p in sub.choices.items()}


SYNOPSES = [b for b in ALL if b.lang == "" and re.match(r"spyglass [a-z]+ ", b.text)]


def test_every_command_has_a_synopsis():
    shown = {re.match(r"spyglass ([a-z]+)", line).group(1)
             for b in SYNOPSES for line in b.text.splitlines() if line.startswith("spyglass ")}
    assert shown == set(subcommand_options())


@pytest.mark.parametrize("block", SYNOPSES, ids=lambda b: b.where())
def test_synopsis_lists_the_options_of_help(block):
    options = subcommand_options()
    per_command, command = {}, None
    for line in block.text.splitlines():
        if line.startswith("spyglass "):
            command = line.split()[1]
        per_command.setdefault(command, set()).update(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line))
    for command, shown in per_command.items():
        if command == "watch":  # `-m module`, as python's own synopsis writes it
            shown.add("-m")
        missing, unknown = options[command] - shown, shown - options[command]
        # a short and a long spelling of one option: either is enough
        from spyglass.cli import build_parser
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        for action in sub.choices[command]._actions:
            if set(action.option_strings) & shown:
                missing -= set(action.option_strings)
        assert not missing, f"{block.where()}: `spyglass {command} --help` has {sorted(missing)}, the docs do not"
        assert not unknown, f"{block.where()}: `spyglass {command}` has no {sorted(unknown)}"
