"""create_many: concurrency, laziness, one result per request, no duplicates, clean stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from devin_async import (
    APIConnectionError,
    APITimeoutError,
    BatchResult,
    CreateSessionRequest,
    CreateUnconfirmedError,
    DevinClient,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
)
from devin_async._fanout import CreateMany
from devin_async._models import TOKEN_TAG_PREFIX
from devin_async._transport import HTTPRequest, HTTPResponse
from devin_async.testing import FakeDevinServer

from .helpers import JSON, KEY, Call, FakeClock, parse_call, session_json

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01)


# -- a scripted transport ------------------------------------------------------------------

class StubApi:
    """A `Transport` for creates: a dict of sessions, creates and tag lookups, scripted faults.

    `create_faults` are taken one per create, in order: "conn_before" (refused, not sent),
    "drop_before" / "drop_after" (sent; lost before / after the server acted), "timeout_after",
    "500_before" / "500_after" / "502_after" / "504_after", "malformed_after", "429", "503";
    None answers normally. `list_faults` likewise for lookups: "500", "conn".
    """

    def __init__(self, *, latency: Callable[[], Any] | None = None) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.create_faults: list[str | None] = []
        self.list_faults: list[str | None] = []
        self.creates = 0
        self.lookups = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0
        self.hold: dict[str, asyncio.Event] = {}  # prompt -> gate the create waits for
        self.latency = latency
        self.sent_at: list[tuple[str, float]] = []
        self.clock: Callable[[], float] | None = None
        self.hint_ms = "20"

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        status, headers, body = await self._answer(parse_call(request))
        return HTTPResponse(status, {**JSON, **headers}, body)

    async def aclose(self) -> None:
        pass

    async def _answer(self, req: Call) -> tuple[int, dict[str, str], bytes]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.clock is not None:
                self.sent_at.append((req.method, self.clock()))
            if self.latency is not None:
                await self.latency()
            if req.method == "POST":
                return await self._create(req)
            return self._lookup(req)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def _create(self, req: Call) -> tuple[int, dict[str, str], bytes]:
        self.creates += 1
        body = req.json
        gate = self.hold.get(body["prompt"])
        if gate is not None:
            await gate.wait()
        fault = self.create_faults.pop(0) if self.create_faults else None
        if fault == "conn_before":
            raise APIConnectionError("refused", method="POST", path="/sessions", sent=False)
        if fault == "drop_before":
            raise APIConnectionError("reset", method="POST", path="/sessions", sent=True)
        if fault in ("500_before", "429", "503"):
            status = int(fault.split("_")[0])
            if self.clock is not None:
                self.sent_at.append((str(status), self.clock()))
            headers = {"retry-after-ms": self.hint_ms} if status in (429, 503) else {}
            return status, headers, b'{"detail": "no"}'
        if body["prompt"] == "server-refuses":
            return 422, {}, json.dumps({"detail": [{"loc": ["body", "prompt"],
                                                    "msg": "bad", "type": "value_error"}]}).encode()
        sid = f"devin-{len(self.sessions):06d}"
        data = session_json(sid, tags=body.get("tags", []), title=body["prompt"])
        self.sessions[sid] = data
        if fault == "drop_after":
            raise APIConnectionError("reset", method="POST", path="/sessions", sent=True)
        if fault == "timeout_after":
            raise APITimeoutError("slow", method="POST", path="/sessions", sent=True)
        if fault in ("500_after", "502_after", "504_after"):
            return int(fault[:3]), {}, b"upstream error"
        if fault == "malformed_after":
            return 200, {}, json.dumps(data).encode()[:20]
        return 200, {}, json.dumps(data).encode()

    def _lookup(self, req: Call) -> tuple[int, dict[str, str], bytes]:
        self.lookups += 1
        fault = self.list_faults.pop(0) if self.list_faults else None
        if fault == "conn":
            raise APIConnectionError("refused", method="GET", path="/sessions", sent=False)
        if fault == "500":
            return 500, {}, b'{"detail": "down"}'
        tag = req.query["tags"]
        items = [s for s in self.sessions.values() if tag in s["tags"]]
        return 200, {}, json.dumps({"items": items, "has_next_page": False}).encode()

    def prompts(self) -> list[str]:
        return sorted(s["title"] for s in self.sessions.values())


@pytest.fixture
def stub() -> StubApi:
    return StubApi()


@pytest.fixture
async def client(stub: StubApi, clock: FakeClock) -> AsyncIterator[DevinClient]:
    async with DevinClient(KEY, org_id="org-test", clock=clock, sleep=clock.sleep,
                           retry=FAST, transport=stub) as c:
        yield c


def many(client: DevinClient, requests: Any, **kw: Any) -> CreateMany:
    """Call the public create_many and return it as what it is (stop, aclose, async with)."""
    results = client.sessions.create_many(requests, **kw)
    assert isinstance(results, CreateMany)
    return results


def reqs(n: int, prefix: str = "task") -> list[dict[str, Any]]:
    return [{"prompt": f"{prefix} {i}"} for i in range(n)]


async def collect(results: AsyncIterator[BatchResult]) -> list[BatchResult]:
    return [r async for r in results]


def fanout_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "").startswith("_Batch.")}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class CountingSource:
    """A lazy request generator that counts how many requests were pulled from it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            self.pulled += 1
            yield {"prompt": f"lazy {i}"}


