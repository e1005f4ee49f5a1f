"""Test helpers shared by the suite: one fake clock, one scripted org, one threaded server.

- `FakeClock`: a monotonic clock whose `sleep` advances time at once (and yields to the loop),
  recording `.sleeps`. `stuck=True` makes every sleep hang (to cancel a sleeper); `alarm(at)`
  gives an Event set once time reaches `at`; `FakeClock(instant=False)` is virtual time:
  sleepers wait on timers and `run(*aws)` moves time to the next timer only when all are idle
  (for tests of concurrent senders, whose sleeps must overlap, not add up).
- `StubOrg`: a scripted organization that implements `Transport` itself (no socket): sessions
  follow timelines on the fake clock, creates are kept with their tags, lists filter by ids, tags
  and `updated_after`, and scripted faults answer first. Plugged in with `transport=`, so the
  client's real engine, decision table, limiter and decoding run.
- `ThreadedServer`: a `FakeDevinServer` on its own loop in a thread (for the CLI's own
  `asyncio.run`, and so the test loop's `all_tasks()` holds nothing but the client's).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

from devin_async import APITimeoutError, DevinClient, PollPolicy
from devin_async._models import TOKEN_TAG_PREFIX
from devin_async._transport import HTTPRequest, HTTPResponse
from devin_async.testing import FakeDevinServer, MockTransport

if TYPE_CHECKING:
    import pytest

T = TypeVar("T")
BASE = "https://api.devin.ai/v3beta1/organizations/org-test"
KEY = "cog_TESTKEYdistinctive9f3Q"
EPOCH = 1_764_288_000
Step = tuple[float, str, "str | None"]
#: A poll cadence without jitter: 1, 2, 4, 8, 8, ... seconds.
STILL = PollPolicy(initial=1.0, max=8.0, multiplier=2.0, jitter=0.0)
JSON = {"content-type": "application/json"}


class FakeClock:
    """A monotonic clock whose sleep advances time instantly (and yields to the loop)."""

    def __init__(self, start: float = 1000.0, *, stuck: bool = False,
                 instant: bool = True) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.stuck = stuck
        self.instant = instant
        self.alarms: list[tuple[float, asyncio.Event]] = []
        self.timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self.seq = 0

    def __call__(self) -> float:
        return self.now

    def alarm(self, at: float) -> asyncio.Event:
        """Return an Event set once the clock reaches `at`."""
        event = asyncio.Event()
        self.alarms.append((at, event))
        return event

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.stuck:
            await asyncio.Event().wait()
        if not self.instant:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self.timers, (self.now + max(0.0, seconds), self.seq, fut))
            self.seq += 1
            await fut
            return
        self.now += max(0.0, seconds)
        for at, event in self.alarms:
            if self.now >= at:
                event.set()
        await asyncio.sleep(0)

    async def run(self, *aws: Awaitable[T]) -> list[T]:
        """Run the awaitables to the end, moving time only when nothing else can run."""
        tasks = [asyncio.ensure_future(a) for a in aws]
        try:
            while not all(t.done() for t in tasks):
                for _ in range(8):
                    await asyncio.sleep(0)
                while self.timers and self.timers[0][2].done():
                    heapq.heappop(self.timers)
                if self.timers and not all(t.done() for t in tasks):
                    when, _, fut = heapq.heappop(self.timers)
                    self.now = max(self.now, when)
                    fut.set_result(None)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [t.result() for t in tasks]


def session_json(session_id: str = "devin-abc123", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id[6:]}",
        "status": "new",
        "tags": [],
        "org_id": "org-test",
        "created_at": 1764288000,
        "updated_at": 1764288000,
        "acus_consumed": 0,
        "pull_requests": [],
        "title": None,
        "user_id": None,
        "is_archived": False,
    }
    data.update(fields)
    return data


# -- requests as a test sees them --------------------------------------------------------------

class Call(NamedTuple):
    """One request the stub got: the path below the organization, the query and the JSON body."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    json: Any
    headers: dict[str, str]

    @property
    def query(self) -> dict[str, str]:
        return dict(self.params)


def parse_call(request: HTTPRequest, org: str = "org-test") -> Call:
    """Split an `HTTPRequest` into path-below-the-org, query pairs and decoded body."""
    parts = urlsplit(request.url)
    path = parts.path
    marker = f"/organizations/{org}"
    if marker in path:
        path = path.split(marker, 1)[1]
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    body = json.loads(request.body) if request.body else None
    return Call(request.method, path, params, body, dict(request.headers))


