"""What the command line prints: JSON lines, plain lines, or a rich live view on a terminal.

Rules of this file: every byte the CLI writes to stdout goes through `Output`, in one of three
modes, chosen once:
- json: one JSON object per line and nothing else (no ANSI, no progress, no live view);
- live: a terminal and `rich` installed (the optional `devin-async[cli]` extra): a live table or
  status line redrawn in place (`_live.py`), permanent lines printed above it, colours by status
  unless NO_COLOR; the last frame stays on screen when the view ends, Ctrl-C included;
- plain: anything else (a pipe, a file, TERM=dumb, no rich): appended lines, never ANSI, cut to
  the width only on a terminal or when COLUMNS is set (a pipe gets whole ids).
Tables are data (`_text.TableData`) until the last moment, so the plain and the rich renderers
lay them out with the same column widths (ids cut to fit, never a column dropped).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import attrs

from devin_async import Session, SessionStatus, StatusDetail

from ._text import Cell, TableData, Text, cells, elapsed_text, plain, render_plain, truncate

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Bar",
    "Output",
    "View",
    "model_dict",
    "session_dict",
    "session_line",
    "state_counts",
    "status_cell",
    "status_label",
    "status_style",
]

#: Session fields the SDK adds that the API does not send; `--json` puts them under this key.
SDK_KEY = "devin_async"
_SDK_FIELDS = ("client_token", "sdk_tags")
DEFAULT_WIDTH = 80  # a terminal whose size cannot be read
UNLIMITED = 1_000_000  # the width of a pipe or a file

_WAITING = {StatusDetail.WAITING_FOR_USER, StatusDetail.WAITING_FOR_APPROVAL}


# -- sessions as data ----------------------------------------------------------------------


def _serialize(_inst: object, _field: object, value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def model_dict(model: Any) -> dict[str, Any]:
    """Return an SDK model (an attrs instance) as a JSON-ready dict with the API's field names.

    Fields the SDK adds (`client_token`, `sdk_tags`) go under `SDK_KEY`, and only when set.
    """
    data: dict[str, Any] = attrs.asdict(model, value_serializer=_serialize)
    sdk = {name: data.pop(name) for name in _SDK_FIELDS if name in data}
    sdk = {k: v for k, v in sdk.items() if v not in (None, [], ())}
    if sdk:
        data[SDK_KEY] = sdk
    return data


def session_dict(session: Session) -> dict[str, Any]:
    """Return a session as a JSON-ready dict with the API's field names (SDK extras aside)."""
    return model_dict(session)


def status_label(session: Session) -> str:
    """Return `status` or `status/status_detail`."""
    status = str(session.status.value)
    detail = session.status_detail
    return f"{status}/{detail.value}" if detail is not None else status


def status_style(session: Session) -> str:
    """Return the style name of a session's status: error, waiting, settled or active."""
    if session.status == SessionStatus.ERROR:
        return "error"
    if session.status == SessionStatus.SUSPENDED or session.status_detail in _WAITING:
        return "waiting"
    if session.is_settled:
        return "settled"
    return "active"


def state_counts(sessions: Iterable[Session]) -> list[tuple[str, int]]:
    """Count sessions by status label, most common first."""
    return Counter(status_label(s) for s in sessions).most_common()


def status_cell(session: Session | None, missing: str = "…") -> Cell:
    """Return the status label as a styled cell (`missing`, dimmed, when there is no session)."""
    if session is None:
        return Cell(missing, "dim")
    return Cell(status_label(session), status_style(session))


# -- the output ----------------------------------------------------------------------------


class View(Protocol):
    """A live view: `update()` redraws it now (a no-op when not live)."""

    def update(self) -> None: ...


class Bar(Protocol):
    """A progress bar: `advance()` counts one more item done."""

    def advance(self, failed: bool = False) -> None: ...


class _NoView:
    def update(self) -> None:
        pass

    def advance(self, failed: bool = False) -> None:
        pass


