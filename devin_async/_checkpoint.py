"""A watcher's checkpoint: what it had reported, as a small JSON-serializable dict.

Why it looks like this:
- One entry per watched session, `sid: [status, status_detail, updated_at]` of the last state the
  consumer was *given* (or `null`: watched, nothing reported yet). Events still queued when the
  checkpoint was taken are not "reported": their sessions are saved at the state before them,
  so a resumed watcher reports them again, once.
- `watermark` is the `updated_after` the resumed watcher starts from: no later than the next
  cycle's, and no later than any queued event's stamp (minus MARGIN), so every change the saved
  states do not include carries a stamp at or after it.
- Loading checks everything (version, organization, shape, ids) and raises ValueError naming what
  is wrong, before any request: a checkpoint of another org would silently watch nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._enums import SessionStatus, StatusDetail
from ._models import Session, SessionEvent
from ._protocol import check_id

__all__ = ["VERSION", "Restored", "State", "dump", "load", "reconstruct", "state_of"]

#: The checkpoint format this SDK writes and reads.
VERSION = 1

#: (status, status_detail, updated_at) of one session.
State = tuple[str, "str | None", int]


@attrs.frozen
class Restored:
    """A checked checkpoint, ready to seed a watcher."""

    watermark: int | None
    tags: tuple[str, ...]
    follow_children: bool
    #: Every watched id and the state last reported for it (None: nothing reported yet).
    states: dict[str, State | None]


def state_of(session: Session) -> State:
    """Return the (status, status_detail, updated_at) a checkpoint keeps of a session."""
    detail = session.status_detail
    return (session.status.value, None if detail is None else detail.value, session.updated_at)


def reconstruct(current: Session, state: State) -> Session:
    """Return `current` as it was at a saved state (its other fields are today's)."""
    status, detail, updated_at = state
    return attrs.evolve(
        current, status=SessionStatus(status),
        status_detail=None if detail is None else StatusDetail(detail), updated_at=updated_at)


def dump(
    *, org_id: str, watermark: int | None, tags: Iterable[str], follow_children: bool,
    states: Mapping[str, State | None], queued: Iterable[SessionEvent], margin: int,
) -> dict[str, Any]:
    """Return the checkpoint dict (queued, unconsumed events are not counted as reported)."""
    sessions: dict[str, list[Any] | None] = {
        sid: None if s is None else list(s) for sid, s in states.items()}
    low = watermark
    overridden: set[str] = set()
    for event in queued:
        sid = event.session.session_id
        if sid not in overridden:
            overridden.add(sid)
            before = event.previous
            sessions[sid] = None if before is None else list(state_of(before))
        if low is not None:  # None: the resumed watcher reads everything anyway
            low = min(low, max(0, event.session.updated_at - margin))
    return {"version": VERSION, "org_id": org_id, "watermark": low, "tags": list(tags),
            "follow_children": follow_children, "sessions": sessions}


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _state(sid: str, raw: object) -> State | None:
    if raw is None:
        return None
    if (isinstance(raw, list | tuple) and len(raw) == 3 and isinstance(raw[0], str) and raw[0]
            and (raw[1] is None or (isinstance(raw[1], str) and raw[1])) and _int(raw[2])):
        return (raw[0], raw[1], raw[2])
    raise ValueError(f"resume: session {sid}'s state must be [status, status_detail, updated_at] "
                     f"or null, got {str(raw)[:80]}")


def load(data: object, *, org_id: str) -> Restored:
    """Check a checkpoint (as `Watcher.checkpoint()` wrote it) and return what it holds.

    Raises:
        ValueError: not a checkpoint, a version this SDK cannot read, another organization's,
            or a malformed field (the message names it).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"resume must be a checkpoint dict, got {type(data).__name__}")
    version = data.get("version")
    if version != VERSION or not _int(version):
        raise ValueError(f"resume: checkpoint version {version!r} is not {VERSION} (written by "
                         "another version of devin_async?)")
    unknown = set(data) - {"version", "org_id", "watermark", "tags", "follow_children",
                           "sessions"}
    if unknown:
        raise ValueError(f"resume: unknown checkpoint fields {sorted(unknown)}")
    if data.get("org_id") != org_id:
        raise ValueError(f"resume: the checkpoint belongs to organization "
                         f"{str(data.get('org_id'))[:80]!r}, this client to {org_id!r}")
    watermark = data.get("watermark")
    if watermark is not None and not _int(watermark):
        raise ValueError(f"resume: watermark must be Unix seconds or null, got {watermark!r}")
    tags = data.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError("resume: tags must be a list of non-empty strings")
    follow = data.get("follow_children")
    if not isinstance(follow, bool):
        raise ValueError("resume: follow_children must be true or false")
    sessions = data.get("sessions")
    if not isinstance(sessions, Mapping):
        raise ValueError("resume: sessions must be a dict of session id -> state")
    states: dict[str, State | None] = {}
    for sid, raw in sessions.items():
        states[check_id("resume: session id", sid)] = _state(sid, raw)
    return Restored(watermark, tuple(tags), follow, states)
