"""`StubOrg`: a scripted transport for polling and watcher tests, with its fixtures.

Sessions follow timelines on the test's fake clock (the `clock` fixture each test module
defines); faults answer first. It is plugged in at `client._send`, so the client's real retry
loop, limiter and decoding run. Test modules import `org` and `client` to use the fixtures.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devin_async import DevinClient, PollPolicy
from devin_async._protocol import Request

from .helpers import KEY, FakeClock, session_json

EPOCH = 1_764_288_000
Step = tuple[float, str, "str | None"]
STILL = PollPolicy(initial=1.0, max=8.0, multiplier=2.0, jitter=0.0)


class StubOrg:
    """Sessions whose status follows a timeline on the fake clock; faults answer first.

    Serves GET /sessions/{id} and GET /sessions (session_ids, updated_after, first, after).
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timelines: dict[str, list[tuple[float, str, str | None]]] = {}
        self.faults: deque[Any] = deque()
        self.requests: list[Request] = []
        self.gate: asyncio.Event | None = None  # while set to an unset Event, requests hang
        self.ok_headers: dict[str, str] = {}  # sent with every successful answer

    def add(self, sid: str, *steps: Step) -> str:
        """Give `sid` a timeline; each step's `at` counts from now."""
        now = self.clock.now
        self.timelines[sid] = [(now + at, status, detail) for at, status, detail in steps]
        return sid

    def then(self, sid: str, status: str, detail: str | None = None, at: float = 0.0) -> None:
        """Append a change `at` seconds from now."""
        self.timelines[sid].append((self.clock.now + at, status, detail))

    def fail(
        self,
        times: int = 1,
        status: int = 503,
        *,
        retry_after: float | None = None,
        body: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Answer the next `times` requests with `status` (or raise `error`)."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        payload = body if body is not None else json.dumps({"detail": "stub failure"}).encode()
        for _ in range(times):
            self.faults.append(error if error is not None else (status, headers, payload))

    def answer(self, times: int = 1) -> None:
        """Let the next `times` requests (after the queued faults) through."""
        self.faults.extend([None] * times)

    def render(self, sid: str) -> dict[str, Any]:
        timeline = self.timelines[sid]
        steps = [s for s in timeline if s[0] <= self.clock.now] or timeline[:1]
        at, status, detail = steps[-1]
        return session_json(
            sid, status=status, status_detail=detail, updated_at=EPOCH + int(at), created_at=EPOCH
        )

    @property
    def lists(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/sessions"]

    async def send(self, req: Request, timeout: object) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(req)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        fault = self.faults.popleft() if self.faults else None
        if isinstance(fault, BaseException):
            raise fault
        if fault is not None:
            return fault  # type: ignore[no-any-return]
        if req.path == "/sessions":
            return 200, self.ok_headers, json.dumps(self._list(dict(req.params))).encode()
        sid = req.path.rsplit("/", 1)[-1]
        if sid not in self.timelines:
            return 404, {}, json.dumps({"detail": f"Session {sid} not found"}).encode()
        return 200, self.ok_headers, json.dumps(self.render(sid)).encode()

    def _list(self, params: dict[str, str]) -> dict[str, Any]:
        wanted = params["session_ids"].split(",")
        since = int(params.get("updated_after", 0))
        items = [self.render(s) for s in wanted if s in self.timelines]
        items = [i for i in items if i["updated_at"] >= since]
        start, first = int(params.get("after", 0)), int(params["first"])
        page = items[start : start + first]
        more = start + first < len(items)
        return {
            "items": page,
            "end_cursor": str(start + first) if more else None,
            "has_next_page": more,
        }


def make_client(clock: FakeClock, org: StubOrg, **kw: Any) -> DevinClient:
    client = DevinClient(KEY, org_id="org-test", clock=clock, sleep=clock.sleep, **kw)
    client._send = org.send  # type: ignore[method-assign]
    return client


@pytest.fixture
def org(clock: FakeClock) -> StubOrg:
    return StubOrg(clock)


@pytest.fixture
async def client(clock: FakeClock, org: StubOrg) -> AsyncIterator[DevinClient]:
    async with make_client(clock, org, poll=STILL) as c:
        yield c
