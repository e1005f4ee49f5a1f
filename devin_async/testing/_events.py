"""Session events of the fake server: how they are made, filtered, paged, detailed and searched.

Events follow the lifecycle (a status event per status change, a few shell/file/git events while
a session works, one per message) and, like statuses, are only *visible* once the server clock
reaches them; cutting a timeline drops the planned ones with it. They are derived from the
timeline when read (see EventMaker), so one seed gives the same timelines. Filters: `categories` or
`event_types` (not both: 422), `direction`, `created_after <= created_at < created_before`.
"""

from __future__ import annotations

import hashlib
import math
import random
import zlib
from collections.abc import Iterator
from typing import Any

import attrs
from multidict import MultiMapping

from ._errors import ValidationFailed, field_error
from ._query import decode_cursor, encode_cursor
from ._records import EventRecord, MessageRecord, SessionRecord, event_key
from ._validation import Errors, enum_check, last, query_int, query_list

EVENT_CATEGORIES = ("shell", "file", "search", "browser", "mcp", "git", "message", "status",
                    "secret", "todo", "recording", "knowledge", "playbook", "webhook", "lifecycle",
                    "other")
DIRECTIONS = ("incoming", "outgoing")
EVENT_PAGE_MAX = 200  # `first` has no documented maximum: larger values are served as 200
MAX_DETAIL_IDS = 20
DETAIL_LIMIT_DEFAULT, DETAIL_LIMIT_MAX = 20, 50
MAX_CONTENT_DEFAULT = 10_000
CONTEXT_CHARS = 40

_COMMANDS = ("pytest -q", "python -m mypy src", "git status", "ls -la src", "npm test",
             "ruff check .")
_PATHS = ("src/app.py", "tests/test_app.py", "README.md", "pyproject.toml", "src/config.py")
_COMMITS = ("Fix the flaky test", "Add input validation", "Update the docs", "Refactor the parser")


def _digest(*parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=12).hexdigest()


def _event(at: float, rank: int, event_id: str, event_type: str, category: str, direction: str,
           summary: str, contents: dict[str, Any]) -> EventRecord:
    # seq orders events of one instant: stored, status, work, message; then by id (stable).
    seq = rank * 10**8 + zlib.crc32(event_id.encode()) % 10**8
    return EventRecord(at=at, seq=seq, event_id=event_id, event_type=event_type,
                       category=category, direction=direction, summary=summary,
                       contents=contents)


