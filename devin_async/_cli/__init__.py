"""The `devin-async` command line: parse, run a command, turn its failure into an exit code.

Why two entry points: `main()` owns the event loop (`asyncio.run`) and Ctrl-C; `amain()` runs a
command inside a loop that already runs (tests, embedding). `serve-fake` blocks in its own loop,
so only `main()` runs it.

How a failure is reported: one line on stderr (`devin-async: error: ...`), or with `--json` one
`{"error": type, "status": int | null, "detail": str}` object, and the documented exit code.
Ctrl-C leaves the live view's last frame on screen, then prints `interrupted` (exit 130).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from devin_async import DevinError, WaitTimeoutError

from ._commands import COMMANDS
from ._common import (
    EXIT_API_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SESSION_ERROR,
    EXIT_TIMEOUT,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    UsageError,
    error_dict,
    exit_code_of,
)
from ._display import Output
from ._parser import build_parser

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "amain",
    "build_parser",
    "main",
    "report_error",
    "run",
]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report_error(error: BaseException, *, json_mode: bool) -> int:
    """Print an error the documented way (one line, or one JSON object); return its exit code."""
    code = exit_code_of(error)
    if json_mode:
        _stderr(json.dumps(error_dict(error)))
    elif isinstance(error, WaitTimeoutError):
        _stderr(f"devin-async: timeout: {error}")
    elif isinstance(error, ValueError | DevinError):
        _stderr(f"devin-async: error: {error}")
    else:
        if os.environ.get("DEVIN_ASYNC_LOG", "").lower() == "debug":
            traceback.print_exception(error)
        _stderr(f"devin-async: unexpected error: {type(error).__name__}: {error} "
                "(DEVIN_ASYNC_LOG=debug shows the traceback)")
    return code


def _interrupted(json_mode: bool) -> int:
    if json_mode:
        _stderr(json.dumps({"error": "KeyboardInterrupt", "status": None,
                            "detail": "interrupted"}))
    else:
        _stderr("devin-async: interrupted")
    return EXIT_INTERRUPTED


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
    except UsageError as exc:
        return report_error(exc, json_mode="--json" in words)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.api_key is not None and args.command not in ("demo", "serve-fake"):
        message = "--api-key is visible to other users of this machine; prefer DEVIN_API_KEY"
        _stderr(json.dumps({"warning": message}) if args.json
                else f"devin-async: warning: {message}")
    return args


class _WarningHandler(logging.Handler):
    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.warn(record.getMessage())


@contextlib.contextmanager
def _library_warnings(out: Output) -> Iterator[None]:
    # The SDK logs what a user should know (a session that was not found, a failing poll) as
    # warnings; show each through the output (above a live view, or one stderr line), unless
    # DEVIN_ASYNC_LOG configured logging already.
    logger = logging.getLogger("devin_async")
    if logger.handlers or os.environ.get("DEVIN_ASYNC_LOG"):
        yield
        return
    handler = _WarningHandler(out)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def run(args: argparse.Namespace, *, console: Console | None = None) -> int:
    """Run one parsed command; report its failure and return the exit code.

    Args:
        args: what `build_parser()` parsed.
        console: the rich console of the live views (default: one on stdout, on a terminal).
    """
    if args.command not in COMMANDS:
        return report_error(UsageError(f"{args.command} blocks in its own event loop: run it "
                                       "through main()"), json_mode=args.json)
    out = Output(sys.stdout, json_mode=args.json, console=console)
    with _library_warnings(out):
        try:
            return await COMMANDS[args.command](args, out)
        except Exception as exc:
            return report_error(exc, json_mode=args.json)


async def amain(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Parse `argv` and run the command in the running event loop; return the exit code."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    return await run(args, console=console)


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Run `devin-async` with `argv` (default: sys.argv[1:]); return the exit code."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    try:
        if args.command == "serve-fake":
            from ._serve import serve_fake

            return serve_fake(args)
        return asyncio.run(run(args, console=console))
    except UsageError as exc:
        return report_error(exc, json_mode=args.json)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _interrupted(args.json)
