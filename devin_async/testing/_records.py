"""What the fake server stores per session: plain mutable records (no behaviour beyond reads)."""

from __future__ import annotations

import bisect
from typing import Any

import attrs

from ._lifecycle import Timeline

MAX_TAGS = 50
INDEXED = ("tags", "playbook_id", "origin", "user_id", "service_user_id", "schedule_id", "repos",
           "category")
"""Fields with an index (value -> session ids); list filters on them never scan the store."""
HIDDEN = ("schedule_id", "repos")  # filterable, not part of SessionResponse
UNSET: Any = object()
"""`SessionRecord.output` before anything decided it (the generator is asked lazily)."""


def default_fields() -> dict[str, Any]:
    """Stored SessionResponse fields of a new session (acus_consumed None: computed)."""
    return {
        "acus_consumed": None, "pull_requests": [], "title": None, "user_id": None,
        "service_user_id": None, "playbook_id": None, "parent_session_id": None,
        "child_session_ids": None, "is_archived": False, "is_advanced": False,
        "structured_output": None, "origin": "api", "category": None, "subcategory": None,
    }


SEEDABLE = frozenset({*default_fields(), *HIDDEN, "tags", "status", "status_detail",
                      "created_at", "updated_at", "prompt"})
"""Keyword names `add_sessions`/`update` accept."""


@attrs.define(slots=True, eq=False)
class MessageRecord:
    at: float
    event_id: str
    message: str
    source: str  # "user" | "devin"

    def to_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "created_at": int(self.at), "message": self.message,
                "source": self.source}


@attrs.define(slots=True, eq=False)
class EventRecord:
    """One entry of a session's event timeline; `seq` orders events created at the same time."""

    at: float
    seq: int
    event_id: str
    event_type: str
    category: str
    direction: str  # "incoming" | "outgoing"
    summary: str
    contents: dict[str, Any]

    @property
    def key(self) -> tuple[float, int]:
        return (self.at, self.seq)

    def summary_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "event_type": self.event_type,
                "category": self.category, "direction": self.direction,
                "created_at": int(self.at), "summary": self.summary}


def event_key(event: EventRecord) -> tuple[float, int]:
    return event.key


@attrs.define(slots=True, eq=False)
class SessionRecord:
    session_id: str
    created: float
    timeline: Timeline
    touched: float
    tags: list[str]
    fields: dict[str, Any]  # SessionResponse fields that are stored as-is
    hidden: dict[str, Any]  # filter-only fields: schedule_id, repos
    create_body: dict[str, Any]  # as sent (test-side only: never served)
    messages: list[MessageRecord] = attrs.Factory(list)
    events: list[EventRecord] = attrs.Factory(list)  # sorted by (at, seq)
    attachments: list[dict[str, Any]] = attrs.Factory(list)
    tag_history: list[tuple[float, list[str]]] = attrs.Factory(list)  # (since, tags), for index_lag
    secrets: list[dict[str, Any]] = attrs.Factory(list)  # session_secrets as sent (values kept)
    output_schema: dict[str, Any] | None = None
    output: Any = UNSET  # the structured output revealed once the session finished
    replies: list[tuple[str, float]] = attrs.Factory(list)  # scripted (text, delay) for messages
    insights_at: float | None = None  # when an analysis was asked for

    @property
    def key(self) -> tuple[int, str]:
        """Sort key of every list: created_at (as sent, whole seconds) then id."""
        return (int(self.created), self.session_id)

    def index_values(self, name: str) -> list[str]:
        if name == "tags":
            return self.tags
        value = self.hidden.get(name) if name in HIDDEN else self.fields.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    def updated_at(self, now: float, *, as_of: bool = False) -> int:
        """`updated_at` at `now`; `as_of` (a lagged view) ignores a touch later than `now`."""
        touched = self.created if as_of and self.touched > now else self.touched
        return int(max(self.timeline.changed_at(now), touched))

    def tags_at(self, at: float) -> list[str]:
        """The tags as they were at server time `at` (the current ones without a history)."""
        if not self.tag_history or self.tag_history[-1][0] <= at:
            return self.tags
        i = bisect.bisect_right([since for since, _ in self.tag_history], at)
        return self.tag_history[i - 1][1] if i else []

    def add_event(self, event: EventRecord) -> None:
        bisect.insort(self.events, event, key=event_key)

    def finished_by(self, now: float) -> bool:
        """Whether the session reached running/finished at or before `now`."""
        last = self.timeline.index(now)
        return any(state == ("running", "finished") for state in self.timeline.states[:last + 1])