class EventMaker:
    """Makes the stored events (creation, secrets, `add_event`) and derives the others.

    Status, work and message events are not stored: they are derived from the timeline and the
    messages when a client reads them (so seeding 10,000 sessions stays cheap), with ids and
    content from a hash of (seed, session, position): the same on every read and every run.
    """

    def __init__(self, rng: random.Random, seed: object = 0) -> None:
        self.rng = rng
        self.seed = seed
        self.count = 0

    def make(self, at: float, event_type: str, category: str, direction: str, summary: str,
             contents: dict[str, Any]) -> EventRecord:
        self.count += 1
        event_id = f"evt-{self.count:08x}{self.rng.getrandbits(64):016x}"
        return _event(at, 0, event_id, event_type, category, direction, summary, contents)

    def timeline(self, record: SessionRecord, now: float) -> list[EventRecord]:
        """Every event of `record` visible at `now`, oldest first."""
        sid = record.session_id
        out = [e for e in record.events if e.at <= now]
        times, states = record.timeline.times, record.timeline.states
        last = record.timeline.index(now)
        for i in range(1, last + 1):
            status, detail = states[i]
            text = status if detail is None else f"{status} ({detail})"
            out.append(_event(times[i], 1, f"evt-{_digest(self.seed, sid, 's', i, times[i])}",
                              "status_changed", "status", "outgoing", f"Status: {text}",
                              {"status": status, "status_detail": detail}))
        for i in range(last + 1):
            if states[i] == ("running", "working"):
                end = times[i + 1] if i + 1 < len(times) else math.inf
                out.extend(self._work(sid, times[i], min(end, now + 1e-9)))
        for message in record.messages:
            if message.at <= now:
                out.append(self._message(message))
        out.sort(key=event_key)
        return out

    def _message(self, message: MessageRecord) -> EventRecord:
        incoming = message.source == "user"
        first_line = (message.message.strip().splitlines() or [""])[0][:100]
        who = "User" if incoming else "Devin"
        return _event(message.at, 3, message.event_id,
                      "user_message" if incoming else "devin_message", "message",
                      "incoming" if incoming else "outgoing", f"{who}: {first_line}",
                      {"message": message.message, "source": message.source})

    def _work(self, sid: str, start: float, end: float) -> list[EventRecord]:
        """The shell, file and git events of the working stretch from `start`, before `end`."""
        rng = random.Random(f"{self.seed}:{sid}:{start!r}")
        events = []
        at = start
        for i in range(rng.randint(2, 4)):
            at += rng.uniform(1.0, 4.0)
            if at >= end:
                break
            kind = ("shell", "file", "shell", "git")[i]
            event_id = f"evt-{_digest(self.seed, sid, 'w', start, i)}"
            events.append(getattr(self, f"_{kind}")(rng, at, event_id))
        return events

    @staticmethod
    def _shell(rng: random.Random, at: float, event_id: str) -> EventRecord:
        command = rng.choice(_COMMANDS)
        output = "".join(f"{command}: line {n} ok\n" for n in range(rng.randint(3, 12)))
        return _event(at, 2, event_id, "shell_process_started", "shell", "outgoing",
                      f"Ran: {command}", {"command": command, "output": output, "exit_code": 0})

    @staticmethod
    def _file(rng: random.Random, at: float, event_id: str) -> EventRecord:
        path = rng.choice(_PATHS)
        diff = f"--- a/{path}\n+++ b/{path}\n" + "".join(
            f"+line {n}\n" for n in range(rng.randint(1, 8)))
        return _event(at, 2, event_id, "file_edited", "file", "outgoing", f"Edited {path}",
                      {"path": path, "diff": diff})

    @staticmethod
    def _git(rng: random.Random, at: float, event_id: str) -> EventRecord:
        message = rng.choice(_COMMITS)
        sha = f"{rng.getrandbits(160):040x}"
        return _event(at, 2, event_id, "git_commit_created", "git", "outgoing",
                      f"Committed: {message}", {"branch": "devin/work", "sha": sha,
                                                 "message": message})


# --- queries -------------------------------------------------------------------------------------
@attrs.frozen
class EventQuery:
    first: int = 100
    after: tuple[float, int] | None = None
    categories: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    created_after: int | None = None
    created_before: int | None = None
    direction: str | None = None

    def keeps(self, event: EventRecord) -> bool:
        created = int(event.at)
        return ((self.categories is None or event.category in self.categories)
                and (self.event_types is None or event.event_type in self.event_types)
                and (self.direction is None or event.direction == self.direction)
                and (self.created_after is None or created >= self.created_after)
                and (self.created_before is None or created < self.created_before))


def _event_cursor(cursor: str) -> tuple[float, int]:
    value = decode_cursor(cursor)
    if (isinstance(value, dict) and isinstance(value.get("e"), list) and len(value["e"]) == 2
            and isinstance(value["e"][0], int | float) and isinstance(value["e"][1], int)):
        return (float(value["e"][0]), int(value["e"][1]))
    raise ValidationFailed([field_error(("query", "after"), "Invalid cursor", "value_error",
                                        cursor)])


def parse_event_query(query: MultiMapping[str], errors: Errors) -> EventQuery:
    """Parse the event list filters (shared by list and search); errors go to `errors`."""
    first = query_int(query, "first", errors, lo=1)
    categories = query_list(query, "categories")
    for i, category in enumerate(categories or ()):
        enum_check(EVENT_CATEGORIES)(("query", "categories", i), category, errors)
    event_types = query_list(query, "event_types")
    if categories is not None and event_types is not None:
        errors.append(field_error(("query", "event_types"), "Value error, categories and "
                                  "event_types are mutually exclusive", "value_error",
                                  list(event_types)))
    direction = last(query, "direction")
    if direction is not None:
        enum_check(DIRECTIONS)(("query", "direction"), direction, errors)
    after = last(query, "after")
    bounds = {name: query_int(query, name, errors) for name in ("created_after", "created_before")}
    if errors:
        raise ValidationFailed(errors)
    return EventQuery(first=min(first or 100, EVENT_PAGE_MAX),
                      after=_event_cursor(after) if after else None, categories=categories,
                      event_types=event_types, direction=direction, **bounds)


