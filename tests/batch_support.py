"""Support for the batch tests: a fake clock, a stub sessions API with a lagging list index.

`StubApi` is an in-memory org behind `MockTransport`: creates, listings by tag (every tag must
match, oldest first, cursor pages), terminates. Its list index shows a session only `lag`
seconds (on the injected clock) after it was created, as a real API's may. `lose` names the
creates (1-based, in arrival order) whose answer is lost after the server acted.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from devin_async import APIConnectionError, DevinClient, HTTPRequest, HTTPResponse, RetryPolicy
from devin_async.testing import MockTransport

KEY = "cog_BATCHtestKEY7h2K"
ORG = "org-batch"
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=False)
JSON = {"content-type": "application/json"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Clock:
    """A monotonic clock whose sleep advances time at once (and yields to the loop)."""

    def __init__(self, start: float = 1_764_288_000.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        self.slept += max(0.0, seconds)
        await asyncio.sleep(0)


class StubApi:
    """An in-memory sessions API; `counts` has create, listing, lookup, terminate requests."""

    def __init__(self, clock: Clock, *, lag: float = 0.0) -> None:
        self.clock = clock
        self.lag = lag
        self.sessions: dict[str, dict[str, Any]] = {}
        self.made_at: dict[str, float] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.lose: set[int] = set()
        self.gate: asyncio.Event | None = None  # when set up, creates act, then wait for it
        self.hold_from = 1  # ... from this create on (1-based)
        self.yields = 0  # a create yields to the loop this often before acting (a slow server)
        self.listing_statuses: list[int] = []  # the next batch listings answer these statuses
        self.order: list[str] = []  # kinds of requests, in arrival order
        self._waiters: list[tuple[int, asyncio.Event]] = []

    async def creates_reach(self, n: int) -> None:
        """Return once `n` creates have arrived."""
        if self.counts["create"] < n:
            event = asyncio.Event()
            self._waiters.append((n, event))
            await event.wait()

    def client(self, **options: Any) -> DevinClient:
        options.setdefault("retry", FAST)
        return DevinClient(api_key=KEY, org_id=ORG, transport=MockTransport(self.handle),
                           clock=self.clock, sleep=self.clock.sleep, **options)

    def live(self) -> list[dict[str, Any]]:
        return [s for s in self.sessions.values() if s["status"] != "exit"]

    def tokens(self) -> collections.Counter[str]:
        """Return token -> live sessions carrying it."""
        return collections.Counter(
            t for s in self.live() for t in s["tags"] if t.startswith("devin-async-token:"))

    async def handle(self, request: HTTPRequest) -> HTTPResponse:
        url = urllib.parse.urlsplit(request.url)
        path = url.path.split(f"/organizations/{ORG}", 1)[1]
        query = urllib.parse.parse_qs(url.query)
        if request.method == "POST" and path == "/sessions":
            return await self._create(json.loads(request.body or b"{}"))
        if request.method == "GET" and path == "/sessions":
            return self._list(query)
        if request.method == "DELETE" and path.startswith("/sessions/"):
            self._count("terminate")
            session = self.sessions[path.removeprefix("/sessions/")]
            session["status"] = "exit"
            return _answer(session)
        return HTTPResponse(404, JSON, b'{"detail": "Not Found"}')

    def _count(self, kind: str) -> None:
        self.counts[kind] += 1
        self.order.append(kind)

    async def _create(self, body: dict[str, Any]) -> HTTPResponse:
        self._count("create")
        number = self.counts["create"]
        for want, event in self._waiters:
            if number >= want:
                event.set()
        for _ in range(self.yields):
            await asyncio.sleep(0)
        sid = f"devin-{len(self.sessions):06d}"
        session = {"session_id": sid, "url": f"https://app.devin.ai/sessions/{sid}",
                   "status": "new", "tags": list(body.get("tags", [])), "org_id": ORG,
                   "created_at": int(self.clock()), "updated_at": int(self.clock()),
                   "acus_consumed": 0, "pull_requests": [], "title": body.get("title"),
                   "prompt": body["prompt"]}
        self.sessions[sid] = session
        self.made_at[sid] = self.clock()
        if self.gate is not None and number >= self.hold_from:
            await self.gate.wait()
        if number in self.lose:
            raise APIConnectionError("reset after the server acted", method="POST",
                                     path="/sessions", sent=True)
        return _answer(session)

    def _list(self, query: dict[str, list[str]]) -> HTTPResponse:
        tags = [t for value in query.get("tags", []) for t in value.split(",")]
        kind = "lookup" if any(t.startswith("devin-async-token:") for t in tags) else "listing"
        self._count(kind)
        if kind == "listing" and self.listing_statuses:
            status = self.listing_statuses.pop(0)
            return HTTPResponse(status, JSON, json.dumps({"detail": "no"}).encode())
        first = int(query["first"][0])
        start = int(query.get("after", ["0"])[0])
        now = self.clock()
        matching = [s for s in self.sessions.values()
                    if now - self.made_at[s["session_id"]] >= self.lag
                    and all(t in s["tags"] for t in tags)]
        page = matching[start:start + first]
        more = start + first < len(matching)
        body = {"items": page, "end_cursor": str(start + first) if more else None,
                "has_next_page": more, "total": len(matching)}
        return HTTPResponse(200, JSON, json.dumps(body).encode())


def _answer(session: dict[str, Any]) -> HTTPResponse:
    return HTTPResponse(200, JSON, json.dumps(session).encode())


def requests_of(n: int, prefix: str = "task") -> list[dict[str, Any]]:
    """Return n distinct create bodies (index i: prompt and title name i)."""
    return [{"prompt": f"{prefix} {i}", "title": f"{prefix} #{i}"} for i in range(n)]


# -- processes: a fake server and batch runners --------------------------------------------------

SERVER_SCRIPT = """
import asyncio, json, sys
from devin_async.testing import FakeDevinServer

