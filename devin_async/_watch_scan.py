"""The reads of one watcher cycle, and the choice between the two ways to read watched ids.

Why it looks like this:
- Two ways to learn what changed among N watched sessions since a watermark:
  *chunked* reads (`session_ids=` 200 at a time, `updated_after=`) cost ceil(N/200) requests
  whatever changed; one org-wide *delta* listing (`updated_after=` alone, 200 per page) costs one
  page per 200 sessions that changed anywhere in the organization, watched or not.
- `DeltaChoice` picks per cycle from the previous cycles' numbers: chunked when it costs one
  request (nothing beats it and it is immune to a noisy org), or when the last chunked cycle alone
  returned enough changes to fill as many pages; otherwise a delta scan with a page budget one
  below the chunked cost. A delta scan that would pass its budget (a page's `total`, or one more
  page to fetch) is abandoned and the cycle reads chunked; the next tries wait 1, 2, 4 ... 64
  cycles, so a noisy org costs a bounded, shrinking overhead.
- Every read goes through `Sessions.fetcher` (`on_reply` sees a Retry-After on a 2xx) and the
  `Paginator` (a repeated cursor is MalformedResponseError: a failed cycle, never a spin).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import attrs

from ._errors import DevinError, NotFoundError
from ._filters import session_page
from ._models import Session
from ._pagination import Paginator
from ._protocol import encode_array

if TYPE_CHECKING:
    from ._engine import Reply
    from ._sessions import Sessions

__all__ = ["CHUNK", "CONCURRENCY", "FUTURE_MARGIN", "MAX_LINE", "MAX_SKIP", "PROBE_MIN_IDS",
           "PROBE_WINDOW",
           "DeltaChoice", "Scanner", "WatchStats"]

T = TypeVar("T")

#: Ids per list request: the list endpoint's largest page.
CHUNK = 200
#: List requests in flight at once within one cycle.
CONCURRENCY = 4
#: How far past the client's wall clock an `updated_at` may count for the watermark (seconds):
#: one session stamped in the far future must not freeze `updated_after` for all the others.
FUTURE_MARGIN = 300
#: The longest request line servers commonly take (aiohttp's `max_line_size`, nginx's 8 KB
#: header buffer): a chunk holds fewer than CHUNK ids when long ids would not fit in it.
MAX_LINE = 8190
#: The request line without the ids: method, version prefix, path tail, `first`, `updated_after`,
#: protocol, and some room.
LINE_OVERHEAD = 110
#: How far back (wall-clock seconds) a watcher's first probe for a recent stamp looks.
PROBE_WINDOW = 60
#: Ids (to read by id) from which a watcher's first cycle starts with that probe: below, a stale
#: first watermark costs less than the probe's request is worth.
PROBE_MIN_IDS = 3 * CHUNK + 1
#: The longest wait (in cycles) before a delta scan is tried again after one went over budget.
MAX_SKIP = 64


@attrs.define
class WatchStats:
    """Counters of a watcher's work."""

    cycles: int = 0
    requests: int = 0
    failed_cycles: int = 0
    events: int = 0
    #: Cycles whose watched ids were read with one org-wide `updated_after` listing.
    delta_cycles: int = 0
    #: Delta scans abandoned because they would cost more than chunked reads.
    delta_abandoned: int = 0
    #: Sessions found by the tag listing or as children, not passed in.
    discovered: int = 0
    #: Sightings ignored as older than one already reported (a stale replica's answers).
    stale_ignored: int = 0


@attrs.define
class DeltaChoice:
    """Choose, cycle by cycle, between chunked reads and one org-wide delta listing."""

    skip: int = 0  # cycles left before the next delta try
    backoff: int = 1  # the skip set after the next abandoned delta scan
    changed: int = 0  # watched sessions the last chunked cycle found changed

    def budget(self, chunks: int) -> int:
        """Return the page budget of a delta scan instead of `chunks` reads (0: read chunked)."""
        if chunks <= 1 or math.ceil(self.changed / CHUNK) >= chunks:
            return 0
        if self.skip > 0:
            self.skip -= 1
            return 0
        return chunks - 1

    def delta_done(self) -> None:
        """Record a delta scan that stayed within its budget."""
        self.backoff = 1
        self.changed = 0

    def delta_abandoned(self) -> None:
        """Record a delta scan that would have cost more than chunked reads."""
        self.skip = self.backoff
        self.backoff = min(MAX_SKIP, self.backoff * 2)

    def chunked(self, changed: int) -> None:
        """Record a chunked cycle: `changed` of the sessions it read are stamped at or after
        the next cycle's watermark (what a delta scan from there would find among them)."""
        self.changed = changed


