"""`Watcher`: one scheduler that follows many sessions through the list endpoint.

Why it looks like this:
- Pull-based, no background task: a poll cycle runs only when the consumer asks for an event and
  the previous cycle's events are all consumed. A slow consumer therefore slows polling, the buffer
  never holds more than one event per watched session, and break / cancel / aclose leave nothing
  running.
- One cycle reads every watched id, 200 per request (`session_ids=` on the list endpoint), at most
  CONCURRENCY requests in flight; N sessions cost ceil(N/200) requests per cycle.
- `updated_after` narrows the answers to what changed. The watermark is the largest `updated_at`
  seen *before the previous cycle started*, minus MARGIN: every read of that cycle happened after
  those stamps were issued, so any later change carries a stamp at least that large, however long a
  cycle takes (MARGIN absorbs whole-second stamps, `>` vs `>=` and skew between server nodes).
  A chunk holding an id never seen yet is read unfiltered, and so is everything after a failed
  cycle and every FULL_REFRESH seconds. Answers are de-duplicated by (status, status_detail).
- Vanishing: a session absent from a *filtered* answer is just unchanged. One absent from an
  unfiltered answer becomes a suspect, confirmed by a get (404: one final `gone` event, then
  dropped); at most MAX_CONFIRM gets per cycle, so a broken listing cannot trigger 10,000 gets.
- Failures are sorted and logged by `_polling.FailureLog` (once per kind). A failed cycle emits no
  event from what it could not read, backs off per PollPolicy (never below Retry-After), and the
  next cycle reads everything unfiltered, so the watcher catches up when the server is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import attrs

from ._config import PollPolicy
from ._errors import DevinError, NotFoundError
from ._filters import session_page
from ._instrument import logger
from ._lifecycle import Phase
from ._models import Session, SessionEvent
from ._pagination import Paginator
from ._polling import FailureLog, is_fatal, jittered
from ._protocol import check_id, encode_array

if TYPE_CHECKING:
    from ._engine import Reply
    from ._sessions import Sessions

__all__ = ["CHUNK", "WatchStats", "Watcher"]

T = TypeVar("T")
Until = Callable[[Session], bool]

#: Ids per list request: the list endpoint's largest page.
CHUNK = 200
#: List requests in flight at once within one cycle.
CONCURRENCY = 4
#: Seconds taken off the `updated_after` watermark.
MARGIN = 10
#: Seconds between cycles that read everything unfiltered (and so notice vanished sessions).
FULL_REFRESH = 120.0
#: Suspected-vanished sessions confirmed with a get per cycle.
MAX_CONFIRM = 50
#: How far past the client's wall clock an `updated_at` may count for the watermark (seconds):
#: one session stamped in the far future must not freeze `updated_after` for all the others.
FUTURE_MARGIN = 300


@attrs.define
class WatchStats:
    """Counters of a watcher's work."""

    cycles: int = 0
    requests: int = 0
    failed_cycles: int = 0
    events: int = 0


def _settled(session: Session) -> bool:
    return session.is_settled


