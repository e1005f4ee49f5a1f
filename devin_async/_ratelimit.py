"""The client-wide rate limiter: one per client, shared by every request it sends.

Why it works this way. `asyncio.gather` over N creates with per-call retries turns one 429 into
a storm: every caller retries on its own clock and the server sees the load multiplied. So all
requests of a client pass one gate with three parts:

1. Pause. A 429 with a hint (`retry-after-ms`, else `Retry-After`) pauses every sender until
   then, not only the one that got it; so does a 503 with one (without cutting the rate). A
   hint longer than `max_pause` pauses nobody, and no sender waits past its own deadline.
2. Pace. Until the first 429 the gate is open. From then on requests leave one at a time, evenly
   spaced at a send rate (a FIFO queue whose head waits for its slot), so nothing bursts after a
   pause. The rate:
   - A throttle after a quiet spell (a `window` without one) starts an *episode* and cuts the
     rate we were sending at to `beta` times it. At a cold start (the gate was open) there is no
     such rate; the guess is what succeeded over the last window, which may be far too low, so it
     grows by slow start (doubling about every 0.5 s of use) until the next throttle. With
     nothing (or next to nothing) succeeded yet there is no guess: the gate stays open, paused.
   - Later throttles of the episode, once 0.1 s and 5 successes of data exist, set the rate to
     `beta` times the successes per second since the episode began: while the server refuses
     some requests, what it accepts is its limit. So the in-flight 429s of one burst give one
     cut, not a compounding one, and an over-guess is corrected within a fraction of a second.
   - Between throttles the rate regrows on the cubic curve of TCP CUBIC / botocore's adaptive
     mode, scaled to the old limit: fast up to near it, flat around it (regained in ~3 s), then
     probing beyond.
   `beta` is 0.9 when the 429 carried a hint (a quota speaking: it will take what succeeded) and
   0.7 without one (maybe overload: back off harder, as botocore does).
3. Budget. Retries draw from a bucket (botocore standard mode): 500 tokens, a retry costs 5 (10
   after a timeout), every answer that is not a throttle refunds 1. When it is empty
   `allow_retry()` says no, so an outage is not multiplied by the retry count.

All time comes from the injected clock and all waiting goes through the injected sleep. The
limiter delays requests and vetoes retries; it never fails a request by itself.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
from collections.abc import Awaitable, Callable

from ._errors import APITimeoutError, DeadlineBeforeSendError

__all__ = ["RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: The cut after a throttle that carried a Retry-After hint, as a fraction of the success rate.
DEFAULT_BETA_HINTED = 0.9
#: The cut after a bare throttle (no hint), as botocore's adaptive mode does.
DEFAULT_BETA = 0.7
#: CUBIC's growth constant, relative to the old limit (per s^3): 0.004 regrows from a 0.9 cut in
#: 2.9 s, as botocore's absolute 0.4 does at 100 requests/s; relative, so it fits any scale.
DEFAULT_CUBIC_SCALE = 0.004
#: The span over which successes are counted to measure what the server accepts.
DEFAULT_WINDOW = 1.0
#: The slowest pace the limiter ever sets (a rate of zero would stop everything).
DEFAULT_MIN_RATE = 0.5
#: The longest shared pause (the default RetryPolicy.max_retry_after: a longer hint fails fast).
DEFAULT_MAX_PAUSE = 60.0
#: Least data for measuring the server's rate during a throttled episode: seconds and successes.
MIN_SPAN = 0.1
MIN_COUNT = 5
#: After a cold-start guess (which may be far too low), each success adds this many requests/s
#: until the next throttle measures: the rate doubles about every 0.5 s while it is used (TCP's
#: slow start), and does not grow while it is not.
SLOW_START_GAIN = math.log(2) / 0.5
#: A paced waiter re-checks at least this often (seconds): the rate may have grown meanwhile.
MAX_WAIT_STEP = 0.1
#: Past this rate the limiter is open again (the cubic curve has long outgrown any real limit).
MAX_RATE = 1_000_000.0
#: The retry budget of botocore's standard mode.
DEFAULT_RETRY_BUDGET = 500
DEFAULT_RETRY_COST = 5
DEFAULT_TIMEOUT_RETRY_COST = 10
DEFAULT_SUCCESS_REFUND = 1


class RateLimiter:
    """Shared pause gate, paced CUBIC send rate, and retry budget.

    Args:
        clock: a monotonic clock in seconds.
        sleep: an async sleep.
        beta_hinted, beta: the cut after a throttle with / without a server hint.
        cubic_scale: the CUBIC growth constant.
        window: seconds over which successes are counted.
        min_rate: the lowest send rate ever set, in requests per second.
        max_pause: the longest pause one hint imposes on every sender; a longer hint pauses
            nobody (it means "come back later": the request that got it fails fast, and the
            others may be sent and get their own 429).
        retry_budget: tokens in the retry bucket (None: retries are never vetoed).
        retry_cost, timeout_retry_cost, success_refund: the bucket's prices.
    """

    def __init__(
        self,
        clock: Clock,
        sleep: Sleep,
        *,
        beta_hinted: float = DEFAULT_BETA_HINTED,
        beta: float = DEFAULT_BETA,
        cubic_scale: float = DEFAULT_CUBIC_SCALE,
        window: float = DEFAULT_WINDOW,
        min_rate: float = DEFAULT_MIN_RATE,
        max_pause: float = DEFAULT_MAX_PAUSE,
        retry_budget: int | None = DEFAULT_RETRY_BUDGET,
        retry_cost: int = DEFAULT_RETRY_COST,
        timeout_retry_cost: int = DEFAULT_TIMEOUT_RETRY_COST,
        success_refund: int = DEFAULT_SUCCESS_REFUND,
    ) -> None:
        for name, value in (("beta_hinted", beta_hinted), ("beta", beta)):
            if not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if cubic_scale <= 0 or window <= 0 or min_rate <= 0 or max_pause < 0:
            raise ValueError("cubic_scale, window and min_rate must be > 0, max_pause >= 0")
        if retry_budget is not None and retry_budget < 0:
            raise ValueError("retry_budget must be >= 0 (or None for no budget)")
        self._clock = clock
        self._sleep = sleep
        self._beta_hinted = beta_hinted
        self._beta = beta
        self._scale = cubic_scale
        self._window = window
        self._min_rate = min_rate
        self._max_pause = max_pause
        self._pause_until = 0.0
        # Pacing: open until the first throttle; then slow start (_cold) or CUBIC.
        self._limited = False
        self._start = 0.0
        self._w_max = 0.0
        self._k = 0.0
        self._epoch = 0.0
        self._cold = False  # growing from a cold-start guess by slow start
        self._last_send = -math.inf
        self._queue = asyncio.Lock()
        self._waiters = 0
        self._episode = -math.inf  # when the current run of throttles began
        self._last_throttle = -math.inf
        self._successes: collections.deque[float] = collections.deque()
        # Retry budget.
        self._capacity = retry_budget
        self._tokens = retry_budget or 0
        self._retry_cost = retry_cost
        self._timeout_cost = timeout_retry_cost
        self._refund = success_refund
        self.throttles = 0

    # -- what the client calls ------------------------------------------------------------

    @property
    def paused_for(self) -> float:
        """Return how long senders are paused from now (0 when not paused)."""
        return max(0.0, self._pause_until - self._clock())

    @property
    def rate(self) -> float | None:
        """Return the current send rate in requests per second (None: unlimited)."""
        return self._rate_at(self._clock())

    @property
    def retry_tokens(self) -> int | None:
        """Return the tokens left in the retry budget (None: no budget)."""
        return None if self._capacity is None else self._tokens

    def try_acquire(self) -> bool:
        """Take the send slot at once if nothing stands in the way; False: `await acquire()`.

        Nothing does while no rate is set, no pause is on and nobody is queued: the common
        case, decided without a coroutine.
        """
        if self._limited or self._waiters:
            return False
        now = self._clock()
        if self._pause_until > now:
            return False
        self._last_send = now
        return True

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait until a request may be sent: past any pause, then on the next paced slot.

        Args:
            deadline: the call's deadline on this limiter's clock: a wait that would end past
                it is not started (APITimeoutError, unsent), so no request is held longer than
                its own deadline allows.
        """
        if not self._queue.locked() and self._take(self._clock(), None) == 0.0:
            return
        # A pause holds every sender alike: no order to keep, so no queue to stand in.
        while (pause := self._pause_until - self._clock()) > 0.0:
            self._check(deadline, pause, "paused by a server's Retry-After")
            await self._sleep(pause)
        rate = self._rate_at(self._clock())
        if rate is not None:
            self._check(deadline, (self._waiters + 1) / rate, "queued behind the send rate")
        self._waiters += 1
        try:
            async with self._queue:  # FIFO: one waiter at a time computes its slot
                planned = None
                while (wait := self._take(self._clock(), planned)) > 0.0:
                    self._check(deadline, wait, "queued behind the send rate")
                    planned = self._clock() + wait
                    await self._sleep(wait)
        finally:
            self._waiters -= 1

    def _check(self, deadline: float | None, wait: float, why: str) -> None:
        if deadline is not None and self._clock() + wait > deadline:
            raise DeadlineBeforeSendError(
                f"the call's deadline would pass while {why} ({wait:.2f} s more); not sent",
                sent=False,
            )

    def pause(self, retry_after: float) -> None:
        """Hold every sender for a server's hint (up to `max_pause`), without cutting the rate.

        For a 503 that says when to come back: the server is down for a while, not over a
        quota, so there is nothing to learn about its rate; but nobody should knock before then.
        """
        if 0 < retry_after <= self._max_pause:
            self._pause_until = max(self._pause_until, self._clock() + retry_after)

    def on_throttle(self, retry_after: float | None) -> None:
        """Record a 429: pause everyone for the hint, and cut the send rate."""
        now = self._clock()
        self.throttles += 1
        hinted = retry_after is not None and retry_after > 0
        if hinted and retry_after is not None and retry_after <= self._max_pause:
            # A longer hint means "come back later": the call that got it fails fast, and no
            # pause longer than the cap is imposed on the others (they may get their own 429).
            self._pause_until = max(self._pause_until, now + retry_after)
        beta = self._beta_hinted if hinted else self._beta
        current = self._rate_at(now)
        new_episode = now - self._last_throttle > self._window
        if new_episode:
            self._episode = now  # the first throttle after a quiet spell
        self._last_throttle = now
        span = now - max(self._episode, now - self._window)
        seen = self._successes_since(now - span)
        if span >= MIN_SPAN and (seen >= MIN_COUNT or span >= self._window):
            # Throttled for a while: what succeeded since is what the server takes. (A window
            # with next to nothing through is an outage: slow start from the floor after it.)
            target = beta * seen / span
            if current is not None:
                target = min(target, current)
            self._set_curve(now, target, beta, cold=seen < MIN_COUNT)
        elif new_episode and current is not None:
            self._set_curve(now, beta * current, beta, cold=False)  # cut what we were sending
        elif new_episode:
            # A cold start: guess from what succeeded lately, if anything did.
            recent = self._successes_since(now - self._window)
            if recent >= MIN_COUNT:
                self._set_curve(now, beta * recent / self._window, beta, cold=True)
        # Otherwise there is too little data to set a rate: the pause alone does the work.

    def on_success(self) -> None:
        """Record an answer that was not a throttle (it refunds the retry budget)."""
        now = self._clock()
        successes = self._successes
        successes.append(now)
        horizon = now - self._window
        while successes and successes[0] <= horizon:
            successes.popleft()
        if self._cold:
            self._start += SLOW_START_GAIN
        if self._capacity is not None and self._tokens < self._capacity:
            self._tokens = min(self._capacity, self._tokens + self._refund)

    def allow_retry(self, error: BaseException | None = None) -> bool:
        """Spend from the retry budget; False means an outage is on and retries stop."""
        if self._capacity is None:
            return True
        cost = self._timeout_cost if isinstance(error, APITimeoutError) else self._retry_cost
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    # -- the arithmetic -------------------------------------------------------------------

    def _take(self, now: float, planned: float | None) -> float:
        """Take the send slot if it is free (return 0), else return how long to wait.

        `planned` is when the waiter meant to wake: lateness past it (up to one interval) is
        credited, so loop lag does not slow the pace; an idle gate gives no credit (no burst).
        """
        if self._pause_until > now:
            return self._pause_until - now
        rate = self._rate_at(now)
        if rate is None:
            self._last_send = now
            return 0.0
        interval = 1.0 / rate
        ready = self._last_send + interval
        if ready > now:
            # Wake at most every MAX_WAIT_STEP: a growing rate may free the slot sooner.
            return min(ready - now, MAX_WAIT_STEP)
        late = 0.0 if planned is None else min(max(0.0, now - planned), interval)
        self._last_send = max(ready, now - late)
        return 0.0

    def _successes_since(self, since: float) -> int:
        successes = self._successes
        horizon = self._clock() - self._window
        while successes and successes[0] <= horizon:
            successes.popleft()
        return len(successes) - bisect.bisect_right(successes, since)

    def _set_curve(self, now: float, target: float, beta: float, *, cold: bool) -> None:
        target = max(target, self._min_rate)
        # CUBIC: W(t) = W_max (1 + C (t - K)^3), with W(0) = target and the plateau at target/beta.
        self._limited = True
        self._cold = cold
        self._start = target
        self._w_max = target / beta
        self._k = ((1.0 - beta) / self._scale) ** (1.0 / 3.0)
        self._epoch = max(now, self._pause_until)

    def _rate_at(self, now: float) -> float | None:
        if not self._limited:
            return None
        t = max(0.0, now - self._epoch)
        cubic = self._w_max * (1.0 + self._scale * (t - self._k) ** 3)
        rate = self._start if self._cold else cubic
        if rate >= MAX_RATE:
            self._limited = False  # recovered far past any limit seen: open again
            return None
        return max(rate, self._min_rate)

    def __repr__(self) -> str:
        rate = self.rate
        shown = "unlimited" if rate is None else f"{rate:.1f}/s"
        return (f"RateLimiter(rate={shown}, paused_for={self.paused_for:.3f}, "
                f"retry_tokens={self.retry_tokens})")
