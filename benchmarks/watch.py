"""Cost of spyglass's code watcher on imports: the stdlib's 100 largest modules.

    python benchmarks/watch.py [--modules 100] [--rounds 15] [--instructions]

Each round imports the same modules (from warm .pyc files) in fresh
interpreters, one per mode, in alternating order, and takes the CPU time
of the imports (less disturbed by other processes than wall time):

    baseline      spyglass.watch imported, no watcher
    no-op         a no-op Python callback: watch.add(lambda event, code: None)
    counting      a callback that counts events per file (what `spyglass watch` does, roughly)
    idle slot     a callback added then cleared: the native watcher stays installed

and prints the median and best time of each mode and its ratio to the
baseline. Target: no-op at most 1.02x. On 3.12+ the watcher is
PyCode_AddWatcher (CREATE for every code object unmarshalled); on 3.11 it is
the audit-hook emulation (CREATE per module executed, walking co_consts).

Timing whole imports on a busy machine is noisy, so it also measures, in one
process, what one event costs with the no-op callback and prints the
overhead that predicts for the imports' number of events. With
--instructions (needs valgrind) it also counts the instructions the imports
execute under callgrind, baseline vs no-op: a ratio that does not depend on
the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig

# never imported: side effects (GUI, browser, printing) or test/demo code
SKIP_PREFIXES = ("test", "idlelib", "tkinter", "turtle", "turtledemo", "ensurepip", "lib2to3",
                 "antigravity", "this", "__phello__", "__hello__", "pydoc_data", "venv", "xxlimited")

PROBE = r"""
import importlib, io, json, sys, warnings, contextlib
warnings.simplefilter("ignore")
ok = []
for name in json.loads(sys.argv[1]):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(name)
        ok.append(name)
    except BaseException:
        pass
print(json.dumps(ok))
"""

RUN = r"""
import importlib, json, sys, time, warnings
warnings.simplefilter("ignore")
from spyglass import watch
mode, names = sys.argv[1], json.loads(sys.argv[2])
if mode == "no-op":
    watch.add(lambda event, code: None)
elif mode == "counting":
    counts = {}
    def count(event, code, counts=counts):
        key = code.co_filename
        counts[key] = counts.get(key, 0) + 1
    watch.add(count)
elif mode == "idle slot":
    watch.clear(watch.add(lambda event, code: None))
start = time.process_time()
for name in names:
    importlib.import_module(name)
elapsed = time.process_time() - start
print(json.dumps([elapsed, sum(counts.values()) if mode == "counting" else None]))
"""

PER_EVENT = r"""
import json, sys, time
from spyglass import watch
base = compile("a + b", "<bench>", "eval")
ns = {"a": 1, "b": 2}
n = 100_000
if sys.version_info >= (3, 12):
    def run():
        start = time.process_time()
        for i in range(n):
            base.replace()  # CREATE, then DESTROY as the result is dropped
        return time.process_time() - start
    events = 2 * n
else:
    def run():  # the emulation reports a code object when it runs
        start = time.process_time()
        for i in range(n):
            exec(base.replace(), ns)
        return time.process_time() - start
    events = n
without, with_ = [], []
for _ in range(9):
    without.append(run())
    wid = watch.add(lambda event, code: None)
    with_.append(run())
    watch.clear(wid)
print(json.dumps((min(with_) - min(without)) / events))
"""

MODES = ("baseline", "no-op", "counting", "idle slot")

# the warm-up pass must be able to write .pyc files
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def stdlib_candidates() -> list[str]:
    """Dotted names of the stdlib's pure-Python modules, largest source first."""
    root = sysconfig.get_paths()["stdlib"]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts and (parts[0] in ("site-packages", "dist-packages") or parts[0].startswith("config-")
                      or "__pycache__" in parts or any("-" in p for p in parts)):
            dirnames[:] = []
            continue
        for filename in filenames:
            if not filename.endswith(".py") or filename == "__main__.py":
                continue
            stem = filename[:-3]
            name = ".".join(parts + ([] if stem == "__init__" else [stem]))
            if not name or name.split(".")[0] in SKIP_PREFIXES or name.split(".")[0].startswith("test"):
                continue
            try:
                size = os.path.getsize(os.path.join(dirpath, filename))
            except OSError:  # e.g. a dangling sitecustomize.py symlink
                continue
            found.append((size, name))
    found.sort(reverse=True)
    return [name for _, name in found]


