"""Cancellation at every await point, and the client's lifecycle around `aclose()`.

How "every await point" is reached: an operation runs as a task while the test steps the event
loop one iteration at a time (`await asyncio.sleep(0)`). A dry run counts the iterations N the
operation needs; then, for every k in 1..N, a fresh run is cancelled after k iterations, so the
cancellation lands on each suspension point in turn (the transport, the rate limiter, retry and
poll sleeps, the create's token lookup, the watcher's task group, create_many's workers).

Two transports:
- `StubOrg` (tests/helpers.py) is passed as the client's transport and yields to the loop twice
  per request (as a socket would): deterministic, so each k is a distinct await point. Faults
  are scripted so the retry, backoff and lookup paths are part of the walk.
- `FakeDevinServer` over a real loopback socket (one client reused across every k, which also
  proves it stays usable): checks that a cancelled request leaves no connection or task behind.

After every cancellation: no task is left (`asyncio.all_tasks() == {current}`); the client still
works; at the end `gc.collect()` finds nothing unclosed: the `loop_errors` fixture fails the test
on "Task was destroyed but it is pending" / "Unclosed client session", and pytest's
`filterwarnings = error` turns a ResourceWarning (also from `__del__`) into a failure.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from devin_async import (
    ClientClosedError,
    CreateUnconfirmedError,
    DevinClient,
    PollPolicy,
    RetryPolicy,
    Session,
)
from devin_async._aiohttp import AiohttpTransport

from .helpers import KEY, FakeClock, StubOrg, ThreadedServer, stub_client

T = TypeVar("T")
EPOCH = 1_764_288_000
POLICY = PollPolicy(initial=1.0, max=4.0, multiplier=2.0, jitter=0.0)
# A 1 s settling window: the create's look-ups and duplicate check are walked, in fewer steps.
RETRY = RetryPolicy(initial_backoff=0.5, max_backoff=2.0, jitter=False, settle=1.0)
Timeline = list[tuple[float, str, "str | None"]]
SCRIPT: Timeline = [
    (0, "new", None),
    (2, "claimed", None),
    (5, "running", "working"),
    (20, "running", "finished"),
]


# -- the loop's own complaints ---------------------------------------------------------------

@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Collect what the loop reports (pending tasks destroyed, unclosed sessions); must be none."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
        gc.collect()
        await asyncio.sleep(0)
        assert [c.get("message") for c in seen] == []
    finally:
        loop.set_exception_handler(previous)


def pooled(client: DevinClient) -> aiohttp.ClientSession | None:
    """The aiohttp session of a client on the default transport (None before any request)."""
    transport = client.transport
    assert isinstance(transport, AiohttpTransport)
    return transport.session


def assert_nothing_left() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- the operations, each with the faults that make it walk its slow paths -------------------

Operation = Callable[[DevinClient, StubOrg], Coroutine[Any, Any, Any]]


async def op_create(client: DevinClient, org: StubOrg) -> Any:
    org.fail(1, 429, method="POST")  # retried
    org.fail(1, 500, method="POST")  # then ambiguous: lookup, resend
    return (await client.sessions.create("cancel me")).state


async def op_poll(client: DevinClient, org: StubOrg) -> Any:
    sid = org.add("devin-poll", *SCRIPT)
    org.fail(1, 503, method="GET")
    return [s.state async for s in client.sessions.poll(sid)]


async def op_wait(client: DevinClient, org: StubOrg) -> Any:
    sid = org.add("devin-wait", *SCRIPT)
    org.fail(1, 502, method="GET")
    return (await client.sessions.wait(sid, timeout=600)).state


WATCH_SCRIPT: Timeline = [(0, "claimed", None), (2, "running", "working"),
                          (6, "running", "finished")]


async def op_watch(client: DevinClient, org: StubOrg) -> Any:
    # 201 sessions: two list requests per cycle, run by the watcher's task group.
    ids = [org.add(f"devin-w{i:03d}", *WATCH_SCRIPT[i % 2:]) for i in range(201)]
    org.fail(1, 503, method="GET")
    return len([e async for e in client.watch(ids)])


async def op_create_many(client: DevinClient, org: StubOrg) -> Any:
    org.fail(1, 502, method="POST")
    org.fail(1, 429, method="POST")
    results = [r async for r in client.sessions.create_many(
        [{"prompt": f"task {i}"} for i in range(6)], concurrency=3)]
    assert all(r.ok for r in results), [r.error for r in results]
    return len(results)


OPERATIONS: dict[str, Operation] = {
    "create": op_create,
    "poll": op_poll,
    "wait": op_wait,
    "watch": op_watch,
    "create_many": op_create_many,
}


async def steps_to_finish(task: asyncio.Task[Any]) -> int:
    """Step the loop until `task` is done; return how many iterations that took."""
    steps = 0
    while not task.done():
        await asyncio.sleep(0)
        steps += 1
    task.result()
    return steps


async def cancel_after(task: asyncio.Task[Any], steps: int) -> bool:
    """Let `task` run `steps` loop iterations, cancel it; return whether it was cancelled."""
    for _ in range(steps):
        if task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


@pytest.mark.parametrize("name", OPERATIONS)
async def test_cancel_at_every_await_point(name: str) -> None:
    operation = OPERATIONS[name]
    clock = FakeClock()
    org = StubOrg(clock)
    async with stub_client(clock, org, poll=POLICY, retry=RETRY) as client:
        expected = await operation(client, org)
        clock = FakeClock()
        org = StubOrg(clock)
    async with stub_client(clock, org, poll=POLICY, retry=RETRY) as client:
        total = await steps_to_finish(asyncio.create_task(operation(client, org)))
    assert total > 5

    cancelled = 0
    for k in range(1, total + 1):
        clock = FakeClock()
        org = StubOrg(clock)
        async with stub_client(clock, org, poll=POLICY, retry=RETRY) as client:
            cancelled += await cancel_after(asyncio.create_task(operation(client, org)), k)
            assert_nothing_left()
            if name in ("create", "create_many"):  # a cancelled create never duplicates
                assert len(org.tokens) == len(set(org.tokens))
            org.faults.clear()
            if k % 10 == 1:  # still usable: the whole operation again
                org.timelines.clear()
                assert await operation(client, org) == expected
            else:  # still usable: one request
                assert (await client.sessions.get(org.add("devin-after", *SCRIPT))).session_id
            assert_nothing_left()
    assert cancelled >= total - 1  # every k before the end interrupted it


# -- over a real socket ----------------------------------------------------------------------

@pytest.fixture
def remote() -> Iterator[ThreadedServer]:
    with ThreadedServer(seed=5, time_scale=200.0) as thread:
        yield thread


WireOperation = Callable[[DevinClient, ThreadedServer], Coroutine[Any, Any, Any]]
#: SCRIPT, 20 times faster, as the fake server takes it (at 200x: 5 ms of real time).
SERVER_SCRIPT = [(status, detail, at / 20) for at, status, detail in SCRIPT]


def scripted(remote: ThreadedServer, n: int) -> list[str]:
    def seed() -> list[str]:
        ids = remote.server.add_sessions(n, status="new")
        for sid in ids:
            remote.server.script(SERVER_SCRIPT, session_id=sid)
        return ids

    return remote.call(seed)


async def wire_create(client: DevinClient, remote: ThreadedServer) -> Any:
    remote.call(remote.server.inject, "create", status=500)
    return (await client.sessions.create("cancel me")).state


async def wire_poll(client: DevinClient, remote: ThreadedServer) -> Any:
    (sid,) = scripted(remote, 1)
    return [s.state async for s in client.sessions.poll(sid)][-1]


async def wire_wait(client: DevinClient, remote: ThreadedServer) -> Any:
    (sid,) = scripted(remote, 1)
    remote.call(remote.server.inject, "get", status=503)
    return (await client.sessions.wait(sid, timeout=30)).state


async def wire_watch(client: DevinClient, remote: ThreadedServer) -> Any:
    ids = scripted(remote, 201)
    async with client.watch(ids) as watcher:
        async for _ in watcher:
            pass
    return sorted({s.state for s in watcher.sessions.values()})


async def wire_create_many(client: DevinClient, remote: ThreadedServer) -> Any:
    remote.call(remote.server.inject, "create", drop="after")
    results = [r async for r in client.sessions.create_many(
        [{"prompt": f"task {i}"} for i in range(6)], concurrency=3)]
    return sorted(r.ok for r in results)


WIRE: dict[str, WireOperation] = {
    "create": wire_create,
    "poll": wire_poll,
    "wait": wire_wait,
    "watch": wire_watch,
    "create_many": wire_create_many,
}
WIRE_POLICY = PollPolicy(initial=0.005, max=0.02, multiplier=2.0, jitter=0.0)
WIRE_RETRY = RetryPolicy(initial_backoff=0.002, max_backoff=0.01, settle=0.05)  # no index lag here
#: Cancellation points tried per operation over the socket (spread over its whole run).
WIRE_POINTS = 25


def spread(total: int, points: int) -> list[int]:
    """Up to about `points` step counts from 1 to `total`: the first ten, then evenly spaced."""
    head = range(1, min(total, 10) + 1)
    rest = range(11, total + 1, max(1, (total - 10) // max(1, points - 10)))
    return sorted({*head, *rest})


@pytest.mark.parametrize("name", WIRE)
async def test_cancel_on_the_wire_leaves_nothing(remote: ThreadedServer, name: str) -> None:
    operation = WIRE[name]
    async with remote.client(poll=WIRE_POLICY, retry=WIRE_RETRY) as client:
        expected = await operation(client, remote)
        total = await steps_to_finish(asyncio.create_task(operation(client, remote)))
        for k in spread(total, WIRE_POINTS):
            remote.call(remote.server.clear_faults)
            await cancel_after(asyncio.create_task(operation(client, remote)), k)
            assert_nothing_left()
        remote.call(remote.server.clear_faults)
        assert await operation(client, remote) == expected  # the same client still works
        http = pooled(client)
        assert http is not None and not http.closed
    assert client.closed and http.closed and http.connector is None
    assert_nothing_left()
    tokens = remote.tokens()
    assert len(tokens) == len(set(tokens))  # a cancelled create never duplicates


# -- aclose() --------------------------------------------------------------------------------

USES: dict[str, Callable[[DevinClient], Awaitable[Any]]] = {
    "get": lambda c: c.sessions.get("devin-1"),
    "list": lambda c: c.sessions.list().to_list(),
    "create": lambda c: c.sessions.create("x"),
    "send_message": lambda c: c.sessions.send_message("devin-1", "hi"),
    "terminate": lambda c: c.sessions.terminate("devin-1"),
    "poll": lambda c: anext(aiter(c.sessions.poll("devin-1"))),
    "wait": lambda c: c.sessions.wait("devin-1"),
    "watch": lambda c: anext(aiter(c.watch(["devin-1"]))),
}


@pytest.mark.parametrize("use", USES)
async def test_use_after_aclose_raises_client_closed(remote: ThreadedServer, use: str) -> None:
    client = remote.client()
    await client.sessions.list().to_list()
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await USES[use](client)
    assert remote.call(lambda: remote.server.stats["requests"]) == 1  # nothing sent after


async def test_create_many_after_aclose_reports_client_closed(remote: ThreadedServer) -> None:
    client = remote.client()
    await client.aclose()
    results = [r async for r in client.sessions.create_many([{"prompt": "x"}] * 3)]
    assert len(results) == 3
    assert all(isinstance(r.error, ClientClosedError) for r in results)
    assert remote.call(lambda: remote.server.stats.get("requests", 0)) == 0
    assert_nothing_left()


async def test_reentering_a_closed_client_raises() -> None:
    client = DevinClient(KEY, org_id="org-test")
    async with client:
        pass
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert isinstance(ClientClosedError("x"), RuntimeError)  # also a RuntimeError, as asyncio's


async def test_aclose_during_requests_ends_them_promptly(remote: ThreadedServer) -> None:
    (sid,) = remote.call(remote.server.add_sessions, 1, status="running",
                         status_detail="working")
    hang = remote.call(remote.server.inject, "*", times=None, delay=1.0)  # requests hang
    client = remote.client(retry=RetryPolicy(initial_backoff=0.001, max_backoff=0.01))
    tasks = [
        asyncio.create_task(client.sessions.get(sid)),
        asyncio.create_task(client.sessions.wait(sid)),
        asyncio.create_task(anext(aiter(client.watch([sid])))),
        asyncio.create_task(client.sessions.create("x")),
    ]
    for _ in range(500):  # up to 5 s, until all four requests are at the server
        if remote.call(lambda: hang.hits) >= len(tasks):
            break
        await asyncio.sleep(0.01)
    assert remote.call(lambda: hang.hits) == len(tasks)
    async with asyncio.timeout(2):
        await client.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    *reads, create = results
    assert all(isinstance(r, ClientClosedError) for r in reads), reads
    # The create was sent and the server sits on it: it may happen, so it is unconfirmed, with
    # the token to reconcile by, and the lookup's ClientClosedError as its `.original` (no
    # exception chain: errors are built outside `except`, so none carries what a transport saw).
    assert isinstance(create, CreateUnconfirmedError), create
    assert isinstance(create.original, ClientClosedError)
    assert_nothing_left()
    remote.call(remote.server.clear_faults)


async def test_borrowed_session_survives_aclose_but_the_client_does_not(
        remote: ThreadedServer) -> None:
    async with aiohttp.ClientSession() as http:
        client = remote.client(session=http)
        (sid,) = remote.call(remote.server.add_sessions, 1)
        assert isinstance(await client.sessions.get(sid), Session)
        await client.aclose()
        assert not http.closed
        with pytest.raises(ClientClosedError):
            await client.sessions.get(sid)
    assert http.closed


async def test_a_client_dropped_without_aclose_warns(remote: ThreadedServer) -> None:
    client = remote.client()
    await client.sessions.list().to_list()
    http = pooled(client)
    assert http is not None
    with pytest.warns(ResourceWarning, match="never closed"):
        client.__del__()
    await http.close()  # what aclose would have done
