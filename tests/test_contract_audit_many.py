"""Audit of CONTRACT.md "Many sessions": watchers, create_many, crash-safe batches.

Public imports only, against the in-process fake server (or a scripted MockTransport).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devin_async import (
    BatchResult,
    CreateSessionRequest,
    DevinClient,
    HTTPRequest,
    HTTPResponse,
    PollPolicy,
    RetryPolicy,
    Session,
    SessionEvent,
    Watcher,
)
from devin_async.testing import FakeDevinServer, MockTransport

FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)


def client_for(server: FakeDevinServer) -> DevinClient:
    return DevinClient(api_key=server.api_key, org_id=server.org_id,
                       transport=server.transport(), poll=FAST,
                       retry=RetryPolicy(settle=0.05))  # a batch's end check: no 3 s wait


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeDevinServer, DevinClient]]:
    server = FakeDevinServer(time_scale=2000)
    async with client_for(server) as client:
        yield server, client


# -- watch ------------------------------------------------------------------------------------

async def test_watch_reports_changes_through_the_list_endpoint(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    ids = [(await client.sessions.create(f"Task {n}")).session_id for n in range(3)]
    server.clear_requests()
    watcher = client.watch(ids)
    assert isinstance(watcher, Watcher)
    events: list[SessionEvent] = []
    async with watcher:
        async for event in watcher:
            assert isinstance(event, SessionEvent) and isinstance(event.session, Session)
            events.append(event)
    assert {e.session.session_id for e in events} == set(ids)
    for sid in ids:
        mine = [e for e in events if e.session.session_id == sid]
        assert mine[0].previous is None and all(e.previous is not None for e in mine[1:])
        assert mine[-1].session.is_settled and not any(e.gone for e in mine)
        stamps = [e.session.updated_at for e in mine]
        assert stamps == sorted(stamps)
    gets = [r for r in server.requests if r.method == "GET" and r.path.rsplit("/", 1)[-1]
            in ids]
    lists = [r for r in server.requests if r.path.endswith("/sessions")]
    assert lists and len(gets) < len(lists)


async def test_watch_add_remove_and_until(fake: tuple[FakeDevinServer, DevinClient]) -> None:
    _, client = fake
    a, b, c = [(await client.sessions.create(f"T{n}")).session_id for n in range(3)]
    seen: set[str] = set()
    async with client.watch([a, b], until=Session.is_settled) as watcher:
        watcher.remove(b)
        watcher.add(c)
        async for event in watcher:
            seen.add(event.session.session_id)
    assert seen == {a, c}


async def test_watch_tags_finds_sessions_created_later_and_children(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    _server, client = fake
    first = (await client.sessions.create("early", tags=["ci"])).session_id
    seen: set[str] = set()
    async with client.watch(tags=["ci"], forever=True) as daemon:
        late: str | None = None
        async for event in daemon:
            seen.add(event.session.session_id)
            if late is None:
                late = (await client.sessions.create("late", tags=["ci"])).session_id
            if late in seen:
                break
    assert {first, late} <= seen
    parent = await client.sessions.create("fan", advanced_mode="batch", child_playbook_id="pb")
    await asyncio.sleep(0.01)
    kids: set[str] = set()
    async with client.watch([parent.session_id], follow_children=True) as watcher:
        async for event in watcher:
            if event.session.parent_session_id == parent.session_id:
                kids.add(event.session.session_id)
    assert len(kids) == 3


async def test_watch_forever_does_not_end_by_itself(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    sid = (await client.sessions.create("x")).session_id
    server.set_status(sid, "exit")  # nothing changes any more
    async with client.watch([sid], forever=True) as daemon:
        first = await anext(aiter(daemon))
        assert first.session.is_settled
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(daemon)), 0.2)
    assert daemon.closed


async def test_checkpoint_resume_reports_only_what_changed_since(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    ids = [(await client.sessions.create(f"T{n}")).session_id for n in range(3)]
    async with client.watch(ids) as watcher:
        async for _ in watcher:
            pass
        state = json.dumps(watcher.checkpoint())  # JSON-serializable
    server.set_status(ids[0], "exit")  # changes while nothing runs
    async with client_for(server) as other, other.watch(resume=json.loads(state)) as resumed:
        assert set(resumed.watched) == set(ids)
        events = [e async for e in resumed]
    assert [(e.session.session_id, e.session.status.value) for e in events] == [(ids[0], "exit")]
    assert events[0].previous is not None and events[0].previous.status.value != "exit"


async def test_watch_never_goes_back_in_time() -> None:
    stamps = iter([10, 30, 20, 40])
    base = {"url": "https://app.devin.ai/s", "org_id": "org-a", "tags": [], "created_at": 1,
            "acus_consumed": 0, "pull_requests": []}
    states = {10: ("running", "working"), 30: ("running", "waiting_for_user"),
              20: ("running", "working"), 40: ("exit", None)}

    def handler(request: HTTPRequest) -> HTTPResponse:
        stamp = next(stamps, 40)
        status, detail = states[stamp]
        item = {**base, "session_id": "devin-1", "status": status, "status_detail": detail,
                "updated_at": stamp}
        data: Any = {"items": [item], "has_next_page": False, "end_cursor": None}
        if "/sessions/devin-1" in request.url:
            data = item
        return HTTPResponse(200, {"content-type": "application/json"}, json.dumps(data).encode())

    client = DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a", poll=FAST,
                         transport=MockTransport(handler))
    async with client, client.watch(["devin-1"], until=Session.is_terminal) as watcher:
        got = [e.session.updated_at async for e in watcher]
    assert got == sorted(got) and 20 not in got


# -- create_many ------------------------------------------------------------------------------

async def test_create_many_bounds_concurrency_and_reports_every_request() -> None:
    server = FakeDevinServer(time_scale=2000)
    in_flight, peak = 0, 0
    transport = server.transport()

    class Counting:
        async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
            nonlocal in_flight, peak
            creating = request.method == "POST" and request.url.endswith("/sessions")
            in_flight += creating
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0.005 if creating else 0)
                return await transport.send(request, timeout=timeout)
            finally:
                in_flight -= creating

        async def aclose(self) -> None:
            await transport.aclose()

    requests: list[Any] = [CreateSessionRequest(f"Task {n}") for n in range(9)]
    requests[4] = {"prompt": ""}  # one bad request hides nothing
    requests[5] = {"prompt": "as a dict", "tags": ["d"]}
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=Counting()) as client:
        batch = client.sessions.create_many(requests, concurrency=3)
        async with batch:
            results = [r async for r in batch]
    assert peak <= 3
    assert sorted(r.index for r in results) == list(range(9))
    assert all(isinstance(r, BatchResult) for r in results)
    by_index = {r.index: r for r in results}
    assert isinstance(by_index[4].error, ValueError) and by_index[4].session is None
    assert by_index[5].session is not None and by_index[5].session.tags == ["d"]
    assert all(r.ok and r.existing is False for i, r in by_index.items() if i != 4)
    assert by_index[0].request is requests[0]
    assert server.session_count == 8


async def test_create_many_never_twice_when_answers_are_lost(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    server.inject("create", drop="after", times=4)
    results = [r async for r in client.sessions.create_many(
        [CreateSessionRequest(f"T{n}") for n in range(6)], concurrency=2)]
    assert all(r.ok for r in results)
    assert server.session_count == 6


async def test_batch_key_resume_after_a_crash(fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    requests = [CreateSessionRequest(f"Upgrade {n}") for n in range(6)]
    done = 0
    async with client.sessions.create_many(requests, concurrency=1,
                                           batch_key="nightly") as batch:
        async for _ in batch:
            done += 1
            if done == 3:
                break  # "crash"
    made = server.session_count
    async with client_for(server) as rerun:
        results = [r async for r in rerun.sessions.create_many(requests, batch_key="nightly")]
    assert sorted(r.index for r in results) == list(range(6))
    assert sum(r.existing for r in results) == made >= 3
    assert server.session_count == 6
    again = [r async for r in client.sessions.create_many(requests, batch_key="nightly")]
    assert all(r.existing and r.ok for r in again) and server.session_count == 6


async def test_batch_results_never_show_a_dict_requests_secret_values(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    # Fixed in this audit: `repr(BatchResult)` (and `CancelledCreate`) printed a dict request's
    # `session_secrets` values; "secret values never appear in logs, reprs, errors".
    _, client = fake
    secret = "TOPSECRET-batch-value"
    requests: list[Any] = [{"prompt": p, "session_secrets": [{"key": "K", "value": secret}]}
                           for p in ("ok", "", "also ok")]
    results = [r async for r in client.sessions.create_many(requests)]
    assert len(results) == 3 and sum(r.ok for r in results) == 2
    for result in results:
        assert secret not in repr(result) and secret not in str(result.error)
    assert requests[0]["session_secrets"][0]["value"] == secret  # the caller's dict untouched


async def test_create_many_takes_an_async_iterable(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake

    async def produce() -> AsyncIterator[CreateSessionRequest]:
        for n in range(4):
            yield CreateSessionRequest(f"Streamed {n}")

    results = [r async for r in client.sessions.create_many(produce(), concurrency=2)]
    assert sorted(r.index for r in results) == [0, 1, 2, 3] and all(r.ok for r in results)
    assert server.session_count == 4
