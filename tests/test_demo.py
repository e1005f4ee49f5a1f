"""`devin-async demo`: the whole flow against the in-process fake server, quickly."""

from __future__ import annotations

import json
import time

import pytest

from devin_async._cli import amain
from devin_async._cli._demo import plan_demo


async def test_demo_runs_as_designed(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert await amain(["demo", "--sessions", "6", "--time-scale", "100"]) == 0
    assert time.monotonic() - started < 5
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0].startswith("Fake Devin at http://127.0.0.1:")
    header = next(i for i, line in enumerate(lines) if line.startswith("#  TITLE"))
    table = lines[header + 1 : header + 7]
    assert [row.split()[1] for row in table] == [f"demo-{i:02d}" for i in range(1, 7)]
    assert sum(row.split()[3] == "error" for row in table) == 1
    assert sum("not created" in row for row in table) == 1
    assert "demo-06 not created: ValueError: session_links is required" in captured.out
    assert lines[-1].startswith("6 requested · 5 created · 1 not created · 1 ended in error · ")
    assert "2 rate-limited (429, retried)" in lines[-1]


async def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["demo", "--sessions", "3", "--time-scale", "200", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    records = [json.loads(line) for line in out.splitlines()]
    *rows, summary = records
    assert [r["title"] for r in rows] == ["demo-01", "demo-02", "demo-03"]
    assert summary["summary"] is True
    assert summary["requested"] == 3 and summary["created"] == 2 and summary["not_created"] == 1
    assert all(r["settled_in"] is not None for r in rows if r["session_id"])


@pytest.mark.parametrize(
    ("n", "invalid", "errors", "throttled"),
    [(1, None, 0, 1), (2, 1, 0, 1), (3, 2, 1, 1), (6, 5, 1, 2), (20, 6, 2, 3), (100, 6, 10, 3)],
)
def test_plan(n: int, invalid: int | None, errors: int, throttled: int) -> None:
    plan = plan_demo(n)
    assert len(plan.requests) == n
    assert (plan.invalid, plan.errors, plan.throttled, plan.lost) == (invalid, errors, throttled, 1)