def importable(names: list[str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(names)], capture_output=True, text=True,
                         check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_import(mode: str, names: list[str]) -> tuple[float, int | None]:
    """(seconds, events seen or None) of importing `names` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", RUN, mode, json.dumps(names)], capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        raise SystemExit(f"benchmark run ({mode}) failed:\n{out.stderr}")
    seconds, events = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, events


def instructions(mode: str, names: list[str]) -> int:
    """Instructions executed by a fresh interpreter importing `names` (callgrind)."""
    env = dict(ENV, PYTHONHASHSEED="0")
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, "-c", RUN, mode, json.dumps(names)],
                         capture_output=True, text=True, env=env)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or not found:
        raise SystemExit(f"callgrind run ({mode}) failed:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def seconds_per_event() -> float:
    out = subprocess.run([sys.executable, "-c", PER_EVENT], capture_output=True, text=True, check=True, env=ENV)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=100, help="how many of the largest modules (default 100)")
    parser.add_argument("--rounds", type=int, default=15, help="fresh interpreters per mode (default 15)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count executed instructions under valgrind's callgrind (slow, deterministic)")
    args = parser.parse_args()

    candidates = stdlib_candidates()
    names = importable(candidates[: args.modules * 2])[: args.modules]
    if len(names) < args.modules:
        names = importable(candidates)[: args.modules]
    # one untimed pass writes any missing .pyc files, so every mode loads bytecode
    time_import("baseline", names)

    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    events = 0
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            seconds, seen = time_import(mode, names)
            times[mode].append(seconds)
            events = seen or events
    per_event = seconds_per_event()

    from spyglass import watch
    print(f"spyglass code watcher, import of the {len(names)} largest stdlib modules "
          f"(CPython {sys.version.split()[0]}, {watch.BACKEND}, {args.rounds} rounds)")
    print(f"  largest: {', '.join(names[:5])}, ...")
    base_med, base_min = statistics.median(times["baseline"]), min(times["baseline"])
    print(f"{'mode':<12} {'median ms':>10} {'best ms':>10} {'median x':>9} {'best x':>8}   (CPU time)")
    for mode in MODES:
        med, best = statistics.median(times[mode]), min(times[mode])
        print(f"{mode:<12} {med * 1e3:>10.1f} {best * 1e3:>10.1f} {med / base_med:>9.3f} {best / base_min:>8.3f}")
    ratio = statistics.median(times["no-op"]) / base_med
    predicted = 1 + events * per_event / base_min
    print(f"code events during the imports: {events}; one event with a no-op callback: "
          f"{per_event * 1e9:.0f} ns -> predicted {predicted:.4f}x of the best baseline")
    verdict = "meets" if ratio <= 1.02 else "MISSES"
    print(f"no-op watcher / no watcher = {ratio:.3f}x (median CPU time of whole imports; noisy on a loaded "
          f"machine): {verdict} the 1.02x target")
    if args.instructions:
        if not shutil.which("valgrind"):
            print("--instructions: valgrind is not installed")
            return 1
        startup = instructions("baseline", [])
        counts = {mode: instructions(mode, names) - startup for mode in ("baseline", "no-op")}
        iratio = counts["no-op"] / counts["baseline"]
        verdict = "meets" if iratio <= 1.02 else "MISSES"
        print(f"instructions executed by the imports (callgrind): baseline {counts['baseline']:,}, "
              f"no-op {counts['no-op']:,} -> {iratio:.4f}x: {verdict} the 1.02x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
