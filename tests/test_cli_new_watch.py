"""`watch --tag`, `--forever`, `--state FILE`: sessions found by tag, a checkpoint that survives
kill -9 (a subprocess, bounded), and a rerun that repeats nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devin_async._cli import amain
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake, json_lines

FAST = ["--poll-interval", "0.05"]
SETTLES = [("running", "working", 0.0), ("running", "finished", 4.0)]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    async with cli_fake(monkeypatch, seed=9, clock=cli_clock) as fake:
        yield fake


def changes(events: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(e["session"]["session_id"], e["session"]["status"],
             e["session"]["status_detail"]) for e in events if e.get("session")]


async def test_watch_by_tag_and_state(server: FakeDevinServer,
                                      capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    ids = server.add_sessions(2, tags=["nightly"])
    server.add_sessions(1, tags=["other"])
    for sid in ids:
        server.script(SETTLES, session_id=sid)
    state = tmp_path / "w.state.json"
    async with asyncio.timeout(20):
        assert await amain(["watch", "--tag", "nightly", "--state", str(state), "--json",
                            *FAST]) == 0
    first = changes(json_lines(capsys.readouterr().out))
    assert {sid for sid, _, _ in first} == set(ids)  # by tag; the other tag is not watched
    assert {(s, st, d) for s, st, d in first if d == "finished"} == {
        (sid, "running", "finished") for sid in ids}
    saved = json.loads(state.read_text())
    assert saved["format"] == "devin-async watch state" and saved["checkpoint"]
    # A rerun from the state repeats nothing; a change made meanwhile is reported.
    server.set_status(ids[0], "exit")
    async with asyncio.timeout(20):
        assert await amain(["watch", "--tag", "nightly", "--state", str(state), "--json",
                            *FAST]) == 0
    second = changes(json_lines(capsys.readouterr().out))
    assert (ids[0], "exit", None) in second
    assert not set(second) & set(first)


async def test_watch_needs_something_to_watch(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["watch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: watch needs session ids") and err.count("\n") == 1


async def test_a_foreign_state_file_is_refused(server: FakeDevinServer,
                                               capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    state = tmp_path / "mine.json"
    state.write_text('{"precious": true}')
    assert await amain(["watch", "--tag", "t", "--state", str(state)]) == 2
    assert "is not a devin-async watch state file" in capsys.readouterr().err
    assert state.read_text() == '{"precious": true}'


async def _read_until(proc: asyncio.subprocess.Process, lines: list[dict[str, Any]],
                      done: Any) -> None:
    assert proc.stdout is not None
    while not done(lines):
        raw = await proc.stdout.readline()
        if not raw:
            return
        lines.append(json.loads(raw))


async def test_state_survives_sigkill(server: FakeDevinServer, tmp_path: Path) -> None:
    ids = server.add_sessions(3, tags=["daemon"])
    for sid in ids:
        server.script([("running", "working", 0.0)], session_id=sid)
    state = tmp_path / "d.state.json"
    env = {**os.environ, "DEVIN_API_KEY": server.api_key, "DEVIN_ORG_ID": server.org_id,
           "DEVIN_BASE_URL": server.url, "PYTHONPATH": str(Path(__file__).parent.parent)}
    argv = [sys.executable, "-m", "devin_async", "watch", "--tag", "daemon", "--forever",
            "--state", str(state), "--json", *FAST]

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*argv, env=env,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)

    first: list[dict[str, Any]] = []
    proc = await start()
    try:
        async with asyncio.timeout(20):
            await _read_until(proc, first, lambda got: len(changes(got)) >= 3)
            await asyncio.sleep(0.3)  # idle: a few quiet cycles, the checkpoint written
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL and state.exists()
    assert {s for s, _, _ in changes(first)} == set(ids)
    # While nothing runs, two sessions change; the rerun reports exactly those.
    server.set_status(ids[0], "exit")
    server.set_status(ids[2], "error", "error")
    second: list[dict[str, Any]] = []
    proc = await start()
    try:
        async with asyncio.timeout(20):
            await _read_until(proc, second, lambda got: len(changes(got)) >= 2)
        assert proc.stdout is not None
        with pytest.raises(TimeoutError):  # nothing more comes: nothing is repeated
            await asyncio.wait_for(proc.stdout.readline(), 0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert sorted(changes(second)) == sorted([(ids[0], "exit", None),
                                              (ids[2], "error", "error")])
