"""`spyglass watch`: run a program and count the code objects it creates and
destroys, per module (counts and sizes), live on a terminal and as a summary.

    spyglass watch script.py [args...]
    spyglass watch --json report.json -m package.module [args...]

The summary goes to stderr so that the program's own output stays clean.
Sizes are `sys.getsizeof(code)` (the code object with its bytecode, not its
constants). On CPython 3.11 only CREATE can be observed (see docs/watch.md);
DESTROY columns are then absent. Code objects freed after the program ends
(at interpreter shutdown) are not counted.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pkgutil  # noqa: F401  runpy imports it lazily: load it before watching so it is not counted
import runpy
import sys
import threading
import time
from typing import Any

from spyglass import watch
from spyglass.cli_support import (UsageError, check_output_file, exit_status, non_negative, non_negative_float,
                                  report_exception, startup_error, stdout_for_report, write_output)
from spyglass.watch import CodeEvent

_DRAIN_EVERY = 4096


class Collector:
    """The watcher callback: queues (event, filename, size) and folds the
    queue into per-file totals. It may run on any thread; the deque is
    thread-safe and folding is serialised by a lock that the callback only
    ever tries (never waits for), so it cannot deadlock inside code creation.
    """

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[int, str, int]] = collections.deque()
        self._lock = threading.Lock()
        # filename -> [created, created_bytes, destroyed, destroyed_bytes]
        self._stats: dict[str, list[int]] = {}

    def __call__(self, event: CodeEvent, code: Any) -> None:
        self._queue.append((event, code.co_filename, sys.getsizeof(code)))
        if len(self._queue) > _DRAIN_EVERY:
            self.drain(block=False)

    def drain(self, block: bool = True) -> None:
        if not self._lock.acquire(blocking=block):
            return
        try:
            queue, stats = self._queue, self._stats
            while True:
                try:
                    event, filename, size = queue.popleft()
                except IndexError:
                    break
                row = stats.get(filename)
                if row is None:
                    row = stats[filename] = [0, 0, 0, 0]
                column = 0 if event == CodeEvent.CREATE else 2
                row[column] += 1
                row[column + 1] += size
        finally:
            self._lock.release()

    def per_file(self) -> dict[str, list[int]]:
        self.drain()
        with self._lock:
            return {name: list(row) for name, row in self._stats.items()}


def _module_names(main_file: str | None) -> dict[str, str]:
    """Absolute file name -> module name, from sys.modules as it is now."""
    names: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        for path in (getattr(module, "__file__", None),
                     getattr(getattr(module, "__spec__", None), "origin", None)):
            if isinstance(path, str) and path not in ("built-in", "frozen"):
                names.setdefault(os.path.abspath(path), name)
    if main_file:
        names[os.path.abspath(main_file)] = "__main__"
    return names


def _module_of(filename: str, names: dict[str, str]) -> str:
    if filename.startswith("<frozen ") and filename.endswith(">"):
        return filename[len("<frozen "):-1]
    if filename.startswith("<"):
        return filename  # "<string>", "<stdin>", ...
    return names.get(os.path.abspath(filename), filename)


def summarize(per_file: dict[str, list[int]], main_file: str | None, destroy: bool) -> dict[str, Any]:
    names = _module_names(main_file)
    modules: dict[str, dict[str, Any]] = {}
    for filename, (created, created_bytes, destroyed, destroyed_bytes) in per_file.items():
        module = _module_of(filename, names)
        row = modules.setdefault(module, {"module": module, "files": [], "created": 0, "created_bytes": 0,
                                          "destroyed": 0, "destroyed_bytes": 0})
        row["files"].append(filename)
        row["created"] += created
        row["created_bytes"] += created_bytes
        row["destroyed"] += destroyed
        row["destroyed_bytes"] += destroyed_bytes
    rows = sorted(modules.values(), key=lambda r: (-r["created"], -r["destroyed"], r["module"]))
    totals = {key: sum(r[key] for r in rows) for key in ("created", "created_bytes", "destroyed", "destroyed_bytes")}
    for row in rows + [totals]:
        if destroy:
            row["net"] = row["created"] - row["destroyed"]
            row["net_bytes"] = row["created_bytes"] - row["destroyed_bytes"]
        else:  # 3.11: DESTROY cannot be observed
            row["destroyed"] = row["destroyed_bytes"] = None
        if "files" in row:
            row["files"].sort()
    return {"modules": rows, "totals": totals}


def render(summary: dict[str, Any], title: str, top: int, destroy: bool) -> str:
    header = f"{'module':<40} {'created':>9} {'KiB':>9}"
    if destroy:
        header += f" {'destroyed':>9} {'KiB':>9} {'net':>9} {'net KiB':>9}"

    def line(name: str, row: dict[str, Any]) -> str:
        name = name if len(name) <= 40 else "..." + name[-37:]
        text = f"{name:<40} {row['created']:>9} {row['created_bytes'] / 1024:>9.1f}"
        if destroy:
            text += (f" {row['destroyed']:>9} {row['destroyed_bytes'] / 1024:>9.1f}"
                     f" {row['net']:>9} {row['net_bytes'] / 1024:>9.1f}")
        return text

    rows = summary["modules"]
    shown = rows if top <= 0 else rows[:top]
    out = [title, header]
    out += [line(row["module"], row) for row in shown]
    if len(shown) < len(rows):
        out.append(f"({len(rows) - len(shown)} more modules; --top 0 shows all)")
    out.append(line("total", summary["totals"]))
    return "\n".join(out) + "\n"


class LiveView:
    """Redraws the summary on the terminal every `interval` seconds."""

    def __init__(self, collector: Collector, title: str, top: int, destroy: bool, interval: float, main_file: str | None):
        self.collector, self.title, self.top, self.destroy = collector, title, top, destroy
        self.interval, self.main_file = interval, main_file
        self._stop = threading.Event()
        self._lines = 0
        self._thread = threading.Thread(target=self._run, name="spyglass-watch-live", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _draw(self) -> None:
        text = render(summarize(self.collector.per_file(), self.main_file, self.destroy),
                      self.title + " (live)", self.top, self.destroy)
        erase = "\x1b[F\x1b[2K" * self._lines
        sys.stderr.write(erase + text)
        sys.stderr.flush()
        self._lines = text.count("\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._draw()
            except Exception:  # a live view must never take the program down
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._lines:  # the final summary replaces the live one
            sys.stderr.write("\x1b[F\x1b[2K" * self._lines)
            sys.stderr.flush()


def _module_origin(name: str) -> str | None:
    import importlib.util
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(name + ".__main__")
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def _run_target(args: argparse.Namespace, main: dict[str, Any]) -> int:
    """Runs the program like `python script.py` / `python -m module`; returns
    its exit status. `main` receives the file of the module run as __main__.
    Raises UsageError if the program could not start (not found, does not
    compile)."""
    try:
        if args.module:
            sys.argv = [args.module, *args.args]
            sys.path.insert(0, os.getcwd())
            # runpy runs the code in a fresh module and returns its globals
            main.update(file=runpy.run_module(args.module, run_name="__main__", alter_sys=True).get("__file__"))
        else:
            sys.argv = [args.script, *args.args]
            sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
            runpy.run_path(args.script, run_name="__main__")
    except SystemExit as e:
        return exit_status(e)
    except BaseException as e:
        message = startup_error(e)
        if message is not None:
            raise UsageError(message, status=1) from None
        return report_exception(e)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.module is not None:  # -m takes the rest of the command line
        if args.script is not None or not args.module:
            raise UsageError("-m needs a module name (and comes after the other options)")
        args.module, args.args = args.module[0], args.module[1:]
    if not args.module and not args.script:
        raise UsageError("give a script to run, or -m MODULE")
    if args.script and not os.path.exists(args.script):
        raise UsageError(f"no such file: {args.script}")
    if args.json:
        check_output_file(args.json, "--json")
    target = f"-m {args.module}" if args.module else args.script
    destroy = CodeEvent.DESTROY in watch.supported_events()
    title = f"spyglass watch: {target} (CPython {sys.version.split()[0]}, {watch.BACKEND})"
    main_file = None if args.module else args.script
    collector = Collector()
    live = None
    use_live = args.live if args.live is not None else sys.stderr.isatty()
    if use_live and args.interval > 0:
        live = LiveView(collector, title, args.top, destroy, args.interval, main_file)
    main: dict[str, Any] = {"file": main_file}
    started = time.perf_counter()
    watcher_id = watch.add(collector)
    try:
        if live:
            live.start()
        status = _run_target(args, main)
    finally:
        watch.clear(watcher_id)
        if live:
            live.stop()
    seconds = time.perf_counter() - started
    if args.module and main["file"] is None:  # it exited early: ask the import system
        main["file"] = _module_origin(args.module)
    summary = summarize(collector.per_file(), main["file"], destroy)
    if not args.quiet:
        sys.stderr.write(render(summary, title, args.top, destroy))
    if args.json:
        from spyglass import __version__
        report = {
            "spyglass": __version__,
            "python": sys.version.split()[0],
            "backend": watch.BACKEND,
            "events": sorted(e.name for e in watch.supported_events()),
            "target": target,
            "exit_status": int(status),
            "seconds": round(seconds, 6),
            **summary,
        }
        text = json.dumps(report, indent=2) + "\n"
        if args.json == "-":
            out = stdout_for_report()
            out.write(text)
            out.flush()
        else:
            write_output(args.json, "--json", text)
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="run a program and count the code objects it creates and destroys, per module",
        description=__doc__.split("\n\n")[0].replace("\n", " ").replace("`spyglass watch`: run", "Run"),
    )
    parser.add_argument("--json", metavar="PATH", help="write the summary as JSON to PATH ('-' for stdout)")
    parser.add_argument("--top", type=non_negative, default=25, metavar="N",
                        help="modules shown in the text summary (default 25; 0 for all)")
    parser.add_argument("--interval", type=non_negative_float, default=1.0, metavar="SECONDS",
                        help="refresh period of the live view (default 1; 0 turns it off)")
    live = parser.add_mutually_exclusive_group()
    live.add_argument("--live", dest="live", action="store_true", default=None,
                      help="redraw a live summary on stderr (default: when stderr is a terminal)")
    live.add_argument("--no-live", dest="live", action="store_false", help="never redraw a live summary")
    parser.add_argument("-q", "--quiet", action="store_true", help="no text summary")
    parser.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE ...",
                        help="run a module, like python -m (the rest of the line is its arguments)")
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    parser.set_defaults(func=run)
