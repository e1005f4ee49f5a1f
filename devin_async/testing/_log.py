"""What the fake server saw: a bounded request log and plain counters."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import attrs
from multidict import CIMultiDict, CIMultiDictProxy


@attrs.frozen
class RecordedRequest:
    """One request as the server received it (the Authorization header masked).

    `query` is the list of (key, value) pairs in order (repeated keys kept); `json` is the decoded
    body (None when absent or not JSON); `endpoint` is the operation name (None for an unknown
    route); `status` is what was answered (None when the connection was dropped); `fault` names the
    injected fault, if any.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    json: Any
    headers: CIMultiDictProxy[str]
    endpoint: str | None
    status: int | None
    request_id: str
    fault: str | None = None
    body: bytes = b""

    def query_values(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


def frozen_headers(items: Any) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(items))


class RequestLog:
    """The last `max_log` requests plus counters (requests, status_NNN, creates, drops, ...)."""

    def __init__(self, max_log: int = 10_000) -> None:
        self.entries: deque[RecordedRequest] = deque(maxlen=max_log)
        self.stats: Counter[str] = Counter()

    def record(self, entry: RecordedRequest) -> None:
        self.entries.append(entry)
        self.stats["requests"] += 1
        if entry.status is not None:
            self.stats[f"status_{entry.status}"] += 1
        if entry.fault is not None:
            self.stats["faults"] += 1
            self.stats[f"fault_{entry.fault}"] += 1
        if entry.fault in ("drop_before", "drop_after"):
            self.stats["drops"] += 1
