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
- One cycle: the tag listing first (it covers every watched session last seen with all the tags),
  then the other watched ids, read either in chunks of 200 (`session_ids=`) or with one org-wide
  delta listing, whichever the previous cycles' numbers say is cheaper (`_watch_scan`).
- `updated_after` narrows the answers to what changed. The watermark is the largest `updated_at`
  seen *before this cycle's reads were sent* (any answer counts, unwatched sessions included),
  minus MARGIN: each read happened after those stamps were issued, so any later change carries a
  stamp at least that large, however long a cycle takes (MARGIN absorbs whole-second stamps, `>`
  vs `>=` and skew between server nodes). With no such stamp yet, the first read goes alone and
  its answer provides it. Ids never seen yet are read unfiltered, and so is everything after a
  failed cycle and every FULL_REFRESH seconds. Events are de-duplicated by (status, detail).
- Vanishing: a session absent from a *filtered* answer is just unchanged. One absent from an
  unfiltered answer becomes a suspect, confirmed by a get (404: one final `gone` event, then
  dropped); at most MAX_CONFIRM gets per cycle, so a broken listing cannot trigger 10,000 gets.
- Failures are sorted and logged by `_polling.FailureLog` (once per kind). A failed cycle emits no
  event from what it could not read, backs off per PollPolicy (never below Retry-After), and the
  next cycle reads everything unfiltered, so the watcher catches up when the server is back.
- `checkpoint()` / `resume=` (`_checkpoint`): the states last *given* to the consumer; a resumed
  watcher's first cycle reads every checkpointed id unfiltered (and the tag listing from the
  checkpoint's watermark), so it reports what changed while nothing ran and nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import _checkpoint
from ._config import PollPolicy
from ._errors import DevinError, NotFoundError
from ._models import Session, SessionEvent
from ._polling import FailureLog, is_fatal, jittered
from ._protocol import check_id
from ._sessions import session_filters
from ._watch_scan import CHUNK, CONCURRENCY, FUTURE_MARGIN, DeltaChoice, Scanner, WatchStats
from ._watch_set import WatchSet

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["CHUNK", "CONCURRENCY", "FULL_REFRESH", "FUTURE_MARGIN", "MARGIN", "WatchStats",
           "Watcher"]

Until = Callable[[Session], bool]

#: Seconds taken off the `updated_after` watermark.
MARGIN = 10
#: Seconds between cycles that read everything unfiltered (and so notice vanished sessions).
FULL_REFRESH = 120.0
#: Suspected-vanished sessions confirmed with a get per cycle.
MAX_CONFIRM = 50


def _settled(session: Session) -> bool:
    return session.is_settled


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _query(**filters: Any) -> list[tuple[str, str]]:
    query = session_filters(**filters)
    assert query is not None  # None only for `session_ids=[]`
    return query


