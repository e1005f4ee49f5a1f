"""The rich half of the display: only imported on a terminal with rich installed.

Why no auto-refresh thread: the render functions read state the event loop is changing, so the
redraws happen on the loop too (a ticker task, plus an immediate `update()` on every change).
rich measures the console on each redraw, so a resized terminal gets a re-fitted frame. The live
region is not transient: when the block ends, normally or by Ctrl-C, the last frame stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TextIO

import attrs
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from ._text import GAP, Cell, TableData, cells, fit_widths

__all__ = ["live_view", "make_console", "print_table", "print_text", "progress_bar"]

#: rich styles of the display's style names (colours only: NO_COLOR removes them all).
STYLES = {"error": "red", "waiting": "yellow", "settled": "green", "active": "cyan", "dim": "dim"}
REFRESH = 0.25  # seconds between redraws when nothing changed (the clock still moves)


def make_console(stream: TextIO) -> Console:
    """Return a console on `stream` (NO_COLOR and the terminal's width are honoured)."""
    return Console(file=stream, highlight=False, emoji=False, markup=False)


def _style(console: Console, name: str) -> str:
    return "" if console.no_color or not name else STYLES.get(name, "")


def to_text(console: Console, parts: Sequence[Cell], *, wrap: bool = False) -> Text:
    """Return styled cells as one rich Text (cut to the width with an ellipsis, or wrapped)."""
    text = Text() if wrap else Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        text.append(part.text, style=_style(console, part.style))
    return text


def to_renderable(console: Console, table: TableData | str | Cell | Sequence[str | Cell],
                  *, max_height: int | None = None) -> RenderableType:
    """Return a table (fitted to the console's width now) or a line as a rich renderable.

    With `max_height`, a taller table keeps its first rows, a `… N more` row and its caption.
    """
    if not isinstance(table, TableData):
        return to_text(console, cells(table))
    room = None if max_height is None else max(max_height - 3, 1)  # header, "more", caption
    if room is not None and len(table.rows) > room + 1:
        hidden = len(table.rows) - room
        more: list[str | Cell] = [Cell(f"… {hidden} more", "dim")]
        more += [""] * (len(table.columns) - 1)
        table = attrs.evolve(table, rows=[*table.rows[:room], more])
    grid = Table(box=None, show_edge=False, pad_edge=False, padding=(0, GAP, 0, 0),
                 header_style="" if console.no_color else "bold", collapse_padding=True)
    widths = fit_widths(table, console.width)
    for column, width in zip(table.columns, widths, strict=True):
        grid.add_column(column.header, width=width, no_wrap=True, overflow="ellipsis")
    for row in table.rows:
        grid.add_row(*(to_text(console, cells(cell)) for cell in row))
    caption = cells(table.caption)
    if not any(c.text for c in caption):
        return grid
    return Group(grid, to_text(console, caption))


def print_text(console: Console, parts: Sequence[Cell]) -> None:
    """Print a permanent line (above any live region), wrapped to the width."""
    console.print(to_text(console, parts, wrap=True))


def print_table(console: Console, table: TableData) -> None:
    """Print a table once."""
    console.print(to_renderable(console, table))


class _LiveView:
    def __init__(self, live: Live) -> None:
        self._live = live

    def update(self) -> None:
        self._live.refresh()


@contextlib.asynccontextmanager
async def _ticking(refresh: Callable[[], None]) -> AsyncIterator[None]:
    async def tick() -> None:
        while True:
            await asyncio.sleep(REFRESH)
            refresh()

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])


@contextlib.asynccontextmanager
async def live_view(console: Console, render: Callable[[], TableData | str | Cell | Sequence[
        str | Cell]]) -> AsyncIterator[_LiveView]:
    """Show `render()` live, redrawn on `update()` and on a short tick; keep the last frame."""
    full = False  # the last frame (drawn as the view stops) shows every row

    def frame() -> RenderableType:
        return to_renderable(console, render(), max_height=None if full else console.height)

    live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
                redirect_stderr=False, get_renderable=frame)
    with live:
        try:
            view = _LiveView(live)
            async with _ticking(view.update):
                yield view
        finally:
            full = True


class _Bar:
    def __init__(self, progress: RichProgress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._failed = 0

    def advance(self, failed: bool = False) -> None:
        self._failed += failed
        note = f"{self._failed} failed" if self._failed else ""
        self._progress.update(self._task, advance=1, failed=note)
        self._progress.refresh()


@contextlib.asynccontextmanager
async def progress_bar(console: Console, total: int, description: str) -> AsyncIterator[_Bar]:
    """Show a progress bar of `total` items; keep its last state on screen."""
    red = _style(console, "error")
    progress = RichProgress(
        TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}", style=red), TimeElapsedColumn(),
        console=console, auto_refresh=False, transient=False, redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress:
        bar = _Bar(progress, progress.add_task(description, total=total, failed=""))
        async with _ticking(progress.refresh):
            yield bar
