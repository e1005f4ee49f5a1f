"""Class 3: `RetryPolicy.deadline` bounds a whole call, whatever the server does.

Each call must end within its deadline plus one attempt's timeout (plus a little slack for the
loop): against a server that never answers, one that throttles forever without a hint, a
client whose rate limiter was slowed by throttles, a create whose answer is lost and whose
token look-ups are slow, and `create_many` under endless 429s (which also sends at most
`max_attempts` creates per request).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from devin_async import CreateUnconfirmedError, DevinError, RetryPolicy, Session, Timeouts

from .org import Org
from .servers import PREFIX, Answer, Drop, Hang, RawServer, Reply, Seen, client_for, page_json

TIMEOUTS = Timeouts(total=0.3)
DEADLINE = 0.5
BOUND = DEADLINE + TIMEOUTS.total + 0.25
POLICIES = {
    "default-backoff": RetryPolicy(deadline=DEADLINE),
    "fast-backoff": RetryPolicy(deadline=DEADLINE, initial_backoff=0.05, max_backoff=0.1,
                                jitter=False, max_attempts=20),
}
THROTTLE = Answer(429, {"detail": "Too Many Requests"})
FOREVER: dict[str, Reply] = {
    "never-answers": Hang(),
    "429-forever": THROTTLE,
    "429-forever-hinted": Answer(429, {"detail": "Too Many Requests"},
                                 headers=(("Retry-After", "0.2"),)),
}


async def timed(coro: object, cap: float = 3 * BOUND) -> tuple[float, object]:
    """Return how long `coro` took (at most `cap`: then TimeoutError) and its result."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(cap):
            result: object = await coro  # type: ignore[misc]
    except (DevinError, TimeoutError) as exc:
        result = exc
    return loop.time() - start, result


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("reply", list(FOREVER))
async def test_a_get_ends_within_its_deadline(reply: str, policy: str) -> None:
    answer = FOREVER[reply]
    async with RawServer(lambda _s: answer) as server, client_for(
            server, timeouts=TIMEOUTS, retry=POLICIES[policy]) as client:
        async with asyncio.timeout(3 * BOUND):
            took, result = await timed(client.sessions.get("devin-1"))
    assert isinstance(result, DevinError)
    assert took < BOUND, f"get took {took:.2f} s with a {DEADLINE} s deadline"
    assert server.seen


class WarmThenThrottle:
    """Answer the first `ok` requests, then 429 without a hint forever."""

    def __init__(self, ok: int) -> None:
        self.ok = ok

    def __call__(self, seen: Seen) -> Answer:
        if self.ok > 0:
            self.ok -= 1
            sid = seen.path.rsplit("/", 1)[-1]
            from .servers import session_json

            return Answer(200, session_json(sid))
        return THROTTLE


async def test_concurrent_gets_end_within_the_deadline_when_the_limiter_slowed() -> None:
    async with RawServer(WarmThenThrottle(ok=30)) as server, client_for(
            server, timeouts=TIMEOUTS, retry=POLICIES["fast-backoff"]) as client:
        async with asyncio.timeout(4.0):
            for i in range(30):  # a steady rate for the limiter to learn, then throttles
                await client.sessions.get(f"devin-warm{i}")
            results = await asyncio.gather(*(timed(client.sessions.get(f"devin-b{i}"), 2 * BOUND)
                                             for i in range(20)))
    took = [t for t, _ in results]
    assert max(took) < BOUND, f"the slowest get took {max(took):.2f} s (bound {BOUND:.2f} s)"
    assert all(isinstance(r, DevinError) for _, r in results)
    assert len(server.seen) <= 30 + 20 * 20


@pytest.mark.parametrize("lookup", ["slow-and-lagging", "times-out"])
async def test_a_lost_create_with_slow_lookups_ends_within_the_deadline(lookup: str) -> None:
    # The org makes the session, then drops the answer; its list (the token look-up) is slow:
    # 0.25 s over an index that lags 5 s (nothing found), or 1 s (each look-up times out).
    org = Org(lose=lambda _s: Drop(), list_delay=0.25 if lookup == "slow-and-lagging" else 1.0,
              index_lag=5.0)
    async with RawServer(org) as server, client_for(
            server, timeouts=TIMEOUTS, retry=POLICIES["fast-backoff"]) as client:
        async with asyncio.timeout(3 * BOUND):
            took, result = await timed(client.sessions.create("lost answer"))
    assert took < BOUND, f"create took {took:.2f} s with a {DEADLINE} s deadline"
    assert isinstance(result, Session | CreateUnconfirmedError), (
        f"a create that may have happened ended with {result!r}")
    assert len(org.records) == 1 or isinstance(result, CreateUnconfirmedError)
    assert server.requests("POST")


class ThrottleCreates:
    """429 every create forever; answer token look-ups with an empty page."""

    def __call__(self, seen: Seen) -> Answer:
        if seen.method == "POST":
            return THROTTLE
        return Answer(200, page_json([]))


@pytest.mark.parametrize("policy", list(POLICIES))
async def test_create_many_under_endless_429s_ends_within_the_deadline(policy: str) -> None:
    loop = asyncio.get_running_loop()
    retry = POLICIES[policy]
    prompts = [f"throttled {i}" for i in range(8)]
    async with RawServer(ThrottleCreates()) as server, client_for(
            server, timeouts=TIMEOUTS, retry=retry) as client:
        ended: list[float] = []
        async with asyncio.timeout(3 * BOUND):
            start = loop.time()
            async with client.sessions.create_many([{"prompt": p} for p in prompts],
                                                   concurrency=8) as batch:
                async for result in batch:
                    ended.append(loop.time() - start)
                    assert result.error is not None
    assert len(ended) == len(prompts)
    assert max(ended) < BOUND, f"a create ended after {max(ended):.2f} s (bound {BOUND:.2f} s)"
    posts = Counter(json.loads(s.body)["prompt"] for s in server.requests("POST"))
    assert set(posts) == set(prompts)
    assert max(posts.values()) <= retry.max_attempts, posts
    lookups = len(server.requests("GET", f"{PREFIX}/sessions"))
    assert lookups <= len(prompts) * retry.max_attempts
