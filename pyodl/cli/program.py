"""The ``pyodl`` program: its parser (one module of this package per command) and the way every command
ends: its status, one line for an error or a signal, never a traceback of what ran."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

from pyodl.cli import (
    bench,
    board_check,
    estimate,
    export,
    federate,
    flash,
    fuzz,
    github_ci,
    golden_check,
    personalize,
    stream,
)
from pyodl.cli.shared import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED
from pyodl.cli.signals import Signals, Terminated

# In the order of README's command table.
COMMANDS = (export, golden_check, estimate, fuzz, bench, board_check, flash, personalize, stream, federate, github_ci)


def _version() -> str:
    try:
        return version("pyodl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyodl", description="On-device personalization of 1-D CNNs for HAR.")
    parser.add_argument("--version", action="version", version=f"pyodl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), a usage error (2, argparse's message printed)
        return int(exc.code or 0)
    # How results files name the command that wrote them: as typed, quoted where the shell needs it.
    args.command_line = shlex.join(["pyodl", *argv])
    # TensorFlow's C++ start-up lines (oneDNN, absl, CPU features) are not the user's concern; an explicit
    # setting of the user's wins. Set before anything imports TensorFlow, and inherited by worker processes.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signals = args.signals = Signals()
    try:
        with signals.installed():
            return int(args.func(args))
    # One line, not the traceback of whatever ran (TensorFlow's is 60 lines); every temporary folder is
    # gone by now, and results are only written once everything is computed.
    except BaseException as exc:
        if signals.received == signal.SIGTERM or isinstance(exc, Terminated):
            print(f"\npyodl {args.command}: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        if signals.received is not None or isinstance(exc, KeyboardInterrupt):
            print(f"\npyodl {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        # ModelError is a ValueError; ToolchainError and OdlError are RuntimeErrors.
        if isinstance(exc, (ValueError, FileNotFoundError, RuntimeError)):
            print(f"pyodl {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        raise


def run() -> None:
    """The ``pyodl`` console script. After Ctrl-C or SIGTERM it leaves at once: by then every folder is
    removed and every file closed, and Python's own teardown with TensorFlow loaded takes another second."""
    status = main()
    if status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
