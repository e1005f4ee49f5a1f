"""List queries of the fake server: the filter set, opaque cursors and the page planner.

Planner: when the query names sessions (`session_ids`) or an indexed field (tags, users,
playbook, origin, schedule, repo, category), the candidates come from those sets alone
(O(candidates)); otherwise the walk is a bisection into the sorted `(created_at, id)` keys,
stopping once the page is full.
Order is created_at ascending then session id. A cursor is the key of the page's last item, so a
session created while a client pages through never duplicates or hides an existing one.
`total` is exact except when a non-indexed filter (is_archived, updated_*) would need a full scan
without candidates; then it is null, which the API allows.
Index lag (`store.index_lag` server seconds): the list answers from the index as it was that long
ago: a session shows up `index_lag` after its creation, with the status, tags and updated_at it had
then (the tag filter too). That path scans every session: it is for tests, not for benchmarks.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ValidationFailed, field_error
from ._records import SessionRecord

if TYPE_CHECKING:
    from ._state import SessionStore

Render = Callable[[SessionRecord, float], dict[str, Any]]


@attrs.frozen
class ListQuery:
    """Parsed GET /sessions query. Time bounds are half-open: after <= t < before."""

    first: int = 100
    after: tuple[int, str] | None = None
    session_ids: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None  # sessions having ALL of these tags
    created_after: int | None = None
    created_before: int | None = None
    updated_after: int | None = None
    updated_before: int | None = None
    playbook_id: str | None = None
    origins: tuple[str, ...] | None = None
    user_ids: tuple[str, ...] | None = None
    service_user_ids: tuple[str, ...] | None = None
    schedule_id: str | None = None
    is_archived: bool | None = None
    repo_names: tuple[str, ...] | None = None
    category: str | None = None

    def indexed(self) -> list[tuple[str, tuple[str, ...], bool]]:
        """(index name, values, match_all) for each indexed filter given."""
        pairs: list[tuple[str, tuple[str, ...] | None, bool]] = [
            ("tags", self.tags, True),
            ("playbook_id", _one(self.playbook_id), False),
            ("origin", self.origins, False),
            ("user_id", self.user_ids, False),
            ("service_user_id", self.service_user_ids, False),
            ("schedule_id", _one(self.schedule_id), False),
            ("repos", self.repo_names, False),
            ("category", _one(self.category), False),
        ]
        return [(name, values, all_) for name, values, all_ in pairs if values is not None]

    def has_residual(self) -> bool:
        return (self.is_archived is not None or self.updated_after is not None
                or self.updated_before is not None)

    def keeps(self, record: SessionRecord, now: float, *, as_of: bool = False) -> bool:
        """Check the filters no index answers."""
        if self.is_archived is not None and record.fields["is_archived"] != self.is_archived:
            return False
        if self.updated_after is None and self.updated_before is None:
            return True
        updated = record.updated_at(now, as_of=as_of)
        if self.updated_after is not None and updated < self.updated_after:
            return False
        return self.updated_before is None or updated < self.updated_before


def _one(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else (value,)


# --- cursors -------------------------------------------------------------------------------------
def encode_cursor(payload: Any) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor(cursor) from exc


def _bad_cursor(cursor: str) -> ValidationFailed:
    return ValidationFailed([field_error(("query", "after"), "Invalid cursor", "value_error",
                                         cursor)])


def session_cursor(cursor: str) -> tuple[int, str]:
    value = decode_cursor(cursor)
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], str)):
        return (value[0], value[1])
    raise _bad_cursor(cursor)


def message_cursor(cursor: str) -> int:
    value = decode_cursor(cursor)
    if isinstance(value, dict) and isinstance(value.get("m"), int) and value["m"] >= 0:
        return int(value["m"])
    raise _bad_cursor(cursor)


# --- pages ---------------------------------------------------------------------------------------
def _lagged_keys(store: SessionStore, query: ListQuery, at: float) -> list[tuple[int, str]]:
    """Every key the list index held at server time `at` that `query` keeps (a full scan)."""
    keys = []
    for record in store.records.values():
        if record.created > at:
            continue
        if query.session_ids is not None and record.session_id not in query.session_ids:
            continue
        if query.tags is not None and not set(query.tags) <= set(record.tags_at(at)):
            continue
        if any(not set(values) & set(record.index_values(name))
               for name, values, _ in query.indexed() if name != "tags"):
            continue
        created = int(record.created)
        if query.created_after is not None and created < query.created_after:
            continue
        if query.created_before is not None and created >= query.created_before:
            continue
        if query.keeps(record, at, as_of=True):
            keys.append(record.key)
    keys.sort()
    return keys


def _page(keys: list[tuple[int, str]], query: ListQuery) -> tuple[list[tuple[int, str]], bool]:
    start = bisect.bisect_right(keys, query.after) if query.after is not None else 0
    return keys[start:start + query.first], start + query.first < len(keys)


def list_sessions(store: SessionStore, query: ListQuery, now: float,
                  render: Render | None = None, *, lag: float | None = None) -> dict[str, Any]:
    """Return one SessionListPage (items by `render`, default SessionResponse) at `now`.

    `lag`: server seconds the answer is behind (default `store.index_lag`).
    """
    lag = store.index_lag if lag is None else lag
    if lag > 0:
        at = now - lag
        seen = _lagged_keys(store, query, at)
        shown, more = _page(seen, query)
        lagged = render or (lambda r, t: store.render(r, t, full=True, as_of=True))
        return {"items": [lagged(store.records[k[1]], at) for k in shown],
                "end_cursor": encode_cursor(list(shown[-1])) if shown and more else None,
                "has_next_page": more, "total": len(seen)}
    candidates: set[str] | None = None
    if query.session_ids is not None:
        candidates = {i for i in query.session_ids if i in store.records}
    for name, values, match_all in query.indexed():
        found = store.lookup(name, values, match_all=match_all)
        candidates = found if candidates is None else candidates & found
    lo_key = (query.created_after, "") if query.created_after is not None else None
    hi_key = (query.created_before, "") if query.created_before is not None else None

    keys: list[tuple[int, str]]
    total: int | None
    if candidates is not None:
        keys = sorted(store.records[i].key for i in candidates)
        keys = [k for k in keys
                if (lo_key is None or k >= lo_key) and (hi_key is None or k < hi_key)
                and query.keeps(store.records[k[1]], now)]
        total = len(keys)
        page, has_next = _page(keys, query)
    else:
        lo = bisect.bisect_left(store.order, lo_key) if lo_key is not None else 0
        hi = bisect.bisect_left(store.order, hi_key) if hi_key is not None else len(store.order)
        start = lo
        if query.after is not None:
            start = max(lo, bisect.bisect_right(store.order, query.after))
        if not query.has_residual():
            total = max(0, hi - lo)
            end = min(start + query.first, hi)
            page, has_next = store.order[start:end], end < hi
        else:
            total, page, has_next = None, [], False
            for i in range(start, hi):
                key = store.order[i]
                if query.keeps(store.records[key[1]], now):
                    if len(page) == query.first:
                        has_next = True
                        break
                    page.append(key)
    draw = render or (lambda r, t: store.render(r, t, full=True))
    items = [draw(store.records[k[1]], now) for k in page]
    end_cursor = encode_cursor(list(page[-1])) if page and has_next else None
    return {"items": items, "end_cursor": end_cursor, "has_next_page": has_next, "total": total}


def list_messages(store: SessionStore, record: SessionRecord, first: int, after: str | None,
                  now: float) -> dict[str, Any]:
    """Return one SessionMessageListPage, oldest message first (an empty `after`: page one)."""
    messages = store.visible_messages(record, now)
    start = message_cursor(after) if after else 0
    page = messages[start:start + first]
    end = start + len(page)
    has_next = end < len(messages)
    return {"items": [m.to_json() for m in page],
            "end_cursor": encode_cursor({"m": end}) if has_next else None,
            "has_next_page": has_next, "total": len(messages)}
