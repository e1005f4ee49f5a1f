"""What every command shares: exit codes, the client built from flags and env, errors as data."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import operator
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from devin_async import (
    APIStatusError,
    BatchResult,
    DevinClient,
    DevinError,
    PollPolicy,
    Session,
    WaitTimeoutError,
)

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "UNTIL",
    "UsageError",
    "closing",
    "error_dict",
    "exit_code_of",
    "make_client",
    "poll_policy",
    "setting",
    "stamp",
]

# The exit codes (documented in the --help epilog).
EXIT_OK = 0
EXIT_UNEXPECTED = 1  # a bug, or the demo did not go as designed
EXIT_USAGE = 2  # argparse, a ValueError, missing configuration
EXIT_API_ERROR = 3  # a DevinError; create-many with a failed line; watch saw a session vanish
EXIT_SESSION_ERROR = 4  # wait/watch: a session ended in error
EXIT_TIMEOUT = 5  # WaitTimeoutError
EXIT_INTERRUPTED = 130  # Ctrl-C

#: `--until` choices: what "done" means for wait and watch.
UNTIL: dict[str, Callable[[Session], bool]] = {
    "settled": operator.attrgetter("is_settled"),
    "terminal": operator.attrgetter("is_terminal"),
}


class UsageError(ValueError):
    """A bad command line: printed as `devin-async: error: ...`, exit 2."""


# The library names its keyword arguments; the command line has flags for them.
_CLI_WORDS = (
    ("pass api_key=", "pass --api-key"),
    ("pass org_id=", "pass --org-id"),
    ("api_key ", "the API key (--api-key or DEVIN_API_KEY) "),
    ("org_id ", "the organization id (--org-id or DEVIN_ORG_ID) "),
    ("base_url ", "the base URL (--base-url or DEVIN_BASE_URL) "),
    ("api_version ", "--api-version "),
)


def cli_words(message: str) -> str:
    """Reword a library message in the command line's terms (flags, not keyword arguments)."""
    for library, cli in _CLI_WORDS:
        if message.startswith(library) or f" {library}" in message:
            return message.replace(library, cli, 1)
    return message


def setting(flag: str | None, env: str) -> str | None:
    """Return a flag's value, else the env variable's, stripped (None when empty)."""
    # A value read from a file often ends in a newline: surrounding whitespace is not part of it.
    value = flag if flag is not None else os.environ.get(env)
    return value.strip() if value is not None and value.strip() else None


def make_client(args: argparse.Namespace, **options: Any) -> DevinClient:
    """Build a client from the global flags, the env filling what they leave out.

    Raises:
        UsageError: no API key or organization id, or a value the client refuses.
    """
    key = setting(args.api_key, "DEVIN_API_KEY")
    if key is None:
        raise UsageError("an API key is required: pass --api-key or set DEVIN_API_KEY")
    org = setting(args.org_id, "DEVIN_ORG_ID")
    if org is None:
        raise UsageError("an organization id is required: pass --org-id or set DEVIN_ORG_ID")
    try:
        return DevinClient(api_key=key, org_id=org, base_url=setting(args.base_url,
                           "DEVIN_BASE_URL"), api_version=args.api_version, **options)
    except ValueError as exc:
        raise UsageError(cli_words(str(exc))) from None


def poll_policy(args: argparse.Namespace) -> PollPolicy | None:
    """Return the poll policy of `--poll-interval` (None: the client's default)."""
    interval: float | None = getattr(args, "poll_interval", None)
    if interval is None:
        return None
    return PollPolicy(initial=interval, max=max(interval, PollPolicy().max))


def stamp(value: int | None) -> str:
    """Return Unix seconds as `2026-12-01 11:35:39Z` (empty for None)."""
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def error_dict(error: BaseException) -> dict[str, Any]:
    """Return an error as `{"error": type, "status": int | None, "detail": str}`."""
    status = getattr(error, "status", None)
    if not isinstance(status, int) or isinstance(status, bool) or status <= 0:
        status = None
    detail = getattr(error, "detail", None) if isinstance(error, APIStatusError) else None
    if not isinstance(detail, str) or not detail:
        detail = str(error) or type(error).__name__
    return {"error": type(error).__name__, "status": status, "detail": detail}


def exit_code_of(error: BaseException) -> int:
    """Return the documented exit code of an error a command raised."""
    if isinstance(error, ValueError):
        return EXIT_USAGE
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(error, DevinError):
        return EXIT_API_ERROR
    return EXIT_UNEXPECTED


@contextlib.asynccontextmanager
async def closing(results: AsyncIterator[BatchResult]) -> AsyncIterator[None]:
    """Close a create_many iterator on any exit (it cancels the creates still in flight)."""
    try:
        yield
    finally:
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()
