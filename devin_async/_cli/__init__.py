"""The `devin-async` command line: the argument parser, and errors turned into exit codes.

Why two entry points: `main()` owns the event loop (`asyncio.run`) and Ctrl-C; `amain()` runs a
command inside a loop that already runs (tests, embedding). `serve-fake` blocks in its own loop, so
only `main()` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from .._errors import DevinError, WaitTimeoutError
from .._version import __version__
from ._commands import (
    COMMANDS,
    EXIT_API_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SESSION_ERROR,
    EXIT_TIMEOUT,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)
from ._display import Output

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "amain",
    "build_parser",
    "main",
    "run",
]


EPILOG = """\
examples:
  devin-async demo                              # try it: no account, no network
  export DEVIN_API_KEY=cog_... DEVIN_ORG_ID=org-...
  devin-async create "Fix the flaky test in tests/test_api.py" --tag ci --repo me/app
  devin-async wait devin-123 --until terminal --timeout 3600
  devin-async watch devin-123 devin-456
  devin-async list --tag ci --created-after 2025-01-01 --limit 20 --json
  devin-async create-many requests.jsonl --concurrency 8 --json > results.jsonl
  devin-async serve-fake --port 8765           # a local fake API for your own programs

configuration: DEVIN_API_KEY, DEVIN_ORG_ID, DEVIN_BASE_URL (or --org-id, --base-url).
--json prints one JSON object per line (sessions in the API's shape) and never ANSI.

exit codes:
  0    success
  1    unexpected internal error; or the demo did not go as designed
  2    usage: bad arguments, missing configuration, an invalid request
  3    API or network error; create-many with any failed line; watch saw a session vanish
  4    wait/watch: a session ended in error
  5    timeout (--timeout passed first)
  130  interrupted (Ctrl-C)
"""


# -- argument types ------------------------------------------------------------------------


def _timestamp(value: str) -> int:
    """Parse Unix seconds or an ISO 8601 date/time (UTC when no offset is given)."""
    if value.isdigit():
        return int(value)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Unix seconds or an ISO 8601 date/time, got {value!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _field(value: str) -> tuple[str, Any]:
    """Parse `key=value`, the value as JSON when it is JSON, else as a string."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {value!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


# -- the parser ----------------------------------------------------------------------------


def _global_flags(suppress: bool) -> argparse.ArgumentParser:
    # The same flags on the top parser (real defaults) and on every subcommand (SUPPRESS, so a
    # subcommand that does not see a flag does not overwrite what the top parser parsed).
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection and output (before or after the command)")
    group.add_argument(
        "--api-key",
        default=default(None),
        help="the API key; discouraged (other users can see it): set DEVIN_API_KEY",
    )
    group.add_argument(
        "--org-id", default=default(None), help="the organization id (default: DEVIN_ORG_ID)"
    )
    group.add_argument(
        "--base-url",
        default=default(None),
        help="the API origin (default: DEVIN_BASE_URL, then https://api.devin.ai)",
    )
    group.add_argument(
        "--api-version", default=default("v3beta1"), choices=("v3beta1", "v3"), help="API version"
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object per line (no colors, no live display)",
    )
    return parent


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--until",
        choices=("settled", "terminal"),
        default="settled",
        help="settled: needs the user or done (default); terminal: exit or error",
    )
    parser.add_argument("--timeout", type=_positive, help="give up after this many seconds")
    parser.add_argument(
        "--poll-interval",
        type=_positive,
        help="seconds between polls after a change (default 1; backs off to 30)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the `devin-async` argument parser."""
    parser = argparse.ArgumentParser(
        prog="devin-async",
        description="Drive Devin sessions from the shell (an async SDK underneath).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_flags(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"devin-async {__version__}")
    common = [_global_flags(suppress=True)]
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, more: str = "") -> argparse.ArgumentParser:
        description = f"{help[0].upper()}{help[1:]}. {more}".strip()
        return sub.add_parser(name, help=help, description=description, parents=common)

    p = command("create", "create a session")
    p.add_argument("prompt", help="the task for Devin ('-' reads it from stdin)")
    p.add_argument("--title")
    p.add_argument("--tag", action="append", help="a tag (repeatable)")
    p.add_argument("--repo", action="append", help="a repository, owner/name (repeatable)")
    p.add_argument("--playbook-id")
    p.add_argument("--max-acu-limit", type=_positive_int)
    p.add_argument("--advanced-mode", choices=("analyze", "create", "improve", "batch", "manage"))
    p.add_argument("--session-link", action="append", help="a session to analyze (repeatable)")
    p.add_argument("--child-playbook-id")
    p.add_argument("--knowledge-id", action="append", help="repeatable")
    p.add_argument("--secret-id", action="append", help="repeatable")
    p.add_argument("--bypass-approval", action="store_true")
    p.add_argument("--create-as-user-id")
    p.add_argument(
        "--field",
        action="append",
        type=_field,
        metavar="KEY=JSON",
        help="another body field, sent as is (value parsed as JSON, else a string; repeatable)",
    )

    p = command("get", "print one session")
    p.add_argument("id", help="the session id")

    p = command("list", "list sessions")
    p.add_argument("--tag", action="append", help="only sessions with this tag (repeatable)")
    p.add_argument("--session-id", action="append", help="only these sessions (repeatable)")
    for name in ("created-after", "created-before", "updated-after", "updated-before"):
        p.add_argument(f"--{name}", type=_timestamp, metavar="WHEN",
                       help="Unix seconds or ISO 8601 (UTC if no offset)")
    p.add_argument("--playbook-id")
    p.add_argument("--archived", action=argparse.BooleanOptionalAction, default=None,
                   help="only archived (or, with --no-archived, unarchived) sessions")
    p.add_argument("--limit", type=int, default=50, help="at most N sessions (default 50; 0: all)")

    p = command("message", "send a message to a session (wakes a suspended one)")
    p.add_argument("id", help="the session id")
    p.add_argument("text", help="the message")

    p = command("terminate", "terminate a session for good")
    p.add_argument("id", help="the session id")
    p.add_argument("--archive", action="store_true", help="archive it too")

    p = command("wait", "wait for a session to settle (exit 4 if it ends in error)",
                "Prints each change as it happens, then the final session; with --json only "
                "the final session (also on a timeout, exit 5).")
    p.add_argument("id", help="the session id")
    _wait_flags(p)

    p = command("watch", "watch sessions until each settles (exit 4 if any ends in error)",
                "With --json: one {gone, previous, session} object per change.")
    p.add_argument("ids", nargs="+", metavar="ID", help="session ids")
    _wait_flags(p)

    p = command("create-many", "create a session per JSON line (one result line each)",
                "Each input line is a create body, e.g. {\"prompt\": \"...\", \"tags\": [\"x\"]}; "
                "blank lines are skipped. Results come in completion order (--ordered: input "
                "order), one per non-blank line; with --json each is {line, ok, session | "
                "error}. Exit 3 if any line failed.")
    p.add_argument("file", help="JSON lines, one create body per line ('-' for stdin)")
    p.add_argument("--concurrency", type=_positive_int, default=8,
                   help="creates in flight at once (default 8)")
    p.add_argument("--ordered", action="store_true",
                   help="print results in input order once all are done "
                        "(default: as each completes; each result names its line)")

    p = command("serve-fake", "serve a fake Devin API on this machine (Ctrl-C stops it)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free port")
    p.add_argument("--time-scale", type=_positive, default=1.0,
                   help="server seconds per real second (default 1)")
    p.add_argument("--rate-limit", type=_positive, help="requests per second per key")
    p.add_argument("--seed", type=int, help="seed of ids and lifecycle timings")

    p = command("demo", "create and watch sessions on an in-process fake server")
    p.add_argument("--sessions", type=_positive_int, default=20, help="how many (default 20)")
    p.add_argument("--time-scale", type=_positive, default=10.0,
                   help="how much faster than real Devin sessions move (default 10)")
    p.add_argument("--concurrency", type=_positive_int, default=8, help="default 8")
    p.add_argument("--seed", type=int, default=0, help="seed of the fake server (default 0)")
    return parser


# -- running -------------------------------------------------------------------------------


def _stderr(message: str) -> None:
    print(f"devin-async: {message}", file=sys.stderr, flush=True)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a usage error
        return _exit_code(exc)
    if args.api_key is not None and args.command not in ("demo", "serve-fake"):
        _stderr("warning: --api-key is visible to other users of this machine; "
                "prefer DEVIN_API_KEY")
    return args


async def run(args: argparse.Namespace) -> int:
    """Run one parsed command; turn its failure into a message on stderr and an exit code."""
    if args.command not in COMMANDS:
        _stderr(f"{args.command} blocks in its own event loop: run it through main()")
        return EXIT_USAGE
    out = Output(sys.stdout, json_mode=args.json)
    try:
        with _library_warnings():
            return await _run(args, out)
    finally:
        out.clear()


@contextlib.contextmanager
def _library_warnings() -> Iterator[None]:
    # The SDK logs what a user should know (a session that was not found, a failing poll) as
    # warnings; show them as one `devin-async: warning:` line each, unless DEVIN_ASYNC_LOG
    # configured logging already.
    logger = logging.getLogger("devin_async")
    if logger.handlers or os.environ.get("DEVIN_ASYNC_LOG"):
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("devin-async: warning: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def _run(args: argparse.Namespace, out: Output) -> int:
    try:
        code: int = await COMMANDS[args.command](args, out)
        return code
    except ValueError as exc:
        out.clear()
        _stderr(f"error: {exc}")
        return EXIT_USAGE
    except WaitTimeoutError as exc:
        out.clear()
        _stderr(f"timeout: {exc}")
        return EXIT_TIMEOUT
    except DevinError as exc:
        out.clear()
        _stderr(f"error: {exc}")
        return EXIT_API_ERROR
    except Exception as exc:
        out.clear()
        if os.environ.get("DEVIN_ASYNC_LOG", "").lower() == "debug":
            traceback.print_exc()
        _stderr(f"unexpected error: {type(exc).__name__}: {exc} "
                "(DEVIN_ASYNC_LOG=debug shows the traceback)")
        return EXIT_UNEXPECTED


async def amain(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command in the running event loop; return the exit code."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    return await run(args)


def _serve_fake(args: argparse.Namespace) -> int:
    from ..testing import serve_forever

    try:
        serve_forever(args.host, args.port, time_scale=args.time_scale,
                      rate_limit=args.rate_limit, api_key=args.api_key, org_id=args.org_id,
                      seed=args.seed)
    except OSError as exc:
        _stderr(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_USAGE
    except ValueError as exc:
        _stderr(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run `devin-async` with `argv` (default: sys.argv[1:]); return the exit code."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    if args.command == "serve-fake":
        return _serve_fake(args)
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _stderr("interrupted")
        return EXIT_INTERRUPTED
