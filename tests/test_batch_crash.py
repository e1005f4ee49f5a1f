"""A real crash: a process running create_many(batch_key=) killed with SIGKILL, then rerun.

The fake server (FakeDevinServer, time_scale 60) and the batch runners are separate processes
talking over loopback; the test reads what the server holds (straight from its store, through a
pipe, so a lagging list index does not blur the count) and kills the runner mid-batch. Variants:
a clean server, 20 % of creates losing their answer after the server acted, a list index 1 s
behind writes.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devin_async._create import token_for_key

from .batch_support import ServerProcess, live_tokens

N = 300
KEY = "crash-batch"
BOUND = 20.0  # seconds any one step may take


@pytest.fixture(params=[(0.0, 0.0), (0.2, 0.0), (0.0, 1.0)],
                ids=["clean", "20pct-answers-lost", "1s-index-lag"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    drop_rate, lag = request.param
    proc = ServerProcess(drop_rate=drop_rate, lag=lag)
    try:
        yield proc
    finally:
        proc.close()


def _finish(runner: Any) -> dict[str, int]:
    out, err = runner.communicate(timeout=BOUND)
    assert runner.returncode == 0, err[-2000:]
    counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return counts


def _one_live_session_per_index(sessions: list[dict[str, Any]], n: int) -> None:
    tokens = collections.Counter(live_tokens(sessions))
    assert sorted(tokens.values()) == [1] * n
    assert set(tokens) == {"devin-async-token:" + token_for_key(f"{KEY}/{i}") for i in range(n)}


def test_sigkill_mid_batch_then_rerun_makes_exactly_n(server: ServerProcess) -> None:
    runner = server.runner(N, KEY)
    start = time.monotonic()
    while len(server.sessions()) < 100:
        assert runner.poll() is None, "the batch ended before it could be killed"
        assert time.monotonic() - start < BOUND
        time.sleep(0.02)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=BOUND)
    at_kill = len(server.sessions())
    assert 100 <= at_kill < N

    counts = _finish(server.runner(N, KEY))

    sessions = server.sessions()
    _one_live_session_per_index(sessions, N)
    assert counts["errors"] == 0
    assert counts["existing"] + counts["created"] == N
    if server.lag:  # the rerun's listing missed the last second's creates: made again (how
        # many depends on how fast the rerun starts), then the newer copies terminated
        assert len(sessions) - N == counts["superseded"]
    else:
        assert len(sessions) == N  # no index was ever created twice
        assert counts["existing"] >= at_kill  # all the killed run made, lost answers included
    assert time.monotonic() - start < BOUND


def test_two_processes_running_one_batch_leave_no_surviving_duplicate(
        server: ServerProcess) -> None:
    n = 200
    one, two = server.runner(n, KEY), server.runner(n, KEY)
    counts = [_finish(one), _finish(two)]
    sessions = server.sessions()
    _one_live_session_per_index(sessions, n)
    assert all(c["errors"] == 0 and c["existing"] + c["created"] == n for c in counts)
    terminated = len(sessions) - n
    assert sum(1 for s in sessions if s["status"] == "exit") == terminated
