"""The fake server's session store: records, secondary indexes, mutations and JSON rendering.

Why the indexes: list requests filter by `session_ids` (a watcher asks for up to 200 at a time)
and by tags/users/playbooks over stores of 10,000+ sessions. `records` answers ids in O(1);
`_index` maps (field, value) -> ids for the filters whose value only changes through this module;
`order` keeps `(created_at, session_id)` keys sorted so the unfiltered list and the created_at
range are bisections.
Messages and events are planned with the timeline; whatever lies in the future is dropped with
it when the timeline is cut (a message, terminate, script, set_status).
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import ApiError, ValidationFailed, field_error
from ._events import EventMaker
from ._hostile import StaleReplica
from ._lifecycle import (
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
from ._records import (
    HIDDEN,
    INDEXED,
    MAX_TAGS,
    SEEDABLE,
    MessageRecord,
    SessionRecord,
    default_fields,
)
from ._render import OutputGenerator, render_session

__all__ = ["MAX_TAGS", "REPLY_AFTER", "SessionStore"]

REPLY_AFTER = 2.0
"""Server seconds from a user message to Devin's reply."""


def _dedupe(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def default_reply(text: str) -> str:
    first = (text.strip().splitlines() or [""])[0][:80]
    return f"Got it: {first}" if first else "Got it."


class SessionStore:
    """Every session of the fake organization, with the operations the endpoints perform."""

    def __init__(
        self, *, org_id: str, clock: ServerClock, rng: random.Random, batch_children: int = 3,
        event_rng: random.Random | None = None, event_seed: object = 0, index_lag: float = 0.0,
        output_generator: OutputGenerator | None = None,
    ) -> None:
        self.org_id = org_id
        self.clock = clock
        self.rng = rng
        self.batch_children = batch_children
        self.events = EventMaker(event_rng or random.Random(0), event_seed)
        self.index_lag = index_lag
        #: Answers some session reads from a replica behind the writes (see `_hostile`).
        self.replica = StaleReplica(0.0, 0.0, seed=event_seed)
        self.output_generator = output_generator
        self.records: dict[str, SessionRecord] = {}
        self.order: list[tuple[int, str]] = []
        self._index: dict[str, defaultdict[str, set[str]]] = {
            name: defaultdict(set) for name in INDEXED}
        self.scripts: list[list[Step]] = []  # queue for the next created sessions
        #: url -> {attachment_id, name, content_type} of an uploaded file (set by the server).
        self.uploaded: Callable[[str], dict[str, Any] | None] = lambda url: None

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
        schema = body.get("structured_output_schema")
        record = SessionRecord(
            session_id=f"devin-{hex_id}", created=now, timeline=timeline, touched=now,
            tags=_dedupe(body.get("tags") or []),
            fields={**default_fields(), **fields},
            hidden={"schedule_id": body.get("schedule_id"), "repos": list(body.get("repos") or [])},
            create_body=dict(body),
            secrets=[dict(s) for s in body.get("session_secrets") or []],
            output_schema=schema if isinstance(schema, dict) else None,
        )
        if record.fields["title"] is None and prompt:
            record.fields["title"] = prompt.strip().splitlines()[0][:80] if prompt.strip() else None
        record.add_event(self.events.make(now, "session_created", "lifecycle", "incoming",
                                          "Session created", {"origin": record.fields["origin"]}))
        if record.secrets:
            keys = [str(s.get("key")) for s in record.secrets]
            record.add_event(self.events.make(now, "session_secrets_loaded", "secret", "incoming",
                                              f"Loaded {len(keys)} session secret(s)",
                                              {"keys": keys}))
        if prompt:
            self._message(record, MessageRecord(now, self._event_id(), prompt, "user"))
        self.link_attachments(record, body.get("attachment_urls") or [])
        return record

    def link_attachments(self, record: SessionRecord, urls: Iterable[str]) -> None:
        for url in urls:
            known = self.uploaded(url) or {
                "attachment_id": f"att-{self.hex_id()[:16]}",
                "name": url.rsplit("/", 1)[-1] or url, "content_type": None}
            record.attachments.append({**known, "source": "user", "url": url})

    def _event_id(self) -> str:
        return f"event-{self.hex_id()}"

    def _message(self, record: SessionRecord, message: MessageRecord) -> None:
        record.messages.append(message)

    def _plan(self, record: SessionRecord, start: float, steps: list[Step]) -> None:
        """Append `steps` from `start`, and the Devin message that goes with a settling step."""
        record.timeline.extend(start, steps)
        for step in steps:
            text = SETTLE_MESSAGES.get(step.status_detail or "")
            if step.status == "running" and text:
                self._message(record, MessageRecord(start + step.at, self._event_id(), text,
                                                    "devin"))

    def create(self, body: Mapping[str, Any], *, service_user_id: str | None,
               user_id: str | None = None) -> SessionRecord:
        """Create a session (and a batch's children) from a validated create body."""
        now = self.clock.now()
        mode = body.get("advanced_mode")
        fields = {"user_id": body.get("create_as_user_id") or user_id,
                  "service_user_id": service_user_id,
                  "playbook_id": body.get("playbook_id"), "is_advanced": mode is not None,
                  "title": body.get("title")}
        script = self.scripts.pop(0) if self.scripts else None
        record = self._new_record(now, body, fields, Timeline.starting(now))
        if script is None:
            self._plan(record, now,
                       plan_start(self.rng, finish=record.output_schema is not None)[1:])
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
                self._retag(record, _dedupe(value))
            elif name == "updated_at":
                record.touched = float(value)
            elif name in HIDDEN:
                record.hidden[name] = value
            else:
                record.fields[name] = value
        self._reindex(record, INDEXED, add=True)

    def _retag(self, record: SessionRecord, tags: list[str]) -> None:
        """Set the tags, remembering the old ones for a lagging list index."""
        if not record.tag_history:
            record.tag_history.append((record.created, list(record.tags)))
        record.tag_history.append((self.clock.now(), list(tags)))
        record.tags = tags

    def set_tags(self, record: SessionRecord, tags: list[str], *, append: bool) -> list[str]:
        new = _dedupe([*record.tags, *tags] if append else tags)
        if len(new) > MAX_TAGS:
            raise ValidationFailed([field_error(
                ("body", "tags"), f"A session can have at most {MAX_TAGS} tags, not {len(new)}",
                "too_long", tags, {"max_length": MAX_TAGS})])
        self._reindex(record, ("tags",), add=False)
        self._retag(record, new)
        self._reindex(record, ("tags",), add=True)
        record.touched = self.clock.now()
        return list(new)

    def set_status(self, record: SessionRecord, status: str, detail: str | None) -> None:
        now = self.clock.now()
        self._cut(record, now, auto=False)
        record.timeline.push(now, status, detail)

    def script(self, record: SessionRecord, steps: list[Step]) -> None:
        now = self.clock.now()
        self._cut(record, now, auto=False)
        self._plan(record, now, steps)

    def _cut(self, record: SessionRecord, now: float, *, auto: bool) -> None:
        """Forget the planned future: timeline, messages and events after `now`."""
        record.timeline.cut(now)
        record.timeline.auto = auto
        record.messages = [m for m in record.messages if m.at <= now]
        record.events = [e for e in record.events if e.at <= now]

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
                self._cut(record, now, auto=True)
                self._plan(record, now, plan_resume(self.rng))
            elif status == "running" or not record.timeline.has_future(now):
                self._cut(record, now, auto=True)
                self._plan(record, now, plan_continue(self.rng))
        self._message(record, MessageRecord(now, self._event_id(), text, "user"))
        reply, delay = record.replies.pop(0) if record.replies else (default_reply(text),
                                                                     REPLY_AFTER)
        self._message(record, MessageRecord(now + delay, self._event_id(), reply, "devin"))

    def terminate(self, record: SessionRecord, *, archive: bool) -> None:
        now = self.clock.now()
        status, _ = record.timeline.state(now)
        if status not in TERMINAL:
            self._cut(record, now, auto=record.timeline.auto)
            record.timeline.push(now, "exit", None)
        if archive and not record.fields["is_archived"]:
            record.fields["is_archived"] = True
            record.touched = now

    def archive(self, record: SessionRecord) -> None:
        now = self.clock.now()
        status, _ = record.timeline.state(now)
        if status in AWAKE:
            self._cut(record, now, auto=record.timeline.auto)
            record.timeline.push(now, "suspended", "user_request")
        record.fields["is_archived"] = True
        record.touched = now

    # --- rendering -------------------------------------------------------------------------------
    def render(self, record: SessionRecord, now: float, *, full: bool,
               as_of: bool = False) -> dict[str, Any]:
        """SessionResponse JSON; `full` (get/list) fills status_detail and structured_output."""
        return render_session(record, self.org_id, now, full=full, as_of=as_of,
                              generator=self.output_generator)

    def visible_messages(self, record: SessionRecord, now: float) -> list[MessageRecord]:
        """Messages up to `now`, oldest first."""
        return sorted((m for m in record.messages if m.at <= now), key=lambda m: m.at)
