"""Faults on demand: which request gets which failure, and how a malformed body looks.

A `Fault` is consumed by the next `times` requests whose endpoint matches, first injected first
served (one fault per request). `RandomFaults` draws a fault for a fraction of requests from a
seeded RNG. Fault parts combine: `delay` first; then `drop="before"` (nothing happens), or a
`status` answer (nothing happens), or the real action followed by `drop="after"` / a `malformed`
body; `retry_after`, `retry_after_ms` and `headers` without a status decorate the real answer
(a hint on a 200).
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping
from typing import Any, Literal

import attrs

from ._routes import ENDPOINTS as ENDPOINTS

DropKind = Literal["before", "after"]
MalformedKind = Literal["truncated", "non_json", "html", "empty"]
MALFORMED_KINDS: tuple[MalformedKind, ...] = ("truncated", "non_json", "html", "empty")
RANDOM_KINDS = ("status_500", "status_502", "status_503", "status_429", "drop_before", "drop_after",
                "delay", *MALFORMED_KINDS)
DEFAULT_RANDOM_KINDS = ("status_500", "status_502", "status_503", "status_429", "drop_before",
                        "drop_after", "truncated")
RetryAfter = int | float | str


def _endpoints(value: str | Collection[str]) -> frozenset[str]:
    names = frozenset([value] if isinstance(value, str) else value)
    unknown = names - {"*", *ENDPOINTS}
    if unknown:
        raise ValueError(f"unknown endpoint names {sorted(unknown)}; known: {', '.join(ENDPOINTS)}")
    return names


@attrs.define(eq=False)
class Fault:
    """A failure for the next `times` requests to `endpoint` (None: every matching request)."""

    endpoint: frozenset[str] = attrs.field(default="*", converter=_endpoints)
    times: int | None = 1
    status: int | None = None
    retry_after: RetryAfter | None = None
    retry_after_ms: int | float | None = None
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    drop: DropKind | None = None
    delay: float | None = None
    malformed: MalformedKind | None = None
    headers: Mapping[str, str] | None = None
    hits: int = 0

    def __attrs_post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        if self.drop not in (None, "before", "after"):
            raise ValueError("drop must be 'before', 'after' or None")
        if self.malformed not in (None, *MALFORMED_KINDS):
            raise ValueError(f"malformed must be one of {MALFORMED_KINDS} or None")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.delay is not None and self.delay < 0:
            raise ValueError("delay must be >= 0")

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else self.times - self.hits

    def matches(self, endpoint: str | None) -> bool:
        return "*" in self.endpoint or endpoint in self.endpoint

    @property
    def kind(self) -> str:
        """A short label for logs and stats: drop_before, status_503, delay, ..."""
        if self.drop:
            return f"drop_{self.drop}"
        if self.status is not None:
            return f"status_{self.status}"
        return self.malformed or ("delay" if self.delay else "headers")

    def extra_headers(self) -> dict[str, str]:
        headers = dict(self.headers or {})
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        return headers


@attrs.define(eq=False)
class RandomFaults:
    """Chaos: a request to `endpoint` fails with probability `rate`, kind drawn from `kinds`."""

    rate: float = 0.1
    kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS
    seed: int | None = None
    endpoint: frozenset[str] = attrs.field(default="*", converter=_endpoints)
    delay: float = 0.05
    retry_after_ms: int = 20
    hits: int = 0
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        unknown = set(self.kinds) - set(RANDOM_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {RANDOM_KINDS}")
        self._rng = random.Random(self.seed)

    def roll(self, endpoint: str | None) -> Fault | None:
        if not ("*" in self.endpoint or endpoint in self.endpoint):
            return None
        if self._rng.random() >= self.rate:
            return None
        self.hits += 1
        kind = self._rng.choice(self.kinds)
        if kind.startswith("status_"):
            status = int(kind.removeprefix("status_"))
            ms = self.retry_after_ms if status in (429, 503) else None
            return Fault(status=status, retry_after_ms=ms)
        if kind in ("drop_before", "drop_after"):
            return Fault(drop="before" if kind == "drop_before" else "after")
        if kind == "delay":
            return Fault(delay=self.delay)
        malformed: MalformedKind = next(k for k in MALFORMED_KINDS if k == kind)
        return Fault(malformed=malformed)


class FaultBook:
    """The pending faults; `take` hands the next request its fault, if any."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.random: list[RandomFaults] = []

    def add(self, fault: Fault) -> Fault:
        self.pending.append(fault)
        return fault

    def take(self, endpoint: str | None) -> Fault | None:
        for fault in self.pending:
            if fault.matches(endpoint):
                fault.hits += 1
                if fault.remaining == 0:
                    self.pending.remove(fault)
                return fault
        for chaos in self.random:
            drawn = chaos.roll(endpoint)
            if drawn is not None:
                return drawn
        return None

    def clear(self) -> None:
        self.pending.clear()
        self.random.clear()


def malformed_body(kind: MalformedKind, body: bytes) -> tuple[bytes, str]:
    """Return (body, content type) for a 2xx that breaks its promise of JSON."""
    if kind == "truncated":
        return body[: max(1, len(body) // 2)], "application/json"
    if kind == "non_json":
        return b"upstream said: this is not JSON", "application/json"
    if kind == "html":
        return (b"<html><head><title>502 Bad Gateway</title></head><body><center>"
                b"<h1>502 Bad Gateway</h1></center></body></html>", "text/html")
    return b"", "application/json"


def raw_body(body: bytes | str | dict[str, Any] | list[Any]) -> tuple[bytes, str]:
    """Return (bytes, content type) for a fault's literal body."""
    if isinstance(body, dict | list):
        return json.dumps(body).encode(), "application/json"
    data = body.encode() if isinstance(body, str) else body
    try:
        json.loads(data)
    except ValueError:
        return data, "text/plain; charset=utf-8"
    return data, "application/json"
