"""A scripted organization behind a stub `Transport`, and a fake clock, for the watch tests.

`Org` serves GET /sessions (session_ids, tags, created_after, updated_after, first, after) and
GET /sessions/{id} from sessions whose status follows a timeline on the test's `Clock`. A session
exists from its first step on (created later = invisible before). Every request is logged with
the watcher cycle it belongs to (`org.cycle` is set by the test), so tests count requests per
cycle. Only the public API is used: `DevinClient(transport=..., clock=..., sleep=...)`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from devin_async import DevinClient, HTTPRequest, HTTPResponse, PollPolicy, SessionEvent
from devin_async.testing import MockTransport

EPOCH = 1_764_288_000
KEY = "cog_WATCHTESTKEYq7Zp"
ORG = "org-watch"
STEADY = PollPolicy(initial=1.0, max=1.0, multiplier=1.0, jitter=0.0)
JSON = {"content-type": "application/json"}
Step = tuple[float, str, "str | None"]
#: Where a session is on its timeline: the current step, visible children, last change's time.
Now = tuple[Step, list[str], float]


class Clock:
    """A monotonic clock whose sleep advances time at once (and yields to the loop)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@attrs.define
class Stub:
    steps: list[tuple[float, str, str | None]]
    tags: list[str]
    parent: str | None = None
    children: list[str] | None = None


class Org:
    """Sessions on timelines; a stub transport's handler (`org.transport`)."""

    def __init__(self, clock: Clock, *, org_id: str = ORG, epoch: int = EPOCH) -> None:
        self.clock = clock
        self.epoch = epoch  # server time (Unix seconds) at clock 0
        self.org_id = org_id
        self.stubs: dict[str, Stub] = {}
        self.log: list[tuple[int, str, dict[str, str]]] = []  # (cycle, path, query)
        self.targets: list[int] = []
        self.cycle: Callable[[], int] = lambda: 0
        self.faults: deque[HTTPResponse] = deque()
        self.give_total = False
        self.stale: dict[str, dict[str, Any]] = {}  # answered once instead of the session
        self.cursor_cycle = False  # every listing page points back to the first page

    # -- scripting --------------------------------------------------------------------------

    def add(self, sid: str, *steps: tuple[float, str, str | None], tags: tuple[str, ...] = (),
            parent: str | None = None) -> str:
        """Give `sid` a timeline (each step's time counts from now); it exists from step 1."""
        now = self.clock.now
        self.stubs[sid] = Stub([(now + at, s, d) for at, s, d in steps], list(tags), parent)
        if parent is not None:
            self.stubs[parent].children = [*(self.stubs[parent].children or []), sid]
        return sid

    def then(self, sid: str, status: str, detail: str | None = None, at: float = 0.0) -> None:
        self.stubs[sid].steps.append((self.clock.now + at, status, detail))

    def render(self, sid: str) -> dict[str, Any] | None:
        found = self._now_of(sid)
        return None if found is None else self._render(sid, *found)

    def _now_of(self, sid: str) -> Now | None:
        """Return the step `sid` is at now, its visible children and its last change's time."""
        stub = self.stubs[sid]
        now = self.clock.now
        current = None
        for step in stub.steps:  # the last step in list order that has begun
            if step[0] <= now:
                current = step
        if current is None:
            return None
        kids = [k for k in stub.children or () if self.render_exists(k)]
        # A child appearing changes the parent's child_session_ids, so its updated_at too.
        at = max([current[0], *(self.stubs[k].steps[0][0] for k in kids)])
        return current, kids, at

    def _render(self, sid: str, current: Step, kids: list[str], at: float) -> dict[str, Any]:
        stub = self.stubs[sid]
        _, status, detail = current
        return {
            "session_id": sid, "url": f"https://app.devin.ai/sessions/{sid}", "status": status,
            "status_detail": detail, "tags": stub.tags, "org_id": self.org_id,
            "created_at": self.epoch + int(stub.steps[0][0]),
            "updated_at": self.epoch + int(at),
            "acus_consumed": 0, "pull_requests": [], "parent_session_id": stub.parent,
            "child_session_ids": kids or None,
        }

    def render_exists(self, sid: str) -> bool:
        return self.stubs[sid].steps[0][0] <= self.clock.now

    # -- observation ------------------------------------------------------------------------

    def per_cycle(self) -> Counter[int]:
        """Requests per watcher cycle."""
        return Counter(cycle for cycle, _, _ in self.log)

    def listings(self, cycle: int | None = None) -> list[dict[str, str]]:
        return [q for c, p, q in self.log if p.endswith("/sessions")
                and (cycle is None or c == cycle)]

    # -- the transport ----------------------------------------------------------------------

    def handler(self, request: HTTPRequest) -> HTTPResponse:
        url = urlsplit(request.url)
        query = dict(parse_qsl(url.query))
        self.log.append((self.cycle(), url.path, query))
        self.targets.append(len(url.path) + 1 + len(url.query))  # the request-target length
        if self.faults:
            return self.faults.popleft()
        prefix = f"/v3beta1/organizations/{self.org_id}/sessions"
        if url.path == prefix:
            return self._answer(200, self._list(query))
        sid = url.path.rsplit("/", 1)[-1]
        data = self.render(sid) if sid in self.stubs else None
        if data is None:
            return self._answer(404, {"detail": f"Session {sid} not found"})
        return self._answer(200, data)

    @staticmethod
    def _answer(status: int, data: Any) -> HTTPResponse:
        return HTTPResponse(status, JSON, json.dumps(data).encode())

    def _list(self, q: dict[str, str]) -> dict[str, Any]:
        ids = q["session_ids"].split(",") if "session_ids" in q else list(self.stubs)
        tags = set(q["tags"].split(",")) if "tags" in q else set()
        since = int(q.get("updated_after", 0))
        created = int(q.get("created_after", 0))
        items = []
        for sid in ids:
            if sid not in self.stubs or not tags.issubset(self.stubs[sid].tags):
                continue
            data = self.stale.pop(sid, None)
            if data is None:
                found = self._now_of(sid)
                # A listing of the whole org mostly skips quiet sessions: check the stamps
                # before building the session (the same test follows on the built one).
                if found is None or self.epoch + int(found[2]) < since or (
                        self.epoch + int(self.stubs[sid].steps[0][0]) < created):
                    continue
                data = self._render(sid, *found)
            if data["updated_at"] >= since and data["created_at"] >= created:
                items.append(data)
        items.sort(key=lambda d: (d["created_at"], d["session_id"]))
        start, first = int(q.get("after", "0")), int(q["first"])
        more = start + first < len(items)
        cursor = str(first) if self.cursor_cycle and start else str(start + first)
        page: dict[str, Any] = {"items": items[start : start + first],
                                "end_cursor": cursor if more else None, "has_next_page": more}
        if self.give_total:
            page["total"] = len(items)
        return page


def make_client(clock: Clock, org: Org, *, policy: PollPolicy = STEADY, **kw: Any) -> DevinClient:
    return DevinClient(KEY, org_id=org.org_id, transport=MockTransport(org.handler), clock=clock,
                       sleep=clock.sleep, poll=policy, **kw)


def state(event: SessionEvent) -> tuple[str, str | None]:
    s = event.session
    return (s.status.value, None if s.status_detail is None else s.status_detail.value)


def by_session(events: list[SessionEvent]) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = {}
    for e in events:
        out.setdefault(e.session.session_id, []).append(state(e))
    return out
