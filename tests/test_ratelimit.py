"""The client-wide rate limiter: pause, paced CUBIC rate, retry budget, on virtual time."""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any, TypeVar

import pytest

from devin_async import APIConnectionError, APITimeoutError
from devin_async._ratelimit import MAX_RATE, RateLimiter

from .helpers import FakeClock

T = TypeVar("T")


def limiter_on(vt: FakeClock, **kw: Any) -> RateLimiter:
    return RateLimiter(vt, vt.sleep, **kw)


def succeed(limiter: RateLimiter, vt: FakeClock, n: int, over: float) -> None:
    """Record n successes evenly over the last `over` seconds (ending now)."""
    end = vt.now
    for i in range(n):
        vt.now = end - over + over * (i + 1) / n
        limiter.on_success()
    vt.now = end


# -- pause ---------------------------------------------------------------------------------

async def test_open_until_the_first_throttle() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    assert limiter.rate is None and limiter.paused_for == 0
    await vt.run(*(limiter.acquire() for _ in range(100)))
    assert vt.now == 0


async def test_try_acquire_takes_a_free_slot_and_declines_whatever_would_wait() -> None:
    vt = FakeClock(100.0, instant=False)
    limiter = limiter_on(vt)
    assert all(limiter.try_acquire() for _ in range(100))  # open: no rate, no pause, no queue
    succeed(limiter, vt, 50, 1.0)
    limiter.on_throttle(0.5)
    assert not limiter.try_acquire()  # paused
    vt.now += 0.6
    assert limiter.rate is not None and not limiter.try_acquire()  # paced: acquire() decides
    await limiter.acquire()  # and it does, on the paced slot
    limiter.pause(1.0)
    assert not limiter.try_acquire()


@pytest.mark.parametrize("hint", [0.25, 2.0, 30.0])
async def test_hint_pauses_every_sender(hint: float) -> None:
    vt = FakeClock(100.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 50, 1.0)
    limiter.on_throttle(hint)
    assert limiter.paused_for == pytest.approx(hint)
    sent: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        sent.append(vt.now)

    await vt.run(*(sender() for _ in range(5)))
    assert len(sent) == 5 and min(sent) >= 100.0 + hint
    assert limiter.paused_for == 0


async def test_later_hint_extends_an_earlier_pause_never_shortens() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    limiter.on_throttle(5.0)
    limiter.on_throttle(1.0)
    assert limiter.paused_for == pytest.approx(5.0)
    vt.now = 2.0
    limiter.on_throttle(4.0)
    assert limiter.paused_for == pytest.approx(4.0)


async def test_a_come_back_later_hint_does_not_hold_everyone() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt, max_pause=60.0)
    limiter.on_throttle(3600.0)  # "come back later": that call fails fast, nobody is held
    assert limiter.paused_for == 0.0


async def test_an_unavailable_pause_holds_everyone_without_setting_a_rate() -> None:
    vt = FakeClock(100.0, instant=False)
    limiter = limiter_on(vt, max_pause=60.0)
    succeed(limiter, vt, 50, 1.0)
    limiter.pause(5.0)
    limiter.pause(2.0)  # a shorter hint never shortens the pause
    assert limiter.paused_for == pytest.approx(5.0)
    assert limiter.rate is None and limiter.throttles == 0  # no rate learnt from a 503
    sent: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        sent.append(vt.now)

    await vt.run(*(sender() for _ in range(3)))
    assert sent == [105.0, 105.0, 105.0]  # all at once when it ends: the gate was open
    limiter.pause(60.0)
    limiter.pause(3600.0)  # over max_pause: pauses nobody (and leaves the current pause)
    assert limiter.paused_for == pytest.approx(60.0)
    limiter.pause(0.0)
    assert limiter.paused_for == pytest.approx(60.0)


async def test_throttle_during_a_paced_wait_requeues_after_the_pause() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 10, 1.0)
    limiter.on_throttle(None)  # paced at 7/s, no pause
    times: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        times.append(vt.now)

    async def throttle_soon() -> None:
        await vt.sleep(0.05)
        limiter.on_throttle(3.0)

    await vt.run(*(sender() for _ in range(4)), throttle_soon())
    assert times[0] == 0.0  # the first slot was free at once
    assert all(t >= 3.05 for t in times[1:])  # the others waited out the pause
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert all(g > 0.05 for g in gaps)  # and left paced, not in a burst


async def test_a_cancelled_waiter_does_not_block_the_queue() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    limiter.on_throttle(1.0)
    head = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    head.cancel()
    await vt.run(limiter.acquire(), limiter.acquire())
    assert head.cancelled() and vt.now == pytest.approx(1.0)


