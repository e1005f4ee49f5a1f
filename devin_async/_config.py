"""Frozen configuration values: timeouts, retries, polling cadence.

Every default is finite. Why these numbers:
- Timeouts: 10 s to connect is generous for a TLS handshake to one API host; 60 s for the answer
  covers a slow create (the API provisions before answering; the official SDK waits 60 s too) and
  caps one attempt whatever happens, so a stuck socket can never hang a caller.
- Retries: 4 attempts (1 + 3 retries), full-jitter exponential backoff from 0.5 s doubling to 8 s,
  the same envelope as the official SDK's (0.5 s → 8 s) with one more try; a Retry-After is honoured
  up to 60 s (longer means "come back later": we fail fast with `.retry_after` set instead of
  holding the caller); and the whole call, retries included, ends within 180 s.
- Polling: Devin sessions live for minutes to hours. Start at 1 s (a new session changes within
  seconds), back off x1.5 to 30 s while nothing changes, snap back to 1 s on any change, with ±10 %
  jitter so thousands of pollers never fall into step.
"""

from __future__ import annotations

import math

import attrs

__all__ = ["PollPolicy", "RetryPolicy", "Timeouts"]


def _number(attribute: attrs.Attribute[float], value: object) -> float:
    """Return `value` if it is a finite real number (bool is not one), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{attribute.name} must be a number of seconds, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")
    return value


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _number(attribute, value) > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _number(attribute, value) >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _number(attribute, value) >= 1:
        raise ValueError(f"{attribute.name} must be >= 1 (a growth factor), got {value!r}")


def _bool(_inst: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be a bool, got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt timeouts, in seconds.

    Attributes:
        connect: opening a new connection (TCP and TLS); a pooled connection needs none.
            Waiting for a free pooled connection is not counted here (under fan-out that is
            queueing); it may take all but the last second of `total`, and then fails as a
            connect timeout: unsent, so safe to retry.
        read: the longest wait for the next bytes of the answer once the request is sent.
        total: the whole attempt, from waiting for a connection to the last byte.

    A `read` shorter than `total` makes aiohttp re-arm a timer on every chunk received, which
    costs about 6 % of the client's CPU per request (`benchmarks`, instruction counts); at the
    default, `read` equals `total`, which bounds every wait by itself, so no such timer is armed.
    """

    connect: float = attrs.field(default=10.0, validator=_positive)
    read: float = attrs.field(default=60.0, validator=_positive)
    total: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried.

    Attributes:
        max_attempts: attempts in all, the first included (1 disables retries).
        initial_backoff: first backoff, in seconds, before jitter.
        max_backoff: cap of one backoff.
        multiplier: growth of the backoff per attempt.
        jitter: use full jitter (a random wait between 0 and the backoff).
        max_retry_after: the longest wait a server hint can cause: a longer `Retry-After` on a
            failure fails that call at once (`.retry_after` set) and pauses no other request;
            on a successful answer (a poller's cadence) it is cut to this.
        deadline: the longest one call may take: the first attempt, retries, backoff, waits in
            the rate limiter and a create's token look-ups included.
        settle: how long a create's token look-up keeps looking before it concludes that the
            create did not happen (the list endpoint may lag behind writes); and how long after
            a create that followed an ambiguous failure the SDK checks for a second session
            with the same token (which it then terminates, keeping the oldest).
    """

    max_attempts: int = attrs.field(default=4)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    jitter: bool = attrs.field(default=True, validator=_bool)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    deadline: float = attrs.field(default=180.0, validator=_positive)
    settle: float = attrs.field(default=3.0, validator=_non_negative)

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {value!r}")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """Return a policy that never retries."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int) -> float:
        """Return the backoff ceiling before retry number `attempt` (1-based), before jitter."""
        try:
            grown = self.initial_backoff * self.multiplier ** (attempt - 1)
        except OverflowError:
            return float(self.max_backoff)
        return float(min(self.max_backoff, grown))


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often a session is polled.

    Attributes:
        initial: the interval after a change, and while a session is about to change
            (`new`, `claimed`, `resuming`).
        max: the longest interval while nothing changes.
        multiplier: growth of the interval per unchanged poll.
        jitter: a random fraction (0..1) added or taken from each interval.
    """

    initial: float = attrs.field(default=1.0, validator=_positive)
    max: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_at_least_one)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value > 1:
            raise ValueError(f"jitter must be between 0 and 1, got {value!r}")

    def next_interval(self, current: float) -> float:
        """Return the interval after `current` when nothing changed."""
        return min(self.max, max(self.initial, current * self.multiplier))