def page_events(events: list[EventRecord], query: EventQuery,
                needle: str | None = None) -> dict[str, Any]:
    """One SessionEventListPage (or, with `needle`, one SessionEventSearchPage) of `events`."""
    matched: list[tuple[EventRecord, str | None]] = []
    for event in events:
        if not query.keeps(event):
            continue
        context = None if needle is None else match_context(event, needle)
        if needle is None or context is not None:
            matched.append((event, context))
    start = 0
    if query.after is not None:
        start = next((i for i, (e, _) in enumerate(matched) if e.key > query.after), len(matched))
    page = matched[start:start + query.first]
    has_next = start + len(page) < len(matched)
    items = []
    for event, context in page:
        item = event.summary_json()
        if needle is not None:
            item["match_context"] = context
        items.append(item)
    cursor = encode_cursor({"e": list(page[-1][0].key)}) if page and has_next else None
    return {"items": items, "end_cursor": cursor, "has_next_page": has_next,
            "total": len(matched)}


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{i}" if path else str(i))


def match_context(event: EventRecord, needle: str) -> str | None:
    """The text around the first case-insensitive match in the summary or contents, or None."""
    lowered = needle.lower()
    for _, text in [("summary", event.summary), *_strings(event.contents)]:
        at = text.lower().find(lowered)
        if at < 0:
            continue
        lo, hi = max(0, at - CONTEXT_CHARS), min(len(text), at + len(needle) + CONTEXT_CHARS)
        return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")
    return None


def truncate(value: Any, limit: int, path: str, cut: list[str]) -> Any:
    """Copy `value`, cutting every string longer than `limit`; record each cut path in `cut`."""
    if isinstance(value, str):
        if len(value) > limit:
            cut.append(path)
            return value[:limit]
        return value
    if isinstance(value, dict):
        return {k: truncate(v, limit, f"{path}.{k}" if path else str(k), cut)
                for k, v in value.items()}
    if isinstance(value, list):
        return [truncate(v, limit, f"{path}.{i}" if path else str(i), cut)
                for i, v in enumerate(value)]
    return value


def event_details(events: list[EventRecord], query: MultiMapping[str]) -> dict[str, Any]:
    """One SessionEventDetailsResponse: by `event_ids` (unknown ids skipped) or offset+limit."""
    errors: Errors = []
    ids = query_list(query, "event_ids")
    if ids is not None and len(ids) > MAX_DETAIL_IDS:
        errors.append(field_error(
            ("query", "event_ids"), f"List should have at most {MAX_DETAIL_IDS} items after "
            f"validation, not {len(ids)}", "too_long", list(ids),
            {"field_type": "List", "max_length": MAX_DETAIL_IDS, "actual_length": len(ids)}))
    offset = query_int(query, "offset", errors, lo=0)
    limit = query_int(query, "limit", errors, lo=1, hi=DETAIL_LIMIT_MAX)
    max_length = query_int(query, "max_content_length", errors)
    if ids is not None and (offset is not None or limit is not None):
        errors.append(field_error(("query", "offset"), "Value error, event_ids and offset/limit "
                                  "are mutually exclusive", "value_error", offset))
    if errors:
        raise ValidationFailed(errors)
    shown = events
    if ids is not None:
        by_id = {e.event_id: e for e in shown}
        chosen = [by_id[i] for i in ids if i in by_id]
    else:
        start = offset or 0
        chosen = shown[start:start + (limit or DETAIL_LIMIT_DEFAULT)]
    keep = max(0, MAX_CONTENT_DEFAULT if max_length is None else max_length)
    items = []
    for event in chosen:
        cut: list[str] = []
        contents = truncate(event.contents, keep, "", cut)
        item = event.summary_json()
        del item["summary"]
        items.append({**item, "contents": contents, "truncated_fields": cut})
    return {"items": items}