class Watcher:
    """Report every change of (status, status_detail) across many sessions.

    Use `async with client.watch(ids) as watcher: async for event in watcher: ...`.
    Iteration ends when every watched session satisfies `until` (a watcher with nothing to watch
    ends at once) or after `aclose()`.

    Args:
        sessions: the session resource to read with (its engine gives the clock and sleep).
        session_ids: the sessions to watch at first.
        until: a watched session is done once this is true (default: settled).
        policy: the cadence (default: the client's `poll_policy`).

    Raises:
        ValueError: a malformed session id or argument (before any request).
        AuthenticationError, PermissionDeniedError: from iteration, which then ends.
    """

    def __init__(
        self,
        sessions: Sessions,
        session_ids: Iterable[str] = (),
        *,
        until: Until | None = None,
        policy: PollPolicy | None = None,
    ) -> None:
        if isinstance(session_ids, str | bytes):
            raise ValueError("session_ids must be an iterable of ids, not one string")
        if until is not None and not callable(until):
            raise ValueError("until must be a callable taking a Session")
        if policy is not None and not isinstance(policy, PollPolicy):
            raise ValueError("policy must be a PollPolicy")
        self._sessions = sessions
        self._engine = sessions.engine
        self._until = until or _settled
        self._policy = policy or sessions.poll_policy
        self._ids: dict[str, None] = {}  # watched ids, in the order added
        self._unmet: set[str] = set()  # watched ids not (yet) satisfying `until`
        self._starting: set[str] = set()  # watched ids unseen or in phase STARTING
        self._suspects: set[str] = set()  # absent from an unfiltered answer: confirm with a get
        self._buffer: deque[SessionEvent] = deque()
        self._closed = False
        self._interval = self._policy.initial
        self._next_at: float | None = None  # None: poll as soon as asked
        self._max_updated: int | None = None
        self._since: int | None = None  # updated_after for the next cycle; None: unfiltered
        self._last_full: float | None = None
        self._log = FailureLog("watching sessions")
        self._hints: list[float] = []  # Retry-After of this cycle's successful answers
        #: The last session seen, per watched id.
        self.sessions: dict[str, Session] = {}
        #: Ids dropped because the server does not know them (404 before any sighting).
        self.not_found: set[str] = set()
        self.stats = WatchStats()
        for sid in session_ids:
            self.add(sid)

    # -- public surface -------------------------------------------------------------------

    def add(self, session_id: str) -> None:
        """Start watching a session (no-op if already watched).

        Raises:
            ValueError: a malformed id.
            RuntimeError: the watcher is closed.
        """
        sid = check_id("session_id", session_id)
        if self._closed:
            raise RuntimeError("this watcher is closed")
        if sid in self._ids:
            return
        self._ids[sid] = None
        self._unmet.add(sid)
        self._starting.add(sid)
        self.not_found.discard(sid)
        self._interval = self._policy.initial
        self._next_at = None

    def remove(self, session_id: str) -> None:
        """Stop watching a session; its pending events are dropped (no-op if not watched).

        Raises:
            ValueError: a malformed id.
        """
        sid = check_id("session_id", session_id)
        if sid not in self._ids:
            return
        self._forget(sid)
        self.sessions.pop(sid, None)
        if any(e.session.session_id == sid for e in self._buffer):
            self._buffer = deque(e for e in self._buffer if e.session.session_id != sid)

    @property
    def watched(self) -> list[str]:
        """Return the watched ids, in the order they were added."""
        return list(self._ids)

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called (or a fatal error ended the watch)."""
        return self._closed

    async def aclose(self) -> None:
        """Stop watching: iteration ends and pending events are dropped."""
        self._closed = True
        self._buffer.clear()

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> SessionEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                self.stats.events += 1
                return self._buffer.popleft()
            if not self._unmet:
                raise StopAsyncIteration
            if self._next_at is not None:
                delay = self._next_at - self._engine.clock()
                if delay > 1e-3:
                    await self._engine.sleep(delay)
                    continue  # re-check: closed, added or removed meanwhile
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._closed = True
                raise

    # -- one cycle ------------------------------------------------------------------------

    async def _cycle(self) -> None:
        started = self._engine.clock()
        self.stats.cycles += 1
        full = (
            self._since is None
            or self._last_full is None
            or started - self._last_full >= FULL_REFRESH
        )
        snapshot = self._max_updated
        self._hints.clear()
        ids = list(self._ids)
        chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
        since = [None if full or self._has_unseen(c) else self._since for c in chunks]
        jobs = [self._reader(c, s) for c, s in zip(chunks, since, strict=True)]
        results = await self._pool(jobs)
        changed = False
        failures: list[DevinError | None] = []
        for chunk, after, result in zip(chunks, since, results, strict=True):
            if not isinstance(result, list):
                failures.append(result)
                continue
            seen: set[str] = set()
            for session in result:
                if session.session_id in self._ids:
                    seen.add(session.session_id)
                    changed |= self._saw(session)
            if after is None:
                self._suspects.update(i for i in chunk if i not in seen and i in self._ids)
        if not failures and self._suspects:
            failures = await self._confirm()
        hint = max(self._failed(failures), max(self._hints, default=0.0))
        ok = not failures
        self._schedule(started, ok, changed, hint)
        if ok:
            self._log.success()
            self._since = None if snapshot is None else max(0, snapshot - MARGIN)
            if full:
                self._last_full = started
        else:
            self.stats.failed_cycles += 1
            self._since = None
            self._max_updated = None

    def _reader(self, ids: list[str], since: int | None) -> Callable[[], Awaitable[list[Session]]]:
        # What `sessions.list(session_ids=ids, updated_after=since, page_size=CHUNK)` sends (the
        # ids were checked by `add`), read so that a Retry-After on a 2xx answer is seen too.
        query = encode_array("session_ids", ids)
        if since is not None:
            query.append(("updated_after", str(since)))
        fetch = self._sessions.fetcher("/sessions", query, session_page, on_reply=self._hint)

        async def read() -> list[Session]:
            pages = Paginator(fetch, page_size=CHUNK).pages()
            out: list[Session] = []
            try:
                async for page in pages:
                    self.stats.requests += 1
                    out.extend(page.items)
            except DevinError:
                self.stats.requests += 1
                raise
            return out

        return read

    def _hint(self, reply: Reply) -> None:
        if reply.retry_after is not None:
            self._hints.append(reply.retry_after)

    async def _confirm(self) -> list[DevinError | None]:
        """Get up to MAX_CONFIRM suspects (404: gone); return the failures (None: skipped)."""
        batch = sorted(self._suspects)[:MAX_CONFIRM]

        def getter(sid: str) -> Callable[[], Awaitable[Session | NotFoundError]]:
            async def get() -> Session | NotFoundError:
                self.stats.requests += 1
                try:
                    return await self._sessions.get(sid)
                except NotFoundError as exc:
                    return exc

            return get

        results = await self._pool([getter(sid) for sid in batch])
        failures: list[DevinError | None] = []
        for sid, result in zip(batch, results, strict=True):
            if isinstance(result, Session):
                if sid in self._ids:
                    self._saw(result)
            elif isinstance(result, NotFoundError):
                if sid in self._ids:
                    self._vanish(sid)
            else:
                failures.append(result)
        return failures

    async def _pool(
        self, jobs: Sequence[Callable[[], Awaitable[T]]]
    ) -> list[T | DevinError | None]:
        """Run jobs, CONCURRENCY at a time; after a failure start no more (those give None)."""
        results: list[T | DevinError | None] = [None] * len(jobs)
        queue = iter(enumerate(jobs))
        stop = False

        async def worker() -> None:
            nonlocal stop
            for index, job in queue:
                if stop:
                    return
                try:
                    results[index] = await job()
                except DevinError as exc:
                    results[index] = exc
                    stop = True

        workers = min(CONCURRENCY, len(jobs))
        if workers <= 1:
            await worker()
        else:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        return results

    # -- bookkeeping ----------------------------------------------------------------------

    def _has_unseen(self, chunk: list[str]) -> bool:
        return any(sid not in self.sessions for sid in chunk)

    def _saw(self, session: Session) -> bool:
        """Record a sighting; queue an event and return True if the state changed."""
        sid = session.session_id
        previous = self.sessions.get(sid)
        self._suspects.discard(sid)
        if previous is not None and session.updated_at < previous.updated_at:
            return False  # a stale replica's answer: a session never goes back in time
        self.sessions[sid] = session
        stamp = session.updated_at
        # A stamp far past the client's clock is not evidence of the server's time: it must
        # not lift `updated_after` above every other session's changes.
        if stamp <= time.time() + FUTURE_MARGIN and (
                self._max_updated is None or stamp > self._max_updated):
            self._max_updated = stamp
        self._log.session(session)
        if session.phase is Phase.STARTING:
            self._starting.add(sid)
        else:
            self._starting.discard(sid)
        if self._until(session):
            self._unmet.discard(sid)
        else:
            self._unmet.add(sid)
        if previous is not None and previous.state == session.state:
            return False
        self._buffer.append(SessionEvent(session, previous))
        return True

    def _vanish(self, sid: str) -> None:
        last = self.sessions.pop(sid, None)
        self._forget(sid)
        if last is None:
            self.not_found.add(sid)
            logger.warning("watching sessions: session %s was not found; no longer watched", sid)
        else:
            logger.info("watching sessions: session %s vanished (404)", sid)
            self._buffer.append(SessionEvent(last, last, gone=True))

    def _forget(self, sid: str) -> None:
        self._ids.pop(sid, None)
        self._unmet.discard(sid)
        self._starting.discard(sid)
        self._suspects.discard(sid)

    def _failed(self, failures: list[DevinError | None]) -> float:
        """Log a cycle's failures (raise a fatal one); return the longest Retry-After."""
        errors = [e for e in failures if e is not None]
        for error in errors:
            if is_fatal(error):
                raise error
        if errors:
            self._log.failure(errors[0])  # one per cycle: counts malformed cycles, not requests
        cap = self._engine.cap_hint
        return max((cap(getattr(e, "retry_after", None)) or 0.0 for e in errors), default=0.0)

    def _schedule(self, started: float, ok: bool, changed: bool, hint: float) -> None:
        policy = self._policy
        if not ok:
            self._interval = policy.next_interval(self._interval)
            delay = max(jittered(policy, self._interval), hint)
            self._next_at = self._engine.clock() + delay
            return
        if changed or self._starting:
            self._interval = policy.initial
        else:
            self._interval = policy.next_interval(self._interval)
        # A Retry-After on a successful answer asks for quiet: honoured like a failure's.
        self._next_at = max(started + jittered(policy, self._interval),
                            self._engine.clock() + hint)