# -- arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "8", None])
async def test_bad_concurrency_fails_before_anything(client: DevinClient, stub: StubApi,
                                                     concurrency: Any) -> None:
    source = CountingSource(10)
    with pytest.raises(ValueError, match="concurrency"):
        client.sessions.create_many(source, concurrency=concurrency)
    assert source.pulled == 0 and stub.creates == 0 and not fanout_tasks()


@pytest.mark.parametrize("requests", [{"prompt": "one"}, "a prompt", b"x", 42,
                                      CreateSessionRequest("one")])
async def test_not_an_iterable_of_requests(client: DevinClient, requests: Any) -> None:
    with pytest.raises(ValueError, match="iterable"):
        client.sessions.create_many(requests)


# -- results -------------------------------------------------------------------------------

async def test_one_result_per_request_with_invalid_ones_failing_alone(
    client: DevinClient, stub: StubApi
) -> None:
    requests: list[Any] = [
        {"prompt": "fine 0"},
        {"prompt": ""},  # empty prompt
        CreateSessionRequest("fine 2", tags=["x"]),
        {"prompt": "analyze", "advanced_mode": "analyze"},  # needs session_links
        42,  # not a request at all
        {"title": "no prompt"},
        {"prompt": "server-refuses"},  # the server's own 422
        CreateSessionRequest("bad acu", max_acu_limit=0),
        {"prompt": "fine 8", "devin_mode": "fast"},
    ]
    results = await collect(client.sessions.create_many(requests, concurrency=3))
    assert sorted(r.index for r in results) == list(range(len(requests)))
    by_index = {r.index: r for r in results}
    for i, request in enumerate(requests):
        assert by_index[i].request is request  # what the caller gave, for correlation
    assert {i for i, r in by_index.items() if r.ok} == {0, 2, 8}
    for i in (1, 3, 4, 5, 7):
        assert isinstance(by_index[i].error, ValueError) and by_index[i].session is None
    assert isinstance(by_index[6].error, UnprocessableEntityError)
    assert stub.prompts() == ["fine 0", "fine 2", "fine 8"]
    assert by_index[2].session is not None and by_index[2].session.tags == ["x"]


async def test_async_iterable_and_request_objects(client: DevinClient, stub: StubApi) -> None:
    async def source() -> AsyncIterator[Any]:
        for i in range(20):
            await asyncio.sleep(0)
            yield CreateSessionRequest(f"async {i}") if i % 2 else {"prompt": f"async {i}"}

    results = await collect(client.sessions.create_many(source(), concurrency=4))
    assert len(results) == 20 and all(r.ok for r in results)
    assert stub.prompts() == sorted(f"async {i}" for i in range(20))
    tokens = {r.session.client_token for r in results if r.session}
    assert len(tokens) == 20  # one token per request, never shared


async def test_results_come_in_completion_order(client: DevinClient, stub: StubApi) -> None:
    stub.hold = {p: asyncio.Event() for p in ("a", "b", "c")}
    it = client.sessions.create_many([{"prompt": p} for p in "abc"], concurrency=3)
    order = []
    for prompt in "cab":
        stub.hold[prompt].set()
        result = await anext(it)
        order.append(result.index)
    assert order == [2, 0, 1]
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    with pytest.raises(StopAsyncIteration):
        await anext(it)  # and stays ended


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_at_most_concurrency_in_flight(concurrency: int) -> None:
    async def latency() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    stub = StubApi(latency=latency)
    async with DevinClient(KEY, org_id="org-test", transport=stub) as client:
        results = await collect(client.sessions.create_many(reqs(40), concurrency=concurrency))
    assert len(results) == 40
    assert stub.max_in_flight == concurrency


