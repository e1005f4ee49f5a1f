"""Words and tables as data: plurals, durations, styled cells, and column widths that fit.

A table stays data (`TableData`) until the last moment, so the plain renderer here and the rich
one (`_live.py`) lay it out with the same widths: only the columns marked `shrink` (ids, titles)
are cut to fit, the widest first, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "GAP",
    "Cell",
    "Column",
    "TableData",
    "Text",
    "cells",
    "counts_text",
    "elapsed_text",
    "fit_widths",
    "plain",
    "plural",
    "render_plain",
    "truncate",
]

GAP = 2  # spaces between table columns


def plural(n: int, one: str, many: str | None = None) -> str:
    """Return `1 session` / `2 sessions` (`many` for irregular plurals: retry -> retries)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def elapsed_text(seconds: float) -> str:
    """Return `4.2s` or `3m05s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def truncate(text: str, width: int) -> str:
    """Cut `text` to `width` characters, the last one an ellipsis when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def counts_text(counts: Iterable[tuple[str, int]]) -> str:
    """Return `3 running/working · 2 exit`."""
    return " · ".join(f"{n} {label}" for label, n in counts)


@attrs.frozen
class Cell:
    """A piece of text with a style name (error, waiting, settled, active, dim, or none)."""

    text: str
    style: str = ""


Text = str | Cell | Sequence[str | Cell]


def cells(text: Text) -> list[Cell]:
    """Return `text` as a list of cells."""
    if isinstance(text, str):
        return [Cell(text)]
    if isinstance(text, Cell):
        return [text]
    return [Cell(t) if isinstance(t, str) else t for t in text]


def plain(text: Text) -> str:
    """Return the characters of `text`, without styles."""
    return "".join(c.text for c in cells(text))


@attrs.frozen
class Column:
    """A table column; `shrink` columns (ids, titles) are truncated to fit, down to `min_width`."""

    header: str
    shrink: bool = False
    min_width: int = 8


@attrs.frozen
class TableData:
    """Columns, rows of cells, and a caption (the summary line below the table)."""

    columns: Sequence[Column]
    rows: Sequence[Sequence[str | Cell]]
    caption: Text = ""


def fit_widths(table: TableData, width: int) -> list[int]:
    """Return column widths that fit `width`, shrinking the widest `shrink` column first."""
    widths = [len(c.header) for c in table.columns]
    for row in table.rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(plain(cell)))
    excess = sum(widths) + GAP * (len(widths) - 1) - width
    while excess > 0:
        candidates = [i for i, c in enumerate(table.columns)
                      if c.shrink and widths[i] > c.min_width]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def render_plain(table: TableData, width: int) -> list[str]:
    """Lay a table out as plain lines of at most `width` characters (where the columns allow)."""
    widths = fit_widths(table, width)
    lines = []
    for row in [[c.header for c in table.columns], *table.rows]:
        texts = [truncate(plain(cell), w).ljust(w) for cell, w in zip(row, widths, strict=True)]
        lines.append((" " * GAP).join(texts).rstrip())
    caption = plain(table.caption)
    if caption:
        lines.append(truncate(caption, width))
    return lines
