"""spyglass's disassembly of .pyc files against each interpreter's own `dis`.

For every CPython 3.6-3.14 on the machine (pyenv's, and 3.14 from
$SPYGLASS_CACHE/pythons/3.14 as scripts/test installs it), the interpreter
compiles its whole stdlib to .pyc files and dumps `dis.get_instructions` of
every code object (tests/conformance/pyc_dump.py); `spyglass dis --format
jsonl` of each .pyc must be identical, line for line.

The cross-version run is done once per scripts/test run, in the 3.11 session
(or whenever SPYGLASS_PYC_CONFORMANCE=all); the other sessions check their own
version only. The interpreters' dumps are cached under
$SPYGLASS_CACHE/pyc-conformance, keyed by interpreter, dumper and stdlib
file list (sizes and mtimes), since an installed stdlib does not change.
"""
import concurrent.futures
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from spyglass import pyc

HERE = os.path.dirname(os.path.abspath(__file__))
DUMPER = os.path.join(HERE, "pyc_dump.py")
CACHE = os.environ.get("SPYGLASS_CACHE", os.path.expanduser("~/.cache/spyglass"))
MINORS = list(range(6, 15))
# CPython shows a code object's address, spyglass its offset in the file
CODE_ADDR = re.compile(r"(<code object .*? at )0x[0-9a-f]+(, file )")


def find_interpreters():
    found = {}
    try:
        root = subprocess.check_output(["pyenv", "root"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        root = None
    for minor in MINORS:
        v = "3.%d" % minor
        cands = []
        if root:
            cands += sorted(glob.glob(os.path.join(root, "versions", v + ".*", "bin", "python" + v)),
                            key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("versions")[-1])[:3]])
        cands.append(os.path.join(CACHE, "pythons", v, "bin", "python" + v))
        for c in cands:
            if os.path.exists(c):
                found[minor] = c
    if sys.version_info[:2] >= (3, 6):
        found.setdefault(sys.version_info[1], sys.executable)
    return found


def wanted_minors():
    if os.environ.get("SPYGLASS_PYC_CONFORMANCE") == "all" or sys.version_info[:2] == (3, 11):
        return MINORS
    return [sys.version_info[1]]


def stdlib_files(python):
    script = ("import sysconfig, os, json; d = sysconfig.get_path('stdlib'); out = []\n"
              "for r, ds, fs in os.walk(d):\n"
              "    ds[:] = sorted(x for x in ds if x not in ('site-packages', 'dist-packages', '__pycache__'))\n"
              "    out += [os.path.join(r, f) for f in sorted(fs) if f.endswith('.py') and os.path.isfile(os.path.join(r, f))]\n"
              "print(json.dumps(out))")
    return json.loads(subprocess.check_output([python, "-I", "-c", script]))


def dump_dir(python, files):
    key = hashlib.sha256()
    key.update(os.path.realpath(python).encode())
    with open(DUMPER, "rb") as f:
        key.update(f.read())
    for p in files:
        st = os.stat(p)
        key.update(("%s %d %d\n" % (p, st.st_size, int(st.st_mtime))).encode())
    return os.path.join(CACHE, "pyc-conformance", key.hexdigest()[:24])


def run_dumper(python):
    """Compile and dump the stdlib with `python` (cached); returns (dir, summary)."""
    files = stdlib_files(python)
    out = dump_dir(python, files)
    summary_path = os.path.join(out, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            return out, json.load(f)
    tmp = out + ".tmp%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "files.txt"), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(files) + "\n")
    res = subprocess.run([python, "-I", "-W", "ignore", DUMPER, tmp, os.path.join(tmp, "files.txt")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError("dumper failed for %s:\n%s" % (python, res.stderr[-3000:]))
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    with open(os.path.join(tmp, "summary.json"), "w") as f:
        json.dump(summary, f)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out, summary


@pytest.fixture(scope="module")
def dumps():
    interpreters = find_interpreters()
    todo = {m: interpreters[m] for m in wanted_minors() if m in interpreters}
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(run_dumper, py) for m, py in todo.items()}
        for m, fut in futures.items():
            results[m] = (todo[m],) + fut.result()
    return results


def line_matches(expected, got):
    """Exact, except that a frozenset's items may be listed in another order
    (CPython's order comes from the string hashes of the dumping process)."""
    if expected == got:
        return True
    e, g = json.loads(expected), json.loads(got)
    if "frozenset(" not in e["argrepr"]:
        return False
    ea, ga = e.pop("argrepr"), g.pop("argrepr")
    return e == g and sorted(ea) == sorted(ga)


@pytest.mark.parametrize("minor", MINORS, ids=["3.%d" % m for m in MINORS])
def test_disassembly_matches_the_interpreters_dis(dumps, minor, capsys):
    if minor not in wanted_minors():
        pytest.skip("the cross-version run happens in the 3.11 session (SPYGLASS_PYC_CONFORMANCE=all forces it)")
    if minor not in dumps:
        pytest.skip("CPython 3.%d is not installed here" % minor)
    python, out, summary = dumps[minor]
    mismatches = []
    files = instructions = reordered = 0
    for path in sorted(glob.glob(os.path.join(out, "*.pyc")), key=lambda p: int(os.path.basename(p)[:-4])):
        with open(path[:-4] + ".jsonl", encoding="ascii") as f:
            expected = CODE_ADDR.sub(r"\1?\2", f.read())
        try:
            got = CODE_ADDR.sub(r"\1?\2", pyc.load(path).dis("jsonl"))
        except ValueError as e:
            mismatches.append("%s: %s" % (path, e))
            continue
        files += 1
        el, gl = expected.splitlines(), got.splitlines()
        instructions += len(el)
        if expected == got:
            continue
        if len(el) != len(gl):
            mismatches.append("%s: %d instructions expected, %d produced" % (path, len(el), len(gl)))
            continue
        for i, (a, b) in enumerate(zip(el, gl)):
            if a != b:
                if line_matches(a, b):
                    reordered += 1
                else:
                    mismatches.append("%s line %d:\n  dis:      %s\n  spyglass: %s" % (path, i + 1, a, b))
                    break
    with capsys.disabled():  # shown even when pytest captures output
        print("\nCPython 3.%d (%s): %d files, %d instructions compared (%d files skipped by the compiler, "
              "%d frozenset reprs compared without order)" % (minor, python, files, instructions,
                                                              summary["skipped"], reordered))
    assert files == summary["files"]
    assert instructions == summary["instructions"]
    assert not mismatches, "%d files differ; first ones:\n%s" % (len(mismatches), "\n".join(mismatches[:10]))