async def test_empty_input(client: DevinClient) -> None:
    assert await collect(client.sessions.create_many([])) == []


async def test_a_failing_source_ends_after_what_was_pulled(client: DevinClient) -> None:
    def source() -> Iterator[dict[str, Any]]:
        yield from reqs(3)
        raise RuntimeError("the input file is broken")

    got: list[BatchResult] = []
    with pytest.raises(RuntimeError, match="broken"):
        async for result in client.sessions.create_many(source(), concurrency=2):
            got.append(result)
    assert sorted(r.index for r in got) == [0, 1, 2] and all(r.ok for r in got)
    assert not fanout_tasks()


# -- laziness ------------------------------------------------------------------------------

async def test_pulls_only_when_a_worker_is_free(client: DevinClient) -> None:
    source = CountingSource(100_000)
    seen = 0
    async with many(client, source, concurrency=4) as results:
        assert source.pulled == 0  # nothing before iteration starts
        async for _ in results:
            seen += 1
            await settle()  # a slow consumer: workers may run ahead, but only so far
            assert source.pulled <= seen + 2 * 4
            if seen == 25:
                break
    await settle()
    pulled = source.pulled
    await settle()
    assert source.pulled == pulled <= 25 + 2 * 4
    assert not fanout_tasks()


# -- stopping ------------------------------------------------------------------------------

async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def _started(stub: StubApi, n: int) -> None:
    await until(lambda: stub.in_flight >= n)


def hold_after(stub: StubApi, done: int) -> None:
    """Let the first `done` creates through; hold every later one until cancelled."""
    never = asyncio.Event()
    stub.hold = {f"task {i}": never for i in range(done, 1000)}


