"""`spyglass trace`: record a script (or one of its functions) instruction by
instruction and print or write the reports (text, JSON, Perfetto, HTML)."""
from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import types

from spyglass.cli_support import (UsageError, check_input_file, check_output_file, compile_script, exit_status,
                                  non_negative, positive, report_exception, stdout_for_report, write_output)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trace", help="trace a script bytecode by bytecode, with the value stack",
        description="Run SCRIPT as __main__ (or load it and call its function NAME) and report every "
                    "bytecode instruction with the values on the stack. Without --follow, only the "
                    "module code (or NAME) is traced, not the functions it calls.")
    p.add_argument("script", help="the Python file to run")
    p.add_argument("args", nargs="*", default=[],
                   help="arguments for the script (sys.argv[1:]); put them after -- when they start with -")
    p.add_argument("--function", metavar="NAME",
                   help="load the script (not as __main__) and trace a call of NAME(); "
                        "its generator, coroutine or async generator is run to the end")
    p.add_argument("--call-args", metavar="LITERALS", default="",
                   help="arguments for NAME as Python literals, e.g. \"3, 'a'\" (with --function)")
    p.add_argument("--follow", action="store_true", help="also trace called Python functions")
    p.add_argument("--max-depth", type=non_negative, default=8, metavar="N",
                   help="how many calls deep --follow goes (default 8)")
    p.add_argument("--html", metavar="FILE", help="write a step-through HTML page ('-' for stdout)")
    p.add_argument("--json", metavar="FILE", help="write the trace as JSON ('-' for stdout)")
    p.add_argument("--perfetto", metavar="FILE", help="write Chrome trace / Perfetto JSON ('-' for stdout)")
    p.add_argument("--record", metavar="FILE", help="keep the native recording in FILE")
    p.add_argument("--repr", choices=("safe", "full", "none"), default="safe",
                   help="stack values: built-in types only (safe, default), repr() of all (full), "
                        "none (depths only)")
    p.add_argument("--max-events", type=positive, default=2_000_000, metavar="N",
                   help="stop recording after N instructions (default 2000000)")
    p.add_argument("--quiet", "-q", action="store_true", help="no terminal report")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the terminal report (default auto: on a terminal, unless NO_COLOR is set)")
    p.set_defaults(func=run)


def _load_script(path: str, display: str, as_main: bool):
    code = compile_script(path, display)
    name = "__main__" if as_main else "__spyglass_trace__"
    module = types.ModuleType(name)
    module.__file__ = path
    module.__builtins__ = __builtins__
    return code, module


def _call_args(text: str) -> tuple:
    if not text.strip():
        return ()
    try:
        value = ast.literal_eval(f"({text},)")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UsageError(f"--call-args must be Python literals separated by commas, e.g. \"3, 'a'\"; "
                         f"not {text!r}") from None
    return value


def run(args) -> int:
    from spyglass import opcodes
    from spyglass.report import text

    path = os.path.abspath(args.script)
    check_input_file(args.script, "script")
    if args.call_args and args.function is None:
        raise UsageError("--call-args needs --function NAME")
    call_args = _call_args(args.call_args)
    if args.record == "-":
        raise UsageError("--record needs a file name (the recording is binary)")
    for option in ("record", "json", "perfetto", "html"):
        if getattr(args, option):
            check_output_file(getattr(args, option), f"--{option}")
    try:
        opcodes._check()
    except opcodes.UnsupportedVersion as e:
        raise UsageError(str(e)) from None
    code, module = _load_script(path, args.script, as_main=args.function is None)
    keep = args.record
    if keep is None:
        fd, rec_path = tempfile.mkstemp(prefix="spyglass-", suffix=".sgops")
        os.close(fd)
    else:
        rec_path = keep
    try:
        status = _record(args, opcodes, rec_path, code, module, call_args)
        if status and (not os.path.exists(rec_path) or os.path.getsize(rec_path) == 0):
            return status  # the program failed before its first traced instruction: nothing to show
        try:
            rec = opcodes.read(rec_path)
        except (OSError, ValueError) as e:
            print(f"spyglass trace: no usable recording: {e}", file=sys.stderr)
            return status or 1
    finally:
        if keep is None:
            os.unlink(rec_path)
    try:
        if not args.quiet:
            text.write_text(rec, sys.stdout, color=text.use_color(sys.stdout, args.color))
            sys.stdout.flush()
    except BrokenPipeError:  # `spyglass trace ... | head`
        _quiet_broken_stdout()
    if args.json:
        from spyglass.report import to_json
        _write(args.json, "--json", json.dumps(to_json(rec), indent=1))
    if args.perfetto:
        from spyglass.report import to_perfetto
        _write(args.perfetto, "--perfetto", json.dumps(to_perfetto(rec)))
    if args.html:
        from spyglass.report import to_html
        _write(args.html, "--html", to_html(rec, title=f"spyglass trace: {os.path.basename(path)}"))
    if keep is not None:
        print(f"spyglass trace: wrote {keep}", file=sys.stderr)
    return status


def _record(args, opcodes, rec_path: str, code, module, call_args: tuple) -> int:
    """Runs the program under a Recorder; returns its exit status as
    `python script.py` would give it, having reported its exception."""
    try:
        recorder = opcodes.Recorder(rec_path, reprs=args.repr, follow=args.follow, max_depth=args.max_depth,
                                    max_events=args.max_events,
                                    meta=dict(script=module.__file__, function=args.function))
    except (OSError, RuntimeError) as e:  # the recording cannot be written
        raise UsageError(f"--record: {e}" if args.record else str(e), status=1) from None
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [args.script] + list(args.args)
    sys.path.insert(0, os.path.dirname(module.__file__))
    saved_main = sys.modules.get("__main__")
    try:
        if args.function is None:
            sys.modules["__main__"] = module
            recorder.run_code(code, module.__dict__)
        else:
            exec(code, module.__dict__)
            func = module.__dict__.get(args.function)
            if func is None:
                raise UsageError(f"{args.script} defines no {args.function!r}")
            if not isinstance(func, (types.FunctionType, types.MethodType)):
                raise UsageError(f"{args.script}: {args.function} is not a Python function "
                                 f"({type(func).__name__}); --function traces Python functions")
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
        return exit_status(e)
    except UsageError:
        raise
    except BaseException as e:  # the traced program's own exception: report it, keep the trace
        return report_exception(e)
    finally:
        sys.argv = old_argv
        sys.path[:] = old_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    return 0


def _quiet_broken_stdout() -> None:
    # the reader went away: send the rest of stdout nowhere, as Python
    # itself would have to at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


async def _awaited(awaitable):
    return await awaitable


async def _drained(agen):
    async for _ in agen:
        pass


def _write(path: str, option: str, content: str) -> None:
    if path == "-":  # stdout, as `spyglass watch --json -`
        out = stdout_for_report()
        out.write(content + "\n")
        out.flush()
        return
    write_output(path, option, content)
    print(f"spyglass trace: wrote {path}", file=sys.stderr)
