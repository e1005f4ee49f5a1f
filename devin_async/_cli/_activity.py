"""What a session did: `events` (listed, or followed live until the session ends) and `insights`.

An event line is `time  category  type  summary`, cut to the width (a pipe gets it whole). The
time is the UTC clock time; a line with the date comes first and whenever the day changes, so a
long session stays readable at 80 columns. `--follow` prints lines as they come, under a live
status line on a terminal (the last frame stays), and ends when the session is terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from devin_async import ActivityEvent, Follower, Session, SessionInsights

from . import _commands  # its make_client, looked up at call time
from ._common import UsageError, poll_policy
from ._display import Output, model_dict, status_cell
from ._text import Cell, Text, elapsed_text, plural, truncate

__all__ = ["cmd_events", "cmd_insights", "event_line"]

CATEGORY_WIDTH = 9  # the longest documented category: recording, knowledge, lifecycle
TYPE_WIDTH = 21  # shell_process_started
_DIRECTION_STYLE = {"incoming": "waiting"}  # a user's message stands out


def _when(created_at: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(created_at, dt.UTC)


def event_line(event: ActivityEvent, width: int) -> list[str | Cell]:
    """Return one event as `11:35:39  shell      shell_process_started  Ran pytest`, fitted."""
    category = str(event.category.value)
    head = f"{_when(event.created_at):%H:%M:%S}  "
    kind = f"{category.ljust(CATEGORY_WIDTH)}  {event.event_type.ljust(TYPE_WIDTH)}  "
    summary = " ".join(event.summary.split())  # one line, whatever the server sent
    room = width - len(head) - len(kind)
    if room < 8:  # too narrow for columns: cut the whole line
        text = truncate(f"{head}{kind}{summary}".rstrip(), width)
        return [text]
    style = _DIRECTION_STYLE.get(event.direction, "")
    return [Cell(head, "dim"), Cell(kind, style), truncate(summary, room)]


class _Printer:
    """Print events as lines (a date line at each new day) or JSON objects; count them."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.count = 0
        self.day: dt.date | None = None

    def print(self, event: ActivityEvent) -> None:
        self.count += 1
        if self.out.json_mode:
            self.out.json(model_dict(event))
            return
        day = _when(event.created_at).date()
        if day != self.day:
            self.day = day
            self.out.line(Cell(f"{day.isoformat()} (UTC)", "dim"))
        self.out.line(event_line(event, self.out.width))


async def _limited(events: AsyncIterable[ActivityEvent],
                   limit: int | None) -> AsyncIterator[ActivityEvent]:
    count = 0
    async for event in events:
        yield event
        count += 1
        if limit is not None and count >= limit:
            return


def _names(flag: str, values: list[str] | None) -> list[str] | None:
    """Return the values of a repeatable flag, `a,b` split in two (an empty name is an error)."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",")]
    if not all(names):
        raise UsageError(f"{flag}: an empty name in {','.join(values)!r}")
    return names


async def cmd_events(args: argparse.Namespace, out: Output) -> int:
    """Print a session's events; with --follow, new ones too, until the session is terminal."""
    limit: int | None = args.limit
    printer = _Printer(out)
    final: Session | None = None

    def render() -> Text:
        state = Cell("following", "active") if final is None else status_cell(final)
        return [f"{args.id}  ", state,
                f"  · {plural(printer.count, 'event')} · {elapsed_text(out.elapsed())}"]

    async with _commands.make_client(args, poll=poll_policy(args)) as client:
        events = client.sessions.events(
            args.id, categories=_names("--category", args.category),
            event_types=_names("--type", args.event_type),
            direction=args.direction, page_size=min(limit or 100, 100), follow=args.follow)
        if not args.follow:
            async for event in _limited(events, limit):
                printer.print(event)
            if printer.count == 0 and not out.json_mode:
                out.line("no events")
            return 0
        assert isinstance(events, Follower)
        try:
            async with out.view(render) as view:
                async for event in _limited(events, limit):
                    printer.print(event)
                    view.update()
                final = await client.sessions.get(args.id)
                view.update()
        finally:
            await events.aclose()
    if not out.json_mode and not out.live:
        out.line([f"{plural(printer.count, 'event')}; session {final.session_id}: ",
                  status_cell(final)])
    return 0


def _insight_rows(insights: SessionInsights) -> list[tuple[str, Text]]:
    rows: list[tuple[str, Text]] = [
        ("session_id", insights.session_id),
        ("status", insights.status.value if insights.status_detail is None
         else f"{insights.status.value}/{insights.status_detail.value}"),
        ("title", insights.title or ""),
        ("size", insights.session_size),
        ("messages", f"{plural(insights.num_devin_messages, 'from Devin', 'from Devin')}, "
                     f"{plural(insights.num_user_messages, 'from the user', 'from users')}"),
        ("acus", f"{insights.acus_consumed:g}"),
    ]
    analysis: dict[str, Any] | None = insights.analysis
    if analysis is None:
        rows.append(("analysis", Cell("not generated (insights ID --generate)", "dim")))
        return rows
    classification = analysis.get("classification") or {}
    if isinstance(classification, dict) and classification.get("category"):
        confidence = classification.get("confidence")
        rows.append(("category", f"{classification['category']}"
                     + (f" ({confidence:.0%})" if isinstance(confidence, float) else "")))
    for key, label, text_key in (("issues", "issue", "issue"),
                                 ("action_items", "action item", "action_item")):
        items = analysis.get(key) or []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get(text_key):
                rows.append((label, str(item[text_key])))
    suggested = analysis.get("suggested_prompt") or {}
    if isinstance(suggested, dict) and suggested.get("suggested_prompt"):
        rows.append(("suggested prompt", str(suggested["suggested_prompt"])))
    return rows


async def cmd_insights(args: argparse.Namespace, out: Output) -> int:
    """Print a session's insights; with --generate, generate the analysis and wait for it."""
    generate: bool = args.generate
    ready = False

    def render() -> Text:
        state = Cell("insights ready", "settled") if ready else Cell("generating insights",
                                                                     "active")
        return [f"{args.id}  ", state, f"  · {elapsed_text(out.elapsed())}"]

    async with _commands.make_client(args, poll=poll_policy(args)) as client:
        if generate:
            async with out.view(render) as view:
                insights = await client.sessions.generate_insights(args.id, timeout=args.timeout)
                ready = True
                view.update()
        else:
            insights = await client.sessions.insights(args.id)
    if out.json_mode:
        out.json(model_dict(insights))
        return 0
    rows = _insight_rows(insights)
    width = max(len(k) for k, _ in rows)
    out.lines([f"{k.ljust(width)}  ", *([v] if isinstance(v, str | Cell) else v)]
              for k, v in rows if v)
    return 0
