"""`Poller`: follow one session until it satisfies `until`, yielding each change once.

Why it looks like this:
- A class with `__anext__`, not an async generator: when the consumer breaks out, is cancelled or
  times out, nothing is left suspended (no generator to finalize, no task, no open request).
- Time is the engine's: `engine.clock` and `engine.sleep` only, so tests inject a fake clock and
  never sleep. Each poll is one engine call whose deadline is the sooner of the retry policy's
  and the iteration's own `timeout`, so no retry inside a poll can outlive the wait.
- Cadence: a session that is about to change (phase STARTING: new, claimed, resuming) is polled at
  `policy.initial`; otherwise the interval grows by `multiplier` up to `max` while nothing changes
  and snaps back to `initial` on a change; each wait gets +/- `jitter`.
- Failures: what the engine could not absorb is sorted by `_decisions.rides_out` (the polling
  column of the one decision table). A transient failure is logged once per kind and polling goes on
  at its own backed-off cadence, never sooner than the server's Retry-After. A malformed 2xx body
  counts as transient a few times in a row (a proxy's hiccup), then is raised: a response shape we
  cannot read will not fix itself. Anything else (401, 403, 404, 400, ...) ends the iteration.
- Hints: a server's Retry-After (on a failure or on a 2xx answer) is honoured, capped by
  `RetryPolicy.max_retry_after` (the engine logs the first time it cuts one).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._config import PollPolicy
from ._decisions import rides_out
from ._errors import APIStatusError, DevinError, MalformedResponseError, WaitTimeoutError
from ._instrument import logger
from ._lifecycle import Phase
from ._models import Session
from ._tracing import internal

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["MAX_MALFORMED", "FailureLog", "Poller", "is_fatal", "jittered"]

#: Consecutive malformed answers tolerated before the error is raised.
MAX_MALFORMED = 5

Until = Callable[[Session], bool]


def _settled(session: Session) -> bool:
    return session.is_settled


def is_fatal(error: BaseException) -> bool:
    """Return whether `error` ends polling at once (the decision table's polling column)."""
    return not rides_out(error)


def jittered(policy: PollPolicy, interval: float) -> float:
    """Return `interval` moved randomly by up to +/- `policy.jitter` of itself."""
    if policy.jitter <= 0:
        return interval
    return interval * random.uniform(1.0 - policy.jitter, 1.0 + policy.jitter)


def _kind(error: BaseException) -> str:
    if isinstance(error, APIStatusError):
        return f"{type(error).__name__} {error.status}"
    return type(error).__name__


class FailureLog:
    """Log each kind of failure, unknown status and unknown detail once per owner."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._seen: set[str] = set()
        self.malformed = 0
        self.failing = 0

    def failure(self, error: DevinError) -> None:
        """Log a failure that polling rides out (once per kind); raise it if it will not pass.

        Raises:
            DevinError: `error` itself, when it is not transient or too many malformed bodies
                came in a row.
        """
        if is_fatal(error):
            raise error
        self.failing += 1
        if isinstance(error, MalformedResponseError):
            self.malformed += 1
            if self.malformed >= MAX_MALFORMED:
                raise error
        key = _kind(error)
        if key in self._seen:
            logger.debug("%s: still failing: %s", self._what, str(error))
            return
        self._seen.add(key)
        # str(error), not error: a handler that keeps records must not keep the traceback.
        logger.warning("%s: %s; polling goes on (logged once per kind)", self._what, str(error))

    def success(self) -> None:
        """Record an answer that could be read (and log the end of a run of failures)."""
        if self.failing:
            logger.info("%s: answers again after %d failure(s)", self._what, self.failing)
        self.malformed = 0
        self.failing = 0

    def session(self, session: Session) -> None:
        """Log a status (treated as active) or status_detail the SDK does not know, once each."""
        status, detail = session.status, session.status_detail
        if not status.is_known and f"status={status.value}" not in self._seen:
            self._seen.add(f"status={status.value}")
            logger.warning(
                "%s: unknown status %r (session %s); treated as active",
                self._what,
                status.value,
                session.session_id,
            )
        if (
            detail is not None
            and not detail.is_known
            and f"detail={detail.value}" not in self._seen
        ):
            self._seen.add(f"detail={detail.value}")
            logger.info(
                "%s: unknown status_detail %r (session %s)",
                self._what,
                detail.value,
                session.session_id,
            )


class Poller:
    """Yield a session now, then at every change of (status, status_detail), until `until`.

    Args:
        sessions: the session resource to read with (its engine gives the clock and sleep).
        session_id: the session, already validated.
        until: stop after yielding a session for which this is true (default: settled).
        policy: the cadence (default: the client's `poll_policy`).
        timeout: seconds for the whole iteration, on the engine's clock.

    Raises:
        ValueError: a bad `until` or `timeout` (at construction, before any request).
        WaitTimeoutError: `timeout` passed; `.last_session` is the last session seen.
        AuthenticationError, PermissionDeniedError, NotFoundError: at once, not retried.
    """

    def __init__(
        self,
        sessions: Sessions,
        session_id: str,
        *,
        until: Until | None = None,
        policy: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        if until is not None and not callable(until):
            raise ValueError("until must be a callable taking a Session")
        if policy is not None and not isinstance(policy, PollPolicy):
            raise ValueError("policy must be a PollPolicy")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._sessions = sessions
        self._engine = sessions.engine
        self.session_id = session_id
        self._until = until or _settled
        self._policy = policy or sessions.poll_policy
        self._timeout = None if timeout is None else float(timeout)
        self._deadline: float | None = None
        self._started = False
        self._done = False
        self._reported: tuple[str, str | None] | None = None
        self._interval = self._policy.initial
        self._wait = 0.0
        self._log = FailureLog(f"polling session {session_id}")
        #: The last session seen (yielded or not).
        self.last_session: Session | None = None
        #: Poll requests made (each may include the engine's own retries).
        self.requests = 0

    def __aiter__(self) -> Poller:
        return self

    async def __anext__(self) -> Session:
        if self._done:
            raise StopAsyncIteration
        if not self._started:
            self._started = True
            if self._timeout is not None:
                self._deadline = self._engine.clock() + self._timeout
        try:
            with internal(self._engine.tracer, "devin.poll", {"devin.session_id": self.session_id}):
                session = await self._next_change()
        except asyncio.CancelledError:
            raise  # the consumer went away; a later __anext__ may resume
        except BaseException:
            self._done = True
            raise
        if self._until(session):
            self._done = True
        return session

    async def aclose(self) -> None:
        """End the iteration (nothing runs in the background, so nothing else to release)."""
        self._done = True

    async def _next_change(self) -> Session:
        engine = self._engine
        while True:
            await self._pause(self._wait)
            self.requests += 1
            try:
                session, reply = await self._sessions.fetch_session(
                    self.session_id, deadline=self._call_deadline())
            except DevinError as exc:
                if self._deadline is not None and engine.clock() >= self._deadline:
                    raise self._timed_out() from None
                self._log.failure(exc)
                self._back_off(engine.cap_hint(getattr(exc, "retry_after", None)) or 0.0)
                continue
            self._log.success()
            last = self.last_session
            if last is not None and session.updated_at < last.updated_at:
                # A stale replica's answer: a session never goes back in time.
                self._back_off(reply.retry_after or 0.0)
                continue
            self._log.session(session)
            self.last_session = session
            changed = session.state != self._reported
            if changed or session.phase is Phase.STARTING:
                self._interval = self._policy.initial
            else:
                self._interval = self._policy.next_interval(self._interval)
            # A Retry-After on a successful answer is honoured too (capped), on every response.
            self._wait = max(jittered(self._policy, self._interval), reply.retry_after or 0.0)
            if changed:
                self._reported = session.state
                return session

    def _back_off(self, hint: float) -> None:
        """Poll less often: the next interval, and a wait of at least `hint` (capped already)."""
        self._interval = self._policy.next_interval(self._interval)
        self._wait = max(jittered(self._policy, self._interval), hint)

    def _call_deadline(self) -> float | None:
        """The deadline of one poll: the policy's, or sooner if the iteration ends first."""
        if self._deadline is None:
            return None
        return min(self._deadline, self._engine.deadline())

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds, or raise WaitTimeoutError if the deadline comes first."""
        if self._deadline is None:
            if delay > 0:
                await self._engine.sleep(delay)
            return
        remaining = self._deadline - self._engine.clock()
        if remaining <= 0:
            raise self._timed_out()
        if delay >= remaining:
            await self._engine.sleep(remaining)
            raise self._timed_out()
        if delay > 0:
            await self._engine.sleep(delay)

    def _timed_out(self) -> WaitTimeoutError:
        last = self.last_session
        state = "nothing was read" if last is None else f"last status {_describe(last)}"
        return WaitTimeoutError(
            f"session {self.session_id} did not reach the awaited state within "
            f"{self._timeout:g} s ({state}); the session itself was left alone",
            last_session=last,
        )


def _describe(session: Session) -> str:
    status = session.status.value
    if session.status_detail is None:
        return status
    return f"{status}/{session.status_detail.value}"