def _rich_console(stream: TextIO) -> Console | None:
    # rich is optional (the `cli` extra): without it, or not on a terminal, print plain lines.
    if os.environ.get("TERM") == "dumb" or not _isatty(stream):
        return None
    try:
        from ._live import make_console
    except ImportError:
        return None
    return make_console(stream)


class Output:
    """The CLI's stdout: JSON lines, plain lines, or a rich live view on a terminal."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        json_mode: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.json_mode = json_mode
        if json_mode:
            console = None
        elif console is None:
            console = _rich_console(self.stream)
        elif not console.is_terminal or console.is_dumb_terminal:
            self.stream, console = console.file, None  # not a terminal: plain lines to its file
        self.console = console
        self.live = console is not None
        self._clock = clock
        self.started = clock()
        self._views = 0

    # -- writing ---------------------------------------------------------------------------

    def json(self, obj: Mapping[str, Any]) -> None:
        """Write one JSON object on its own line."""
        self._write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")

    def line(self, text: Text = "") -> None:
        """Write a permanent line (above the live view, if any)."""
        if self.console is not None:
            from ._live import print_text

            print_text(self.console, cells(text))
        else:
            self._write(plain(text) + "\n")

    def lines(self, texts: Iterable[Text]) -> None:
        """Write permanent lines."""
        for text in texts:
            self.line(text)

    def table(self, table: TableData) -> None:
        """Write a table (fitted to the width), then its caption."""
        if self.console is not None:
            from ._live import print_table

            print_table(self.console, table)
        else:
            self.lines(render_plain(table, self.width))

    def session(self, session: Session) -> None:
        """Write a session: its dict in JSON mode, else one summary line."""
        if self.json_mode:
            self.json(session_dict(session))
        else:
            self.line(session_line(session))

    def event(self, text: Text, obj: Mapping[str, Any] | None = None) -> None:
        """Report a progress event: `obj` in JSON mode, a timed line in plain mode."""
        if self.json_mode:
            if obj is not None:
                self.json(obj)
        elif not self.live:
            self.line(truncate(f"[{elapsed_text(self.elapsed()):>6}] {plain(text)}", self.width))

    def warn(self, message: str) -> None:
        """Show a warning: above the live view when live, else one line (or JSON) on stderr."""
        if self.json_mode:
            print(json.dumps({"warning": message}), file=sys.stderr, flush=True)
        elif self.console is not None and self._views:
            self.line(Cell(f"warning: {message}", "waiting"))
        else:
            print(f"devin-async: warning: {message}", file=sys.stderr, flush=True)

    @property
    def width(self) -> int:
        """Return the width to fit: COLUMNS, else the terminal's; a pipe or file: no limit.

        Not on a terminal, nothing is cut (unless COLUMNS asks): `list | watch -` needs whole ids.
        """
        if self.console is not None:
            return int(self.console.width)
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        if _isatty(self.stream):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                return os.get_terminal_size(self.stream.fileno()).columns
            return DEFAULT_WIDTH
        return UNLIMITED

    def elapsed(self) -> float:
        """Return seconds since this output was made."""
        return self._clock() - self.started

    # -- live views ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def view(self, render: Callable[[], TableData | Text]) -> AsyncIterator[View]:
        """Show `render()` live until the block ends; its last frame stays on screen."""
        if self.console is None:
            yield _NoView()
            return
        from ._live import live_view

        self._views += 1
        try:
            async with live_view(self.console, render) as view:
                yield view
        finally:
            self._views -= 1

    @contextlib.asynccontextmanager
    async def progress(self, total: int, description: str) -> AsyncIterator[Bar]:
        """Show a progress bar of `total` items until the block ends (live mode only)."""
        if self.console is None:
            yield _NoView()
            return
        from ._live import progress_bar

        self._views += 1
        try:
            async with progress_bar(self.console, total, description) as bar:
                yield bar
        finally:
            self._views -= 1

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


def session_line(session: Session) -> list[str | Cell]:
    """Return one summary line: id, status, title, url."""
    parts: list[str | Cell] = [f"{session.session_id}  ", status_cell(session)]
    if session.title:
        parts.append(f"  {session.title}")
    parts.append(f"  {session.url}")
    return parts