def _split(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


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
            watched again and only what changed since it was taken is reported. Its tags and
            follow_children are kept; `tags`, if given too, must be the same.

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
        self._org = _checkpoint.org_of(engine.org_path)
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
        self._interval = self._policy.initial
        self._next_at: float | None = None  # None: poll as soon as asked
        self._since: int | None = None  # updated_after for the next cycle; None: unfiltered
        # The last successful cycle's, for checkpoints (a resumed one starts from its own).
        self._saved_since = None if restored is None else restored.watermark
        self._tag_since = None if restored is None else restored.watermark  # first tag listing
        self._snapshot: int | None = None
        self._last_full: float | None = None
        self._cycled = False  # one whole cycle succeeded
        self._choice = DeltaChoice()
        self.stats = WatchStats()
        self._scan = Scanner(sessions, self.stats)
        self._log = FailureLog("watching sessions")
        self._set = WatchSet(until=self._until, tags=self._tags, follow=self._follow,
                             stats=self.stats, log=self._log, on_new=self._soon)
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

        Pass it as `client.watch(..., resume=checkpoint)` (in this or another process) to go on
        from here: events not yet consumed are not counted as reported.
        """
        known = self._set.known
        states = {sid: known.get(sid) for sid in self._set.ids}
        return _checkpoint.dump(
            org_id=self._org, watermark=self._saved_since, tags=self._tags,
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
            if self._next_at is not None:
                delay = self._next_at - self._engine.clock()
                if delay > 1e-3:
                    await self._nap(delay)
                    continue  # re-check: closed, added or removed meanwhile
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._closed = True
                raise

    def _done(self) -> bool:
        if self._forever or self._set.unmet:
            return False
        return not self._tags or self._cycled

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

    # -- one cycle ------------------------------------------------------------------------

    async def _cycle(self) -> None:
        scan = self._scan
        started = self._engine.clock()
        self.stats.cycles += 1
        full = (
            self._since is None
            or self._last_full is None
            or started - self._last_full >= FULL_REFRESH
        )
        since = None if full else self._since
        self._snapshot = scan.top
        watched = self._set
        watched.changed = False
        scan.hints.clear()
        present: set[str] = set()  # returned by this cycle's tag listing
        failures: list[DevinError | None] = []
        if self._tags:
            after = self._tag_since if full and self._tag_since is not None else since
            try:
                found = await scan.listing(_query(tags=self._tags, updated_after=after))
            except DevinError as exc:
                failures.append(exc)
            else:
                self._snapshot = self._snapshot if self._snapshot is not None else scan.top
                for session in found or ():
                    if watched.sighting(session, discover=True):
                        present.add(session.session_id)
        if not failures:
            failures = await self._read_ids(full, since, present)
        if not failures and watched.suspects:
            failures = await self._confirm()
        hint = max(self._failed(failures), max(scan.hints, default=0.0))
        ok = not failures
        self._schedule(started, ok, watched.changed, hint)
        if ok:
            self._log.success()
            snapshot = self._snapshot
            self._since = None if snapshot is None else max(0, snapshot - MARGIN)
            self._saved_since = self._since
            self._tag_since = None
            self._cycled = True
            if full:
                self._last_full = started
                if self._since is not None:
                    self._choice.chunked(sum(
                        1 for sid, s in watched.sessions.items()
                        if s.updated_at >= self._since and sid not in watched.tagged))
        else:
            self.stats.failed_cycles += 1
            self._since = None

    async def _read_ids(self, full: bool, since: int | None,
                        present: set[str]) -> list[DevinError | None]:
        """Read the watched ids the tag listing did not cover; return the failures."""
        scan, watched = self._scan, self._set
        ids = [i for i in watched.ids if i not in present and (full or i not in watched.tagged)]
        seen = watched.sessions
        unfiltered = ids if full or since is None else [i for i in ids if i not in seen]
        filtered = [] if full or since is None else [i for i in ids if i in seen]
        budget = self._choice.budget(len(filtered)) if filtered else 0
        if budget:
            try:
                found = await scan.listing(_query(updated_after=since), budget=budget)
            except DevinError as exc:
                self._choice.delta_abandoned()  # a listing that fails (a cursor cycle) waits
                return [exc]
            if found is None:
                self.stats.delta_abandoned += 1
                self._choice.delta_abandoned()
            else:
                self.stats.delta_cycles += 1
                self._choice.delta_done()
                filtered = []
                for session in found:
                    parent = session.parent_session_id
                    watched.sighting(session, discover=self._follow and parent in watched.ids)
        chunks = [(c, None) for c in _split(unfiltered)] + [(c, since) for c in _split(filtered)]
        results = await self._run([scan.chunk(c, after) for c, after in chunks])
        failures: list[DevinError | None] = []
        changed = 0
        for (chunk, after), result in zip(chunks, results, strict=True):
            if not isinstance(result, list):
                failures.append(result)
                continue
            got = {s.session_id for s in result if watched.sighting(s)}
            if after is None:
                watched.suspects.update(i for i in chunk if i not in got and i in watched.ids)
            else:
                changed += len(got)
        if filtered and not failures:
            self._choice.chunked(changed)
        return failures

    async def _run(self, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
        """Pool `jobs`; without a watermark yet, the first ones go alone until one gives it."""
        results: list[Any] = [None] * len(jobs)
        start = 0
        while self._snapshot is None and start < len(jobs):
            (results[start],) = await Scanner.pool(jobs[start : start + 1])
            self._snapshot = self._scan.top
            start += 1
            if not isinstance(results[start - 1], list):
                return results  # a failure: start no more
        results[start:] = await Scanner.pool(jobs[start:])
        return results

    async def _confirm(self) -> list[DevinError | None]:
        """Get up to MAX_CONFIRM suspects (404: gone); return the failures (None: skipped)."""
        watched = self._set
        batch = sorted(watched.suspects)[:MAX_CONFIRM]
        results = await Scanner.pool([self._scan.getter(sid) for sid in batch])
        failures: list[DevinError | None] = []
        for sid, result in zip(batch, results, strict=True):
            if isinstance(result, Session):
                watched.sighting(result)
            elif isinstance(result, NotFoundError):
                if sid in watched.ids:
                    watched.vanish(sid)
            else:
                failures.append(result)
        return failures

    # -- bookkeeping ----------------------------------------------------------------------

    def _soon(self) -> None:
        """A session began to be watched: poll at the initial cadence, now if waiting."""
        self._interval = self._policy.initial
        self._next_at = None
        self._alarm()

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
        if changed or self._set.starting:
            self._interval = policy.initial
        else:
            self._interval = policy.next_interval(self._interval)
        # A Retry-After on a successful answer asks for quiet: honoured like a failure's.
        self._next_at = max(started + jittered(policy, self._interval),
                            self._engine.clock() + hint)
