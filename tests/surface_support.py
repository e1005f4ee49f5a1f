"""Helpers of the client-surface tests: a fake clock, a routing `MockTransport` handler, JSON
samples, and `Timeline`, a scripted session whose events and messages appear as fake time passes.

Every test built on these is bounded twice: the clock refuses to run past `FakeClock.limit`
seconds of fake time, and a `Router` refuses more than `limit` requests (both raise
AssertionError, which no layer of the SDK swallows).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devin_async import DevinClient, HTTPRequest, HTTPResponse, PollPolicy, RetryPolicy
from devin_async.testing import MockTransport

API_KEY = "cog_SurfaceKey7f3a9c1e5b2d8c4a6f0e9d7b"
ORG = "org-surface"
BASE_URL = "https://api.devin.test"
PREFIX = f"{BASE_URL}/v3beta1/organizations/{ORG}"
SID = "devin-0a1b2c3d4e5f"
EPOCH = 1_764_500_000
#: A cadence without jitter, so waits can be asserted exactly.
POLL = PollPolicy(initial=1.0, max=4.0, multiplier=2.0, jitter=0.0)
#: Retries without jitter, short backoff.
RETRY = RetryPolicy(initial_backoff=0.5, max_backoff=1.0, jitter=False, max_retry_after=5.0)

Answer = HTTPResponse | dict[str, Any] | list[Any] | None


class FakeClock:
    """A monotonic clock whose sleep advances time at once (and yields to the loop)."""

    def __init__(self, start: float = 1000.0, *, limit: float = 100_000.0) -> None:
        self.t = start
        self.start = start
        self.limit = limit
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    @property
    def elapsed(self) -> float:
        return self.t - self.start

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        assert self.t - self.start <= self.limit, "fake time ran past the test's bound"
        await asyncio.sleep(0)


def reply(status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None,
          ) -> HTTPResponse:
    """Return a JSON answer (`body` None: an empty body)."""
    raw = b"" if body is None else json.dumps(body).encode()
    return HTTPResponse(status, {"content-type": "application/json", **(headers or {})}, raw)


def session_json(sid: str = SID, status: str = "running", detail: str | None = "working",
                 **fields: Any) -> dict[str, Any]:
    """Return a SessionResponse body."""
    data: dict[str, Any] = {
        "session_id": sid, "url": f"https://app.devin.ai/sessions/{sid[6:]}", "status": status,
        "status_detail": detail, "tags": [], "org_id": ORG, "created_at": EPOCH,
        "updated_at": EPOCH, "acus_consumed": 0, "pull_requests": [], "title": None,
        "user_id": None, "is_archived": False,
    }
    data.update(fields)
    return data


def insights_json(sid: str = SID, analysis: dict[str, Any] | None = None,
                  **fields: Any) -> dict[str, Any]:
    """Return a SessionInsights body."""
    return {**session_json(sid, "exit", None), "num_devin_messages": 2, "num_user_messages": 1,
            "session_size": "s", "analysis": analysis, **fields}


def event_json(n: int, *, at: int | None = None, category: str = "shell",
               event_type: str = "command", direction: str = "outgoing") -> dict[str, Any]:
    """Return an event summary numbered `n`."""
    return {"event_id": f"ev-{n:04d}", "event_type": event_type, "category": category,
            "direction": direction, "created_at": EPOCH + (n if at is None else at),
            "summary": f"event {n}"}


def message_json(n: int, *, source: str = "devin", text: str | None = None,
                 at: int | None = None) -> dict[str, Any]:
    """Return a message numbered `n`."""
    return {"event_id": f"msg-{n:04d}", "created_at": EPOCH + (n if at is None else at),
            "message": text or f"message {n}", "source": source}


def page(items: list[Any], cursor: str | None = None, more: bool = False) -> dict[str, Any]:
    """Return a cursor page body."""
    return {"items": items, "end_cursor": cursor, "has_next_page": more}


def path_of(request: HTTPRequest) -> str:
    """Return the path of a request below the organization (or the whole path elsewhere)."""
    parts = urlsplit(request.url)
    prefix = urlsplit(PREFIX).path
    if request.url.startswith(PREFIX):
        return parts.path[len(prefix):]
    return parts.path


def query_of(request: HTTPRequest) -> list[tuple[str, str]]:
    """Return the decoded query pairs of a request, in order."""
    return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)


def body_of(request: HTTPRequest) -> Any:
    """Return the decoded JSON body of a request."""
    return json.loads(request.body)


def header(request: HTTPRequest, name: str) -> str | None:
    """Return a request header, case-insensitively."""
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


Route = Callable[[HTTPRequest, "re.Match[str]"], Answer]


class Router:
    """A MockTransport handler: routes (method, path regex below the org) to functions.

    A route's function gets the request and the match and returns an `HTTPResponse`, or a
    JSON value (a 200). Unrouted requests get a 404. More than `limit` requests fail the test.
    """

    def __init__(self, *, limit: int = 400) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []
        self.limit = limit
        self.count = 0
        self._waiters: list[tuple[int, asyncio.Event]] = []

    def after(self, count: int) -> asyncio.Event:
        """Return an event set once `count` requests have come in."""
        event = asyncio.Event()
        self._waiters.append((count, event))
        return event

    def add(self, method: str, pattern: str, fn: Route) -> Router:
        self.routes.append((method, re.compile(pattern), fn))
        return self

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        self.count += 1
        assert self.count <= self.limit, "the client sent more requests than the test allows"
        for count, event in self._waiters:
            if self.count >= count:
                event.set()
        path = path_of(request)
        for method, pattern, fn in self.routes:
            match = pattern.fullmatch(path)
            if method == request.method and match is not None:
                answer = fn(request, match)
                return answer if isinstance(answer, HTTPResponse) else reply(200, answer)
        return reply(404, {"detail": f"no route for {request.method} {path}"})


def make_client(handler: Any, clock: FakeClock | None = None, **kw: Any,
                ) -> tuple[DevinClient, MockTransport]:
    """Return a client on a MockTransport of `handler` (fake clock, no-jitter policies)."""
    clock = clock or FakeClock()
    transport = MockTransport(handler)
    options: dict[str, Any] = {"poll": POLL, "retry": RETRY, "tracing": False}
    options.update(kw)
    client = DevinClient(api_key=API_KEY, org_id=ORG, base_url=BASE_URL, transport=transport,
                         clock=clock, sleep=clock.sleep, **options)
    return client, transport


class Timeline:
    """A scripted session: items appear at fake times; the session ends at `end`.

    `items` are `(at, json)` with `at` in seconds since the clock's start. Pages hold at most
    `first` items; the cursor of a page is the index of the next item (`c<n>`). With
    `last_cursor=False` the last page carries no `end_cursor` (the follower must re-read from
    the cursor before it and skip what it has). `hint` (or a callable of the read number) adds
    a Retry-After to 2xx list answers.
    """

    def __init__(self, clock: FakeClock, items: list[tuple[float, dict[str, Any]]], *,
                 end: float, last_cursor: bool = True,
                 hint: float | Callable[[int], float | None] | None = None) -> None:
        self.clock = clock
        self.items = items
        self.end = end
        self.last_cursor = last_cursor
        self.hint = hint
        self.reads: list[tuple[float, str | None]] = []  # (time, cursor) of each list read
        self.status_reads: list[float] = []

    def visible(self) -> list[dict[str, Any]]:
        now = self.clock.elapsed
        return [item for at, item in sorted(self.items, key=lambda p: p[0]) if at <= now]

    def list_page(self, request: HTTPRequest, _match: re.Match[str]) -> HTTPResponse:
        query = dict(query_of(request))
        start = int(query["after"][1:]) if "after" in query else 0
        first = int(query.get("first", "100"))
        self.reads.append((self.clock.elapsed, query.get("after")))
        shown = self.visible()
        chunk = shown[start : start + first]
        nxt = start + len(chunk)
        more = nxt < len(shown)
        cursor = f"c{nxt}" if (more or self.last_cursor) else None
        hint = self.hint(len(self.reads)) if callable(self.hint) else self.hint
        headers = {} if hint is None else {"Retry-After": f"{hint:g}"}
        return reply(200, page(chunk, cursor, more), headers)

    def session(self, _request: HTTPRequest, match: re.Match[str]) -> dict[str, Any]:
        self.status_reads.append(self.clock.elapsed)
        done = self.clock.elapsed >= self.end
        return session_json(match.group(1), "exit" if done else "running",
                            None if done else "working")
