"""`client.watch()`: one scheduler for many sessions.

Unit tests run over `StubOrg` (scripted transport) on a fake clock; the integration tests drive
`FakeDevinServer` over a real loopback socket with one fake clock shared by server and client, so
they are deterministic and never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from typing import Any

import pytest

from devin_async import (
    APIConnectionError,
    AuthenticationError,
    DevinClient,
    RetryPolicy,
    Session,
    SessionEvent,
)
from devin_async._polling import Poller
from devin_async._watcher import CHUNK, FULL_REFRESH, Watcher
from devin_async.testing import FakeDevinServer

from .helpers import STILL, FakeClock, StubOrg, stub_client

WORKING = ("running", "working")
FINISHED = ("running", "finished")


def state(event: SessionEvent) -> tuple[str, str | None]:
    s = event.session
    return (s.status.value, s.status_detail.value if s.status_detail else None)


def by_session(events: list[SessionEvent]) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for e in events:
        out[e.session.session_id].append(state(e))
    return dict(out)


async def drain(watcher: Watcher) -> list[SessionEvent]:
    async with watcher:
        return [e async for e in watcher]


def assert_consistent(events: list[SessionEvent]) -> None:
    """First sighting has previous=None; each event's previous is the one before; no repeats."""
    last: dict[str, SessionEvent] = {}
    for e in events:
        sid = e.session.session_id
        before = last.get(sid)
        if before is None:
            assert e.previous is None
        else:
            assert e.previous is not None and e.previous.state == before.session.state
            assert e.gone or e.session.state != before.session.state
        last[sid] = e


# -- changes -----------------------------------------------------------------------------------


async def test_reports_every_change_once_and_ends_when_all_settle(
    client: DevinClient, org: StubOrg
) -> None:
    org.add(
        "devin-a",
        (0, "new", None),
        (2, "claimed", None),
        (4, "running", "working"),
        (10, "running", "finished"),
    )
    org.add("devin-b", (0, "running", "working"), (6, "running", "waiting_for_user"))
    org.add("devin-c", (0, "suspended", "inactivity"))
    events = await drain(client.watch(["devin-a", "devin-b", "devin-c"]))
    assert by_session(events) == {
        "devin-a": [("new", None), ("claimed", None), WORKING, FINISHED],
        "devin-b": [WORKING, ("running", "waiting_for_user")],
        "devin-c": [("suspended", "inactivity")],
    }
    assert_consistent(events)


