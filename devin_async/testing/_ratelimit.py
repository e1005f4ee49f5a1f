"""A token bucket per API token: `rate` requests per real second, bursts of up to `burst`."""

from __future__ import annotations

import math
from collections.abc import Callable


class RateLimiter:
    """Decide whether a request may pass; otherwise say how long until a token is free."""

    def __init__(self, clock: Callable[[], float], rate: float | None = None,
                 burst: int | None = None) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.rate: float | None = None
        self.burst = 1
        self.configure(rate, burst)

    def configure(self, rate: float | None, burst: int | None = None) -> None:
        """Set the limit (None: unlimited); burst defaults to max(1, int(rate))."""
        if rate is not None and rate <= 0:
            raise ValueError("rate_limit must be > 0 requests per second (or None)")
        if burst is not None and burst < 1:
            raise ValueError("rate_limit_burst must be >= 1")
        self.rate = rate
        self.burst = burst if burst is not None else max(1, int(rate or 1))
        self._buckets.clear()

    def acquire(self, key: str) -> float | None:
        """Take a token for `key`: None if granted, else seconds until one is free."""
        if self.rate is None:
            return None
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


def retry_after_headers(wait: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (ceil, at least 1) and the exact `retry-after-ms`."""
    return {"Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
