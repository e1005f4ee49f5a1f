"""Long-running watches against `FakeDevinServer` over loopback, on one shared fake clock.

The server's lifecycle runs 10x faster than the shared clock (`time_scale=10`), so sessions go
from `new` to settled in a few watcher cycles; nothing sleeps for real.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from devin_async import DevinClient, PollPolicy, SessionEvent
from devin_async.testing import FakeDevinServer

from .watch_support import Clock, by_session, state

POLICY = PollPolicy(initial=1.0, max=2.0, multiplier=2.0, jitter=0.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeDevinServer]:
    # Stamps well in the past of the wall clock: fast server time never looks "future".
    async with FakeDevinServer(clock=clock, time_scale=10.0, seed=11,
                               epoch=time.time() - 200_000) as server:
        yield server


def client_for(fake: FakeDevinServer, clock: Clock) -> DevinClient:
    return DevinClient(fake.api_key, org_id=fake.org_id, base_url=fake.url, poll=POLICY,
                       clock=clock, sleep=clock.sleep)


def consistent(events: list[SessionEvent]) -> None:
    last: dict[str, tuple[str, str | None]] = {}
    for e in events:
        sid = e.session.session_id
        if sid in last:
            assert state(e) != last[sid] and e.previous is not None
        else:
            assert e.previous is None
        last[sid] = state(e)


async def test_tag_watch_finds_a_batch_its_children_and_a_later_session(
        fake: FakeDevinServer, clock: Clock) -> None:
    async with client_for(fake, clock) as client:
        parent = await client.sessions.create("Fan out", tags=["fleet"], advanced_mode="batch",
                                              child_playbook_id="pb-1")
        fake.add_sessions(3, tags=["other"])  # not watched
        events: list[SessionEvent] = []
        late = None
        async with client.watch(tags=["fleet"]) as watcher:
            async for event in watcher:
                events.append(event)
                if late is None:
                    late = await client.sessions.create("Later", tags=["fleet", "extra"])
    assert parent.child_session_ids and late is not None
    expected = {parent.session_id, late.session_id, *parent.child_session_ids}
    assert set(by_session(events)) == expected == set(watcher.watched)
    consistent(events)
    assert all(watcher.sessions[sid].is_settled for sid in expected)
    lists = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/sessions")]
    assert lists and all("session_ids" not in dict(r.query) for r in lists)  # tags only


async def test_follow_children_of_a_batch_watched_by_id(
        fake: FakeDevinServer, clock: Clock) -> None:
    async with client_for(fake, clock) as client:
        parent = await client.sessions.create("Fan out", advanced_mode="batch",
                                              child_playbook_id="pb-1")
        watcher = client.watch([parent.session_id], follow_children=True)
        events = [e async for e in watcher]
    assert parent.child_session_ids
    assert set(by_session(events)) == {parent.session_id, *parent.child_session_ids}
    assert watcher.stats.discovered == len(parent.child_session_ids)
    consistent(events)


async def test_checkpoint_then_resume_in_a_new_client_repeats_nothing(
        fake: FakeDevinServer, clock: Clock) -> None:
    ids = fake.add_sessions(40, tags=["nightly"])  # default lifecycle: new ... settled
    before: list[SessionEvent] = []
    async with client_for(fake, clock) as client, \
            client.watch(tags=["nightly"], forever=True) as watcher:
        async for event in watcher:
            before.append(event)
            if len(before) >= 60:
                break
        saved = json.loads(json.dumps(watcher.checkpoint()))
    clock.now += 30  # 300 server seconds while nothing runs
    after: list[SessionEvent] = []
    async with client_for(fake, clock) as client:
        watcher = client.watch(resume=saved)  # not forever: ends once every session settled
        after = [e async for e in watcher]
    assert set(saved["sessions"]) == set(ids)
    everything = before + after
    last: dict[str, tuple[str, str | None]] = {}
    for e in everything:  # no event repeats the state reported before it
        sid = e.session.session_id
        assert last.get(sid) != state(e)
        last[sid] = state(e)
    for sid in ids:
        now = fake.session(sid)
        assert last[sid] == (now["status"], now["status_detail"])
    for e in after:
        saved_state = saved["sessions"][e.session.session_id]
        if saved_state is not None and e.previous is not None:
            assert e.previous.updated_at <= e.session.updated_at
