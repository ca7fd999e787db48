"""The `spyglass` command line.

Each subcommand lives in the module that implements its capability; that
module exposes `register(subparsers)`, which adds a parser whose `func`
default runs the command and returns an exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# modules that contribute subcommands, in the order `--help` lists them
COMMAND_MODULES: list[str] = ["spyglass.trace_cmd", "spyglass.watch_cli", "spyglass.pyc_cli"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spyglass",
        description="Watch and steer running CPython programs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