# -- pacing and the cut --------------------------------------------------------------------

@pytest.mark.parametrize(("hint", "beta"), [(0.01, 0.9), (None, 0.7)])
async def test_cut_is_a_fraction_of_what_succeeded(hint: float | None, beta: float) -> None:
    vt = FakeClock(10.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 100, 1.0)
    for _ in range(8):  # the 429s of one burst all cut to the same rate: no compounding
        limiter.on_throttle(hint)
    vt.now = max(vt.now, 10.0 + (hint or 0.0))
    assert limiter.rate == pytest.approx(100 * beta, rel=1e-3)


async def test_sends_are_evenly_spaced_after_a_pause() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 100, 1.0)
    limiter.on_throttle(0.5)
    times: list[float] = []

    async def sender() -> None:
        for _ in range(5):
            await limiter.acquire()
            times.append(vt.now)

    await vt.run(*(sender() for _ in range(8)))
    times.sort()
    assert times[0] == pytest.approx(0.5)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(1 / 90, rel=0.05) for g in gaps)


def warm(limiter: RateLimiter, vt: FakeClock, rate: float = 100.0) -> None:
    """Bring the limiter past its cold start: paced at `rate`, on the cubic curve."""
    succeed(limiter, vt, round(rate), 1.0)
    limiter.on_throttle(None)  # cold guess: 0.7 x what succeeded
    vt.now += 2.0  # a quiet spell: the next throttle starts a new episode
    limiter.on_throttle(None)  # cuts the rate we were sending at: 0.7 x 0.7 x rate
    vt.now += limiter.paused_for  # the curve starts once any pause ends (none without a hint)


async def test_cubic_recovery_plateaus_at_the_old_rate_then_probes() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    warm(limiter, vt)
    start = vt.now
    k = (0.3 / 0.004) ** (1 / 3)  # the same K at any scale
    samples = []
    for t in [0, 0.5 * k, k, 1.5 * k, 2 * k, 3 * k]:
        vt.now = start + t
        rate = limiter.rate
        assert rate is not None
        samples.append(rate)
    assert samples[0] == pytest.approx(49)  # 0.7 x the 70/s we were sending at
    assert samples[2] == pytest.approx(70)  # back to it after K seconds
    assert samples == sorted(samples)  # grows back monotonically
    assert samples[2] - samples[1] < samples[1] - samples[0]  # concave up to the old limit
    assert samples[5] - samples[4] > samples[3] - samples[2]  # convex beyond it


async def test_recovery_clock_starts_when_the_pause_ends() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    warm(limiter, vt)
    vt.now += 5.0
    before = limiter.rate
    assert before is not None
    start = vt.now
    limiter.on_throttle(20.0)
    vt.now = start + 20.0
    assert limiter.rate == pytest.approx(0.9 * before)


async def test_cold_guess_grows_with_use_not_with_time() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 10, 1.0)
    limiter.on_throttle(0.01)
    vt.now = 60.0
    assert limiter.rate == pytest.approx(9)  # an idle minute changes nothing
    for _ in range(5):
        limiter.on_success()
    assert limiter.rate == pytest.approx(9 + 5 * math.log(2) / 0.5)


async def test_over_guess_is_corrected_by_what_succeeds_during_the_episode() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 300, 0.1)  # a server burst of 300 before the first 429
    limiter.on_throttle(0.01)
    assert limiter.rate == pytest.approx(270)
    for _ in range(5):  # then the server lets 100/s through; 429s keep coming
        vt.now += 0.01
        limiter.on_success()
        limiter.on_throttle(0.01)
    assert limiter.rate == pytest.approx(270 + 5 * math.log(2) / 0.5)  # too little data yet
    for _ in range(15):
        vt.now += 0.01
        limiter.on_success()
    limiter.on_throttle(0.01)
    vt.now += 0.01
    assert limiter.rate == pytest.approx(90, rel=0.01)


async def test_no_evidence_no_rate_only_the_pause() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 4, 1.0)  # too little to guess from
    limiter.on_throttle(0.02)
    assert limiter.rate is None and limiter.paused_for == pytest.approx(0.02)
    for _ in range(10):  # the episode goes on: 429s between a trickle of successes
        vt.now += 0.02
        limiter.on_success()
        limiter.on_throttle(0.02)
    assert limiter.rate == pytest.approx(0.9 * 10 / 0.2, rel=0.01)


