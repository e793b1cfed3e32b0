"""The `kinema` command. Each subcommand lives in `kinema.commands.<name>` and registers itself;
user errors (KinemaError) print one line to stderr and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time

from .errors import KinemaError

PROCESS_START = time.perf_counter()  # `kinema generate --timings-json` counts its startup from here
_fast_exit = False

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
    global _fast_exit
    _fast_exit = False
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


def request_fast_exit() -> None:
    """Called by a command once everything it makes is written and closed, and it leaves no child
    process or temporary file behind: the process then ends without the interpreter's teardown."""
    global _fast_exit
    _fast_exit = True


def entry() -> None:
    """The process entry point (the `kinema` script, `python -m kinema.cli`): main, then exit."""
    code = main()
    if _fast_exit:
        # tearing down torch's modules and libraries takes 0.1-0.3 s that a user waits for
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # Everything is written by now. Freezing the heap spares the interpreter's final garbage
    # collection a walk over every object torch created, about a third of a second at exit.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    # `python -m kinema.cli` runs this file as __main__, a second copy of the module beside the
    # kinema.cli that the commands import; run the canonical one so their calls reach it
    from kinema.cli import entry as _entry

    _entry()