async def test_cancelling_the_consumer_cancels_in_flight_creates(client: DevinClient,
                                                                 stub: StubApi) -> None:
    hold_after(stub, 5)
    source = iter(reqs(1000))
    got: list[BatchResult] = []

    async def consume() -> None:
        async for result in client.sessions.create_many(source, concurrency=4):
            got.append(result)

    task = asyncio.create_task(consume())
    await until(lambda: len(got) >= 5)
    await _started(stub, 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not fanout_tasks()  # the workers were awaited before the cancellation surfaced
    assert stub.cancelled == 4 and stub.in_flight == 0
    rest = len(list(source))
    assert rest >= 1000 - 5 - 4 - 2 * 4  # nothing more was pulled


async def test_break_stops_new_creates(client: DevinClient, stub: StubApi) -> None:
    hold_after(stub, 3)
    source = CountingSource(1000)
    async for result in client.sessions.create_many(source, concurrency=4):
        assert result.ok
        break
    await settle()
    assert not fanout_tasks() and stub.in_flight == 0
    creates, pulled = stub.creates, source.pulled
    await settle()
    assert (stub.creates, source.pulled) == (creates, pulled)


@pytest.mark.parametrize("how", ["aclose", "async with"])
async def test_aclose_cancels_in_flight_and_ends(client: DevinClient, stub: StubApi,
                                                 how: str) -> None:
    hold_after(stub, 2)
    results = many(client, reqs(50), concurrency=4)
    if how == "aclose":
        first = await anext(results)
        await _started(stub, 4)
        await results.aclose()
    else:
        async with results:
            first = await anext(results)
            await _started(stub, 4)
    assert first.ok
    assert not fanout_tasks() and stub.cancelled == 4
    with pytest.raises(StopAsyncIteration):
        await anext(results)
    await results.aclose()  # twice is fine


async def test_stop_reports_what_is_in_flight_then_ends(client: DevinClient,
                                                        stub: StubApi) -> None:
    gate = asyncio.Event()
    source = CountingSource(100)
    stub.hold = {f"lazy {i}": gate for i in range(100)}
    results = many(client, source, concurrency=3)
    pending = asyncio.ensure_future(anext(results))
    await _started(stub, 3)
    results.stop()
    gate.set()
    rest = [await pending, *await collect(results)]
    assert sorted(r.index for r in rest) == [0, 1, 2] and all(r.ok for r in rest)
    assert source.pulled == 3 and stub.creates == 3


async def test_closing_before_starting_starts_nothing(client: DevinClient,
                                                      stub: StubApi) -> None:
    source = CountingSource(10)
    results = many(client, source)
    await results.aclose()
    assert await collect(results) == []
    assert source.pulled == 0 and stub.creates == 0


# -- lost responses and the duplicate guard ------------------------------------------------

#: Look-ups per faulted create: 0 (plain retry), 1 (found at once), or None: not found, so it
#: keeps looking through the settling window, resends, then checks once for a duplicate.
@pytest.mark.parametrize(("fault", "lookups"), [
    ("conn_before", 0),  # never sent: a plain retry
    ("drop_before", None),  # sent, not acted on: looked up, not found, sent again
    ("drop_after", 1),  # acted, answer lost: looked up, found
    ("timeout_after", 1),
    ("500_before", None),
    ("500_after", 1),
    ("502_after", 1),
    ("504_after", 1),
    ("malformed_after", 1),
    ("429", 0),  # not acted on: retried after the hint
    ("503", 0),
])
async def test_lost_responses_never_duplicate(client: DevinClient, stub: StubApi, fault: str,
                                              lookups: int | None) -> None:
    stub.create_faults = [fault, None, fault]
    results = await collect(client.sessions.create_many(reqs(6), concurrency=2))
    assert len(results) == 6 and all(r.ok for r in results), [r.error for r in results]
    assert stub.prompts() == sorted(f"task {i}" for i in range(6))  # one session each
    if lookups is None:  # two faulted creates, each: >= 2 looks in the window + 1 check
        assert stub.lookups >= 2 * 3 and stub.creates == 6 + 2
    else:
        assert stub.lookups == 2 * lookups
    for result in results:
        assert result.session is not None and result.session.client_token
        assert result.session.title == f"task {result.index}"


@pytest.mark.parametrize("lookup_fault", ["500", "conn"])
async def test_failed_lookup_reports_the_token(client: DevinClient, stub: StubApi,
                                               lookup_fault: str) -> None:
    stub.create_faults = ["drop_after"]
    stub.list_faults = [lookup_fault] * 10
    results = await collect(client.sessions.create_many(reqs(3), concurrency=1))
    errors = [r for r in results if r.error is not None]
    assert len(errors) == 1 and sum(r.ok for r in results) == 2
    error = errors[0].error
    assert isinstance(error, CreateUnconfirmedError)
    made = [s for s in stub.sessions.values() if s["title"] == f"task {errors[0].index}"]
    assert len(made) == 1 and TOKEN_TAG_PREFIX + error.client_token in made[0]["tags"]
    assert error.tag in str(error)


# -- the shared limiter --------------------------------------------------------------------

async def test_a_429_pauses_every_worker(stub: StubApi) -> None:
    vt = FakeClock(0.0, instant=False)

    async def latency() -> None:
        await vt.sleep(0.01)

    stub.latency = latency
    stub.clock = vt
    stub.create_faults = [None, "429"]
    stub.hint_ms = "2000"
    async with DevinClient(KEY, org_id="org-test", clock=vt, sleep=vt.sleep,
                           transport=stub) as client:
        (results,) = await vt.run(collect(client.sessions.create_many(reqs(12), concurrency=4)))
    assert len(results) == 12 and all(r.ok for r in results)
    assert [t for _, t in stub.sent_at[:4]] == [0.0] * 4  # the first wave left together
    throttled = next(i for i, (what, _) in enumerate(stub.sent_at) if what == "429")
    at = stub.sent_at[throttled][1]
    later = [t for what, t in stub.sent_at[throttled + 1:] if what == "POST"]
    assert len(later) >= 8 and all(t >= at + 2.0 for t in later)  # all waited out the hint


def spend_budget(client: DevinClient, *, leave: int) -> None:
    """Draw the retry budget down to `leave` tokens through the limiter's public methods."""
    while client.limiter.retry_tokens > leave:
        assert client.limiter.allow_retry()
    assert client.limiter.retry_tokens == leave


async def test_budget_stops_an_outage_from_multiplying(client: DevinClient,
                                                       stub: StubApi) -> None:
    spend_budget(client, leave=50)
    stub.create_faults = ["503"] * 10_000
    results = await collect(client.sessions.create_many(reqs(40), concurrency=4))
    assert len(results) == 40
    assert all(isinstance(r.error, InternalServerError) for r in results)
    # 50 tokens, 5 a retry, each (non-throttle) answer refunds 1: without the budget, 40 x 4.
    assert stub.creates <= 40 + (50 + stub.creates) // 5 < 40 * 4


async def test_429_storm_without_budget_left_fails_fast(client: DevinClient,
                                                        stub: StubApi) -> None:
    spend_budget(client, leave=0)
    stub.create_faults = ["429"] * 3
    results = await collect(client.sessions.create_many(reqs(5), concurrency=1))
    assert sum(isinstance(r.error, RateLimitError) for r in results) == 3
    assert sum(r.ok for r in results) == 2


# -- against the fake server ---------------------------------------------------------------

@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:  # on the real clock: timing over a socket
    async with FakeDevinServer() as s:
        yield s


#: On a real socket and clock: a short settling window, so a lost create is not 10 s of waiting.
WIRE = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, settle=0.05)