async def test_the_rate_never_drops_below_the_floor() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt, min_rate=2.0)
    warm(limiter, vt, rate=5)
    vt.now += 5.0
    for _ in range(20):  # two seconds of 429s, nothing through
        vt.now += 0.1
        limiter.on_throttle(None)
    assert limiter.rate == pytest.approx(2.0, rel=0.01)
    for _ in range(4):  # then the server is back: slow start, doubling with use
        limiter.on_success()
    assert limiter.rate == pytest.approx(2.0 + 4 * math.log(2) / 0.5, rel=0.01)


async def test_only_the_last_window_counts() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    succeed(limiter, vt, 500, 1.0)  # an old burst
    vt.now = 5.0
    succeed(limiter, vt, 20, 1.0)
    limiter.on_throttle(None)
    assert limiter.rate == pytest.approx(14)


async def test_reopens_once_recovered_far_past_any_limit() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    warm(limiter, vt)
    vt.now += (MAX_RATE / 70 / 0.004) ** (1 / 3) + 5
    assert limiter.rate is None
    start = vt.now
    await vt.run(limiter.acquire(), limiter.acquire())
    assert vt.now == start


@pytest.mark.parametrize("kw", [dict(beta=1.0), dict(beta_hinted=0), dict(window=0),
                                dict(min_rate=-1), dict(cubic_scale=0), dict(retry_budget=-1),
                                dict(max_pause=-1)])
def test_bad_settings(kw: dict[str, Any]) -> None:
    vt = FakeClock(0.0, instant=False)
    with pytest.raises(ValueError):
        RateLimiter(vt, vt.sleep, **kw)


# -- retry budget --------------------------------------------------------------------------

def test_budget_runs_dry_in_an_outage_and_refills_on_success() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    allowed = 0
    while limiter.allow_retry():
        allowed += 1
    assert allowed == 100  # 500 tokens at 5 per retry
    assert limiter.retry_tokens == 0 and not limiter.allow_retry()
    for _ in range(5):
        limiter.on_success()
    assert limiter.allow_retry() and not limiter.allow_retry()


@pytest.mark.parametrize(("error", "cost"), [
    (None, 5),
    (APIConnectionError("reset", sent=False), 5),
    (APITimeoutError("slow", sent=True), 10),
])
def test_budget_prices(error: BaseException | None, cost: int) -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt, retry_budget=100)
    assert limiter.allow_retry(error)
    assert limiter.retry_tokens == 100 - cost


def test_refund_never_exceeds_capacity_and_budget_can_be_off() -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt, retry_budget=20)
    for _ in range(50):
        limiter.on_success()
    assert limiter.retry_tokens == 20
    unlimited = limiter_on(vt, retry_budget=None)
    assert all(unlimited.allow_retry() for _ in range(10_000))
    assert unlimited.retry_tokens is None
    assert "unlimited" in repr(unlimited)


# -- the whole loop against a simulated token-bucket server --------------------------------

class BucketServer:
    """A server that allows `rate` requests/s with bursts of `burst`, like the fake server."""

    def __init__(self, vt: FakeClock, rate: float, burst: float, latency: float) -> None:
        self.vt, self.rate, self.burst, self.latency = vt, rate, burst, latency
        self.tokens, self.at = burst, vt.now
        self.ok = self.throttled = 0

    async def call(self) -> float | None:
        """Answer after `latency`: None for a success, else the retry-after hint."""
        await self.vt.sleep(self.latency / 2)
        now = self.vt.now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        await self.vt.sleep(self.latency / 2)
        if self.tokens >= 1:
            self.tokens -= 1
            self.ok += 1
            return None
        self.throttled += 1
        return math.ceil((1 - self.tokens) / self.rate * 1000) / 1000


@pytest.mark.parametrize(("rate", "burst"), [(100, 100), (100, 25), (100, 300), (40, 40)])
async def test_settles_near_the_server_rate(rate: float, burst: float) -> None:
    vt = FakeClock(0.0, instant=False)
    limiter = limiter_on(vt)
    server = BucketServer(vt, rate, burst, latency=0.004)
    todo = iter(range(1000))

    async def worker() -> None:
        for _ in todo:
            while True:
                await limiter.acquire()
                hint = await server.call()
                if hint is None:
                    limiter.on_success()
                    break
                limiter.on_throttle(hint)
                await vt.sleep(hint)

    await vt.run(*(worker() for _ in range(8)))
    ideal = 1000 / rate
    assert server.ok == 1000
    assert vt.now <= 1.15 * ideal, vt.now
    assert server.throttled <= 0.05 * (server.ok + server.throttled), server.throttled
