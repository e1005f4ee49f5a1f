"""The commands: each takes the parsed arguments and an Output, and returns an exit code.

Errors are not handled here: a ValueError, DevinError or WaitTimeoutError propagates to `run()` in
`__init__`, which turns it into one line on stderr and the documented exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import operator
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._client import DevinClient
from .._config import PollPolicy
from .._enums import SessionStatus
from .._errors import APIStatusError, WaitTimeoutError
from .._models import BatchResult, CreateSessionRequest, Session
from ._display import (
    Output,
    Progress,
    counts_line,
    format_table,
    session_dict,
    state_counts,
    status_label,
)

__all__ = [
    "COMMANDS",
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "UNTIL",
    "closing",
    "make_client",
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


def make_client(args: argparse.Namespace, **options: Any) -> DevinClient:
    """Build a client from the global flags (the env fills what they leave out)."""
    return DevinClient(
        api_key=args.api_key,
        org_id=args.org_id,
        base_url=args.base_url,
        api_version=args.api_version,
        **options,
    )


def _poll_policy(args: argparse.Namespace) -> PollPolicy | None:
    interval: float | None = getattr(args, "poll_interval", None)
    if interval is None:
        return None
    if not interval > 0:
        raise ValueError("--poll-interval must be > 0")
    return PollPolicy(initial=interval, max=max(interval, PollPolicy().max))


def _stamp(value: int | None) -> str:
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _error_dict(error: BaseException) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        data["status"] = error.status
    return data


def _stderr(message: str) -> None:
    print(f"devin-async: {message}", file=sys.stderr)


@contextlib.asynccontextmanager
async def closing(results: AsyncIterator[BatchResult]) -> AsyncIterator[None]:
    """Close a create_many iterator on any exit (it cancels the creates still in flight)."""
    try:
        yield
    finally:
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()


# -- one-shot commands ---------------------------------------------------------------------


def _create_request(args: argparse.Namespace) -> CreateSessionRequest:
    prompt: str = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read()
    named: dict[str, Any] = {
        "title": args.title,
        "tags": args.tag,
        "repos": args.repo,
        "playbook_id": args.playbook_id,
        "max_acu_limit": args.max_acu_limit,
        "advanced_mode": args.advanced_mode,
        "session_links": args.session_link,
        "child_playbook_id": args.child_playbook_id,
        "knowledge_ids": args.knowledge_id,
        "secret_ids": args.secret_id,
        "bypass_approval": True if args.bypass_approval else None,
        "create_as_user_id": args.create_as_user_id,
    }
    given = {k: v for k, v in named.items() if v is not None}
    extra: dict[str, Any] = dict(args.field or ())
    request = CreateSessionRequest(prompt, **given, extra=extra)
    request.validate()
    return request


async def cmd_create(args: argparse.Namespace, out: Output) -> int:
    """Create one session and print it."""
    request = _create_request(args)
    async with make_client(args) as client:
        session = await client.sessions.create(request)
    out.session(session)
    return 0


async def cmd_get(args: argparse.Namespace, out: Output) -> int:
    """Print one session in full."""
    async with make_client(args) as client:
        session = await client.sessions.get(args.id)
    if out.json_mode:
        out.session(session)
        return 0
    prs = ", ".join(f"{p.pr_url} ({p.pr_state or '?'})" for p in session.pull_requests)
    rows = [
        ("session_id", session.session_id),
        ("status", out.status(session)),
        ("title", session.title or ""),
        ("url", session.url),
        ("created", _stamp(session.created_at)),
        ("updated", _stamp(session.updated_at)),
        ("tags", ", ".join(session.tags)),
        ("acus", f"{session.acus_consumed:g}"),
        ("pull requests", prs),
    ]
    if session.parent_session_id:
        rows.append(("parent", session.parent_session_id))
    if session.child_session_ids:
        rows.append(("children", ", ".join(session.child_session_ids)))
    width = max(len(k) for k, _ in rows)
    out.lines(f"{k.ljust(width)}  {v}".rstrip() for k, v in rows)
    return 0


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """List sessions in the server's order, at most --limit."""
    limit: int = args.limit
    if limit < 0:
        raise ValueError("--limit must be >= 0 (0: no limit)")
    async with make_client(args) as client:
        listing = client.sessions.list(
            tags=args.tag,
            session_ids=args.session_id,
            created_after=args.created_after,
            created_before=args.created_before,
            updated_after=args.updated_after,
            updated_before=args.updated_before,
            playbook_id=args.playbook_id,
            is_archived=args.archived,
            page_size=min(limit, 100) if limit else 100,
        )
        found: list[Session] = []
        async for session in listing:
            if limit and len(found) >= limit:
                break
            found.append(session)
            if out.json_mode:
                out.session(session)
    if not out.json_mode:
        if not found:
            out.line("no sessions")
            return 0
        rows = [
            (s.session_id, out.status(s), _stamp(s.created_at), s.title or "") for s in found
        ]
        out.lines(format_table(("SESSION", "STATUS", "CREATED", "TITLE"), rows))
    return 0


