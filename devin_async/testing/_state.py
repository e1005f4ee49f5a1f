"""The fake server's session store: records, secondary indexes, mutations and JSON rendering.

Why the indexes: list requests filter by `session_ids` (a watcher asks for up to 200 at a time)
and by tags/users/playbooks over stores of 10,000+ sessions. `records` answers ids in O(1);
`_index` maps (field, value) -> ids for the filters whose value only changes through this module;
`order` keeps `(created_at, session_id)` keys sorted so the unfiltered list and the created_at
range are bisections.
"""

from __future__ import annotations

import bisect
import copy
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._errors import ApiError, ValidationFailed, field_error
from ._lifecycle import (
    ACUS_PER_WORKING_SECOND,
    AWAKE,
    SETTLE_MESSAGES,
    TERMINAL,
    ServerClock,
    Step,
    Timeline,
    plan_continue,
    plan_resume,
    plan_start,
)

MAX_TAGS = 50
INDEXED = ("tags", "playbook_id", "origin", "user_id", "service_user_id", "schedule_id", "repos",
           "category")
"""Fields with an index (value -> session ids); list filters on them never scan the store."""
_HIDDEN = ("schedule_id", "repos")  # filterable, not part of SessionResponse


def _default_fields() -> dict[str, Any]:
    """Stored SessionResponse fields of a new session (acus_consumed None: computed)."""
    return {
        "acus_consumed": None, "pull_requests": [], "title": None, "user_id": None,
        "service_user_id": None, "playbook_id": None, "parent_session_id": None,
        "child_session_ids": None, "is_archived": False, "is_advanced": False,
        "structured_output": None, "origin": "api", "category": None, "subcategory": None,
    }