class Scanner:
    """Read sessions for a watcher: id chunks, listings with a page budget, gets."""

    def __init__(self, sessions: Sessions, stats: WatchStats) -> None:
        self._sessions = sessions
        self.stats = stats
        #: Retry-After of this cycle's successful answers (the watcher clears it per cycle).
        self.hints: list[float] = []
        #: The largest `updated_at` any answer carried (none past FUTURE_MARGIN); None: none yet.
        self.top: int | None = None
        #: `top` right after the first page that carried one since the watcher last reset it:
        #: below the read time of that page and of every read after it (a valid watermark).
        self.first_top: int | None = None

    def _hint(self, reply: Reply) -> None:
        if reply.retry_after is not None:
            self.hints.append(reply.retry_after)

    async def listing(self, query: list[tuple[str, str]], *,
                      budget: int | None = None) -> list[Session] | None:
        """Return every session of one listing, or None if it needs more than `budget` pages.

        Raises:
            DevinError: a page could not be read (MalformedResponseError for a cursor cycle).
        """
        fetch = self._sessions.fetcher("/sessions", query, session_page, on_reply=self._hint)
        out: list[Session] = []
        pages = 0
        try:
            async for page in Paginator(fetch, page_size=CHUNK).pages():
                self.stats.requests += 1
                pages += 1
                out.extend(page.items)
                self._stamps(page.items)
                if self.first_top is None:
                    self.first_top = self.top
                if budget is None:
                    continue
                total = page.total
                over_total = total is not None and math.ceil(total / CHUNK) > budget
                if page.has_next_page and (pages >= budget or over_total):
                    return None
        except DevinError:
            self.stats.requests += 1
            raise
        return out

    async def probe(self) -> None:
        """Read one page of sessions changed lately (by the client's wall clock) for a stamp.

        Only the answer's stamps are used (server time, valid for a watermark), so a server
        whose clock differs from ours costs one page and nothing else.
        """
        since = max(0, int(time.time()) - PROBE_WINDOW)
        await self.listing([("updated_after", str(since))], budget=1)

    def _stamps(self, items: Sequence[Session]) -> None:
        if not items:
            return
        # A stamp far past the client's clock says nothing of the server's time (a session
        # stamped in 2100): left out, so it cannot lift `updated_after` above everyone's changes.
        limit = int(time.time()) + FUTURE_MARGIN
        stamps = [s.updated_at for s in items if s.updated_at <= limit]
        if not stamps:
            return
        stamp = max(stamps)
        if self.top is None or stamp > self.top:
            self.top = stamp

    def split(self, ids: Sequence[str]) -> list[Sequence[str]]:
        """Cut `ids` into chunks of at most CHUNK ids whose request line fits in MAX_LINE."""
        room = MAX_LINE - LINE_OVERHEAD - len(self._sessions.engine.org_path)
        chunks: list[Sequence[str]] = []
        start, used = 0, 0
        for i, sid in enumerate(ids):
            cost = len(quote(sid, safe="")) + 3  # "%2C": the separator, percent-encoded
            if i > start and (i - start >= CHUNK or used + cost > room):
                chunks.append(ids[start:i])
                start, used = i, 0
            used += cost
        if start < len(ids):
            chunks.append(ids[start:])
        return chunks

    def chunk(self, ids: Sequence[str], since: int | None,
              ) -> Callable[[], Awaitable[list[Session] | None]]:
        """Return a job reading `ids` (already checked), changed since `since` if given."""
        query = encode_array("session_ids", list(ids))
        if since is not None:
            query.append(("updated_after", str(since)))
        return lambda: self.listing(query)

    def getter(self, sid: str) -> Callable[[], Awaitable[Session | NotFoundError]]:
        """Return a job getting one session (a 404 is returned, not raised)."""

        async def get() -> Session | NotFoundError:
            self.stats.requests += 1
            try:
                return await self._sessions.get(sid)
            except NotFoundError as exc:
                return exc

        return get

    @staticmethod
    async def pool(jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T | DevinError | None]:
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