async def cmd_message(args: argparse.Namespace, out: Output) -> int:
    """Send a message to a session and print the session."""
    async with make_client(args) as client:
        session = await client.sessions.send_message(args.id, args.text)
    out.session(session)
    return 0


async def cmd_terminate(args: argparse.Namespace, out: Output) -> int:
    """Terminate a session (optionally archive it) and print it."""
    async with make_client(args) as client:
        session = await client.sessions.terminate(args.id, archive=args.archive)
    out.session(session)
    return 0


# -- long commands -------------------------------------------------------------------------


async def cmd_wait(args: argparse.Namespace, out: Output) -> int:
    """Wait for one session to settle (or end); exit 4 if it ended in error."""
    until = UNTIL[args.until]
    last: Session | None = None

    def render() -> list[str]:
        state = out.status(last) if last is not None else "…"
        return [f"{args.id}  {state}  · {counts_line(out, [])}"]

    async with make_client(args) as client, Progress(out, render) as progress:
        try:
            async for session in client.sessions.poll(
                args.id, until=until, policy=_poll_policy(args), timeout=args.timeout
            ):
                last = session
                out.event(f"{session.session_id} {status_label(session)}")
                progress.update()
        except WaitTimeoutError as exc:
            last = exc.last_session or last
            if last is not None:
                out.session(last)
            raise
    assert last is not None
    out.session(last)
    return EXIT_SESSION_ERROR if last.status == SessionStatus.ERROR else 0


async def cmd_watch(args: argparse.Namespace, out: Output) -> int:
    """Watch sessions until each settles (or ends); exit 4 if any ended in error."""
    ids: list[str] = list(dict.fromkeys(args.ids))
    latest: dict[str, Session] = {}
    gone: set[str] = set()

    def render() -> list[str]:
        rows = [
            (sid, out.status(latest[sid]) if sid in latest else "…", _title(latest.get(sid)))
            for sid in ids
        ]
        extra = f"{len(gone)} gone" if gone else ""
        summary = counts_line(out, state_counts(latest.values()), extra)
        return [*format_table(("SESSION", "STATUS", "TITLE"), rows), summary]

    until = UNTIL[args.until]
    async with make_client(args) as client:
        watcher = client.watch(ids, until=until, policy=_poll_policy(args))
        async with watcher, Progress(out, render) as progress:
            try:
                async with asyncio.timeout(args.timeout):
                    async for event in watcher:
                        session = event.session
                        latest[session.session_id] = session
                        if event.gone:
                            gone.add(session.session_id)
                        note = " (gone)" if event.gone else ""
                        out.event(
                            f"{session.session_id} {status_label(session)}{note}",
                            _event_dict(event.session, event.previous, event.gone),
                        )
                        progress.update()
            except TimeoutError:
                if out.live:
                    out.lines(render()[:-1])
                pending = [s for s in ids if s not in latest or not until(latest[s])]
                raise WaitTimeoutError(
                    f"timed out after {args.timeout:g} s; still waiting for "
                    f"{', '.join(pending) or 'the last answer'}",
                    last_session=None,
                ) from None
    if out.live:
        out.lines(render()[:-1])
    if not out.json_mode:
        counts = ", ".join(f"{n} {label}" for label, n in state_counts(latest.values()))
        out.line(f"{len(latest)} session(s): {counts or 'none seen'}")
    for sid in sorted(gone):
        _stderr(f"session {sid} is gone (not found)")
    # Ids never found were dropped by the watcher, which logged a warning for each.
    if any(s.status == SessionStatus.ERROR for s in latest.values()):
        return EXIT_SESSION_ERROR
    return EXIT_API_ERROR if gone or watcher.not_found else 0


