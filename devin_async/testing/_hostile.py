"""Two ways the fake server misbehaves like a real deployment: stale replicas and idle closes.

Why here and not in `_faults`: a fault is one failed request; these are how the whole service
behaves for a while.
- `StaleReplica`: a `fraction` of session get/list answers come from a replica `by` server
  seconds behind. A stale get shows the session as it was then (one created since, as it was
  when created); a stale list answers as a lagging index would, `by` seconds further back than
  `index_lag` (sessions created since are missing, filters apply to the old view).
- `IdleClose`: the socket front closes a keep-alive connection `after` real seconds of idleness
  following an answer, without a `Connection: close` header, as a proxy with a short idle timeout
  does. A request that arrives on it meanwhile is read and answered as usual (only an idle
  connection is closed), but one already on its way when the close happens is lost unread.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._log import RequestLog
    from ._state import SessionStore

__all__ = ["HostileControls", "IdleClose", "StaleReplica", "check_idle", "check_stale"]


def check_stale(fraction: float, by: float) -> tuple[float, float]:
    """Return the validated (stale_fraction, stale_by).

    Raises:
        ValueError: a fraction outside [0, 1] or a negative or non-finite `by`.
    """
    for name, value in (("stale_fraction", fraction), ("stale_by", by)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"stale_fraction must be within [0, 1], got {fraction!r}")
    if by < 0:
        raise ValueError(f"stale_by must be >= 0 server seconds, got {by!r}")
    return float(fraction), float(by)


def check_idle(after: float | None) -> float | None:
    """Return the validated `close_idle_after` (None: never close an idle connection).

    Raises:
        ValueError: a negative, non-finite or non-number value.
    """
    if after is None:
        return None
    if isinstance(after, bool) or not isinstance(after, int | float) or not math.isfinite(after) \
            or after < 0:
        raise ValueError(f"close_idle_after must be None or a finite number >= 0 real seconds, "
                         f"got {after!r}")
    return float(after)


class StaleReplica:
    """Which session reads a stale replica answers, and how far behind it is."""

    def __init__(self, fraction: float, by: float, *, seed: object) -> None:
        self.fraction, self.by = check_stale(fraction, by)
        self.rng = random.Random(f"stale:{seed}")
        self.served = 0
        #: Stale answers that showed a session in an earlier state than its current one.
        self.behind = 0

    def lag(self) -> float | None:
        """Return how far behind this read's answer is (server seconds), or None for fresh."""
        if self.fraction <= 0.0 or self.by <= 0.0 or self.rng.random() >= self.fraction:
            return None
        self.served += 1
        return self.by


class IdleClose:
    """Close each idle keep-alive connection `after` real seconds past its last answer."""

    def __init__(self, after: float | None, log: RequestLog) -> None:
        self.after = check_idle(after)
        self.log = log
        self._last: dict[asyncio.BaseTransport, object] = {}

    def busy(self, transport: asyncio.BaseTransport | None) -> None:
        """A request arrived on `transport`: a close planned for it is off."""
        if transport is not None:
            self._last.pop(transport, None)

    def answered(self, transport: asyncio.BaseTransport | None) -> None:
        """An answer went out on `transport`: close it if it stays idle for `after` seconds."""
        if self.after is None or transport is None or transport.is_closing():
            return
        mark = object()
        self._last[transport] = mark
        asyncio.get_running_loop().call_later(self.after, self._close, transport, mark)

    def _close(self, transport: asyncio.BaseTransport, mark: object) -> None:
        if self._last.get(transport) is not mark:
            return  # another request came (or a newer answer planned its own close)
        del self._last[transport]
        if not transport.is_closing():
            self.log.stats["idle_closes"] += 1
            transport.close()


class HostileControls:
    """`FakeDevinServer`'s settings for a stale replica and idle-closed connections."""

    _store: SessionStore
    _idle: IdleClose

    @property
    def stale_fraction(self) -> float:
        """The share of session get/list answers a stale replica serves (0: none)."""
        return self._store.replica.fraction

    @stale_fraction.setter
    def stale_fraction(self, value: float) -> None:
        replica = self._store.replica
        replica.fraction, _ = check_stale(value, replica.by)

    @property
    def stale_by(self) -> float:
        """Server seconds the stale replica is behind."""
        return self._store.replica.by

    @stale_by.setter
    def stale_by(self, value: float) -> None:
        replica = self._store.replica
        _, replica.by = check_stale(replica.fraction, value)

    @property
    def stale_answers(self) -> int:
        """How many answers the stale replica served."""
        return self._store.replica.served

    @property
    def stale_behind(self) -> int:
        """How many stale answers showed some session in an earlier state than its current one."""
        return self._store.replica.behind

    @property
    def close_idle_after(self) -> float | None:
        """Real seconds after an answer that an idle connection is closed (None: never)."""
        return self._idle.after

    @close_idle_after.setter
    def close_idle_after(self, value: float | None) -> None:
        self._idle.after = check_idle(value)
