"""Resuming a crashed batch: `python -m benchmarks.bench_resume`.

A 1,000-request `create_many(batch_key=...)` of which 600 were created by an earlier run (the
same batch key, the first 600 requests) is run again on a fresh client, against a
FakeDevinServer in a child process (`benchmarks._server_proc.ServerProcess`). Figures:
- requests sent before the first new create (target <= ceil(600 / 200) + 1: the batch's one
  paged listing at 200 a page, then the missing index's token look-up), and the wall time until
  then;
- creates in the rerun (target exactly 400) and sessions on the server afterwards (exactly 1,000);
- the whole rerun's wall time and requests.
Loopback only; the run stops itself within 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from typing import Any

from devin_async import DevinClient, RequestEvent, RetryPolicy

from ._server_proc import ServerProcess

N = 1_000
DONE = 600
PAGE = 200
CONCURRENCY = 8
KEY = "bench-resume"
BUDGET = 60.0
TARGET = math.ceil(DONE / PAGE) + 1


def _requests() -> list[dict[str, Any]]:
    return [{"prompt": f"resume task {i}", "title": f"resume {i}"} for i in range(N)]


class Recorder:
    """An `on_request` hook: every request, and when the first create went out."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.requests = 0
        self.creates = 0
        self.before_first_create: int | None = None
        self.first_create_at: float | None = None

    def __call__(self, event: RequestEvent) -> None:
        if event.method == "POST" and event.path.endswith("/sessions"):
            if self.before_first_create is None:
                self.before_first_create = self.requests
                self.first_create_at = time.perf_counter() - self.started
            self.creates += 1
        self.requests += 1


def _client(server: ServerProcess, **hooks: Any) -> DevinClient:
    return DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id,
                       retry=RetryPolicy(settle=0.5), **hooks)


async def measure() -> dict[str, Any]:
    """Create 600 of the batch, then rerun all 1,000 on a new client; return what it took."""
    async with asyncio.timeout(BUDGET):
        with ServerProcess(sessions=0, seed=3) as server:
            async with _client(server) as client, client.sessions.create_many(
                    _requests()[:DONE], concurrency=CONCURRENCY, batch_key=KEY) as first:
                made = sum(1 for r in [r async for r in first] if r.ok)
            recorder = Recorder()
            async with _client(server, on_request=recorder) as client:
                recorder.started = time.perf_counter()
                async with client.sessions.create_many(
                        _requests(), concurrency=CONCURRENCY, batch_key=KEY) as rerun:
                    results = [r async for r in rerun]
                wall = time.perf_counter() - recorder.started
            stats = server.stats()
    return {"first_run": made, "recorder": recorder, "wall": wall, "stats": stats,
            "existing": sum(1 for r in results if r.existing),
            "errors": sum(1 for r in results if r.error is not None)}


Row = tuple[str, str, str, str]


def tables(run: dict[str, Any]) -> list[Row]:
    """The figures as rows: figure, value, target, result."""
    rec: Recorder = run["recorder"]
    before = rec.before_first_create if rec.before_first_create is not None else rec.requests
    sessions = run["stats"].get("sessions")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    return [
        ("requests before the first new create", str(before), f"<= {TARGET}",
         verdict(before <= TARGET)),
        ("time to the first new create",
         f"{1000 * (rec.first_create_at or 0.0):.1f} ms", "", ""),
        ("existing sessions reported", str(run["existing"]), str(DONE),
         verdict(run["existing"] == DONE)),
        ("creates in the rerun", str(rec.creates), str(N - DONE),
         verdict(rec.creates == N - DONE)),
        ("sessions on the server", str(sessions), str(N), verdict(sessions == N)),
        ("results with errors", str(run["errors"]), "0", verdict(run["errors"] == 0)),
        ("rerun: requests / wall time", f"{rec.requests} / {run['wall']:.2f} s", "", ""),
    ]


def run(*, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure for `python -m benchmarks`: (figures, raw results); `quick` changes nothing."""
    result = asyncio.run(measure())
    figures = [{"figure": f"resume: {figure}", "value": value, "target": target or "-",
                "ok": None if not verdict else verdict == "PASS", "detail": ""}
               for figure, value, target, verdict in tables(result)]
    rec: Recorder = result["recorder"]
    raw = {"wall": result["wall"], "requests": rec.requests, "creates": rec.creates,
           "before_first_create": rec.before_first_create,
           "first_create_at": rec.first_create_at, "server": result["stats"]}
    return figures, raw


def print_table(title: str, rows: list[Row]) -> None:
    header: Row = ("figure", "value", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(f"\n{title}")
    for n, r in enumerate([header, *rows]):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main() -> int:
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    result = asyncio.run(measure())
    rows = tables(result)
    print_table(f"resume a {N}-request batch with {DONE} done (concurrency {CONCURRENCY})", rows)
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