def _title(session: Session | None) -> str:
    return (session.title or "") if session is not None else ""


def _event_dict(session: Session, previous: Session | None, gone: bool) -> dict[str, Any]:
    before = None
    if previous is not None:
        detail = previous.status_detail
        before = {
            "status": previous.status.value,
            "status_detail": detail.value if detail is not None else None,
        }
    return {"gone": gone, "previous": before, "session": session_dict(session)}


# -- create-many ---------------------------------------------------------------------------


def _read_requests(source: str) -> list[tuple[int, CreateSessionRequest | ValueError]]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    parsed: list[tuple[int, CreateSessionRequest | ValueError]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            request = CreateSessionRequest.from_dict(data)
            request.validate()
        except json.JSONDecodeError as exc:
            parsed.append((number, ValueError(f"not JSON: {exc.msg} at column {exc.colno}")))
        except (ValueError, TypeError) as exc:
            parsed.append((number, ValueError(str(exc))))
        else:
            parsed.append((number, request))
    return parsed


async def cmd_create_many(args: argparse.Namespace, out: Output) -> int:
    """Create a session per JSON line; print one result per line; exit 3 if any failed."""
    if args.concurrency < 1:
        raise ValueError("--concurrency must be >= 1")
    parsed = await asyncio.to_thread(_read_requests, args.file)
    good = [(n, r) for n, r in parsed if isinstance(r, CreateSessionRequest)]
    done = failed = 0
    held: list[tuple[int, dict[str, Any], str]] = []

    def report(line: int, session: Session | None, error: BaseException | None) -> None:
        nonlocal done, failed
        done += 1
        record: dict[str, Any] = {"line": line, "ok": error is None}
        if session is not None:
            record["session"] = session_dict(session)
            text = f"line {line}: {session.session_id}  {out.status(session)}  {_title(session)}"
        else:
            failed += 1
            assert error is not None
            record["error"] = _error_dict(error)
            text = f"line {line}: {out.paint('failed', 'red')}: {error}"
        if args.ordered:
            held.append((line, record, text))
        elif out.json_mode:
            out.json(record)
        else:
            out.line(text.rstrip())

    def render() -> list[str]:
        bad = out.paint(f"{failed} failed", "red") if failed else "0 failed"
        return [f"created {done - failed}/{len(parsed)} · {bad} · {counts_line(out, [])}"]

    for number, item in parsed:
        if isinstance(item, ValueError):
            report(number, None, item)
    async with make_client(args) as client, Progress(out, render) as progress:
        results = client.sessions.create_many(
            [r for _, r in good], concurrency=args.concurrency
        )
        async with closing(results):
            async for result in results:
                report(good[result.index][0], result.session, result.error)
                progress.update()
    for _, record, text in sorted(held, key=operator.itemgetter(0)):
        if out.json_mode:
            out.json(record)
        else:
            out.line(text.rstrip())
    if not out.json_mode:
        out.line(f"{done - failed} created, {failed} failed in {out.elapsed():.1f}s")
    return EXIT_API_ERROR if failed else 0


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the demo against an in-process fake server."""
    from ._demo import run_demo

    return await run_demo(args, out)


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Any]] = {
    "create": cmd_create,
    "get": cmd_get,
    "list": cmd_list,
    "message": cmd_message,
    "terminate": cmd_terminate,
    "wait": cmd_wait,
    "watch": cmd_watch,
    "create-many": cmd_create_many,
    "demo": cmd_demo,
}
