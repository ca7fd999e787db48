"""The `spyglass` command line.

Each subcommand lives in the module that implements its capability; that
module exposes `register(subparsers)`, which adds a parser whose `func`
default runs the command and returns an exit status. A command raises
`spyglass.cli_support.UsageError` for a mistake the user can fix: it is
printed as one line, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# modules that contribute subcommands, in the order `--help` lists them
COMMAND_MODULES: list[str] = ["spyglass.trace_cmd", "spyglass.watch_cli", "spyglass.pyc_cli"]


def build_parser() -> argparse.ArgumentParser:
    from spyglass import __version__

    parser = argparse.ArgumentParser(
        prog="spyglass",
        description="Watch and steer running CPython programs.",
    )
    parser.add_argument("--version", action="version",
                        version=f"spyglass {__version__} (CPython {sys.version.split()[0]})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line `argv` (default: sys.argv[1:]); returns the exit
    status. Run as the program (argv None), a traced or watched program
    stopped by Ctrl-C ends spyglass by SIGINT too, as Python would end."""
    from spyglass.cli_support import KilledBySigint, UsageError, exit_by_sigint

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except UsageError as e:
        print(f"spyglass {args.command}: {e}", file=sys.stderr)
        return e.status
    if isinstance(status, KilledBySigint) and argv is None:
        exit_by_sigint()
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
