"""`sessions.poll()` / `sessions.wait()`: changes only, `until`, deadline, hints, failures, cancel.

Everything runs on a fake clock (sleeping advances it instantly) over `StubOrg`, a scripted
transport passed at construction, so the client's real engine, limiter and decoding run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from devin_async import (
    APIConnectionError,
    AuthenticationError,
    DevinClient,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    RetryPolicy,
    Session,
    WaitTimeoutError,
)
from devin_async._polling import Poller

from .helpers import KEY, STILL, FakeClock, Step, StubOrg, stub_client


def states(sessions: list[Session]) -> list[tuple[str, str | None]]:
    return [(s.status.value, s.status_detail.value if s.status_detail else None) for s in sessions]


async def collect(client: DevinClient, sid: str, **kw: Any) -> list[Session]:
    return [s async for s in client.sessions.poll(sid, **kw)]


def is_terminal(s: Session) -> bool:
    return s.is_terminal


# -- lifecycle paths ---------------------------------------------------------------------------

PATHS: list[tuple[str, list[Step], Callable[[Session], bool] | None, list[Any]]] = [
    (
        "start to finished",
        [
            (0, "new", None),
            (2, "claimed", None),
            (5, "running", "working"),
            (40, "running", "finished"),
        ],
        None,
        [("new", None), ("claimed", None), ("running", "working"), ("running", "finished")],
    ),
    (
        "waiting for the user settles",
        [(0, "running", "working"), (9, "running", "waiting_for_user")],
        None,
        [("running", "working"), ("running", "waiting_for_user")],
    ),
    (
        "waiting for approval settles",
        [(0, "claimed", None), (3, "running", "waiting_for_approval")],
        None,
        [("claimed", None), ("running", "waiting_for_approval")],
    ),
    (
        "suspended wakes and finishes",
        [
            (0, "suspended", "inactivity"),
            (2, "resuming", None),
            (5, "running", "working"),
            (30, "running", "finished"),
            (90, "exit", None),
        ],
        is_terminal,
        [
            ("suspended", "inactivity"),
            ("resuming", None),
            ("running", "working"),
            ("running", "finished"),
            ("exit", None),
        ],
    ),
    (
        "finished then exit",
        [(0, "running", "finished"), (20, "exit", None)],
        is_terminal,
        [("running", "finished"), ("exit", None)],
    ),
    (
        "error ends it",
        [(0, "new", None), (3, "error", None)],
        None,
        [("new", None), ("error", None)],
    ),
    (
        "error ends is_terminal too",
        [(0, "running", "working"), (3, "error", None)],
        is_terminal,
        [("running", "working"), ("error", None)],
    ),
    (
        "suspended is settled",
        [(0, "suspended", "out_of_credits")],
        None,
        [("suspended", "out_of_credits")],
    ),
    ("already exited", [(0, "exit", None)], is_terminal, [("exit", None)]),
]


@pytest.mark.parametrize(
    ("steps", "until", "expected"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS]
)
async def test_lifecycle_paths(
    client: DevinClient,
    org: StubOrg,
    steps: list[Step],
    until: Callable[[Session], bool] | None,
    expected: list[Any],
) -> None:
    org.add("devin-s1", *steps)
    assert states(await collect(client, "devin-s1", until=until)) == expected


async def test_wait_returns_the_last_session(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "new", None), (3, "running", "working"), (9, "exit", None))
    done = await client.sessions.wait("devin-s1", until=is_terminal)
    assert done.status == "exit" and done.is_terminal


async def test_until_lambda(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "new", None), (2, "claimed", None), (5, "running", "working"))
    seen = await collect(client, "devin-s1", until=lambda s: s.status == "claimed")
    assert states(seen) == [("new", None), ("claimed", None)]


# -- duplicates and cadence --------------------------------------------------------------------


async def test_an_unchanged_session_is_yielded_once(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "running", "working"), (60, "running", "waiting_for_approval"))
    seen: list[Session] = []
    with pytest.raises(WaitTimeoutError):
        async for session in client.sessions.poll("devin-s1", until=lambda s: False, timeout=59):
            seen.append(session)
    assert states(seen) == [("running", "working")]
    assert len(org.requests) >= 8  # 1, 2, 4, 8, 8, ... seconds apart


async def test_flapping_states_each_yield(client: DevinClient, org: StubOrg) -> None:
    org.add(
        "devin-s1",
        (0, "running", "working"),
        (5, "running", "waiting_for_user"),
        (10, "running", "working"),
        (20, "exit", None),
    )
    seen = await collect(client, "devin-s1", until=is_terminal)
    assert states(seen) == [
        ("running", "working"),
        ("running", "waiting_for_user"),
        ("running", "working"),
        ("exit", None),
    ]


async def test_backs_off_while_unchanged_and_resets_on_change(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add(
        "devin-s1",
        (0, "running", "working"),
        (20, "running", "waiting_for_user"),
        (30, "running", "working"),
        (100, "exit", None),
    )
    await collect(client, "devin-s1", until=is_terminal)
    # 1, 2, 4, 8 (max), 8 -> change at 23; reset to 1, then 2, 4 -> change at 30; ...
    assert clock.sleeps[:8] == [1, 2, 4, 8, 8, 1, 2, 4]


async def test_starting_phase_polls_at_initial(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "new", None), (12, "running", "finished"))
    await collect(client, "devin-s1")
    assert clock.sleeps == [1.0] * 12


async def test_jitter_stays_within_bounds(clock: FakeClock, org: StubOrg) -> None:
    policy = PollPolicy(initial=10, max=10, multiplier=1.5, jitter=0.2)
    org.add("devin-s1", (0, "running", "working"), (500, "exit", None))
    async with stub_client(clock, org, poll=policy) as client:
        await collect(client, "devin-s1", until=is_terminal)
    assert len(clock.sleeps) > 30
    assert all(8 <= s <= 12 for s in clock.sleeps)
    assert len({round(s, 6) for s in clock.sleeps}) > 1


# -- deadline ----------------------------------------------------------------------------------


async def test_deadline_raises_with_last_session(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "new", None), (2, "running", "working"))
    start = clock.now
    with pytest.raises(WaitTimeoutError) as info:
        await client.sessions.wait("devin-s1", timeout=60)
    assert clock.now - start == pytest.approx(60)
    last = info.value.last_session
    assert last is not None and last.state == ("running", "working")
    assert "left alone" in str(info.value)
    assert not any(r.method == "DELETE" for r in org.requests)  # never terminated


async def test_deadline_with_nothing_read(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "new", None))
    org.fail(1000, 503)
    with pytest.raises(WaitTimeoutError) as info:
        await client.sessions.wait("devin-s1", timeout=30)
    assert info.value.last_session is None


async def test_deadline_bounds_the_client_retry_loop(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "running", "working"))
    org.fail(3, 503, retry_after=50)  # the client would sleep 50 s before each retry
    start = clock.now
    with pytest.raises(WaitTimeoutError):
        await client.sessions.wait("devin-s1", timeout=20)
    assert clock.now - start <= 20 + 1e-9


async def test_deadline_on_the_real_clock_bounds_a_slow_request(org: StubOrg) -> None:
    org.add("devin-s1", (0, "running", "working"))
    org.gate = asyncio.Event()  # the request never answers
    client = DevinClient(KEY, org_id="org-test", transport=org)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.wait("devin-s1", timeout=0.05)
    assert info.value.last_session is None
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- server hints and transient failures --------------------------------------------------------


async def test_retry_after_is_honoured_on_every_response(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "running", "working"), (200, "exit", None))
    for _ in range(5):  # a 429, then two good answers, five times over
        org.fail(1, 429, retry_after=7)
        org.answer(2)
    seen = await collect(client, "devin-s1", until=is_terminal)
    assert states(seen) == [("running", "working"), ("exit", None)]
    assert clock.sleeps.count(7.0) == 5  # each 429's hint, slept by the client's retry loop


async def test_retry_after_when_retries_are_off(clock: FakeClock, org: StubOrg) -> None:
    org.add("devin-s1", (0, "running", "working"), (100, "exit", None))
    async with stub_client(clock, org, poll=STILL, retry=RetryPolicy.disabled()) as client:
        poller = client.sessions.poll("devin-s1", until=is_terminal)
        assert states([await anext(poller)]) == [("running", "working")]
        org.fail(3, 429, retry_after=25)
        rest = [s async for s in poller]
    assert states(rest) == [("exit", None)]
    assert clock.sleeps[1:4] == [25.0, 25.0, 25.0]  # max(interval, Retry-After) every time


async def test_a_long_retry_after_is_capped_by_the_poller(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "running", "working"), (10, "exit", None))
    org.fail(1, 503, retry_after=300)  # over the client's 60 s cap: not retried there
    seen = await collect(client, "devin-s1", until=is_terminal)
    assert states(seen) == [("exit", None)]
    assert clock.sleeps[0] == 60.0  # the poller waits at most max_retry_after


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 500},
        {"status": 502},
        {"status": 429},
        {"error": APIConnectionError("refused", method="GET", path="/x")},
    ],
    ids=["503", "500", "502", "429", "connection"],
)
async def test_transient_errors_outlasting_retries_do_not_end_polling(
    client: DevinClient,
    org: StubOrg,
    fault: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    org.add("devin-s1", (0, "new", None), (5, "running", "working"), (400, "running", "finished"))
    poller = client.sessions.poll("devin-s1")
    assert states([await anext(poller)]) == [("new", None)]
    org.fail(20, **fault)  # five times the client's retry policy (4 attempts)
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        rest = [s async for s in poller]
    assert states(rest) == [("running", "working"), ("running", "finished")]
    warnings = [r for r in caplog.records if "polling goes on" in r.getMessage()]
    assert len(warnings) == 1  # each distinct failure is logged once


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFoundError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
    ],
)
async def test_fatal_errors_end_polling_at_once(
    client: DevinClient, org: StubOrg, status: int, error: type[Exception]
) -> None:
    org.add("devin-s1", (0, "running", "working"))
    poller = client.sessions.poll("devin-s1")
    await anext(poller)
    org.fail(1, status)
    before = len(org.requests)
    with pytest.raises(error):
        await anext(poller)
    assert len(org.requests) == before + 1  # not retried
    with pytest.raises(StopAsyncIteration):
        await anext(poller)


async def test_unknown_session_is_not_found(client: DevinClient) -> None:
    with pytest.raises(NotFoundError):
        await client.sessions.wait("devin-nope")


async def test_malformed_bodies_are_ridden_out_then_raised(
    client: DevinClient, org: StubOrg
) -> None:
    org.add("devin-s1", (0, "running", "working"), (60, "running", "finished"))
    org.fail(2, 200, body=b"<html>proxy</html>")
    assert states(await collect(client, "devin-s1")) == [
        ("running", "working"),
        ("running", "finished"),
    ]
    org.add("devin-s2", (0, "running", "working"))
    org.fail(10, 200, body=b"{}")
    with pytest.raises(MalformedResponseError):
        await collect(client, "devin-s2")


async def test_unknown_status_is_active_and_logged_once(
    client: DevinClient, org: StubOrg, caplog: pytest.LogCaptureFixture
) -> None:
    org.add("devin-s1", (0, "hibernating", None), (60, "running", "finished"))
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        seen = await collect(client, "devin-s1")
    assert states(seen) == [("hibernating", None), ("running", "finished")]
    assert len(org.requests) > 3
    logged = [r for r in caplog.records if "unknown status 'hibernating'" in r.getMessage()]
    assert len(logged) == 1


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": True},
        {"timeout": "5"},
        {"until": 3},
        {"policy": {"initial": 1}},
    ],
)
async def test_bad_arguments_fail_before_any_request(
    client: DevinClient, org: StubOrg, kw: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        client.sessions.poll("devin-s1", **kw)
    with pytest.raises(ValueError):
        client.sessions.poll("../etc")
    assert org.requests == []


# -- cancellation ------------------------------------------------------------------------------


async def test_break_leaves_nothing_behind(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "new", None), (2, "claimed", None), (5, "running", "finished"))
    async for _ in client.sessions.poll("devin-s1"):
        break
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert len(org.requests) == 1


@pytest.mark.parametrize("where", ["sleeping", "requesting"])
async def test_cancel_leaves_nothing_behind(org: StubOrg, where: str) -> None:
    clock = FakeClock(stuck=True) if where == "sleeping" else FakeClock()
    org.add("devin-s1", (0, "running", "working"))
    async with stub_client(clock, org, poll=STILL) as client:
        poller = Poller(client.sessions, "devin-s1")
        await anext(poller)
        if where == "requesting":
            org.gate = asyncio.Event()  # the next request never answers
        task = asyncio.create_task(poller.__anext__())
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(org.requests) == (2 if where == "requesting" else 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_asyncio_timeout_around_wait(org: StubOrg) -> None:
    org.add("devin-s1", (0, "running", "working"))
    async with stub_client(FakeClock(stuck=True), org) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await client.sessions.wait("devin-s1")
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_503_with_retry_after_holds_the_client_s_other_requests(
    clock: FakeClock, org: StubOrg
) -> None:
    org.add("devin-s1", (0, "running", "working"))
    async with stub_client(clock, org, retry=RetryPolicy.disabled()) as client:
        org.fail(1, 503, retry_after=5)
        with pytest.raises(InternalServerError) as info:
            await client.sessions.get("devin-s1")
        assert info.value.status == 503
        started = clock.now
        await client.sessions.get("devin-s1")  # another call: waits out the server's hint
    assert clock.now - started == pytest.approx(5.0)
    assert len(org.requests) == 2


async def test_retry_after_on_a_successful_answer_is_honoured(
    client: DevinClient, org: StubOrg, clock: FakeClock
) -> None:
    org.add("devin-s1", (0, "running", "working"), (100, "exit", None))
    ok = json.dumps(org.render("devin-s1")).encode()
    org.fail(3, 200, retry_after=20, body=ok)  # three 200 answers asking for 20 s of quiet
    seen = await collect(client, "devin-s1", until=is_terminal)
    assert states(seen) == [("running", "working"), ("exit", None)]
    assert clock.sleeps[:3] == [20.0, 20.0, 20.0]  # STILL alone would have slept 2, 4, 8


async def test_until_accepts_the_class_predicates(client: DevinClient, org: StubOrg) -> None:
    org.add("devin-s1", (0, "running", "finished"), (30, "exit", None))
    final = await client.sessions.wait("devin-s1", until=Session.is_terminal)
    assert final.status == "exit"
    org.add("devin-s2", (0, "running", "working"), (30, "running", "finished"))
    assert (await client.sessions.wait("devin-s2", until=Session.is_settled)).is_settled
