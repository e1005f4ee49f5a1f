"""What the command line prints: JSON lines, plain lines, tables, and a live region on a terminal.

Rules of this file: every byte the CLI writes to stdout goes through `Output`. In `--json` mode it
writes one JSON object per line and nothing else (no ANSI, no progress). On a terminal it keeps a
live region (status line or table) at the bottom, redrawn in place with `\\r`, cursor-up and
clear-line; permanent lines are printed above it. Elsewhere (a pipe, a file) long commands print
plain appended lines instead.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TextIO

import attrs

from .._models import Session

__all__ = [
    "Output",
    "Progress",
    "counts_line",
    "format_table",
    "session_dict",
    "session_line",
    "state_counts",
    "status_label",
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
_CLEAR_LINE, _UP = "\x1b[2K", "\x1b[1A"

_COLORS = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "dim": "2", "bold": "1"}
#: The color of a status label (status, or status/detail for running and suspended).
_STATUS_COLORS = {
    "error": "red",
    "exit": "green",
    "running/finished": "green",
    "running/waiting_for_user": "yellow",
    "running/waiting_for_approval": "yellow",
    "suspended": "yellow",
    "running": "cyan",
}


def _serialize(_inst: object, _field: object, value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def session_dict(session: Session) -> dict[str, Any]:
    """Return a session as a JSON-ready dict with the API's field names."""
    data = attrs.asdict(session, value_serializer=_serialize)
    if data.get("client_token") is None:
        data.pop("client_token", None)
    return data


def status_label(session: Session) -> str:
    """Return `status` or `status/status_detail`."""
    status = str(session.status.value)
    detail = session.status_detail
    return f"{status}/{detail.value}" if detail is not None else status


def state_counts(sessions: Iterable[Session]) -> list[tuple[str, int]]:
    """Count sessions by status label, most common first."""
    return Counter(status_label(s) for s in sessions).most_common()


def _visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def _fit(text: str, width: int) -> str:
    if _visible_len(text) <= width:
        return text
    plain = _ANSI.sub("", text)
    return plain[: max(width - 1, 0)] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lay out rows under headers in left-aligned columns (cells may hold ANSI colors)."""
    table = [list(headers), *(list(r) for r in rows)]
    widths = [max(_visible_len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [c + " " * (w - _visible_len(c)) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class Output:
    """The CLI's stdout: JSON lines, plain lines, or a terminal with a live region."""

    def __init__(
        self,
        stream: TextIO,
        *,
        json_mode: bool = False,
        live: bool | None = None,
        color: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.json_mode = json_mode
        tty = _isatty(stream) and os.environ.get("TERM") != "dumb"
        self.live = (tty if live is None else live) and not json_mode
        no_color = "NO_COLOR" in os.environ
        self.color = (tty and not no_color if color is None else color) and not json_mode
        self._clock = clock
        self.started = clock()
        self._height = 0
        self._region: list[str] = []

    # -- writing ---------------------------------------------------------------------------

    def json(self, obj: Mapping[str, Any]) -> None:
        """Write one JSON object on its own line."""
        self._println(json.dumps(obj, separators=(",", ":"), default=str))

    def line(self, text: str = "") -> None:
        """Write a permanent line of text (above the live region, if any)."""
        self._println(text)

    def lines(self, texts: Iterable[str]) -> None:
        """Write permanent lines."""
        for text in texts:
            self._println(text)

    def session(self, session: Session) -> None:
        """Write a session: its dict in JSON mode, else one summary line."""
        if self.json_mode:
            self.json(session_dict(session))
        else:
            self.line(session_line(session, self))

    def event(self, text: str, obj: Mapping[str, Any] | None = None) -> None:
        """Report a progress event: JSON if given in JSON mode, a timed line when not live."""
        if self.json_mode:
            if obj is not None:
                self.json(obj)
        elif not self.live:
            self.line(f"[{_elapsed(self.elapsed()):>6}] {text}")

    def paint(self, text: str, color: str) -> str:
        """Wrap text in an ANSI color when colors are on."""
        if not self.color or color not in _COLORS:
            return text
        return f"\x1b[{_COLORS[color]}m{text}\x1b[0m"

    def status(self, session: Session) -> str:
        """Return the session's status label, colored."""
        label = status_label(session)
        color = _STATUS_COLORS.get(label) or _STATUS_COLORS.get(str(session.status.value), "")
        return self.paint(label, color)

    def elapsed(self) -> float:
        """Return seconds since this output was made."""
        return self._clock() - self.started

    # -- the live region -------------------------------------------------------------------

    def draw(self, region: Sequence[str]) -> None:
        """Replace the live region with `region` (no-op unless live)."""
        if not self.live:
            return
        size = shutil.get_terminal_size()
        room = max(size.lines - 1, 1)
        if len(region) > room >= 3:  # keep the first lines and the last (the summary)
            hidden = len(region) - room + 1
            region = [*region[: room - 2], f"… {hidden} more", region[-1]]
        self._region = [_fit(r, max(size.columns - 1, 10)) for r in region]
        prefix = _HIDE_CURSOR if not self._height else ""
        self._write(prefix + self._erase() + "\n".join(self._region))
        self._height = len(self._region)

    def clear(self) -> None:
        """Erase the live region and give the cursor back."""
        if self._height:
            self._write(self._erase() + _SHOW_CURSOR)
            self._height = 0
        self._region = []

    def _erase(self) -> str:
        if not self._height:
            return ""
        return "\r" + _CLEAR_LINE + (_UP + _CLEAR_LINE) * (self._height - 1)

    def _println(self, text: str) -> None:
        if self._height:
            region = "\n".join(self._region)
            self._write(f"{self._erase()}{text}\n{region}")
        else:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:  # `devin-async list | head`: the reader left
            pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def session_line(session: Session, out: Output) -> str:
    """Return one summary line: id, status, title, url."""
    title = session.title or ""
    return f"{session.session_id}  {out.status(session)}  {title}  {session.url}".rstrip()


class Progress:
    """Redraw the live region from `render()`: on `update()` and on a short tick for the clock."""

    def __init__(self, out: Output, render: Callable[[], list[str]], interval: float = 0.2):
        self._out = out
        self._render = render
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def update(self) -> None:
        """Redraw now."""
        if self._out.live:
            self._out.draw(self._render())

    async def _tick(self) -> None:
        while True:
            self.update()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> Progress:
        if self._out.live:
            self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._out.clear()


def counts_line(out: Output, counts: Iterable[tuple[str, int]], *extra: str) -> str:
    """Return `3 running/working · 2 exit · … · 4.2s`."""
    parts = [f"{n} {label}" for label, n in counts]
    parts += [e for e in extra if e]
    parts.append(out.paint(_elapsed(out.elapsed()), "dim"))
    return " · ".join(parts)
