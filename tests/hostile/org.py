"""`Org`: a small stateful Devin organization served by a `RawServer`.

Sessions live in a dict; create, get, list (tag, id and `updated_after` filters, cursor pages),
terminate and the tag endpoints answer in the documented JSON shape. Two ways to be hostile:
- `index_lag`: the list endpoint answers from an index that lags writes by that many seconds
  (a session created, or changed, less than `index_lag` ago is listed as it was before);
- `lose`: a callable that, given the create's request, returns None (answer normally) or the
  reply that replaces the answer *after* the session was made (Drop, Reset, a 502, ...).
Every `Answer` can also close its connection `close_after` seconds after answering.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import attrs

from .servers import EPOCH, ORG, Answer, Reply, Seen, session_json

__all__ = ["Org", "Record"]

_ROUTE = re.compile(r"^/v3(?:beta1)?/organizations/([^/]+)/sessions(?:/([^/]+))?(/tags)?$")


@attrs.define
class Record:
    """One session of the org, with its history for the lagging index."""

    session_id: str
    prompt: str
    json: dict[str, Any]
    history: list[tuple[float, dict[str, Any]]]  # (loop time, snapshot), oldest first

    @property
    def terminated(self) -> bool:
        """Whether the session ended."""
        return self.json["status"] in ("exit", "error")


def _not_found(what: str) -> Answer:
    return Answer(404, {"type": "about:blank", "title": "Not Found", "status": 404,
                        "detail": f"{what} not found"})


class Org:
    """A stateful org; pass it as a RawServer's handler."""

    def __init__(self, *, index_lag: float = 0.0, lose: Callable[[Seen], Reply | None] | None
                 = None, close_after: float | None = None, list_delay: float = 0.0) -> None:
        self.index_lag = index_lag
        self.lose = lose
        self.close_after = close_after
        self.list_delay = list_delay
        self.records: dict[str, Record] = {}
        self.lost = 0
        self._stamp = EPOCH

    # -- what tests read ------------------------------------------------------------------

    def live(self) -> list[Record]:
        """Return the sessions that were not terminated, oldest first."""
        return [r for r in self.records.values() if not r.terminated]

    def prompts(self, records: list[Record]) -> list[str]:
        """Return the prompts of `records`, sorted."""
        return sorted(r.prompt for r in records)

    # -- the handler ----------------------------------------------------------------------

    async def __call__(self, seen: Seen) -> Reply:
        match = _ROUTE.match(seen.path)
        if match is None or match.group(1) != ORG:
            return _not_found("route")
        sid, tags = match.group(2), match.group(3)
        if sid is None and seen.method == "POST":
            return self._create(seen)
        if sid is None and seen.method == "GET":
            if self.list_delay:
                await asyncio.sleep(self.list_delay)
            return self._answer(self._list(seen))
        record = self.records.get(sid or "")
        if record is None:
            return _not_found(f"session {sid}")
        if tags:
            return self._tags(seen, record)
        if seen.method == "GET":
            return self._answer(record.json)
        if seen.method == "DELETE":
            self._write(record, status="exit", status_detail=None,
                        is_archived=seen.param("archive") == "true")
            return self._answer(record.json)
        return Answer(405, {"detail": "method not allowed"})

    def _answer(self, body: Any, status: int = 200) -> Answer:
        return Answer(status, body, close_after=self.close_after)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _tick(self) -> int:
        self._stamp += 1
        return self._stamp

    def _write(self, record: Record, **fields: Any) -> None:
        record.json = {**record.json, **fields, "updated_at": self._tick()}
        record.history.append((self._now(), record.json))

    def _create(self, seen: Seen) -> Reply:
        try:
            body = seen.json()
            prompt = body["prompt"]
        except (ValueError, KeyError, TypeError):
            return Answer(422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required",
                                            "type": "missing"}]})
        sid = f"devin-{len(self.records) + 1:06d}"
        data = session_json(sid, "new", None, updated_at=self._tick(),
                            tags=list(body.get("tags") or []), title=body.get("title"))
        data["created_at"] = data["updated_at"]
        self.records[sid] = Record(sid, prompt, data, [(self._now(), data)])
        lost = self.lose(seen) if self.lose is not None else None
        if lost is not None:
            self.lost += 1
            return lost
        return self._answer(data)

    def _indexed(self) -> list[dict[str, Any]]:
        """Return what the list index holds now: each session as of `index_lag` ago."""
        horizon = self._now() - self.index_lag
        out = []
        for record in self.records.values():
            visible = [snap for at, snap in record.history if at <= horizon]
            if visible:
                out.append(visible[-1])
        return out

    def _list(self, seen: Seen) -> dict[str, Any]:
        items = self._indexed()
        ids = set(seen.array("session_ids"))
        if ids:
            items = [i for i in items if i["session_id"] in ids]
        wanted = set(seen.array("tags"))
        if wanted:
            items = [i for i in items if wanted <= set(i["tags"])]
        after = seen.param("updated_after")
        if after is not None:
            items = [i for i in items if i["updated_at"] > int(after)]
        first = int(seen.param("first") or 100)
        start = int(seen.param("after") or 0)
        chunk = items[start:start + first]
        more = start + first < len(items)
        return {"items": chunk, "end_cursor": str(start + first) if more else None,
                "has_next_page": more}

    def _tags(self, seen: Seen, record: Record) -> Answer:
        if seen.method == "GET":
            return self._answer({"tags": record.json["tags"]})
        try:
            tags = list(seen.json()["tags"])
        except (ValueError, KeyError, TypeError):
            return Answer(422, {"detail": "tags required"})
        if seen.method == "POST":
            tags = [*record.json["tags"], *(t for t in tags if t not in record.json["tags"])]
        self._write(record, tags=tags)
        return self._answer({"tags": record.json["tags"]})