def client_for(server: FakeDevinServer, **kw: Any) -> DevinClient:
    return DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id,
                       retry=WIRE, **kw)


def tokens_on(server: FakeDevinServer) -> list[str]:
    return [t for s in server.sessions.values() for t in s["tags"]
            if t.startswith(TOKEN_TAG_PREFIX)]


@pytest.mark.parametrize("fault", [
    dict(drop="before"), dict(drop="after"), dict(status=500), dict(status=502),
    dict(status=504), dict(status=503, retry_after_ms=20), dict(status=429, retry_after_ms=20),
    dict(malformed="truncated"), dict(malformed="html"),
])
async def test_faults_on_the_wire_make_exactly_one_session_each(server: FakeDevinServer,
                                                                fault: dict[str, Any]) -> None:
    server.inject("create", times=3, **fault)
    async with client_for(server) as client:
        results = await collect(client.sessions.create_many(reqs(8), concurrency=3))
    assert len(results) == 8 and all(r.ok for r in results), [r.error for r in results]
    assert server.session_count == 8
    tokens = tokens_on(server)
    assert len(tokens) == len(set(tokens)) == 8
    prompts = sorted(server.create_request(sid)["prompt"] for sid in server.sessions)
    assert prompts == sorted(f"task {i}" for i in range(8))
    assert {r.session.session_id for r in results if r.session} == set(server.sessions)


async def test_lookup_failure_on_the_wire(server: FakeDevinServer) -> None:
    server.inject("create", drop="after")
    server.inject("list", times=None, status=500)
    async with client_for(server) as client:
        results = await collect(client.sessions.create_many(reqs(1), concurrency=1))
    (result,) = results
    assert isinstance(result.error, CreateUnconfirmedError)
    assert tokens_on(server) == [TOKEN_TAG_PREFIX + result.error.client_token]


async def test_mixed_requests_on_the_wire(server: FakeDevinServer) -> None:
    requests: list[Any] = [{"prompt": "ok 0"}, {"prompt": "  "},
                           {"prompt": "bad platform", "extra_body": {"platform": 5}},
                           CreateSessionRequest("ok 3"), {"prompt": 7}]
    async with client_for(server) as client:
        results = await collect(client.sessions.create_many(requests))
    by_index = {r.index: r for r in results}
    assert len(by_index) == 5 and {i for i, r in by_index.items() if r.ok} == {0, 3}
    assert isinstance(by_index[2].error, UnprocessableEntityError)
    assert all(isinstance(by_index[i].error, ValueError) for i in (1, 4))
    assert server.session_count == 2


async def test_settles_under_a_server_rate_limit() -> None:
    async with FakeDevinServer(rate_limit=400) as server:
        async with client_for(server) as client:
            results = await collect(client.sessions.create_many(reqs(600), concurrency=8))
            throttles = client.limiter.throttles
        assert len(results) == 600 and all(r.ok for r in results)
        assert server.session_count == 600
        assert server.stats.get("rate_limited", 0) == throttles
        assert throttles <= 0.05 * 600


async def test_cancel_midway_on_the_wire(server: FakeDevinServer) -> None:
    server.inject("create", times=None, delay=0.3)
    async with client_for(server) as client:
        results = many(client, reqs(100), concurrency=4)
        task = asyncio.ensure_future(collect(results))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not fanout_tasks()
        assert results.pulled <= 4 + 2 * 4


async def test_a_throttle_outlasting_the_retries_fails_that_create(client: DevinClient,
                                                                  stub: StubApi) -> None:
    # More 429s in a row than one create's retry policy allows: max_attempts holds (no
    # re-queueing beyond the call's retries); the next creates take the rest and succeed.
    attempts = client.retry.max_attempts
    stub.create_faults = ["429"] * (attempts + 2)
    results = await collect(client.sessions.create_many(reqs(3), concurrency=1))
    assert [r.ok for r in results] == [False, True, True]
    assert isinstance(results[0].error, RateLimitError)
    assert stub.creates == attempts + 2 + 2
