"""The harness of the hostile fault matrix (tests/test_fault_matrix_hostile*.py).

One `Rig` per cell: a FakeDevinServer whose clock *is* the client's FakeClock (so an index lag
or a stale replica passes while the client sleeps, instantly), served in process behind a
`MockTransport` whose handler may replace any answer (`Hostile`: request, endpoint, n-th
request to that endpoint -> an answer, or None to let the fake server answer). Every request is
counted per endpoint; `waited` is the fake time a call took. Nothing touches a socket.

`run(op, ...)` runs one operation the way the first matrix does (get, list, create, poll,
create_many, watch) and returns what it produced or the DevinError it raised.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs

from devin_async import (
    BatchResult,
    DevinClient,
    DevinError,
    PollPolicy,
    RetryPolicy,
    Session,
    Timeouts,
    Watcher,
)
from devin_async._models import TOKEN_TAG_PREFIX
from devin_async._transport import HTTPRequest, HTTPResponse
from devin_async.testing import FakeDevinServer, MockTransport

from .fault_matrix_support import ONE_CALL, batch_of_three, one_call
from .helpers import FakeClock

Op = Literal["get", "list", "create", "poll", "create_many", "watch"]
OPS: tuple[Op, ...] = ("get", "list", "create", "poll", "create_many", "watch")
Answer = HTTPResponse | Awaitable["HTTPResponse | None"] | None
Hostile = Callable[["Rig", HTTPRequest, str, int], Answer]
JSON = {"content-type": "application/json"}
#: The target session: running at once, finished 2 s later, exit at 4 s (fake seconds).
SCRIPT = [("running", "working", 0.0), ("running", "finished", 2.0), ("exit", None, 4.0)]
#: Poll and watch cadence: 1, 2, 2, ... fake seconds, no jitter.
POLL = PollPolicy(initial=1.0, max=2.0, multiplier=2.0, jitter=0.0)
RETRY = RetryPolicy(jitter=False)


def answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> HTTPResponse:
    """Return an HTTPResponse with a JSON body (bytes as is)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTPResponse(status, {**JSON, **(headers or {})}, data)


def endpoint(request: HTTPRequest) -> str:
    """Name a request by the endpoint it calls: create, list, get, terminate or other."""
    path = urlsplit(request.url).path
    tail = path.split("/sessions", 1)[1] if "/sessions" in path else None
    if tail == "":
        return "create" if request.method == "POST" else "list"
    if tail and tail.count("/") == 1:
        return {"GET": "get", "DELETE": "terminate"}.get(request.method, "other")
    return "other"


def query(request: HTTPRequest) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


class Rig:
    """A fake org on the client's fake clock, behind a hostile MockTransport."""

    def __init__(self, hostile: Hostile | None = None, *, retry: RetryPolicy = RETRY,
                 timeouts: Timeouts | None = None, poll: PollPolicy = POLL,
                 server: Mapping[str, Any] | None = None) -> None:
        self.clock = FakeClock()
        self.server = FakeDevinServer(clock=self.clock, **{"seed": 3, **(server or {})})
        (self.sid,) = self.server.add_sessions(1, status="new")
        self.server.script(SCRIPT, session_id=self.sid)
        self.hostile = hostile
        self.inner = self.server.transport()
        self.counts: Counter[str] = Counter()
        self.events: list[Any] = []  # hook events (ResponseEvent, RetryEvent)
        self.enough = asyncio.Event()
        self.enough_after: tuple[Any, int] | None = None
        self.batch: list[BatchResult] = []  # the last create_many's results, by index
        self.watcher: Watcher | None = None  # the last watcher run
        self.transport = MockTransport(self._handle)
        self.client = DevinClient(
            self.server.api_key, org_id=self.server.org_id, base_url="https://fake.invalid",
            transport=self.transport, clock=self.clock, sleep=self.clock.sleep, retry=retry,
            timeouts=timeouts, poll=poll, on_response=self.events.append,
            on_retry=self.events.append)

    async def _handle(self, request: HTTPRequest) -> HTTPResponse:
        name = endpoint(request)
        self.counts[name] += 1
        if self.enough_after is not None and self.enough_after[0].stats.cycles > \
                self.enough_after[1]:
            self.enough.set()  # a watcher that would go on forever: stop it
        if self.hostile is not None:
            replaced = self.hostile(self, request, name, self.counts[name])
            if inspect.isawaitable(replaced):
                replaced = await replaced
            if replaced is not None:
                return replaced
        return await self.inner.send(request, timeout=self.transport.timeouts[-1])

    def live_tokens(self) -> Counter[str]:
        """Client tokens on sessions that still run (a count of 2 is a live duplicate)."""
        return Counter(t for s in self.server.sessions.values() for t in s["tags"]
                       if t.startswith(TOKEN_TAG_PREFIX) and s["status"] not in ("exit", "error"))

    def made(self) -> int:
        """Sessions created through the API (any state)."""
        return self.server.session_count - 1


