"""Every deadline and cap of the engine, on the fake clock through the `StubOrg` transport.

One deadline per public call bounds the limiter's queueing, each attempt's timeout (the
transport is told at most the time left), backoff sleeps and a create's look-ups; server hints
are capped at `RetryPolicy.max_retry_after` on every answer. Time only moves when the SDK
sleeps (or a silent transport waits out its timeout), so "ends by t+4" is exact.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from devin_async import (
    APIConnectionError,
    APITimeoutError,
    CreateUnconfirmedError,
    DevinClient,
    RateLimitError,
    RetryPolicy,
    Session,
    Timeouts,
)

from .helpers import FakeClock, StubOrg, stub_client

SLOW = Timeouts(total=3)
SHORT = RetryPolicy(deadline=4)


def assert_timeouts_within(org: StubOrg, start: float, deadline: float, total: float) -> None:
    """Each attempt's timeout is at most `total` and at most the call's time left."""
    assert org.timeouts, "nothing was sent"
    for sent_at, timeout in zip(org.sent_at, org.timeouts, strict=True):
        assert 0 < timeout <= total
        assert timeout <= start + deadline - sent_at + 1e-9


async def test_a_get_that_never_answers_ends_at_its_deadline(clock: FakeClock,
                                                            org: StubOrg) -> None:
    org.add("devin-1")
    org.silent = True
    start = clock.now
    async with stub_client(clock, org, timeouts=SLOW, retry=SHORT) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.sessions.get("devin-1")
    assert info.value.sent
    assert clock.now - start <= 4.0  # +0 slack: the fake clock only moves when told
    assert len(org.requests) >= 2  # a second attempt got what was left, not a full 3 s
    assert_timeouts_within(org, start, 4.0, 3.0)


async def test_a_create_that_never_answers_ends_at_its_deadline_look_ups_included(
    clock: FakeClock, org: StubOrg
) -> None:
    org.silent = True
    start = clock.now
    async with stub_client(clock, org, timeouts=SLOW, retry=SHORT) as client:
        with pytest.raises((CreateUnconfirmedError, APITimeoutError)) as info:
            await client.sessions.create("never answered")
    assert isinstance(info.value, CreateUnconfirmedError)  # sent: it may still happen
    assert clock.now - start <= 4.0
    assert len(org.creates) == 1  # a timed-out create is looked up, never resent
    assert org.lists, "the create was looked up"
    assert_timeouts_within(org, start, 4.0, 3.0)


@pytest.mark.parametrize(("attempts", "deadline"), [(5, 1000.0), (1000, 20.0)],
                         ids=["attempts bind", "deadline binds"])
async def test_endless_429s_without_a_hint_stop_at_attempts_or_deadline(
    clock: FakeClock, org: StubOrg, attempts: int, deadline: float
) -> None:
    org.add("devin-1")
    org.fail(100_000, 429)
    start = clock.now
    policy = RetryPolicy(max_attempts=attempts, deadline=deadline)
    async with stub_client(clock, org, retry=policy) as client:
        with pytest.raises(RateLimitError):
            await client.sessions.get("devin-1")
    assert len(org.requests) <= attempts
    assert clock.now - start <= deadline
    assert len(org.requests) == attempts or clock.now - start > deadline - 8.0  # max_backoff


async def test_a_hint_under_the_cap_is_waited_exactly_and_pauses_the_others() -> None:
    clock = FakeClock(0.0, instant=False)  # concurrent sleeps overlap
    org = StubOrg(clock)
    org.add("devin-1")
    org.add("devin-2")
    org.fail(1, 429, retry_after=7)
    async with stub_client(clock, org) as client:
        async def first() -> Session:
            return await client.sessions.get("devin-1")

        async def second() -> Session:
            for _ in range(100):  # until the 429 was answered and its hint is being slept
                if clock.sleeps:
                    break
                await asyncio.sleep(0)
            assert clock.sleeps == [7.0]
            return await client.sessions.get("devin-2")

        a, b = await clock.run(first(), second())
    assert (a.session_id, b.session_id) == ("devin-1", "devin-2")
    assert clock.sleeps[0] == 7.0  # exactly the hint, no jitter added
    assert org.sent_at[0] == 0.0 and org.sent_at[1:] == [7.0, 7.0]  # the other one waited too


async def test_a_hint_over_the_cap_fails_at_once_and_pauses_nobody(clock: FakeClock,
                                                                   org: StubOrg) -> None:
    org.add("devin-1")
    org.add("devin-2")
    org.fail(1, 429, retry_after=3600)
    async with stub_client(clock, org) as client:
        start = clock.now
        with pytest.raises(RateLimitError) as info:
            await client.sessions.get("devin-1")
        assert info.value.retry_after == 3600
        assert client.limiter.paused_for == 0.0
        assert (await client.sessions.get("devin-2")).session_id == "devin-2"
    assert clock.sleeps == [] and clock.now == start  # nobody waited
    assert len(org.requests) == 2


async def test_queueing_in_the_limiter_counts_against_the_deadline(clock: FakeClock,
                                                                   org: StubOrg) -> None:
    org.add("devin-1")
    org.fail(1, 429)  # without a hint
    policy = RetryPolicy(max_attempts=1, deadline=1.0)
    async with stub_client(clock, org, retry=policy) as client:
        limiter = client.limiter
        limiter.on_throttle(None)  # a throttle a window before, nothing succeeded since:
        clock.now += 1.0
        with pytest.raises(RateLimitError):
            await client.sessions.get("devin-1")  # takes the send slot; its 429 sets the pace
        assert limiter.rate == pytest.approx(0.5)  # the slowest: one request per 2 s
        start = clock.now
        with pytest.raises(APITimeoutError) as info:
            await client.sessions.get("devin-1")  # its slot is 2 s away; its deadline 1 s
    assert not info.value.sent
    assert len(org.requests) == 1  # never sent
    assert clock.now - start <= 1.0


async def poll_all(client: DevinClient) -> Any:
    return [s.state async for s in client.sessions.poll("devin-1")]


async def wait_for(client: DevinClient) -> Any:
    return (await client.sessions.wait("devin-1")).state


async def watch_all(client: DevinClient) -> Any:
    return [e.session.state async for e in client.watch(["devin-1"])]


@pytest.mark.parametrize("use", [poll_all, wait_for, watch_all], ids=["poll", "wait", "watch"])
async def test_a_day_long_hint_on_a_2xx_is_capped_while_polling(
    clock: FakeClock, org: StubOrg, use: Any
) -> None:
    org.add("devin-1", (0, "running", "working"), (200, "running", "finished"))
    org.ok_headers = {"Retry-After": "86400"}
    start = clock.now
    async with stub_client(clock, org) as client:
        assert await use(client)
    assert clock.sleeps and max(clock.sleeps) <= client.retry.max_retry_after == 60.0
    assert clock.now - start < 86400


async def test_a_lost_create_not_found_within_settle_is_resent_once_then_deduplicated(
    clock: FakeClock, org: StubOrg
) -> None:
    settle = RetryPolicy().settle
    # A created session shows in lists 1.5 x settle later: not within the look-ups' window
    # (settle), but by the duplicate check (settle after the resend).
    org.index_lag = 1.5 * settle
    org.fail(1, method="POST", after=True,
             error=APIConnectionError("reset after sending", sent=True))  # made, answer lost
    start = clock.now
    async with stub_client(clock, org, retry=RetryPolicy(jitter=False)) as client:
        session = await client.sessions.create("make one")
    first, second = sorted(org.timelines)  # both creates made a session
    assert len(org.creates) == 2  # resent once
    posts = [i for i, r in enumerate(org.requests) if r.method == "POST"]
    resent = org.sent_at[posts[1]]
    looks = [t for t, r in zip(org.sent_at, org.requests, strict=True)
             if r.method == "GET" and r.path == "/sessions" and t < resent]
    assert looks and max(looks) - start <= client.retry.settle + 1.0  # looked, within settle
    assert org.terminated == [second]  # the younger duplicate is terminated
    assert session.session_id == first  # the oldest is kept
    assert org.render(second)["status"] == "exit"
    assert org.tokens.count(org.tokens[0]) == 2  # same token on both: it was one create


async def test_a_lost_create_whose_settle_window_the_deadline_cuts_is_never_resent(
    clock: FakeClock, org: StubOrg
) -> None:
    # deadline 2 s < settle 3 s, and the index lags more than the call lasts: the look-ups
    # cannot conclude "not created", so a resend could be a duplicate nobody checks for.
    org.index_lag = 10.0
    org.fail(1, method="POST", after=True,
             error=APIConnectionError("reset after sending", sent=True))  # made, answer lost
    start = clock.now
    retry = RetryPolicy(deadline=2.0, settle=3.0, jitter=False)
    async with stub_client(clock, org, retry=retry) as client:
        with pytest.raises(CreateUnconfirmedError) as info:
            await client.sessions.create("make one")
    assert len(org.creates) == 1  # never sent again
    assert len(org.timelines) == 1  # one session exists, and the error says how to find it
    assert org.tokens[0].endswith(info.value.client_token)
    assert info.value.original.sent
    assert clock.now - start <= 2.0


@pytest.mark.parametrize("seed", [0, 1, 16, 19, 40, 104, 124])  # 16+: the limiter stops it
async def test_a_resend_the_deadline_stops_in_the_limiter_raises_the_last_real_failure(
    seed: int, clock: FakeClock, org: StubOrg
) -> None:
    # Endless 429s slow the send rate; the resend that would wait past the deadline in the
    # limiter is never sent, and the caller hears the server's 429, not "not sent in time".
    random.seed(seed)  # the backoff's jitter decides which of the two stops the call
    org.add("devin-1")
    org.fail(100_000, 429)
    async with stub_client(clock, org, retry=RetryPolicy(max_attempts=1000, deadline=20.0)) as c:
        with pytest.raises(RateLimitError) as info:
            await c.sessions.get("devin-1")
    assert info.value.status == 429
