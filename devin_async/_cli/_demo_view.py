"""What the demo shows: its table (live, then final), the staged failures, and the totals.

Every failure the demo stages is labelled as staged where it appears (a row's status, the
summary), so a new user never mistakes the demo's faults for the SDK's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from devin_async import Session, SessionStatus

from ._display import Output, state_counts, status_cell
from ._text import Cell, Column, TableData, Text, counts_text, elapsed_text, plural

__all__ = ["DemoRow", "render_table", "staged_lines", "summary_json", "totals_lines"]


@attrs.define
class DemoRow:
    """One request of the demo and what became of it (mutable: the demo's own state)."""

    index: int
    title: str
    refused_on_purpose: bool = False
    session: Session | None = None
    error: BaseException | None = None
    created: float = 0.0  # monotonic, when the create returned
    settled: float | None = None  # monotonic, when the watch saw it settled

    @property
    def ended_in_error(self) -> bool:
        return self.session is not None and self.session.status == SessionStatus.ERROR

    def settle_time(self) -> str:
        return "" if self.settled is None else f"{self.settled - self.created:.1f}s"


def _status(row: DemoRow) -> Cell:
    if row.session is not None:
        cell = status_cell(row.session)
        return Cell(f"{cell.text} (staged)", "error") if row.ended_in_error else cell
    if row.error is not None:
        return Cell("refused (staged)" if row.refused_on_purpose else "not created", "error")
    return Cell("…", "dim")


def render_table(rows: Sequence[DemoRow], out: Output, rate_limited: int) -> TableData:
    """Return the demo's table; its caption counts what happened so far."""
    sessions = [r.session for r in rows if r.session is not None]
    refused = sum(1 for r in rows if r.error is not None)
    caption = [f"created {len(sessions)}/{len(rows)}", f"{refused} refused",
               f"{rate_limited} rate-limited", counts_text(state_counts(sessions)),
               elapsed_text(out.elapsed())]
    return TableData(
        columns=(Column("#"), Column("TITLE", shrink=True, min_width=7),
                 Column("SESSION", shrink=True, min_width=12), Column("STATUS"),
                 Column("SETTLED IN")),
        rows=[(str(r.index + 1), r.title, r.session.session_id if r.session else "-",
               _status(r), r.settle_time()) for r in rows],
        caption=" · ".join(p for p in caption if p),
    )


def staged_lines(rows: Sequence[DemoRow], lost: int, recovered: int,
                 retries: Mapping[str, int]) -> list[Text]:
    """Return the staged failures and how each was handled, one per line."""
    lines: list[Text] = ["Staged failures (on purpose), and how the SDK handled them:"]
    for row in rows:
        if row.refused_on_purpose and row.error is not None:
            reason = str(row.error).splitlines()[0]
            lines.append(f"  {row.title} refused before sending: "
                         f"{type(row.error).__name__}: {reason}")
    errored = sum(1 for r in rows if r.ended_in_error)
    lines.append(f"  {plural(errored, 'session')} ended in error, as scripted")
    lines.append(f"  {plural(retries['rate_limited'], 'create')} rate-limited (429), "
                 "retried after the server's Retry-After")
    if lost:
        if recovered >= lost:
            lines.append(f"  {plural(recovered, 'lost answer')} recovered, no duplicate "
                         "(its client token found the session)")
        else:
            lines.append(Cell(f"  {plural(lost - recovered, 'lost answer')} NOT recovered",
                              "error"))
    return lines


def totals_lines(rows: Sequence[DemoRow], retried: int, elapsed: float, width: int) -> list[str]:
    """Return `6 requested · 5 created · 1 refused · 1 ended in error · 1.2s`, wrapped at `·`."""
    created = sum(1 for r in rows if r.session is not None)
    refused = sum(1 for r in rows if r.error is not None)
    errored = sum(1 for r in rows if r.ended_in_error)
    parts = [f"{len(rows)} requested", f"{created} created", f"{refused} refused",
             f"{errored} ended in error"]
    if retried:
        parts.append(plural(retried, "other retry", "other retries"))
    parts.append(f"{elapsed:.1f}s")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + len(part) + 3 > width:
            lines.append(part)
        else:
            lines[-1] += f" · {part}"
    return lines


def _row_dict(row: DemoRow) -> dict[str, Any]:
    session = row.session
    detail = session.status_detail if session is not None else None
    return {
        "index": row.index,
        "title": row.title,
        "session_id": session.session_id if session is not None else None,
        "status": session.status.value if session is not None else None,
        "status_detail": detail.value if detail is not None else None,
        "settled_in": round(row.settled - row.created, 3) if row.settled is not None else None,
        "staged": row.refused_on_purpose or row.ended_in_error,
        "error": f"{type(row.error).__name__}: {row.error}" if row.error else None,
    }


def summary_json(rows: Sequence[DemoRow], out: Output, retries: Mapping[str, int],
                 recovered: int) -> list[dict[str, Any]]:
    """Return the JSON lines of the demo: one per row, then the summary."""
    created = sum(1 for r in rows if r.session is not None)
    summary = {"summary": True, "requested": len(rows), "created": created,
               "not_created": len(rows) - created,
               "ended_in_error": sum(1 for r in rows if r.ended_in_error),
               "rate_limited": retries["rate_limited"], "lost_recovered": recovered,
               "retried": retries["retried"], "elapsed": round(out.elapsed(), 3)}
    return [*(_row_dict(r) for r in rows), summary]