async def main(drop_rate, lag):
    async with FakeDevinServer(time_scale=60.0, seed=7, index_lag=60.0 * lag) as server:
        if drop_rate:
            server.inject_random(drop_rate, kinds=["drop_after"], seed=11, endpoint="create")
        print(server.url, server.api_key, server.org_id, flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):  # a line: dump the truth
            print(json.dumps([{"status": s["status"], "tags": s["tags"]}
                              for s in server.sessions.values()]), flush=True)

asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))
"""

RUNNER_SCRIPT = """
import asyncio, json, sys
from devin_async import DevinClient, RetryPolicy

async def main(url, key, org, n, batch_key, settle):
    retry = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, settle=settle, max_attempts=6)
    async with DevinClient(api_key=key, org_id=org, base_url=url, retry=retry) as client:
        requests = [{"prompt": f"task {i}", "title": f"task #{i}"} for i in range(n)]
        counts = {"created": 0, "existing": 0, "errors": 0}
        async with client.sessions.create_many(requests, concurrency=16,
                                               batch_key=batch_key) as results:
            async for result in results:
                if result.error is not None:
                    counts["errors"] += 1
                    print("error", result.index, repr(result.error), file=sys.stderr)
                else:
                    counts["existing" if result.existing else "created"] += 1
            counts["superseded"] = len(results.superseded)
        print(json.dumps(counts), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5],
                 float(sys.argv[6])))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DEVIN_API_KEY", None)
    return env


class ServerProcess:
    """A FakeDevinServer in a subprocess: `drop_rate` of creates lose their answer after the
    server acted; its list index lags `lag` real seconds behind writes."""

    def __init__(self, drop_rate: float = 0.0, lag: float = 0.0) -> None:
        self.lag = lag
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(drop_rate), str(lag)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        assert self.proc.stdout is not None
        self.url, self.api_key, self.org_id = self.proc.stdout.readline().split()

    def sessions(self) -> list[dict[str, Any]]:
        """Return every session the server holds, as it is now (not through the lagging list)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        sessions: list[dict[str, Any]] = json.loads(self.proc.stdout.readline())
        return sessions

    def runner(self, n: int, batch_key: str) -> subprocess.Popen[str]:
        """Start a process running `create_many` of n requests with `batch_key`.

        Its `settle` outlasts the index lag, so its final duplicate check sees its own creates.
        """
        settle = 0.3 + 1.5 * self.lag
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER_SCRIPT, self.url, self.api_key, self.org_id, str(n),
             batch_key, str(settle)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_env(), cwd=ROOT)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def live_tokens(sessions: list[dict[str, Any]]) -> Iterator[str]:
    """Yield the client token of each live session."""
    for s in sessions:
        if s["status"] in ("exit", "error"):
            continue
        for tag in s["tags"]:
            if tag.startswith("devin-async-token:"):
                yield tag
