"""idempotency_key on a single create: one key, one session, one create request."""

from __future__ import annotations

import asyncio

import pytest

from devin_async import DevinClient, RetryPolicy
from devin_async.testing import FakeDevinServer

from .batch_support import FAST, Clock, StubApi


def _creates(server: FakeDevinServer) -> int:
    return sum(1 for r in server.requests if r.endpoint == "create")


async def test_same_key_twice_is_one_session_and_one_create() -> None:
    async with FakeDevinServer() as server:
        async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                               base_url=server.url, retry=FAST) as client:
            first = await client.sessions.create("fix it", idempotency_key="job-1")
            again = await client.sessions.create("fix it", idempotency_key="job-1")
        assert again.session_id == first.session_id
        assert server.session_count == 1
        assert _creates(server) == 1


async def test_same_key_from_a_new_client_finds_the_session() -> None:
    async with FakeDevinServer() as server:
        ids = []
        for _ in range(2):  # a restart: a new client, no memo
            async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                                   base_url=server.url, retry=FAST) as client:
                ids.append((await client.sessions.create("fix it", idempotency_key="k")).session_id)
        assert ids[0] == ids[1]
        assert _creates(server) == 1


@pytest.mark.parametrize("callers", [2, 10])
async def test_concurrent_calls_with_one_key_share_one_create(callers: int) -> None:
    clock = Clock()
    api = StubApi(clock)
    api.gate = asyncio.Event()  # the create acts, then its answer waits: every caller piles up
    async with api.client() as client:
        calls = [asyncio.ensure_future(client.sessions.create("go", idempotency_key="same"))
                 for _ in range(callers)]
        await api.creates_reach(1)
        for _ in range(5):
            await asyncio.sleep(0)
        api.gate.set()
        sessions = await asyncio.gather(*calls)
    assert {s.session_id for s in sessions} == {"devin-000000"}
    assert api.counts["create"] == 1
    assert len(api.sessions) == 1


async def test_key_with_a_lost_answer_is_found_not_resent() -> None:
    clock = Clock()
    api = StubApi(clock)
    api.lose = {1}
    async with api.client(retry=RetryPolicy(initial_backoff=0.001, settle=1.0)) as client:
        session = await client.sessions.create("go", idempotency_key="lost")
    assert api.counts["create"] == 1
    assert list(api.sessions) == [session.session_id]