async def run(op: Op, rig: Rig, *, watch_cycles: int = 40) -> Any:
    """Run one operation; return its result (poll/watch: the states seen) or its DevinError."""
    client, sid = rig.client, rig.sid
    try:
        if op in ONE_CALL:
            return await one_call(op, client, sid)
        if op == "poll":
            return [s async for s in client.sessions.poll(sid, until=Session.is_terminal,
                                                          timeout=600)]
        if op == "watch":
            return await watch(rig, watch_cycles)
        results = rig.batch = await batch_of_three(client)
        first = results[0]
        return first.error if first.error is not None else first.session
    except DevinError as exc:
        return exc


async def watch(rig: Rig, cycles: int) -> list[Session]:
    """Watch the target until it ends, or stop the watcher after `cycles` cycles."""
    seen: list[Session] = []
    watcher = rig.client.watch([rig.sid], until=Session.is_terminal)
    rig.watcher = watcher

    async def consume() -> None:
        async with watcher:
            async for event in watcher:
                seen.append(event.session)

    task = asyncio.ensure_future(consume())
    rig.enough_after = (watcher, cycles)
    enough = asyncio.ensure_future(rig.enough.wait())
    await asyncio.wait([task, enough], return_when=asyncio.FIRST_COMPLETED)
    enough.cancel()
    if not task.done():
        rig.stopped = True  # type: ignore[attr-defined]
        await watcher.aclose()
    await task
    return seen


@attrs.frozen
class Want:
    """What a cell must show.

    error: the exact error class (None: success); attrs: that error's attributes.
    counts: endpoint -> requests (exact; `loose` endpoints are not checked).
    made / live: sessions created through the API, and live ones per token (creates only).
    waited: (low, high) fake seconds the call took.
    states: for poll/watch, the (status, detail) sequence seen.
    """

    error: type[BaseException] | None = None
    attrs: Mapping[str, Any] = attrs.field(factory=dict)
    counts: Mapping[str, int] | None = None
    loose: frozenset[str] = frozenset()
    made: int | None = None
    waited: tuple[float, float] | None = None
    states: list[tuple[str, str | None]] | None = None
    duplicates: int = 0  # live sessions sharing a token (only a documented limit has any)


@attrs.frozen
class Scenario:
    """How a cell's org misbehaves, the client's settings, and a follow-up call (`then`)."""

    hostile: Hostile | None = None
    server: Mapping[str, Any] = attrs.field(factory=dict)
    retry: RetryPolicy = RETRY
    timeouts: Timeouts | None = None
    then: Op | None = None  # run right after on the same client: must succeed without waiting

    def rig(self) -> Rig:
        return Rig(self.hostile, retry=self.retry, timeouts=self.timeouts, server=self.server)


async def run_cell(scenario: Scenario, op: Op, want: Want) -> tuple[Rig, Any]:
    """Run one cell (and its follow-up) and check it; return the rig and the result."""
    rig = scenario.rig()
    async with rig.client:
        start = rig.clock.now
        result = await run(op, rig)
        waited = rig.clock.now - start
        if scenario.then is not None:
            before = rig.clock.now
            after = await run(scenario.then, rig)
            assert not isinstance(after, BaseException), repr(after)
            assert rig.clock.now == before, "the follow-up call was held"
    check(want, result, rig, waited)
    return rig, result


def check(want: Want, result: Any, rig: Rig, waited: float) -> None:
    """Assert a cell's outcome."""
    if want.error is None:
        assert not isinstance(result, BaseException), repr(result)
    else:
        assert type(result) is want.error, repr(result)
        for name, value in want.attrs.items():
            assert getattr(result, name) == value, (name, getattr(result, name))
    if want.counts is not None:
        seen = {k: v for k, v in rig.counts.items() if k not in want.loose}
        assert seen == dict(want.counts), seen
    if want.made is not None:
        assert rig.made() == want.made
        live = rig.live_tokens()
        assert sum(n - 1 for n in live.values()) == want.duplicates, live
    if want.waited is not None:
        low, high = want.waited
        assert low - 1e-6 <= waited <= high + 1e-6, waited
    if want.states is not None:
        assert isinstance(result, list)
        assert [s.state for s in result] == want.states


def check_monotonic(sessions: list[Session]) -> None:
    """No session is reported older than before, nor final twice."""
    stamps = [s.updated_at for s in sessions]
    assert stamps == sorted(stamps), [(s.state, s.updated_at) for s in sessions]
    assert sum(s.is_terminal for s in sessions) <= 1
