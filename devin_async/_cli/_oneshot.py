"""The one-shot commands: create, get, list, message, terminate.

Errors are not handled here: a ValueError, DevinError or WaitTimeoutError propagates to `run()` in
`__init__`, which reports it (one line, or one JSON object, on stderr) with its exit code.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import attrs

from devin_async import CreateSessionRequest, Session

from . import _commands  # its make_client, looked up at call time
from ._common import UsageError, stamp
from ._display import Output, status_cell
from ._text import Cell, Column, TableData, plural

__all__ = ["cmd_create", "cmd_get", "cmd_list", "cmd_message", "cmd_terminate"]


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
    # A --field the SDK knows as a create field is passed as one (it is checked like one);
    # anything else goes into the body as is.
    known = {f.name for f in attrs.fields(CreateSessionRequest)} - {"prompt", "extra"}
    extra: dict[str, Any] = {}
    for key, value in args.field or ():
        if key in given or key == "prompt":
            flag = "the prompt" if key == "prompt" else f"--{key.replace('_', '-')}"
            raise UsageError(f"--field {key}=... repeats {flag}")
        (given if key in known else extra)[key] = value
    request = CreateSessionRequest(prompt, **given, extra=extra)
    request.validate()
    return request


async def cmd_create(args: argparse.Namespace, out: Output) -> int:
    """Create one session and print it."""
    request = _create_request(args)
    async with _commands.make_client(args) as client:
        session = await client.sessions.create(request)
    out.session(session)
    return 0


async def cmd_get(args: argparse.Namespace, out: Output) -> int:
    """Print one session in full (rows without a value are left out)."""
    async with _commands.make_client(args) as client:
        session = await client.sessions.get(args.id)
    if out.json_mode:
        out.session(session)
        return 0
    prs = ", ".join(f"{p.pr_url} ({p.pr_state or '?'})" for p in session.pull_requests)
    rows: list[tuple[str, str | Cell]] = [
        ("session_id", session.session_id),
        ("status", status_cell(session)),
        ("title", session.title or ""),
        ("url", session.url),
        ("created", stamp(session.created_at)),
        ("updated", stamp(session.updated_at)),
        ("tags", ", ".join(session.tags)),
        ("acus", f"{session.acus_consumed:g}"),
        ("pull requests", prs),
        ("parent", session.parent_session_id or ""),
        ("children", ", ".join(session.child_session_ids or ())),
    ]
    shown = [(k, v) for k, v in rows if (v.text if isinstance(v, Cell) else v)]
    width = max(len(k) for k, _ in shown)
    out.lines([f"{k.ljust(width)}  ", v] for k, v in shown)
    return 0


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """List sessions oldest first (as the API sends them), or newest first; at most --limit."""
    limit: int = args.limit
    if limit < 0:
        raise UsageError("--limit must be >= 0 (0: no limit)")
    newest_first: bool = args.newest_first
    async with _commands.make_client(args) as client:
        listing = client.sessions.list(
            tags=args.tag,
            session_ids=args.session_id,
            created_after=args.created_after,
            created_before=args.created_before,
            updated_after=args.updated_after,
            updated_before=args.updated_before,
            playbook_id=args.playbook_id,
            is_archived=args.archived,
            page_size=min(limit, 100) if limit and not newest_first else 100,
        )
        found: list[Session] = []
        async for session in listing:
            # Newest first needs every page: the newest sessions come last.
            if limit and len(found) >= limit and not newest_first:
                break
            found.append(session)
            if out.json_mode and not newest_first:
                out.session(session)
    if newest_first:
        found.sort(key=lambda s: (s.created_at, s.session_id), reverse=True)
        found = found[:limit] if limit else found
        if out.json_mode:
            for session in found:
                out.session(session)
    if out.json_mode:
        return 0
    if not found:
        out.line("no sessions")
        return 0
    order = "newest first" if newest_first else "oldest first"
    out.table(TableData(
        columns=(Column("SESSION", shrink=True, min_width=12), Column("STATUS"),
                 Column("CREATED"), Column("TITLE", shrink=True)),
        rows=[(s.session_id, status_cell(s), stamp(s.created_at), s.title or "") for s in found],
        caption=f"{plural(len(found), 'session')}, {order}",
    ))
    return 0


async def cmd_message(args: argparse.Namespace, out: Output) -> int:
    """Send a message to a session and print the session."""
    async with _commands.make_client(args) as client:
        session = await client.sessions.send_message(args.id, args.text)
    out.session(session)
    return 0


async def cmd_terminate(args: argparse.Namespace, out: Output) -> int:
    """Terminate a session (optionally archive it) and print it."""
    async with _commands.make_client(args) as client:
        session = await client.sessions.terminate(args.id, archive=args.archive)
    out.session(session)
    return 0
