"""The long commands that follow sessions: wait (one) and watch (many, a live table)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from devin_async import Session, SessionEvent, SessionStatus, WaitTimeoutError

from . import _commands  # its make_client, looked up at call time
from ._common import (
    EXIT_API_ERROR,
    EXIT_OK,
    EXIT_SESSION_ERROR,
    UNTIL,
    UsageError,
    poll_policy,
)
from ._display import Output, session_dict, state_counts, status_cell
from ._statefile import StateFile
from ._text import Cell, Column, TableData, Text, counts_text, elapsed_text, plural

__all__ = ["cmd_wait", "cmd_watch", "ids_from_text"]


async def cmd_wait(args: argparse.Namespace, out: Output) -> int:
    """Wait for one session to settle (or end); exit 4 if it ended in error."""
    until = UNTIL[args.until]
    last: Session | None = None

    def render() -> Text:
        return [f"{args.id}  ", status_cell(last), f"  · {elapsed_text(out.elapsed())}"]

    timed_out: WaitTimeoutError | None = None
    async with _commands.make_client(args) as client, out.view(render) as view:
        try:
            async for session in client.sessions.poll(
                args.id, until=until, policy=poll_policy(args), timeout=args.timeout
            ):
                last = session
                out.event([f"{session.session_id} ", status_cell(session)])
                view.update()
        except WaitTimeoutError as exc:
            last = exc.last_session or last
            timed_out = exc
    if last is not None:
        out.session(last)
    if timed_out is not None:
        raise timed_out
    assert last is not None
    return EXIT_SESSION_ERROR if last.status == SessionStatus.ERROR else EXIT_OK


def _session_id_of(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    session = record.get("session")
    if isinstance(session, dict) and isinstance(session.get("session_id"), str):
        return str(session["session_id"])
    sid = record.get("session_id")
    return sid if isinstance(sid, str) else None


def ids_from_text(text: str, source: str = "stdin") -> list[str]:
    """Return the session ids of `text`: one per line (its first word), or JSON result lines.

    A JSON line is a session (`create --json`, `list --json`) or a result of `create-many
    --json` (its `session.session_id`; a failed line, without a session, is skipped).

    Raises:
        UsageError: a line is neither an id nor such a JSON object, or there is no id at all.
    """
    ids: list[str] = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            ids.append(line.split()[0])
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source} line {number}: not JSON: {exc.msg}") from None
        sid = _session_id_of(record)
        if sid is not None:
            ids.append(sid)
        elif record.get("ok") is not False:
            raise UsageError(f"{source} line {number}: no session_id in this JSON object")
    if not ids:
        raise UsageError(f"no session ids on {source}")
    return ids


async def _watch_ids(args: argparse.Namespace) -> list[str]:
    ids: list[str] = []
    for given in args.ids:
        if given == "-":
            ids += ids_from_text(await asyncio.to_thread(sys.stdin.read))
        else:
            ids.append(given)
    return list(dict.fromkeys(ids))


def _event_dict(event: SessionEvent) -> dict[str, Any]:
    before = None
    if event.previous is not None:
        detail = event.previous.status_detail
        before = {
            "status": event.previous.status.value,
            "status_detail": detail.value if detail is not None else None,
        }
    return {"gone": event.gone, "previous": before, "session": session_dict(event.session)}


class _WatchState:
    """The last session seen per id, in the order the ids were given, and the vanished ones."""

    def __init__(self, ids: list[str], out: Output) -> None:
        self.ids = ids
        self.out = out
        self.latest: dict[str, Session] = {}
        self.gone: set[str] = set()
        self.not_found: set[str] = set()

    def saw(self, event: SessionEvent) -> None:
        session = event.session
        if session.session_id not in self.latest and session.session_id not in self.ids:
            self.ids.append(session.session_id)  # found by a tag, or a child
        self.latest[session.session_id] = session
        note = " (gone)" if event.gone else ""
        if event.gone:
            self.gone.add(session.session_id)
        self.out.event([f"{session.session_id} ", status_cell(session), note], _event_dict(event))

    def missing(self, not_found: set[str]) -> None:
        for sid in self.ids:
            if sid in not_found and sid not in self.not_found:
                self.not_found.add(sid)
                self.out.event([f"{sid} ", Cell("not found", "error")],
                               {"gone": True, "not_found": True, "previous": None,
                                "session": None, "session_id": sid})

    def status(self, sid: str) -> Cell:
        if sid in self.not_found:
            return Cell("not found", "error")
        cell = status_cell(self.latest.get(sid))
        return Cell(f"{cell.text} (gone)", "error") if sid in self.gone else cell

    def table(self) -> TableData:
        rows = []
        for sid in self.ids:
            session = self.latest.get(sid)
            rows.append((sid, self.status(sid), (session.title or "") if session else ""))
        parts = [counts_text(state_counts(self.latest.values()))]
        parts += [f"{len(self.gone)} gone" if self.gone else "",
                  f"{len(self.not_found)} not found" if self.not_found else "",
                  elapsed_text(self.out.elapsed())]
        return TableData(
            columns=(Column("SESSION", shrink=True, min_width=12), Column("STATUS"),
                     Column("TITLE", shrink=True)),
            rows=rows,
            caption=" · ".join(p for p in parts if p),
        )


async def cmd_watch(args: argparse.Namespace, out: Output) -> int:
    """Watch sessions until each settles (or ends); exit 4 if any ended in error."""
    ids = await _watch_ids(args)
    saved = StateFile(args.state) if args.state is not None else None
    resume = saved.read() if saved is not None else None
    if not ids and not args.tag and resume is None:
        raise UsageError("watch needs session ids, '-' (ids on stdin), --tag, or a --state "
                         "file to resume (see: devin-async watch --help)")
    state = _WatchState(ids, out)
    until = UNTIL[args.until]
    timed_out = False
    async with _commands.make_client(args) as client:
        watcher = client.watch(ids, until=until, policy=poll_policy(args), tags=args.tag,
                               follow_children=args.follow_children, forever=args.forever,
                               resume=resume)
        async with watcher, out.view(state.table) as view:
            try:
                async with asyncio.timeout(args.timeout):
                    async for event in watcher:
                        state.saw(event)
                        state.missing(watcher.not_found)
                        view.update()
                        if saved is not None:  # after the event is out: at least once
                            saved.write(watcher.checkpoint())
            except TimeoutError:
                timed_out = True
            state.missing(watcher.not_found)
            view.update()
            if saved is not None:
                saved.write(watcher.checkpoint())
    if not out.json_mode and not out.live:
        out.table(state.table())
    if timed_out:
        pending = [s for s in ids if s in state.latest and not until(state.latest[s])]
        pending += [s for s in ids if s not in state.latest and s not in state.not_found]
        raise WaitTimeoutError(
            f"timed out after {args.timeout:g} s; still waiting for "
            f"{', '.join(pending) or 'the last answer'}",
            last_session=None,
        )
    if not out.json_mode:
        counts = ", ".join(f"{n} {label}" for label, n in state_counts(state.latest.values()))
        extra = f"; {len(state.not_found)} not found" if state.not_found else ""
        out.line(f"{plural(len(state.latest), 'session')}: {counts or 'none seen'}{extra}")
    for sid in ids:
        if sid in state.gone:
            out.warn(f"session {sid} is gone (not found)")
    if any(s.status == SessionStatus.ERROR for s in state.latest.values()):
        return EXIT_SESSION_ERROR
    return EXIT_API_ERROR if state.gone or state.not_found else EXIT_OK

