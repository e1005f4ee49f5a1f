"""`devin-async demo`: the whole flow against the in-process fake server, quickly."""

from __future__ import annotations

import json
import time

import pytest

from devin_async._cli import amain
from devin_async._cli._demo import plan_demo


async def test_demo_runs_as_designed(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    started = time.monotonic()
    assert await amain(["demo", "--sessions", "6", "--time-scale", "100"]) == 0
    assert time.monotonic() - started < 5
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0].startswith("Fake Devin at http://127.0.0.1:")
    assert lines[2:4] == [
        "Staged on purpose: 1 invalid request, 1 session scripted to fail,",
        "  2 creates answered 429, 1 create whose answer is lost (the session is made).",
    ]
    assert max(len(line) for line in lines) <= 80  # ids truncated, never a column
    header = next(i for i, line in enumerate(lines) if line.startswith("#  TITLE"))
    assert lines[header].split() == ["#", "TITLE", "SESSION", "STATUS", "SETTLED", "IN"]
    table = lines[header + 1 : header + 7]
    assert [row.split()[1] for row in table] == [f"demo-{i:02d}" for i in range(1, 7)]
    assert sum("error (staged)" in row for row in table) == 1
    assert table[5].split()[2:] == ["-", "refused", "(staged)"]
    assert all(row.split()[2].startswith("devin-") for row in table[:5])
    staged = lines.index("Staged failures (on purpose), and how the SDK handled them:")
    assert lines[staged + 1].startswith(
        "  demo-06 refused before sending: ValueError: session_links is required")
    assert lines[staged + 2:staged + 5] == [
        "  1 session ended in error, as scripted",
        "  2 creates rate-limited (429), retried after the server's Retry-After",
        "  1 lost answer recovered, no duplicate (its client token found the session)",
    ]
    assert lines[-1].startswith("6 requested · 5 created · 1 refused · 1 ended in error · ")
    assert "retries" not in lines[-1] and "(s)" not in captured.out


async def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["demo", "--sessions", "3", "--time-scale", "200", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    records = [json.loads(line) for line in out.splitlines()]
    *rows, summary = records
    assert [r["title"] for r in rows] == ["demo-01", "demo-02", "demo-03"]
    assert [r["staged"] for r in rows if r["session_id"] is None] == [True]
    assert summary["summary"] is True
    assert summary["requested"] == 3 and summary["created"] == 2 and summary["not_created"] == 1
    assert summary["lost_recovered"] == 1
    assert all(r["settled_in"] is not None for r in rows if r["session_id"])


@pytest.mark.parametrize(
    ("n", "invalid", "errors", "throttled"),
    [(1, None, 0, 1), (2, 1, 0, 1), (3, 2, 1, 1), (6, 5, 1, 2), (20, 6, 2, 3), (100, 6, 10, 3)],
)
def test_plan(n: int, invalid: int | None, errors: int, throttled: int) -> None:
    plan = plan_demo(n)
    assert len(plan.requests) == n
    assert (plan.invalid, plan.errors, plan.throttled, plan.lost) == (invalid, errors, throttled, 1)
