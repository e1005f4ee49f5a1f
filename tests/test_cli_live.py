"""The live views on a terminal: screenshots as text, colours, NO_COLOR, Ctrl-C, no rich.

A rich `Console(force_terminal=True, width=...)` is injected through the CLI's entry point, and
what it wrote is replayed on a tiny terminal emulator (`screen`), so the assertions read the final
screen, as a user would see it, not the escape codes that drew it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from rich.console import Console

from devin_async._cli import amain, main
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake

FAST = ["--poll-interval", "0.05"]
WORKING_FOREVER = [("running", "working", 0.0)]
SETTLES = [("claimed", None, 0.0), ("running", "working", 2.0), ("running", "finished", 8.0)]
FAILS = [("running", "working", 0.0), ("error", "error", 6.0)]
_TOKEN = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)")
_SGR_COLOR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m")


def screen(raw: str) -> list[str]:
    """Replay terminal output (text, CR, LF, cursor up, erase line, SGR) into its final lines."""
    lines, row, col = [""], 0, 0
    for token in _TOKEN.split(raw):
        if not token:
            continue
        if token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            code, arg = token[-1], token[2:-1]
            if code == "A":
                row = max(0, row - int(arg or 1))
            elif code == "K":
                lines[row] = ""
            else:
                assert code in "mhl", f"unexpected escape {token!r}"
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip() for line in lines]


def terminal(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=width, color_system="standard"), buffer


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    monkeypatch.delenv("NO_COLOR", raising=False)
    async with cli_fake(monkeypatch, seed=1, clock=cli_clock) as fake:
        yield fake


@pytest.mark.parametrize("width", [80, 120])
async def test_watch_screenshot(server: FakeDevinServer, width: int) -> None:
    bad, ok = server.add_sessions(2, title="a title long enough to need cutting at eighty cols")
    server.script(SETTLES, session_id=ok)
    server.script(FAILS, session_id=bad)
    console, buffer = terminal(width)
    # Rows in the order given (ok first), and a row for an id that never existed.
    code = await amain(["watch", ok, "devin-doesnotexist", bad, *FAST], console=console)
    assert code == 4  # one ended in error
    shot = screen(buffer.getvalue())
    assert max(len(line) for line in shot) <= width
    top = next(i for i, line in enumerate(shot) if line.startswith("SESSION"))
    assert shot[top].split() == ["SESSION", "STATUS", "TITLE"]
    rows = shot[top + 1:top + 4]
    assert [r.split()[1] for r in rows] == ["running/finished", "not", "error/error"]
    assert rows[1].split()[:3] == ["devin-doesnotexist", "not", "found"]
    assert rows[0].startswith(ok if width == 120 else ok[:20])  # ids cut only when narrow
    assert ("…" in rows[0]) == (width == 80)
    assert "1 not found" in shot[top + 4]
    assert shot[-1] == "2 sessions: 1 running/finished, 1 error/error; 1 not found"
    raw = buffer.getvalue()
    assert "\x1b[31m" in raw and "\x1b[32m" in raw  # error red, settled green


async def test_no_color_keeps_the_live_view_without_colours(
    server: FakeDevinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    ids = server.add_sessions(2, status="running", status_detail="waiting_for_user")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)  # reads NO_COLOR
    assert await amain(["watch", *ids, *FAST], console=console) == 0
    raw = buffer.getvalue()
    assert not _SGR_COLOR.search(raw) and "\x1b[1m" not in raw  # no colour, no bold
    shot = screen(raw)
    assert [line.split()[1] for line in shot[1:3]] == ["running/waiting_for_user"] * 2


async def test_a_console_that_is_not_a_terminal_gets_plain_lines(
    server: FakeDevinServer,
) -> None:
    ids = server.add_sessions(2, status="running", status_detail="finished")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=80)
    assert await amain(["watch", *ids, *FAST], console=console) == 0
    text = buffer.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert re.match(rf"\[ *\d+\.\ds\] {ids[0]} running/finished", lines[0])
    assert lines[-1] == "2 sessions: 2 running/finished"


async def test_wait_status_line(server: FakeDevinServer) -> None:
    (sid,) = server.add_sessions(1)
    server.script(SETTLES, session_id=sid)
    console, buffer = terminal(80)
    assert await amain(["wait", sid, *FAST], console=console) == 0
    shot = screen(buffer.getvalue())
    assert re.fullmatch(rf"{sid}  running/finished  · \d+\.\ds", shot[0])
    assert shot[1].startswith(f"{sid}  running/finished  ")


async def test_create_many_progress_bar(server: FakeDevinServer, tmp_path: Any) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(f'{{"prompt": "p{i}", "title": "t{i}"}}\n' for i in range(4)))
    console, buffer = terminal(80)
    assert await amain(["create-many", str(path)], console=console) == 0
    shot = screen(buffer.getvalue())
    assert sum(line.startswith("line ") for line in shot) == 4
    (bar,) = [line for line in shot if line.startswith("creating")]
    assert "4/4" in bar
    assert shot[-1].startswith("4 created, 0 failed in ")


async def test_list_table_fits(server: FakeDevinServer) -> None:
    server.add_sessions(3, title="x" * 100)
    console, buffer = terminal(80)
    assert await amain(["list"], console=console) == 0
    shot = screen(buffer.getvalue())
    assert max(len(line) for line in shot) <= 80
    assert shot[0].split() == ["SESSION", "STATUS", "CREATED", "TITLE"]
    assert all(line.endswith("…") for line in shot[1:4])
    assert shot[4] == "3 sessions, oldest first"


async def test_demo_screenshot_fits_80_columns() -> None:
    console, buffer = terminal(80)
    assert await amain(["demo", "--sessions", "6", "--time-scale", "100"], console=console) == 0
    shot = screen(buffer.getvalue())
    assert max(len(line) for line in shot) <= 80
    top = next(i for i, line in enumerate(shot) if line.startswith("#  TITLE"))
    rows = shot[top + 1:top + 7]
    assert [r.split()[1] for r in rows] == [f"demo-{i:02d}" for i in range(1, 7)]
    assert rows[5].split()[2:] == ["-", "refused", "(staged)"]
    assert shot[top + 7].startswith("created 5/6 · 1 refused · 2 rate-limited")
    assert "  1 lost answer recovered, no duplicate (its client token found the session)" in shot


# -- Ctrl-C ----------------------------------------------------------------------------------


class _Watched(io.StringIO):
    """A console file that says when a text has been written (from the event loop's thread)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        if self.marker in self.getvalue():
            self.seen.set()
        return count


@contextlib.contextmanager
def threaded_server() -> Iterator[FakeDevinServer]:
    # main() runs its own event loop in this thread: the fake server gets another thread.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeDevinServer(time_scale=20.0, seed=2)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("command", ["watch", "wait"])
def test_ctrl_c_keeps_the_last_frame(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    with threaded_server() as server:
        ids = server.add_sessions(2 if command == "watch" else 1)
        for sid in ids:
            server.script(WORKING_FOREVER, session_id=sid)
        for name, value in (("DEVIN_API_KEY", server.api_key), ("DEVIN_ORG_ID", server.org_id),
                            ("DEVIN_BASE_URL", server.url)):
            monkeypatch.setenv(name, value)
        buffer = _Watched("2 running/working" if command == "watch" else "running/working")
        console = Console(file=buffer, force_terminal=True, width=80)

        def interrupt() -> None:
            if buffer.seen.wait(10):  # the frame with both sessions working is on screen
                os.kill(os.getpid(), signal.SIGINT)

        ctrl_c = threading.Thread(target=interrupt)
        ctrl_c.start()
        # --timeout bounds the test should the interrupt never come.
        code = main([command, *ids, "--timeout", "20", *FAST], console=console)
        ctrl_c.join()
    assert code == 130
    assert capsys.readouterr().err == "devin-async: interrupted\n"
    shot = screen(buffer.getvalue())
    if command == "watch":  # the last frame, caption included
        assert [line.split()[1] for line in shot[1:3]] == ["running/working"] * 2
        assert shot[3].startswith("2 running/working · ")
        assert len(shot) == 4
    else:
        assert re.fullmatch(rf"{ids[0]}  running/working  · \d+\.\ds", shot[0])
        assert len(shot) == 1


async def test_a_tall_table_keeps_its_caption_while_live(server: FakeDevinServer) -> None:
    from devin_async._cli._live import to_renderable
    from devin_async._cli._text import Column, TableData

    table = TableData(columns=(Column("ID"), Column("STATUS")),
                      rows=[(f"id-{i}", "ok") for i in range(20)], caption="20 ok")
    console, buffer = terminal(80)
    console.print(to_renderable(console, table, max_height=8))
    assert screen(buffer.getvalue()) == [
        f"{'ID':9}  STATUS", *(f"{f'id-{i}':9}  ok" for i in range(5)), "… 15 more", "20 ok"]
    # When the view stops, the last frame has every row.
    ids = server.add_sessions(12, status="running", status_detail="finished")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, height=8)
    assert await amain(["watch", *ids, *FAST], console=console) == 0
    shot = screen(buffer.getvalue())
    assert [line.split()[0] for line in shot[1:13]] == ids
    assert shot[-1] == "12 sessions: 12 running/finished"


def _pty_run(argv: list[str], *, interrupt_on: str | None, env: dict[str, str],
             limit: float = 30.0) -> tuple[int, str]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a process on a real terminal (80x30)
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    output, deadline, sent = b"", time.monotonic() + limit, False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                output += data
            if interrupt_on and not sent and interrupt_on.encode() in output:
                os.kill(pid, signal.SIGINT)
                sent = True
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # still running past the limit
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1", **more}


def test_ctrl_c_during_the_demo_on_a_terminal() -> None:
    # time x5: the demo would take seconds; the interrupt comes once a session works.
    code, output = _pty_run([sys.executable, "-m", "devin_async", "demo", "--time-scale", "5"],
                            interrupt_on="running/working", env=_env())
    assert code == 130
    shot = screen(output.replace("\r\n", "\n"))
    assert max(len(line) for line in shot) <= 80
    top = next(i for i, line in enumerate(shot) if re.match(r"#\s+TITLE", line))
    rows = shot[top + 1:top + 21]
    assert [line.split()[1] for line in rows] == [f"demo-{i:02d}" for i in range(1, 21)]
    assert any("running/working" in line for line in rows)  # the last frame stayed on screen
    assert shot[top + 21].startswith("created ")
    assert shot[-1] == "devin-async: interrupted"
    assert "Traceback" not in output


def test_without_rich_a_terminal_gets_plain_lines() -> None:
    script = ("import sys; sys.modules['rich'] = None; from devin_async.__main__ import main; "
              "sys.exit(main())")
    code, output = _pty_run(
        [sys.executable, "-c", script, "demo", "--sessions", "4", "--time-scale", "200"],
        interrupt_on=None, env=_env())
    assert code == 0, output
    assert "\x1b" not in output  # no live view, no colour
    lines = output.replace("\r\n", "\n").splitlines()
    assert any(re.match(r"\[ *\d+\.\ds\] created devin-", line) for line in lines)
    assert lines[-1].startswith("4 requested · 3 created · 1 refused")


@pytest.mark.parametrize("columns", [None, "60"])
def test_not_a_terminal_gets_plain_lines(columns: str | None, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # In this process (`python -m devin_async` on a terminal is run above): stdout is captured,
    # so not a terminal, as a pipe would be.
    for name in ("NO_COLOR", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    if columns is not None:
        monkeypatch.setenv("COLUMNS", columns)
    code = main(["demo", "--sessions", "3", "--time-scale", "200"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "\x1b" not in out
    lines = out.splitlines()
    rows = [line.split() for line in lines if re.match(r"[12]  demo-0", line)]
    if columns is None:  # a pipe: nothing is cut, the ids are whole
        assert all(len(row[2]) == len("devin-") + 32 for row in rows) and len(rows) == 2
    else:
        assert max(len(line) for line in lines) <= 60
        assert all(row[2].endswith("…") for row in rows) and len(rows) == 2
