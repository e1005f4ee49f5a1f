"""`WatchSet`: what a watcher watches and what it has reported, apart from when it reads.

Rules of this file:
- an event is queued only when (status, status_detail) differs from the last state seen;
  a sighting with an older `updated_at` than that state is ignored (never back in time);
- a session is found (tags, children) only if it was never removed nor vanished: `remove()` and
  a 404 put it in `ignored`, which only an explicit `add()` clears;
- `known` keeps the last state seen of each watched id, as a small tuple: it survives a
  checkpoint, where the full `Session` (in `sessions`) does not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from . import _checkpoint
from ._instrument import logger
from ._lifecycle import Phase
from ._models import Session, SessionEvent
from ._polling import FailureLog
from ._protocol import check_id
from ._watch_scan import WatchStats

__all__ = ["WatchSet"]


class WatchSet:
    """The watched ids, their last states and the queue of events not yet consumed."""

    def __init__(self, *, until: Callable[[Session], bool], tags: Iterable[str], follow: bool,
                 stats: WatchStats, log: FailureLog, on_new: Callable[[], None]) -> None:
        self.until = until
        self.tags = frozenset(tags)
        self.follow = follow
        self.stats = stats
        self.log = log
        self.on_new = on_new  # a session began to be watched: poll soon
        self.ids: dict[str, None] = {}  # watched ids, in the order added
        self.unmet: set[str] = set()  # watched ids not (yet) satisfying `until`
        self.starting: set[str] = set()  # watched ids unseen or in phase STARTING
        self.suspects: set[str] = set()  # absent from an unfiltered answer: confirm with a get
        self.tagged: set[str] = set()  # watched ids last seen with all `tags`
        self.ignored: set[str] = set()  # removed or vanished: not found again
        self.known: dict[str, _checkpoint.State] = {}  # last state seen, per watched id
        self.buffer: deque[SessionEvent] = deque()
        self.sessions: dict[str, Session] = {}  # the last session seen, per watched id
        self.not_found: set[str] = set()  # 404 before any sighting
        self.changed = False  # an event was queued since the watcher last cleared this

    def watch(self, sid: str) -> None:
        """Watch `sid` (already checked and not watched)."""
        self.ids[sid] = None
        self.unmet.add(sid)
        self.starting.add(sid)
        self.on_new()

    def drop(self, sid: str) -> None:
        """Stop watching `sid` at the consumer's request; drop its queued events."""
        self.ignored.add(sid)
        if sid not in self.ids:
            return
        self.forget(sid)
        self.sessions.pop(sid, None)
        if any(e.session.session_id == sid for e in self.buffer):
            self.buffer = deque(e for e in self.buffer if e.session.session_id != sid)

    def sighting(self, session: Session, *, discover: bool = False) -> bool:
        """Take a session read from the server; return whether it is watched."""
        sid = session.session_id
        if sid not in self.ids:
            if not discover or sid in self.ignored:
                return False
            self.stats.discovered += 1
            self.watch(sid)
        self.changed |= self._saw(session)
        return True

    def _saw(self, session: Session) -> bool:
        """Record a sighting of a watched session; queue an event and return True on a change."""
        sid = session.session_id
        known = self.known.get(sid)
        self.suspects.discard(sid)
        if known is not None and session.updated_at < known[2]:
            self.stats.stale_ignored += 1
            return False  # a stale replica's answer: a session never goes back in time
        previous = self.sessions.get(sid)
        self.sessions[sid] = session
        state = _checkpoint.state_of(session)
        self.known[sid] = state
        self.log.session(session)
        if session.phase is Phase.STARTING:
            self.starting.add(sid)
        else:
            self.starting.discard(sid)
        if self.until(session):
            self.unmet.discard(sid)
        else:
            self.unmet.add(sid)
        if self.tags:
            if self.tags.issubset(session.tags):
                self.tagged.add(sid)
            else:
                self.tagged.discard(sid)
        if self.follow and session.child_session_ids:
            self._children(session)
        if known is not None and known[:2] == state[:2]:
            return False
        if previous is None and known is not None:
            previous = _checkpoint.reconstruct(session, known)  # resumed: as checkpointed
        self.buffer.append(SessionEvent(session, previous))
        return True

    def _children(self, session: Session) -> None:
        for child in session.child_session_ids or ():
            if child in self.ids or child in self.ignored:
                continue
            try:
                check_id("child_session_id", child)
            except ValueError:
                self.ignored.add(str(child)[:200])
                logger.warning("watching sessions: session %s lists a malformed child id; "
                               "skipped", session.session_id)
                continue
            self.stats.discovered += 1
            self.watch(child)

    def vanish(self, sid: str) -> None:
        """Drop a watched session the server answered 404 for (one `gone` event if seen)."""
        last = self.sessions.pop(sid, None)
        self.forget(sid)
        self.ignored.add(sid)
        if last is None:
            self.not_found.add(sid)
            logger.warning("watching sessions: session %s was not found; no longer watched", sid)
        else:
            logger.info("watching sessions: session %s vanished (404)", sid)
            self.buffer.append(SessionEvent(last, last, gone=True))

    def forget(self, sid: str) -> None:
        """Remove every trace of `sid` but its last session (the caller decides)."""
        self.ids.pop(sid, None)
        self.unmet.discard(sid)
        self.starting.discard(sid)
        self.suspects.discard(sid)
        self.tagged.discard(sid)
        self.known.pop(sid, None)
