"""`Follower`: tail a cursor-paged listing (messages, events) live until the session ends.

Why it looks like this:
- A class with `__anext__`, like `Poller`: breaking out or cancelling leaves nothing running.
- It reads pages from the last cursor it saw. A last page often has no `end_cursor`; then the
  next read starts again from the cursor before it, and items already yielded (by id) are
  skipped, so nothing is repeated and nothing is lost.
- When a read brings nothing new, it checks the session: once it is terminal, one last read, then
  the iteration ends. Otherwise it waits per `PollPolicy` (growing while nothing comes, back to
  `initial` on news), never less than the server's (capped) Retry-After.
- Failures are sorted by the decision table's polling column, as the poller does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from ._config import PollPolicy
from ._errors import DevinError, MalformedResponseError
from ._models import Page
from ._polling import FailureLog, jittered

if TYPE_CHECKING:
    from ._engine import Reply
    from ._sessions import Sessions

__all__ = ["Follower"]

T = TypeVar("T")
#: A page fetcher that also gives the reply (for its Retry-After): (cursor, first) -> both.
FetchWithReply = Callable[[str | None, int], Awaitable[tuple[Page[T], "Reply"]]]


class Follower(Generic[T]):
    """Yield every item of a listing, then new ones as they appear, until the session ends.

    Args:
        sessions: the session resource (for the session's status and the engine's clock).
        session_id: the session whose listing this is.
        fetch: `(cursor, first) -> (page, reply)`.
        key: an item's identity (its event id), to skip what was already yielded.
        page_size: items per request.
        policy: the cadence while nothing new comes (default: the client's).
        deadline: end the iteration (StopAsyncIteration) at this time on the engine's clock.
    """

    def __init__(self, sessions: Sessions, session_id: str,
                 fetch: FetchWithReply[T], key: Callable[[T], str], *,
                 page_size: int = 100, policy: PollPolicy | None = None,
                 deadline: float | None = None) -> None:
        self._sessions = sessions
        self._engine = sessions.engine
        self.session_id = session_id
        self._fetch = fetch
        self._key = key
        self._page_size = page_size
        self._policy = policy or sessions.poll_policy
        self._cursor: str | None = None  # where the next read starts
        self._seen: set[str] = set()
        self._buffer: list[T] = []
        self._interval = self._policy.initial
        self._wait = 0.0
        self._ending = False  # the session is terminal: one last read
        self._done = False
        self._deadline = deadline
        self._log = FailureLog(f"following session {session_id}")

    def __aiter__(self) -> Follower[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._done = True
                raise
        return self._buffer.pop(0)

    async def aclose(self) -> None:
        """End the iteration."""
        self._done = True

    async def _step(self) -> None:
        if self._deadline is not None:
            left = self._deadline - self._engine.clock()
            if left <= self._wait:
                if left > 0:
                    await self._engine.sleep(left)
                self._done = True
                return
        if self._wait > 0:
            await self._engine.sleep(self._wait)
            self._wait = 0.0
        try:
            fresh, hint = await self._read_all()
        except DevinError as exc:
            self._log.failure(exc)
            self._interval = self._policy.next_interval(self._interval)
            cap = self._engine.cap_hint(getattr(exc, "retry_after", None)) or 0.0
            self._wait = max(jittered(self._policy, self._interval), cap)
            return
        self._log.success()
        if fresh:
            self._buffer.extend(fresh)
            self._interval = self._policy.initial
        if self._ending:
            self._done = not fresh
            return
        if not fresh:
            try:
                session, _ = await self._sessions.fetch_session(self.session_id)
            except DevinError as exc:
                self._log.failure(exc)
                session = None
            if session is not None and session.is_terminal:
                self._ending = True  # read once more: what came just before the end
                return
            self._interval = self._policy.next_interval(self._interval)
        self._wait = max(jittered(self._policy, self._interval), hint)

    async def _read_all(self) -> tuple[list[T], float]:
        """Read from the last cursor to the end; return the new items and the longest hint."""
        fresh: list[T] = []
        hint = 0.0
        cursor = self._cursor
        seen_cursors: set[str] = set()
        while True:
            page, reply = await self._fetch(cursor, self._page_size)
            hint = max(hint, reply.retry_after or 0.0)
            for item in page.items:
                ident = self._key(item)
                if ident not in self._seen:
                    self._seen.add(ident)
                    fresh.append(item)
            nxt = page.end_cursor
            if not page.has_next_page or not nxt:
                if nxt:
                    self._cursor = nxt
                return fresh, hint
            if nxt in seen_cursors or nxt == cursor:
                raise MalformedResponseError(
                    f"the server returned cursor {nxt[:40]!r} twice while following; stopping")
            seen_cursors.add(nxt)
            cursor = self._cursor = nxt
