"""One watcher cycle: what to read, the watermark, and when the next cycle runs.

Why it looks like this:
- The tag listing comes first (it covers every watched session last seen with all the tags),
  then the other watched ids, in chunks of 200 or with one org-wide delta listing, whichever
  `DeltaChoice` says is cheaper from the previous cycles' numbers.
- The watermark (`since`) is the largest `updated_at` seen *before this cycle's reads were
  sent* (any answer counts, unwatched sessions included), minus MARGIN: each read happened after
  those stamps were issued, so any later change carries a stamp at least that large, however long
  a cycle takes. With no stamp known yet, reads go one at a time until a first page gives one
  (valid for that page's own sessions too); a large watch first probes one page of sessions
  changed lately by the client's wall clock, so a quiet first chunk cannot make it stale.
- Ids never seen yet are read unfiltered, and so is everything after a failed cycle and every
  FULL_REFRESH seconds; a session absent from an unfiltered answer is a suspect, confirmed by a
  get (at most MAX_CONFIRM a cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._config import PollPolicy
from ._engine import Engine
from ._errors import DevinError, NotFoundError
from ._filters import session_filters
from ._models import Session
from ._polling import FailureLog, is_fatal, jittered
from ._watch_scan import PROBE_MIN_IDS, DeltaChoice, Scanner
from ._watch_set import WatchSet

__all__ = ["FULL_REFRESH", "MARGIN", "MAX_CONFIRM", "Cycler"]

#: Seconds taken off the `updated_after` watermark.
MARGIN = 10
#: Seconds between cycles that read everything unfiltered (and so notice vanished sessions).
FULL_REFRESH = 120.0
#: Suspected-vanished sessions confirmed with a get per cycle.
MAX_CONFIRM = 50


def _query(**filters: Any) -> list[tuple[str, str]]:
    query = session_filters(**filters)
    assert query is not None  # None only for `session_ids=[]`
    return query


class Cycler:
    """Run a watcher's cycles over its `WatchSet`, reading through a `Scanner`."""

    def __init__(self, *, engine: Engine, policy: PollPolicy, scan: Scanner, watched: WatchSet,
                 log: FailureLog, tags: tuple[str, ...], follow: bool,
                 watermark: int | None) -> None:
        self._engine = engine
        self._policy = policy
        self._scan = scan
        self._set = watched
        self._log = log
        self._tags = tags
        self._follow = follow
        self.stats = scan.stats
        self._choice = DeltaChoice()
        self.interval = policy.initial
        self.next_at: float | None = None  # None: poll as soon as asked
        self.since: int | None = None  # updated_after for the next cycle; None: unfiltered
        #: The last successful cycle's watermark, for checkpoints (a resumed one: its own).
        self.saved_since = watermark
        self.tag_since = watermark  # the first tag listing of a resumed watcher
        self.last_full: float | None = None
        self.cycled = False  # one whole cycle succeeded
        self._snapshot: int | None = None
        self._stamps: list[int] | None = None  # updated_at of this cycle's chunked reads

    def soon(self) -> None:
        """A session began to be watched: poll at the initial cadence, now if waiting."""
        self.interval = self._policy.initial
        self.next_at = None

    async def run(self) -> None:
        """Run one cycle: read what may have changed, queue events, schedule the next."""
        scan = self._scan
        started = self._engine.clock()
        self.stats.cycles += 1
        full = (
            self.since is None
            or self.last_full is None
            or started - self.last_full >= FULL_REFRESH
        )
        since = None if full else self.since
        self._snapshot = scan.top
        watched = self._set
        watched.changed = False
        scan.hints.clear()
        present: set[str] = set()  # returned by this cycle's tag listing
        failures: list[DevinError | None] = []
        self._stamps = None
        scan.first_top = None
        if self._snapshot is None and len(watched.ids) - len(watched.tagged) >= PROBE_MIN_IDS:
            try:  # no stamp known yet: ask for a recent one first (one page)
                await scan.probe()
            except DevinError as exc:
                failures.append(exc)
            self._snapshot = scan.first_top
        if self._tags and not failures:
            after = self.tag_since if full and self.tag_since is not None else since
            try:
                found = await scan.listing(_query(tags=self._tags, updated_after=after))
            except DevinError as exc:
                failures.append(exc)
            else:
                if self._snapshot is None:  # the first page's stamps, not the last page's
                    self._snapshot = scan.first_top
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
            self.since = None if snapshot is None else max(0, snapshot - MARGIN)
            self.saved_since = self.since
            self.tag_since = None
            self.cycled = True
            if full:
                self.last_full = started
            if self._stamps is not None and self.since is not None:
                # What a delta scan from the next watermark would have found among these.
                self._choice.chunked(sum(1 for u in self._stamps if u >= self.since))
        else:
            self.stats.failed_cycles += 1
            self.since = None

    async def _read_ids(self, full: bool, since: int | None,
                        present: set[str]) -> list[DevinError | None]:
        """Read the watched ids the tag listing did not cover; return the failures."""
        scan, watched = self._scan, self._set
        ids = [i for i in watched.ids if i not in present and (full or i not in watched.tagged)]
        seen = watched.sessions
        unfiltered = ids if full or since is None else [i for i in ids if i not in seen]
        filtered = [] if full or since is None else [i for i in ids if i in seen]
        budget = self._choice.budget(len(scan.split(filtered))) if filtered else 0
        self._stamps = None if budget else []
        if budget:
            try:
                found = await scan.listing(_query(updated_after=since), budget=budget)
            except DevinError as exc:
                self._choice.delta_abandoned()  # a listing that fails (a cursor cycle) waits
                return [exc]
            if found is None:
                self.stats.delta_abandoned += 1
                self._choice.delta_abandoned()
                self._stamps = []
            else:
                self.stats.delta_cycles += 1
                self._choice.delta_done()
                filtered = []
                for session in found:
                    parent = session.parent_session_id
                    watched.sighting(session, discover=self._follow and parent in watched.ids)
        chunks: list[tuple[Sequence[str], int | None]] = [
            (c, None) for c in scan.split(unfiltered)]
        chunks += [(c, since) for c in scan.split(filtered)]
        results = await self._run([scan.chunk(c, after) for c, after in chunks])
        failures: list[DevinError | None] = []
        for (chunk, after), result in zip(chunks, results, strict=True):
            if not isinstance(result, list):
                failures.append(result)
                continue
            got = {s.session_id for s in result if watched.sighting(s)}
            if self._stamps is not None:
                self._stamps.extend(s.updated_at for s in result)
            if after is None:
                watched.suspects.update(i for i in chunk if i not in got and i in watched.ids)
        return failures

    async def _run(self, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
        """Pool `jobs`; without a watermark yet, the first ones go alone until one gives it."""
        results: list[Any] = [None] * len(jobs)
        start = 0
        while self._snapshot is None and start < len(jobs):
            (results[start],) = await Scanner.pool(jobs[start : start + 1])
            self._snapshot = self._scan.first_top
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
            self.interval = policy.next_interval(self.interval)
            delay = max(jittered(policy, self.interval), hint)
            self.next_at = self._engine.clock() + delay
            return
        if changed or self._set.starting:
            self.interval = policy.initial
        else:
            self.interval = policy.next_interval(self.interval)
        # A Retry-After on a successful answer asks for quiet: honoured like a failure's.
        self.next_at = max(started + jittered(policy, self.interval),
                            self._engine.clock() + hint)
