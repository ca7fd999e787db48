"""`spyglass trace`: record a script (or one of its functions) instruction by
instruction and print or write the reports (text, JSON, Perfetto, HTML)."""
from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import types


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trace", help="trace a script bytecode by bytecode, with the value stack",
        description="Run SCRIPT (or call its function NAME with no arguments) and report every "
                    "bytecode instruction with the values on the stack.")
    p.add_argument("script", help="the Python file to run")
    p.add_argument("args", nargs="*", help="arguments for the script (sys.argv[1:]); put them after -- "
                   "when they start with -")
    p.add_argument("--function", metavar="NAME",
                   help="load the script (not as __main__) and trace a call of NAME()")
    p.add_argument("--call-args", metavar="LITERALS", default="",
                   help="arguments for NAME as Python literals, e.g. \"3, 'a'\"")
    p.add_argument("--follow", action="store_true", help="also trace called Python functions")
    p.add_argument("--max-depth", type=int, default=8, help="how many calls deep --follow goes (default 8)")
    p.add_argument("--html", metavar="FILE", help="write a step-through HTML page")
    p.add_argument("--json", metavar="FILE", help="write the trace as JSON")
    p.add_argument("--perfetto", metavar="FILE", help="write Chrome trace / Perfetto JSON")
    p.add_argument("--record", metavar="FILE", help="keep the native recording in FILE")
    p.add_argument("--repr", choices=("safe", "full", "none"), default="safe",
                   help="stack values: built-in types only (safe, default), repr() of all (full), none")
    p.add_argument("--max-events", type=int, default=2_000_000, help="stop recording after this many instructions")
    p.add_argument("--quiet", "-q", action="store_true", help="no terminal report")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(func=run)


def _load_script(path: str, as_main: bool):
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec")
    name = "__main__" if as_main else "__spyglass_trace__"
    module = types.ModuleType(name)
    module.__file__ = path
    module.__builtins__ = __builtins__
    return code, module


def run(args) -> int:
    from spyglass import opcodes
    from spyglass.report import text

    path = os.path.abspath(args.script)
    if not os.path.isfile(path):
        print(f"spyglass trace: no such file: {args.script}", file=sys.stderr)
        return 2
    try:
        opcodes._check()
    except opcodes.UnsupportedVersion as e:
        print(f"spyglass trace: {e}", file=sys.stderr)
        return 2
    keep = args.record
    rec_path = keep or tempfile.mkstemp(prefix="spyglass-", suffix=".sgops")[1]
    recorder = opcodes.Recorder(rec_path, reprs=args.repr, follow=args.follow, max_depth=args.max_depth,
                                max_events=args.max_events, meta=dict(script=path, function=args.function))
    old_argv, old_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [path] + list(args.args)
    sys.path.insert(0, os.path.dirname(path))
    status = 0
    try:
        code, module = _load_script(path, as_main=args.function is None)
        if args.function is None:
            saved_main = sys.modules.get("__main__")
            sys.modules["__main__"] = module
            try:
                recorder.run_code(code, module.__dict__)
            finally:
                if saved_main is not None:
                    sys.modules["__main__"] = saved_main
        else:
            exec(code, module.__dict__)
            func = module.__dict__.get(args.function)
            if func is None:
                print(f"spyglass trace: {args.script} defines no {args.function!r}", file=sys.stderr)
                return 2
            try:
                call_args = ast.literal_eval(f"({args.call_args},)") if args.call_args.strip() else ()
            except (ValueError, SyntaxError) as e:
                print(f"spyglass trace: --call-args must be Python literals: {e}", file=sys.stderr)
                return 2
            result = recorder.call(func, *call_args)
            # a generator or coroutine function: run it to the end, traced
            if hasattr(result, "__await__"):
                import asyncio
                asyncio.run(_awaited(result))
            elif hasattr(result, "__anext__"):
                import asyncio
                asyncio.run(_drained(result))
            elif hasattr(result, "send") and hasattr(result, "throw"):
                for _ in result:
                    pass
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # the traced program's own exception: report it, keep the trace
        import traceback
        traceback.print_exc()
        status = 1
        if isinstance(e, KeyboardInterrupt):
            status = 130
    finally:
        sys.argv = old_argv
        if sys.path and sys.path[0] == os.path.dirname(path):
            del sys.path[0]
    try:
        rec = opcodes.read(rec_path)
    except (OSError, ValueError) as e:
        print(f"spyglass trace: no usable recording: {e}", file=sys.stderr)
        return status or 1
    finally:
        if keep is None:
            os.unlink(rec_path)
    if not args.quiet:
        text.write_text(rec, sys.stdout, color=text.use_color(sys.stdout, args.color))
    if args.json:
        from spyglass.report import to_json
        _write(args.json, json.dumps(to_json(rec), indent=1))
    if args.perfetto:
        from spyglass.report import to_perfetto
        _write(args.perfetto, json.dumps(to_perfetto(rec)))
    if args.html:
        from spyglass.report import to_html
        _write(args.html, to_html(rec, title=f"spyglass trace: {os.path.basename(path)}"))
    return status


async def _awaited(awaitable):
    return await awaitable


async def _drained(agen):
    async for _ in agen:
        pass


def _write(path: str, content: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)
    print(f"spyglass trace: wrote {path}", file=sys.stderr)
