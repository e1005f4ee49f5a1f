"""`Watcher`: one scheduler that follows many sessions through the list endpoint, for weeks.

Why it looks like this:
- Pull-based, no background task: a poll cycle runs only when the consumer asks for an event and
  the previous cycle's events are all consumed. A slow consumer therefore slows polling, the buffer
  holds about one event per watched session, and break / cancel / aclose leave nothing running.
  (`add()` and `aclose()` wake a consumer waiting for the next cycle.)
- What is watched: the ids given or `add()`ed; with `tags`, every session the tag listing
  (`tags=` + `updated_after=`) returns, new ones included; with `follow_children`, the ids in a
  watched session's `child_session_ids` (and any session an org-wide listing shows with a watched
  `parent_session_id`). Sessions the consumer `remove()`d, or that vanished, are not found again.
- One cycle (`_watch_cycle`): the tag listing, then the other watched ids, in chunks of 200
  or with one org-wide delta listing (`_watch_scan`), `updated_after` from a watermark; ids never
  seen, everything after a failed cycle and every FULL_REFRESH seconds are read unfiltered, and a
  session absent from an unfiltered answer is confirmed with a get (404: one `gone` event).
- Failures are sorted and logged by `_polling.FailureLog` (once per kind) and ridden out: a
  failed cycle emits no event from what it could not read, backs off per PollPolicy (never below
  Retry-After), and the next cycle reads everything unfiltered.
- `checkpoint()` / `resume=` (`_checkpoint`): the states last *given* to the consumer; a resumed
  watcher's first cycle reads every checkpointed id unfiltered (and the tag listing from the
  checkpoint's watermark), so it reports what changed while nothing ran and nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import _checkpoint
from ._config import PollPolicy
from ._filters import session_filters
from ._models import Session, SessionEvent
from ._polling import FailureLog
from ._protocol import check_id
from ._watch_cycle import FULL_REFRESH, MARGIN, MAX_CONFIRM, Cycler
from ._watch_scan import CHUNK, CONCURRENCY, FUTURE_MARGIN, Scanner, WatchStats
from ._watch_set import WatchSet

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["CHUNK", "CONCURRENCY", "FULL_REFRESH", "FUTURE_MARGIN", "MARGIN", "MAX_CONFIRM",
           "WatchStats", "Watcher"]

Until = Callable[[Session], bool]


def _settled(session: Session) -> bool:
    return session.is_settled


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


class Watcher:
    """Report every change of (status, status_detail) across many sessions.

    Use `async with client.watch(ids) as watcher: async for event in watcher: ...`.
    Without `forever`, iteration ends once every watched session satisfies `until` (a watcher
    with nothing to watch ends at once; with `tags`, only after one whole cycle succeeded and
    every session found so far satisfies `until`: sessions tagged later are then not waited for).
    With `forever`, it never ends by itself: `add()` works at any time, also after every session
    settled (the iteration waits for the next cycle); only `aclose()` ends it.

    Args:
        sessions: the session resource to read with (its engine gives the clock and sleep).
        session_ids: the sessions to watch at first.
        until: a watched session is done once this is true (default: settled); it applies to
            tagged sessions and children alike.
        policy: the cadence (default: the client's `poll_policy`).
        tags: also watch every session carrying all these tags, from its first sighting
            (`previous=None`), including sessions created later.
        follow_children: also watch the sessions in a watched session's `child_session_ids`.
        forever: never end by itself (a daemon).
        resume: a `checkpoint()` of an earlier watcher of this organization: its sessions are
            watched again and only what changed since it was taken is reported (the first
            cycle reads every one of them). A changed session's first event has as `previous`
            today's session with the checkpoint's status, status_detail and updated_at; an
            unchanged one gives no event; one gone meanwhile lands in `not_found`, without an
            event. Its tags and follow_children are kept (`tags`, if given too, must be the
            same set); `remove()`s are not remembered.

    Raises:
        ValueError: a malformed session id, tag or argument, or a checkpoint that is malformed,
            of another organization or of a future version (before any request).
        AuthenticationError, PermissionDeniedError: from iteration, which then ends.
    """

    def __init__(
        self,
        sessions: Sessions,
        session_ids: Iterable[str] = (),
        *,
        until: Until | None = None,
        policy: PollPolicy | None = None,
        tags: Iterable[str] | None = None,
        follow_children: bool = False,
        forever: bool = False,
        resume: Any = None,
    ) -> None:
        if isinstance(session_ids, str | bytes):
            raise ValueError("session_ids must be an iterable of ids, not one string")
        if until is not None and not callable(until):
            raise ValueError("until must be a callable taking a Session")
        if policy is not None and not isinstance(policy, PollPolicy):
            raise ValueError("policy must be a PollPolicy")
        self._sessions = sessions
        self._engine = engine = sessions.engine
        self._org = engine.org_id
        self._until = until or _settled
        self._policy = policy or sessions.poll_policy
        self._forever = _flag("forever", forever)
        self._follow = _flag("follow_children", follow_children)
        self._tags: tuple[str, ...] = ()
        if tags is not None:
            if isinstance(tags, str | bytes):
                raise ValueError("tags must be a list of tags, not one string")
            self._tags = tuple(dict.fromkeys(tags))
            session_filters(tags=list(self._tags))  # the list filter's own checks
            if not self._tags:
                raise ValueError("tags must hold at least one tag (None: no tag watch)")
        restored = None if resume is None else _checkpoint.load(resume, org_id=self._org)
        if restored is not None:
            if tags is not None and set(self._tags) != set(restored.tags):
                raise ValueError(f"resume: the checkpoint watches tags {list(restored.tags)}, "
                                 f"not {list(self._tags)}; pass the same tags or none")
            self._tags = restored.tags
            self._follow = self._follow or restored.follow_children
        self._closed = False
        self._wake: asyncio.Event | None = None
        self.stats = WatchStats()
        scan = Scanner(sessions, self.stats)
        self._log = FailureLog("watching sessions")
        self._set = WatchSet(until=self._until, tags=self._tags, follow=self._follow,
                             stats=self.stats, log=self._log, on_new=self._soon)
        self._cycler = Cycler(engine=engine, policy=self._policy, scan=scan, watched=self._set,
                              log=self._log, tags=self._tags, follow=self._follow,
                              watermark=None if restored is None else restored.watermark)
        #: The last session seen, per watched id.
        self.sessions: dict[str, Session] = self._set.sessions
        #: Ids dropped because the server does not know them (404 before any sighting).
        self.not_found: set[str] = self._set.not_found
        for sid in session_ids:
            self.add(sid)
        for sid, state in ({} if restored is None else restored.states).items():
            self.add(sid)
            if state is not None:
                self._set.known[sid] = state

    # -- public surface -------------------------------------------------------------------

    def add(self, session_id: str) -> None:
        """Start watching a session (no-op if already watched); works at any time.

        Its first event has `previous=None`. A consumer waiting for the next cycle is woken.
        Without `forever`, a loop that already ended (every session satisfied `until`) stays
        ended; a new `async for` over this watcher goes on with the added session. With
        `forever`, the running loop simply reports it.

        Raises:
            ValueError: a malformed id.
            RuntimeError: the watcher is closed.
        """
        sid = check_id("session_id", session_id)
        if self._closed:
            raise RuntimeError("this watcher is closed")
        watched = self._set
        watched.ignored.discard(sid)
        watched.not_found.discard(sid)
        if sid not in watched.ids:
            watched.watch(sid)

    def remove(self, session_id: str) -> None:
        """Stop watching a session; its pending events are dropped (no-op if not watched).

        A removed session is not found again by `tags` or `follow_children` (until `add()`).

        Raises:
            ValueError: a malformed id.
        """
        self._set.drop(check_id("session_id", session_id))

    def checkpoint(self) -> dict[str, Any]:
        """Return what this watcher has reported, as a small JSON-serializable dict.

        `{"version": 1, "org_id", "watermark", "tags", "follow_children", "sessions": {id:
        [status, status_detail, updated_at] or None}}`: every watched id and the state last
        *given* to the consumer (None: nothing yet); about 80 bytes a session. Pass it as
        `client.watch(..., resume=checkpoint)`, in this or another process, to go on from here:
        events not consumed yet are reported again by the resumed watcher, the others never.
        """
        known = self._set.known
        states = {sid: known.get(sid) for sid in self._set.ids}
        return _checkpoint.dump(
            org_id=self._org, watermark=self._cycler.saved_since, tags=self._tags,
            follow_children=self._follow, states=states, queued=self._set.buffer, margin=MARGIN)

    @property
    def watched(self) -> list[str]:
        """Return the watched ids, in the order they were added."""
        return list(self._set.ids)

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called (or a fatal error ended the watch)."""
        return self._closed

    async def aclose(self) -> None:
        """Stop watching: iteration ends and pending events are dropped."""
        self._closed = True
        self._set.buffer.clear()
        self._alarm()

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
            if self._set.buffer:
                self.stats.events += 1
                return self._set.buffer.popleft()
            if self._done():
                raise StopAsyncIteration
            next_at = self._cycler.next_at
            if next_at is not None:
                delay = next_at - self._engine.clock()
                if delay > 1e-3:
                    await self._nap(delay)
                    continue  # re-check: closed, added or removed meanwhile
            try:
                await self._cycler.run()
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._closed = True
                raise

    def _done(self) -> bool:
        if self._forever or self._set.unmet:
            return False
        return not self._tags or self._cycler.cycled

    async def _nap(self, delay: float) -> None:
        """Sleep on the engine's clock; `add()` or `aclose()` ends the nap early."""
        wake = self._wake = asyncio.Event()
        sleeper = asyncio.ensure_future(self._engine.sleep(delay))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._wake = None
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _alarm(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _soon(self) -> None:
        self._cycler.soon()
        self._alarm()

