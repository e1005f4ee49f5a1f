"""Response headers: case-insensitive look-ups, the server's wait hint, its request id."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["CI_HEADER_TYPES", "header", "parse_retry_after", "request_id"]

#: Header mappings whose `get` and `in` are case-insensitive already (aiohttp's).
CI_HEADER_TYPES = (CIMultiDict, CIMultiDictProxy)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up case-insensitively (aiohttp's CIMultiDict or a plain dict)."""
    value = headers.get(name)
    if value is not None or type(headers) in CI_HEADER_TYPES:
        return value  # a multidict's get is case-insensitive already: no walk over the rest
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return the server's wait hint in seconds: `retry-after-ms`, else `Retry-After`.

    `Retry-After` may be seconds or an HTTP date; `now` is the wall-clock time for a date
    (default: time.time()). Unparsable or negative values give None; past dates give 0.
    """
    if type(headers) in CI_HEADER_TYPES and ("retry-after" not in headers
                                             and "retry-after-ms" not in headers):
        return None  # the common case: no hint (a multidict's `in` ignores case)
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if value >= 0 and value == value and value != float("inf"):
            return value / 1000.0
    raw = header(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if seconds >= 0 and seconds == seconds and seconds != float("inf"):
            return seconds
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    if now is None:
        import time

        now = time.time()
    return max(0.0, when.timestamp() - now)


def request_id(headers: Mapping[str, str]) -> str | None:
    """Return the server's request id header, if any."""
    for name in ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray"):
        value = header(headers, name)
        if value:
            return value
    return None