def reply(status: int = 200, data: Any = None, headers: dict[str, str] | None = None,
          body: bytes | None = None) -> HTTPResponse:
    """An `HTTPResponse` with a JSON body (or `body` as given)."""
    raw = body if body is not None else json.dumps(data if data is not None else {}).encode()
    return HTTPResponse(status, {**JSON, **(headers or {})}, raw)


def mock(handler: Callable[[Call], HTTPResponse | Awaitable[HTTPResponse]]) -> MockTransport:
    """A MockTransport whose handler sees each request as a `Call`."""
    def adapt(request: HTTPRequest) -> HTTPResponse | Awaitable[HTTPResponse]:
        return handler(parse_call(request))

    return MockTransport(adapt)


def answering(*answers: HTTPResponse | BaseException) -> MockTransport:
    """A MockTransport answering each request with the next answer (the last one repeats)."""
    queue = list(answers)

    def handler(request: HTTPRequest) -> HTTPResponse:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return MockTransport(handler)


# -- the scripted org --------------------------------------------------------------------------

class Fault(NamedTuple):
    method: str | None  # None: the next request of any method
    status: int
    headers: dict[str, str]
    body: bytes
    error: BaseException | None
    after: bool  # act first (the server did it), then fail with `error`/`status`


class StubOrg:
    """Sessions whose status follows a timeline on the fake clock; faults answer first.

    Implements `Transport`. Serves POST /sessions (create, tags kept), GET /sessions
    (session_ids, tags, updated_after, first, after), GET and DELETE /sessions/{id}.
    `index_lag`: a created session shows in lists only that many seconds later (a lagging
    list index). `gate`: while set to an unset Event, every request hangs (up to its real-time
    timeout). `silent`: every request gets no answer; its timeout passes on the fake clock.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timelines: dict[str, list[tuple[float, str, str | None]]] = {}
        self.tags: dict[str, list[str]] = {}
        self.born: dict[str, float] = {}
        self.faults: deque[Fault | None] = deque()
        self.requests: list[Call] = []
        self.timeouts: list[float] = []
        self.sent_at: list[float] = []  # the fake clock at each request
        self.gate: asyncio.Event | None = None
        self.silent = False
        self.ok_headers: dict[str, str] = {}  # sent with every successful answer
        self.index_lag = 0.0
        self.closed = False

    # -- scripting

    def add(self, sid: str, *steps: Step, tags: Iterable[str] = ()) -> str:
        """Give `sid` a timeline; each step's `at` counts from now."""
        now = self.clock.now
        steps = steps or ((0, "new", None),)
        self.timelines[sid] = [(now + at, status, detail) for at, status, detail in steps]
        self.tags[sid] = list(tags)
        self.born[sid] = now - self.index_lag - 1  # listed at once
        return sid

    def then(self, sid: str, status: str, detail: str | None = None, at: float = 0.0) -> None:
        """Append a change `at` seconds from now."""
        self.timelines[sid].append((self.clock.now + at, status, detail))

    def fail(self, times: int = 1, status: int = 503, *, retry_after: float | None = None,
             body: bytes | None = None, error: BaseException | None = None,
             method: str | None = None, after: bool = False,
             headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests (of `method`) with `status` (or raise `error`)."""
        sent = dict(headers or {})
        if retry_after is not None:
            sent["Retry-After"] = f"{retry_after:g}"
        payload = body if body is not None else json.dumps({"detail": "stub failure"}).encode()
        for _ in range(times):
            self.faults.append(Fault(method, status, sent, payload, error, after))

    def answer(self, times: int = 1) -> None:
        """Let the next `times` requests (after the queued faults) through."""
        self.faults.extend([None] * times)

    def render(self, sid: str) -> dict[str, Any]:
        timeline = self.timelines[sid]
        steps = [s for s in timeline if s[0] <= self.clock.now] or timeline[:1]
        at, status, detail = steps[-1]
        return session_json(sid, status=status, status_detail=detail, tags=self.tags[sid],
                            updated_at=EPOCH + int(at), created_at=EPOCH + int(self.born[sid]))

    @property
    def lists(self) -> list[Call]:
        return [r for r in self.requests if r.path == "/sessions" and r.method == "GET"]

    @property
    def creates(self) -> list[Call]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/sessions"]

    @property
    def tokens(self) -> list[str]:
        """Client tokens on the sessions (a repeat is a duplicate create)."""
        return [t for tags in self.tags.values() for t in tags if t.startswith(TOKEN_TAG_PREFIX)]

    @property
    def terminated(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.requests if r.method == "DELETE"]

    # -- Transport

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        call = parse_call(request)
        self.requests.append(call)
        self.timeouts.append(timeout)
        self.sent_at.append(self.clock.now)
        await asyncio.sleep(0)  # connecting / writing
        if self.silent:  # no answer: the attempt's timeout passes on the fake clock
            await self.clock.sleep(timeout)
            raise APITimeoutError(f"no answer in {timeout:g} s", method=call.method,
                                  path=call.path, sent=True)
        if self.gate is not None:
            async with asyncio.timeout(timeout):  # real time: the gate is the test's
                await self.gate.wait()
        await asyncio.sleep(0)  # waiting for the answer
        fault = None
        if self.faults and (self.faults[0] is None or self.faults[0].method in (None, call.method)):
            fault = self.faults.popleft()
        if fault is not None and not fault.after:
            if fault.error is not None:
                raise fault.error
            return HTTPResponse(fault.status, {**JSON, **fault.headers}, fault.body)
        status, data = self._serve(call)
        if fault is not None:  # acted; the answer is lost or garbled
            if fault.error is not None:
                raise fault.error
            return HTTPResponse(fault.status, {**JSON, **fault.headers}, fault.body)
        return HTTPResponse(status, {**JSON, **self.ok_headers}, json.dumps(data).encode())

    async def aclose(self) -> None:
        self.closed = True

    def _serve(self, call: Call) -> tuple[int, Any]:
        if call.path == "/sessions" and call.method == "POST":
            sid = f"devin-{len(self.timelines):04d}"
            self.timelines[sid] = [(self.clock.now, "new", None)]
            self.tags[sid] = list(call.json.get("tags") or [])
            self.born[sid] = self.clock.now
            return 200, self.render(sid)
        if call.path == "/sessions":
            return 200, self._list(call.query)
        sid = call.path.split("/")[2]
        if sid not in self.timelines:
            return 404, {"detail": f"Session {sid} not found"}
        if call.method == "DELETE":
            self.then(sid, "exit")
        return 200, self.render(sid)

    def _list(self, params: dict[str, str]) -> dict[str, Any]:
        now = self.clock.now
        wanted = params["session_ids"].split(",") if "session_ids" in params else list(
            self.timelines)
        since = int(params.get("updated_after", 0))
        tag = params.get("tags")
        items = [self.render(s) for s in wanted if s in self.timelines
                 and self.born[s] + self.index_lag <= now
                 and (tag is None or tag in self.tags[s])]
        items = [i for i in items if i["updated_at"] >= since]
        start, first = int(params.get("after", 0)), int(params.get("first", 100))
        page = items[start : start + first]
        more = start + first < len(items)
        return {"items": page, "end_cursor": str(start + first) if more else None,
                "has_next_page": more}


def stub_client(clock: FakeClock, org: StubOrg, **kw: Any) -> DevinClient:
    """A client on `org` and `clock` (no socket, no real sleep)."""
    kw.setdefault("poll", STILL)
    return DevinClient(KEY, org_id="org-test", transport=org, clock=clock, sleep=clock.sleep,
                       **kw)


# -- a fake server in a thread -----------------------------------------------------------------

class ThreadedServer:
    """A FakeDevinServer on its own event loop in a thread.

    `call(fn, ...)` runs `fn` on the server's loop (the server is not thread-safe) and returns
    its result; `run(coro)` awaits a coroutine there.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: FakeDevinServer | None = None

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self._server = self.call(FakeDevinServer, **self.options)
        self.run(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    @property
    def server(self) -> FakeDevinServer:
        assert self._server is not None
        return self._server

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            return fn(*args, **kwargs)

        return self.run(run())

    do = call

    def client(self, **options: Any) -> DevinClient:
        server = self.server
        return DevinClient(server.api_key, org_id=server.org_id, base_url=server.url, **options)

    def tokens(self) -> list[str]:
        """Client tokens on the server's sessions (a repeat is a duplicate create)."""
        return self.call(lambda: [t for s in self.server.sessions.values() for t in s["tags"]
                                  if t.startswith(TOKEN_TAG_PREFIX)])


# -- the CLI's fake server ---------------------------------------------------------------------

@contextlib.asynccontextmanager
async def cli_fake(monkeypatch: pytest.MonkeyPatch, *, seed: int,
                   clock: Callable[[], float] | None = None) -> AsyncIterator[FakeDevinServer]:
    """Run a FakeDevinServer (time scale 20) that the CLI finds through its environment."""
    async with FakeDevinServer(time_scale=20.0, seed=seed, clock=clock) as fake:
        monkeypatch.setenv("DEVIN_API_KEY", fake.api_key)
        monkeypatch.setenv("DEVIN_ORG_ID", fake.org_id)
        monkeypatch.setenv("DEVIN_BASE_URL", fake.url)
        yield fake


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse the CLI's `--json` output: one object per non-empty line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