async def test_until_is_terminal(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-a", (0, "running", "finished"), (30, "exit", None))
    org.add(
        "devin-b",
        (0, "suspended", "inactivity"),
        (2, "resuming", None),
        (5, "running", "working"),
        (20, "error", None),
    )
    events = await drain(client.watch(["devin-a", "devin-b"], until=lambda s: s.is_terminal))
    assert by_session(events) == {
        "devin-a": [FINISHED, ("exit", None)],
        "devin-b": [("suspended", "inactivity"), ("resuming", None), WORKING, ("error", None)],
    }


async def test_empty_watch_ends_at_once(client: DevinClient, org: StubOrg) -> None:
    assert await drain(client.watch()) == []
    assert org.requests == []


async def test_unknown_status_is_active_and_logged_once(
    client: DevinClient, org: StubOrg, caplog: pytest.LogCaptureFixture
) -> None:
    org.add("devin-a", (0, "hibernating", None), (40, "exit", None))
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        events = await drain(client.watch(["devin-a"]))
    assert [state(e) for e in events] == [("hibernating", None), ("exit", None)]
    assert len([r for r in caplog.records if "hibernating" in r.getMessage()]) == 1


# -- requests ----------------------------------------------------------------------------------


async def test_450_ids_cost_3_requests_per_cycle_and_updated_after_narrows(
    client: DevinClient, org: StubOrg
) -> None:
    ids = [
        org.add(f"devin-{i:04d}", (0, "running", "working"), (40, "running", "finished"))
        for i in range(450)
    ]
    watcher = client.watch(ids)
    events = await drain(watcher)
    assert len(events) == 900 and watcher.stats.cycles > 4
    lists = org.lists
    assert len(lists) == 3 * watcher.stats.cycles == watcher.stats.requests
    sizes = [len(dict(r.params)["session_ids"].split(",")) for r in lists[:3]]
    assert sizes == [200, 200, 50]
    assert all(dict(r.params)["first"] == str(CHUNK) for r in lists)
    filtered = [r for r in lists if "updated_after" in dict(r.params)]
    assert len(filtered) >= len(lists) - 6  # the first two cycles read everything
    assert watcher.sessions[ids[0]].state == FINISHED


async def test_reads_everything_again_every_full_refresh(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-a", (0, "running", "working"), (500, "exit", None))
    start = clock.now
    await drain(client.watch(["devin-a"], until=lambda s: s.is_terminal))
    full = [i for i, r in enumerate(org.lists) if "updated_after" not in dict(r.params)]
    assert len(full) >= 2 + math.floor(500 / FULL_REFRESH) - 1
    assert clock.now - start < 520


async def test_add_and_remove_while_running(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-a", (0, "running", "working"))  # never settles
    org.add("devin-b", (0, "new", None), (3, "running", "working"), (9, "running", "finished"))
    org.add("devin-c", (0, "claimed", None), (2, "running", "finished"))
    seen: list[SessionEvent] = []
    async with client.watch(["devin-a", "devin-c"]) as watcher:
        async for event in watcher:
            seen.append(event)
            if len(seen) == 1:  # devin-c's first event is still queued
                assert event.session.session_id == "devin-a"
                watcher.remove("devin-c")
                watcher.remove("devin-c")  # twice is fine
                watcher.add("devin-b")
                watcher.add("devin-b")
            if event.session.session_id == "devin-b" and event.session.is_settled:
                watcher.remove("devin-a")
    assert by_session(seen) == {
        "devin-a": [WORKING],
        "devin-b": [("new", None), WORKING, FINISHED],
    }
    assert watcher.watched == ["devin-b"] and "devin-c" not in watcher.sessions


@pytest.mark.parametrize("bad", [["../x"], ["devin-a", ""], "devin-a", [3]])
async def test_bad_ids_fail_before_any_request(client: DevinClient, org: StubOrg, bad: Any) -> None:
    with pytest.raises(ValueError):
        client.watch(bad)
    watcher = client.watch(["devin-a"])
    with pytest.raises(ValueError):
        watcher.add("a/b")
    with pytest.raises(ValueError):
        watcher.remove("?")
    assert org.requests == []


# -- vanishing ---------------------------------------------------------------------------------


async def test_a_vanished_session_gives_one_final_event(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-a", (0, "running", "working"), (300, "running", "finished"))
    org.add("devin-b", (0, "running", "working"))
    seen: list[SessionEvent] = []
    gone_at = 0.0
    async with client.watch(["devin-a", "devin-b", "devin-ghost"]) as watcher:
        async for event in watcher:
            seen.append(event)
            if len(seen) == 2:
                del org.timelines["devin-b"]
                gone_at = clock.now
    gone = [e for e in seen if e.gone]
    assert len(gone) == 1 and gone[0].session.session_id == "devin-b"
    assert gone[0].session.state == WORKING and gone[0].previous == gone[0].session
    assert by_session(seen)["devin-b"] == [WORKING, WORKING]  # the sighting, then gone
    assert by_session(seen)["devin-a"] == [WORKING, FINISHED]
    assert watcher.not_found == {"devin-ghost"}  # never seen: no event, just dropped
    assert "devin-b" not in watcher.sessions and "devin-b" not in watcher.watched
    # Absent from filtered answers is not gone: the loss was noticed at the next full read.
    gone_gets = [r for r in org.requests if r.path == "/sessions/devin-b"]
    assert len(gone_gets) == 1
    assert gone_at > 0


# -- backpressure ------------------------------------------------------------------------------


async def test_a_slow_consumer_slows_polling(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    ids = [
        org.add(f"devin-{i:03d}", (0, "running", "working"), (5, "running", "finished"))
        for i in range(300)
    ]
    watcher = client.watch(ids)
    first = await anext(watcher)
    assert first.previous is None and len(org.requests) == 2  # one cycle: 2 chunks
    clock.now += 3600  # the consumer dawdles for an hour: nothing is polled meanwhile
    for _ in range(299):
        await anext(watcher)
    assert len(org.requests) == 2
    rest = [e async for e in watcher]  # nothing was left buffered: all come from a new cycle
    assert len(rest) == 300 and all(state(e) == FINISHED for e in rest)
    assert len(org.requests) == 4  # one more cycle saw everything finished


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 500},
        {"status": 429},
        {"error": APIConnectionError("refused", method="GET", path="/sessions")},
    ],
    ids=["503", "500", "429", "connection"],
)
async def test_survives_an_outage_and_catches_up(
    client: DevinClient,
    org: StubOrg,
    clock: FakeClock,
    fault: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [org.add(f"devin-{i:03d}", (0, "running", "working")) for i in range(250)]
    seen: list[SessionEvent] = []
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        async with client.watch(ids) as watcher:
            async for event in watcher:
                seen.append(event)
                if len(seen) == 250:  # everyone seen once; now the server goes away
                    org.fail(60, **fault)
                    for i, sid in enumerate(ids):  # changes while down, some flap
                        org.then(sid, "running", "waiting_for_user", at=10)
                        if i % 2:
                            org.then(sid, "running", "finished", at=20)
    assert watcher.stats.failed_cycles >= 3
    assert not org.faults  # the outage is over
    assert len(seen) == 500 and not any(e.gone for e in seen)
    assert_consistent(seen)
    final = {e.session.session_id: state(e) for e in seen[250:]}
    assert final[ids[0]] == ("running", "waiting_for_user") and final[ids[1]] == FINISHED
    warnings = [r for r in caplog.records if "polling goes on" in r.getMessage()]
    assert len(warnings) == 1


async def test_retry_after_delays_the_next_cycle(clock: FakeClock, org: StubOrg) -> None:
    org.add("devin-a", (0, "running", "working"), (100, "running", "finished"))
    async with stub_client(clock, org, poll=STILL, retry=RetryPolicy.disabled()) as client:
        watcher = client.watch(["devin-a"])
        await anext(watcher)
        org.fail(2, 429, retry_after=45)
        await anext(watcher)
    times = [s for s in clock.sleeps if s >= 40]
    assert times[:2] == [45.0, 45.0]


async def test_retry_after_on_a_successful_answer_delays_the_next_cycle(
    clock: FakeClock, org: StubOrg
) -> None:
    org.add("devin-a", (0, "running", "working"), (100, "running", "finished"))
    async with stub_client(clock, org, poll=STILL) as client:
        watcher = client.watch(["devin-a"])
        await anext(watcher)
        org.ok_headers = {"Retry-After": "30"}  # every answer now asks for 30 s of quiet
        before = len(org.lists)
        event = await anext(watcher)
    assert event.session.status_detail == "finished"
    waits = [s for s in clock.sleeps if s >= 1]
    assert waits[0] == 1.0 and set(waits[1:]) == {30.0}  # STILL alone: 2, 4, 8, 8, ...
    assert len(org.lists) - before == 5  # t = 1, 31, 61, 91, then 121 sees the change


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_end_the_watch(client: DevinClient, org: StubOrg, status: int) -> None:
    org.add("devin-a", (0, "running", "working"))
    watcher = client.watch(["devin-a"])
    await anext(watcher)
    org.fail(1, status)
    with pytest.raises(AuthenticationError if status == 401 else Exception):
        await anext(watcher)
    assert watcher.closed
    with pytest.raises(StopAsyncIteration):
        await anext(watcher)


# -- cadence -----------------------------------------------------------------------------------


async def test_fast_while_starting_then_backs_off(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-a", (0, "new", None), (4, "running", "working"), (40, "exit", None))
    org.add("devin-b", (0, "running", "working"), (60, "exit", None))
    await drain(client.watch(["devin-a", "devin-b"], until=lambda s: s.is_terminal))
    assert clock.sleeps[:4] == [1.0] * 4  # devin-a is starting
    assert clock.sleeps[4:8] == [1.0, 2.0, 4.0, 8.0]  # changed at 4, then nothing changes


# -- closing and cancelling --------------------------------------------------------------------


async def test_aclose_ends_iteration(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-a", (0, "running", "working"))
    org.add("devin-b", (0, "running", "working"))
    watcher = client.watch(["devin-a", "devin-b"])
    await anext(watcher)
    await watcher.aclose()
    assert [e async for e in watcher] == []  # the queued event is dropped
    with pytest.raises(RuntimeError):
        watcher.add("devin-c")


async def test_break_leaves_nothing_behind(client: DevinClient, org: StubOrg) -> None:
    ids = [org.add(f"devin-{i:03d}", (0, "running", "working")) for i in range(900)]
    async with client.watch(ids) as watcher:
        async for _ in watcher:
            break
    assert watcher.closed
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancel_mid_cycle_leaves_nothing_behind(client: DevinClient, org: StubOrg) -> None:
    ids = [org.add(f"devin-{i:03d}", (0, "running", "working")) for i in range(900)]
    org.gate = asyncio.Event()  # every request hangs
    watcher = client.watch(ids)
    task = asyncio.create_task(watcher.__anext__())
    for _ in range(10):
        await asyncio.sleep(0)
    # The first cycle's reads are in flight (over 600 ids it starts with one probe listing).
    assert org.requests
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == {asyncio.current_task()}
    org.gate = None
    event = await anext(watcher)  # still usable after the cancelled call
    assert event.previous is None


# -- the fake server over a real socket --------------------------------------------------------


SCRIPT = [
    ("new", None, 0),
    ("claimed", None, 3),
    ("running", "working", 6),
    ("running", "waiting_for_user", 30),
    ("running", "working", 50),
    ("running", "finished", 80),
]
SCRIPTED = [(status, detail) for status, detail, _ in SCRIPT]


def finished(session: Session) -> bool:
    return session.state == FINISHED


async def test_fake_server_watch(served: DevinClient, server: FakeDevinServer) -> None:
    ids = server.add_sessions(201, status="new")
    for sid in ids:
        server.script(SCRIPT, session_id=sid)
    watcher = served.watch(ids, until=finished)
    events = await drain(watcher)
    assert_consistent(events)
    assert all(states == SCRIPTED for states in by_session(events).values())
    assert all(watcher.sessions[sid].state == FINISHED for sid in ids)
    lists = [r for r in server.requests if r.method == "GET" and r.path.endswith("/sessions")]
    assert len(lists) == 2 * watcher.stats.cycles


async def test_fake_server_restart_during_a_watch(
    served: DevinClient,
    server: FakeDevinServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = server.add_sessions(250, status="new")
    for sid in ids:
        server.script(SCRIPT, session_id=sid)
    seen: list[SessionEvent] = []

    async def outage() -> None:
        await server.stop_listening()
        await clock.alarm(clock.now + 40).wait()  # down 40 s of shared time, across two changes
        await server.start()

    restarts: list[asyncio.Task[None]] = []
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        async with served.watch(ids, until=finished) as watcher:
            async for event in watcher:
                seen.append(event)
                if len(seen) == 300 and not restarts:
                    await server.restart()  # a quick restart: open connections are dropped
                if len(seen) == 600 and not restarts:
                    restarts.append(asyncio.create_task(outage()))
    await asyncio.gather(*restarts)
    assert watcher.stats.failed_cycles >= 1
    assert_consistent(seen)
    assert not any(e.gone for e in seen)
    per = by_session(seen)
    assert all(per[sid][-1] == FINISHED for sid in ids)
    assert all(len(states) <= len(SCRIPTED) for states in per.values())
    assert [r for r in caplog.records if "polling goes on" in r.getMessage()]


async def test_fake_server_wait(served: DevinClient, server: FakeDevinServer) -> None:
    server.script(SCRIPT)
    created = await served.sessions.create("Fix the flaky test")
    poller = Poller(served.sessions, created.session_id)
    seen = [s async for s in poller]
    assert [s.state for s in seen] == SCRIPTED[:4]
    gets = [r for r in server.requests if r.method == "GET"]
    assert len(gets) == poller.requests < 20