SEEDABLE = frozenset({*_default_fields(), *_HIDDEN, "tags", "status", "status_detail",
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
class SessionRecord:
    session_id: str
    created: float
    timeline: Timeline
    touched: float
    tags: list[str]
    fields: dict[str, Any]  # SessionResponse fields that are stored as-is
    hidden: dict[str, Any]  # filter-only fields: schedule_id, repos
    create_body: dict[str, Any]
    messages: list[MessageRecord] = attrs.Factory(list)
    attachments: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def key(self) -> tuple[int, str]:
        """Sort key of every list: created_at (as sent, whole seconds) then id."""
        return (int(self.created), self.session_id)

    def index_values(self, name: str) -> list[str]:
        if name == "tags":
            return self.tags
        value = self.hidden.get(name) if name in _HIDDEN else self.fields.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    def updated_at(self, now: float) -> int:
        return int(max(self.timeline.changed_at(now), self.touched))


def _copy(value: Any) -> Any:
    return None if value is None else copy.deepcopy(value)


def _dedupe(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))


class SessionStore:
    """Every session of the fake organization, with the operations the endpoints perform."""

    def __init__(
        self, *, org_id: str, clock: ServerClock, rng: random.Random, batch_children: int = 3,
    ) -> None:
        self.org_id = org_id
        self.clock = clock
        self.rng = rng
        self.batch_children = batch_children
        self.records: dict[str, SessionRecord] = {}
        self.order: list[tuple[int, str]] = []
        self._index: dict[str, defaultdict[str, set[str]]] = {
            name: defaultdict(set) for name in INDEXED}
        self.scripts: list[list[Step]] = []  # queue for the next created sessions

    # --- ids, lookup, indexes --------------------------------------------------------------------
    def hex_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def get(self, session_id: str) -> SessionRecord:
        record = self.records.get(session_id)
        if record is None:
            raise ApiError(404, f"Session {session_id} not found")
        return record

    def lookup(self, name: str, values: Iterable[str], *, match_all: bool) -> set[str]:
        """Ids whose `name` holds all (or any) of `values`, from the index alone."""
        index = self._index[name]
        sets = [index.get(v, set()) for v in dict.fromkeys(values)]
        if not sets:
            return set()
        sets.sort(key=len)
        if match_all:
            return set(sets[0]).intersection(*sets[1:])
        return set().union(*sets)

    def _reindex(self, record: SessionRecord, names: Iterable[str], add: bool) -> None:
        sid = record.session_id
        for name in names:
            index = self._index[name]
            for value in record.index_values(name):
                if add:
                    index[value].add(sid)
                else:
                    ids = index.get(value)
                    if ids is not None:
                        ids.discard(sid)
                        if not ids:
                            del index[value]

    def _insert(self, record: SessionRecord, *, sort: bool = True) -> None:
        self.records[record.session_id] = record
        self._reindex(record, INDEXED, add=True)
        if sort:
            bisect.insort(self.order, record.key)
        else:
            self.order.append(record.key)

    # --- creation --------------------------------------------------------------------------------
    def _new_record(self, now: float, body: Mapping[str, Any], fields: Mapping[str, Any],
                    timeline: Timeline) -> SessionRecord:
        hex_id = self.hex_id()
        prompt = str(body.get("prompt", ""))
        record = SessionRecord(
            session_id=f"devin-{hex_id}", created=now, timeline=timeline, touched=now,
            tags=_dedupe(body.get("tags") or []),
            fields={**_default_fields(), **fields},
            hidden={"schedule_id": body.get("schedule_id"), "repos": list(body.get("repos") or [])},
            create_body=dict(body),
        )
        if record.fields["title"] is None and prompt:
            record.fields["title"] = prompt.strip().splitlines()[0][:80] if prompt.strip() else None
        if prompt:
            record.messages.append(MessageRecord(now, self._event_id(), prompt, "user"))
        for url in body.get("attachment_urls") or []:
            record.attachments.append({
                "attachment_id": f"att-{self.hex_id()[:16]}", "name": url.rsplit("/", 1)[-1] or url,
                "source": "user", "url": url, "content_type": None})
        return record

    def _event_id(self) -> str:
        return f"event-{self.hex_id()}"

    def _plan(self, record: SessionRecord, start: float, steps: list[Step]) -> None:
        """Append `steps` from `start`, and the Devin message that goes with a settling step."""
        record.timeline.extend(start, steps)
        for step in steps:
            text = SETTLE_MESSAGES.get(step.status_detail or "")
            if step.status == "running" and text:
                message = MessageRecord(start + step.at, self._event_id(), text, "devin")
                record.messages.append(message)

    def create(self, body: Mapping[str, Any], *, service_user_id: str | None) -> SessionRecord:
        """Create a session (and a batch's children) from a validated create body."""
        now = self.clock.now()
        mode = body.get("advanced_mode")
        fields = {"user_id": body.get("create_as_user_id"), "service_user_id": service_user_id,
                  "playbook_id": body.get("playbook_id"), "is_advanced": mode is not None,
                  "title": body.get("title")}
        script = self.scripts.pop(0) if self.scripts else None
        record = self._new_record(now, body, fields, Timeline.starting(now))
        if script is None:
            self._plan(record, now, plan_start(self.rng)[1:])
        else:
            record.timeline.auto = False
            self._plan(record, now, script)
        self._insert(record)
        if mode == "batch":
            children = []
            for i in range(self.batch_children):
                child_body = {"prompt": f"[{i + 1}/{self.batch_children}] {body['prompt']}",
                              "tags": list(record.tags), "repos": body.get("repos")}
                child = self._new_record(now, child_body, {
                    **fields, "title": None, "is_advanced": False,
                    "playbook_id": body.get("child_playbook_id"),
                    "parent_session_id": record.session_id}, Timeline.starting(now))
                self._plan(child, now, plan_start(self.rng)[1:])
                self._insert(child)
                children.append(child.session_id)
            record.fields["child_session_ids"] = children
        return record

    def add_many(self, n: int, fields: Mapping[str, Any]) -> list[str]:
        """Seed `n` sessions directly; a callable field value is called with the index 0..n-1."""
        unknown = set(fields) - SEEDABLE
        if unknown:
            raise TypeError(f"unknown session fields: {sorted(unknown)}")
        now = self.clock.now()
        ids = []
        for i in range(n):
            values = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
            created = float(values.pop("created_at", now))
            status = values.pop("status", None)
            detail = values.pop("status_detail", None)
            updated = values.pop("updated_at", None)
            body = {"prompt": values.pop("prompt", f"Seeded session {i + 1}"),
                    "tags": values.pop("tags", None), "repos": values.pop("repos", None),
                    "schedule_id": values.pop("schedule_id", None)}
            if status is None:
                record = self._new_record(created, body, values, Timeline.starting(created))
                self._plan(record, created, plan_start(self.rng)[1:])
            else:
                timeline = Timeline.starting(created, status, detail)
                timeline.auto = False
                record = self._new_record(created, body, values, timeline)
            if updated is not None:
                record.touched = float(updated)
            self._insert(record, sort=False)
            ids.append(record.session_id)
        self.order.sort()
        return ids

    # --- mutations -------------------------------------------------------------------------------
    def update(self, record: SessionRecord, fields: Mapping[str, Any]) -> None:
        """Overwrite stored fields (tags, title, pull_requests, ...) and keep indexes right."""
        bad = set(fields) - (SEEDABLE - {"status", "status_detail", "created_at", "prompt"})
        if bad:
            raise TypeError(f"cannot update {sorted(bad)} (status changes go through "
                            "set_status/script; created_at and prompt are fixed)")
        self._reindex(record, INDEXED, add=False)
        for name, value in fields.items():
            if name == "tags":
                record.tags = _dedupe(value)
            elif name == "updated_at":
                record.touched = float(value)
            elif name in _HIDDEN:
                record.hidden[name] = value
            else:
                record.fields[name] = value
        self._reindex(record, INDEXED, add=True)

    def set_tags(self, record: SessionRecord, tags: list[str], *, append: bool) -> list[str]:
        new = _dedupe([*record.tags, *tags] if append else tags)
        if len(new) > MAX_TAGS:
            raise ValidationFailed([field_error(
                ("body", "tags"), f"A session can have at most {MAX_TAGS} tags, not {len(new)}",
                "too_long", tags, {"max_length": MAX_TAGS})])
        self._reindex(record, ("tags",), add=False)
        record.tags = new
        self._reindex(record, ("tags",), add=True)
        record.touched = self.clock.now()
        return list(new)

    def set_status(self, record: SessionRecord, status: str, detail: str | None) -> None:
        now = self.clock.now()
        record.timeline.cut(now)
        record.timeline.push(now, status, detail)
        record.timeline.auto = False
        self._drop_future_messages(record, now)

    def script(self, record: SessionRecord, steps: list[Step]) -> None:
        now = self.clock.now()
        record.timeline.cut(now)
        record.timeline.auto = False
        self._drop_future_messages(record, now)
        self._plan(record, now, steps)

    def _drop_future_messages(self, record: SessionRecord, now: float) -> None:
        record.messages = [m for m in record.messages if m.at <= now]

    def _replan(self, record: SessionRecord, now: float, steps: list[Step]) -> None:
        record.timeline.cut(now)
        record.timeline.auto = True
        self._drop_future_messages(record, now)
        self._plan(record, now, steps)

    def send_message(self, record: SessionRecord, text: str) -> None:
        """Add a user message; wake a suspended session, set a settled one working again."""
        now = self.clock.now()
        status, _ = record.timeline.state(now)
        if status in TERMINAL:
            raise ApiError(409, f"Session {record.session_id} has ended (status {status}) and "
                                "cannot be resumed")
        if record.fields.get("is_archived"):
            raise ApiError(409, f"Session {record.session_id} is archived and cannot be continued")
        record.touched = now
        scripted = not record.timeline.auto and record.timeline.has_future(now)
        if not scripted:
            if status == "suspended":
                self._replan(record, now, plan_resume(self.rng))
            elif status == "running" or not record.timeline.has_future(now):
                self._replan(record, now, plan_continue(self.rng))
        record.messages.append(MessageRecord(now, self._event_id(), text, "user"))

    def terminate(self, record: SessionRecord, *, archive: bool) -> None:
        now = self.clock.now()
        status, _ = record.timeline.state(now)
        if status not in TERMINAL:
            record.timeline.cut(now)
            record.timeline.push(now, "exit", None)
            self._drop_future_messages(record, now)
        if archive and not record.fields["is_archived"]:
            record.fields["is_archived"] = True
            record.touched = now

    def archive(self, record: SessionRecord) -> None:
        now = self.clock.now()
        status, _ = record.timeline.state(now)
        if status in AWAKE:
            record.timeline.cut(now)
            record.timeline.push(now, "suspended", "user_request")
            self._drop_future_messages(record, now)
        record.fields["is_archived"] = True
        record.touched = now

    # --- rendering -------------------------------------------------------------------------------
    def render(self, record: SessionRecord, now: float, *, full: bool) -> dict[str, Any]:
        """SessionResponse JSON; `full` (get/list) fills status_detail and structured_output."""
        status, detail = record.timeline.state(now)
        fields = record.fields
        acus = fields["acus_consumed"]
        if acus is None:
            acus = round(record.timeline.working_seconds(now) * ACUS_PER_WORKING_SECOND, 3)
        hex_id = record.session_id.removeprefix("devin-")
        return {
            "session_id": record.session_id,
            "url": f"https://app.devin.ai/sessions/{hex_id}",
            "status": status,
            "status_detail": detail if full else None,
            "tags": list(record.tags),
            "org_id": self.org_id,
            "created_at": int(record.created),
            "updated_at": record.updated_at(now),
            "acus_consumed": acus,
            "pull_requests": [dict(pr) for pr in fields["pull_requests"]],
            "title": fields["title"],
            "user_id": fields["user_id"],
            "service_user_id": fields["service_user_id"],
            "playbook_id": fields["playbook_id"],
            "parent_session_id": fields["parent_session_id"],
            "child_session_ids": _copy(fields["child_session_ids"]),
            "is_archived": fields["is_archived"],
            "is_advanced": fields["is_advanced"],
            "structured_output": _copy(fields["structured_output"]) if full else None,
            "origin": fields["origin"],
            "category": fields["category"] if full else None,
            "subcategory": fields["subcategory"] if full else None,
        }

    def visible_messages(self, record: SessionRecord, now: float) -> list[MessageRecord]:
        """Messages up to `now`, oldest first."""
        return sorted((m for m in record.messages if m.at <= now), key=lambda m: m.at)

