"""The `kinema` command. Each subcommand lives in `kinema.commands.<name>` and registers itself;
user errors (KinemaError) print one line to stderr and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time

from .errors import KinemaError

PROCESS_START = time.perf_counter()  # `kinema generate --timings-json` counts its startup from here

# Module names under kinema.commands, in the order they appear in --help.
COMMAND_MODULES = ("generate", "world", "analyze", "eval", "train", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kinema", description="Kinema: text-to-video.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"kinema.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"kinema.commands.{name}":
                continue  # not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KinemaError as exc:
        print(f"kinema: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kinema: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The process entry point (the `kinema` script, `python -m kinema.cli`): main, then exit."""
    code = main()
    # Everything is written by now. Freezing the heap spares the interpreter's final garbage
    # collection a walk over every object torch created, about a third of a second at exit.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
