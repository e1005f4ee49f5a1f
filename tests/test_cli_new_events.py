"""`devin-async events`: lines that fit, JSON objects, filters, --follow until the session ends,
a live status line on a terminal, and Ctrl-C (exit 130) while following."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import re
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rich.console import Console

from devin_async._cli import amain, main
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake, json_lines
from .test_cli_live import screen, threaded_server

FAST = ["--poll-interval", "0.05"]
ENDS = [("running", "working", 0.0), ("exit", None, 6.0)]
WORKING_FOREVER = [("running", "working", 0.0)]
EVENT_FIELDS = {"event_id", "event_type", "category", "direction", "created_at", "summary"}
LINE = re.compile(r"(\d\d:\d\d:\d\d)  (\S+) +(\S+) +(.*)")


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    async with cli_fake(monkeypatch, seed=3, clock=cli_clock) as fake:
        yield fake


def finished_session(server: FakeDevinServer) -> str:
    (sid,) = server.add_sessions(1)
    server.add_event(sid, event_type="file_edited", category="file",
                     summary="Edited src/app.py")
    server.add_event(sid, event_type="shell_process_started", category="shell",
                     summary="Ran: pytest -q\n  (12 passed)")
    server.set_status(sid, "exit")
    return sid


async def test_events_json_are_the_api_objects(server: FakeDevinServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sid = finished_session(server)
    assert await amain(["events", sid, "--json"]) == 0
    captured = capsys.readouterr()
    events = json_lines(captured.out)
    assert captured.err == "" and "\x1b" not in captured.out
    assert events == server.events(sid)  # every event, oldest first, as the API sent it
    assert all(set(e) == EVENT_FIELDS for e in events)


async def test_events_lines(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    sid = finished_session(server)
    assert await amain(["events", sid]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = server.events(sid)
    first_day = dt.datetime.fromtimestamp(events[0]["created_at"], dt.UTC).date()
    assert lines[0] == f"{first_day.isoformat()} (UTC)"
    parsed = [LINE.fullmatch(line) for line in lines[1:]]
    assert all(parsed) and len(parsed) == len(events)
    rows = [m.groups() for m in parsed if m]
    assert [(r[1], r[2]) for r in rows] == [(e["category"], e["event_type"]) for e in events]
    shell = next(r for r in rows if r[2] == "shell_process_started")
    assert shell[3] == "Ran: pytest -q (12 passed)"  # one line, whatever the server sent
    stamp = dt.datetime.fromtimestamp(events[0]["created_at"], dt.UTC)
    assert rows[0][0] == f"{stamp:%H:%M:%S}"
    # The summaries start in one column (the category and type columns are padded).
    assert len({line.index(r[3]) for line, r in zip(lines[1:], rows, strict=True)}) == 1


@pytest.mark.parametrize(("argv", "check"), [
    (["--category", "shell"], lambda e: e["category"] == "shell"),
    (["--category", "shell", "--category", "file"], lambda e: e["category"] in ("shell", "file")),
    (["--category", "shell,file"], lambda e: e["category"] in ("shell", "file")),
    (["--type", "file_edited, status_changed"],
     lambda e: e["event_type"] in ("file_edited", "status_changed")),
    (["--type", "status_changed"], lambda e: e["event_type"] == "status_changed"),
    (["--direction", "incoming"], lambda e: e["direction"] == "incoming"),
])
async def test_events_filters(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                              argv: list[str], check: Any) -> None:
    sid = finished_session(server)
    assert await amain(["events", sid, *argv, "--json"]) == 0
    events = json_lines(capsys.readouterr().out)
    expected = [e for e in server.events(sid) if check(e)]
    assert events == expected and events


async def test_events_limit(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    sid = finished_session(server)
    assert await amain(["events", sid, "--limit", "2", "--json"]) == 0
    assert json_lines(capsys.readouterr().out) == server.events(sid)[:2]


async def test_no_events(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    sid = finished_session(server)
    assert await amain(["events", sid, "--category", "browser"]) == 0
    assert capsys.readouterr().out == "no events\n"
    assert await amain(["events", sid, "--category", "browser", "--json"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("argv", "code", "error", "message"), [
    (["--category", "shell", "--type", "file_edited"], 2, "UsageError",
     "argument --type: not allowed with argument --category"),
    (["--category", "shell,"], 2, "UsageError", "--category: an empty name in 'shell,'"),
    (["--type", ""], 2, "UsageError", "--type: an empty name in ''"),
    (["--limit", "0"], 2, "UsageError", "expected an integer >= 1"),
    (["--direction", "sideways"], 2, "UsageError", "invalid choice"),
])
async def test_events_bad_filters_exit_2(server: FakeDevinServer,
                                         capsys: pytest.CaptureFixture[str], argv: list[str],
                                         code: int, error: str, message: str) -> None:
    server.clear_requests()
    assert await amain(["events", "devin-x", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: ") and message in err and err.count("\n") == 1
    assert await amain(["events", "devin-x", *argv, "--json"]) == code
    record = json.loads(capsys.readouterr().err)
    assert record["error"] == error and message in record["detail"]
    assert server.requests == []


@pytest.mark.parametrize("follow", [[], ["--follow"]])
async def test_events_of_an_unknown_session_exit_3(server: FakeDevinServer,
                                                   capsys: pytest.CaptureFixture[str],
                                                   follow: list[str]) -> None:
    assert await amain(["events", "devin-doesnotexist", *follow, "--json", *FAST]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["status"] == 404


async def test_follow_ends_when_the_session_is_terminal(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (sid,) = server.add_sessions(1)
    server.script(ENDS, session_id=sid)
    server.add_event(sid, event_type="file_edited", category="file", summary="Edited later.py",
                     after=3.0)  # comes while following
    async with asyncio.timeout(15):
        assert await amain(["events", sid, "--follow", "--json", *FAST]) == 0
    events = json_lines(capsys.readouterr().out)
    assert events == server.events(sid)  # all of them, each once, in order
    assert events[-1]["summary"] == "Status: exit"
    assert any(e["summary"] == "Edited later.py" for e in events)
    assert server.session(sid)["status"] == "exit"


async def test_follow_of_an_ended_session_prints_all_and_ends(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = finished_session(server)
    async with asyncio.timeout(10):
        assert await amain(["events", sid, "--follow", "--json", *FAST]) == 0
    assert json_lines(capsys.readouterr().out) == server.events(sid)


async def test_follow_plain_lines_end_with_a_summary(server: FakeDevinServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1)
    server.script(ENDS, session_id=sid)
    async with asyncio.timeout(15):
        assert await amain(["events", sid, "-f", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    n = len(server.events(sid))
    assert lines[-1] == f"{n} events; session {sid}: exit"
    assert lines[-2].endswith("Status: exit")


async def test_follow_limit_stops_early(server: FakeDevinServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1)
    server.script(WORKING_FOREVER, session_id=sid)
    async with asyncio.timeout(15):
        assert await amain(["events", sid, "--follow", "--limit", "2", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"2 events; session {sid}: running/working"


async def test_follow_on_a_terminal(server: FakeDevinServer) -> None:
    (sid,) = server.add_sessions(1)
    server.script(ENDS, session_id=sid)
    server.add_event(sid, event_type="shell_process_started", category="shell",
                     summary="Ran: " + "a very long command line " * 10, after=2.0)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system="standard")
    async with asyncio.timeout(15):
        assert await amain(["events", sid, "--follow", *FAST], console=console) == 0
    shot = screen(buffer.getvalue())
    assert max(len(line) for line in shot) <= 80
    long = next(line for line in shot if "a very long command" in line)
    assert long.endswith("…") and len(long) == 80
    n = len(server.events(sid))
    assert re.fullmatch(rf"{sid}  exit  · {n} events · \d+\.\ds", shot[-1])  # the last frame
    assert sum(1 for line in shot if LINE.fullmatch(line)) == n


@pytest.mark.parametrize("columns", [None, "60"])
async def test_a_pipe_gets_whole_summaries(server: FakeDevinServer,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch,
                                           columns: str | None) -> None:
    sid = finished_session(server)
    summary = "x" * 150
    server.add_event(sid, event_type="file_edited", category="file", summary=summary)
    if columns is not None:
        monkeypatch.setenv("COLUMNS", columns)
    assert await amain(["events", sid]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    if columns is None:
        assert summary in out
    else:
        assert max(len(line) for line in out.splitlines()) <= 60 and summary not in out


class _Watched(io.StringIO):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        if self.marker in self.getvalue():
            self.seen.set()
        return count


def test_ctrl_c_while_following_exits_130(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with threaded_server() as server:
        (sid,) = server.add_sessions(1)
        server.script(WORKING_FOREVER, session_id=sid)
        for name, value in (("DEVIN_API_KEY", server.api_key), ("DEVIN_ORG_ID", server.org_id),
                            ("DEVIN_BASE_URL", server.url)):
            monkeypatch.setenv(name, value)
        buffer = _Watched("Status: running (working)")
        console = Console(file=buffer, force_terminal=True, width=80)

        def interrupt() -> None:
            buffer.seen.wait(10)  # the line is on screen (or 10 s passed: the test fails below)
            os.kill(os.getpid(), signal.SIGINT)

        ctrl_c = threading.Thread(target=interrupt)
        ctrl_c.start()
        code = main(["events", sid, "--follow", *FAST], console=console)
        ctrl_c.join()
    assert code == 130
    assert capsys.readouterr().err == "devin-async: interrupted\n"
    shot = screen(buffer.getvalue())
    assert any(line.endswith("Status: running (working)") for line in shot)
    assert re.fullmatch(rf"{sid}  following  · \d+ events · \d+\.\ds", shot[-1])
