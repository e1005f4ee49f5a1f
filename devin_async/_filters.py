"""Query and answer helpers of the session endpoints: list filters, page sizes, schemas.

Every filter is checked here, before any request (a ValueError naming it), and encoded the one
way `_protocol.encode_array` says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import MalformedResponseError
from ._models import Page, Session
from ._protocol import encode_array, parse_session_page

__all__ = [
    "MAX_PAGE_SIZE", "empty_page", "page_size_of", "schema_of", "session_filters", "session_page",
]

MAX_PAGE_SIZE = 200


def _timestamp(name: str, value: int | float | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (or Unix seconds)")
        return str(int(value.timestamp()))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e11:
        raise ValueError(f"{name} must be Unix seconds (a non-negative int) or a datetime")
    return str(int(value))


def page_size_of(value: object) -> int:
    """Return `value` if it is a valid page size (1..200), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, got {value!r}")
    return value


def _str_list(name: str, values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a list of strings, not a single string")
    items = list(values)
    for item in items:
        if not isinstance(item, str) or not item or "," in item:
            raise ValueError(f"{name} must hold non-empty strings without commas, found {item!r}")
    return items


def session_filters(**filters: Any) -> list[tuple[str, str]] | None:
    """Return the query pairs of the session list's filters (None: `session_ids=[]`, no match).

    Raises:
        ValueError: a filter is malformed.
    """
    params: list[tuple[str, str]] = []
    for name in ("session_ids", "tags", "origins", "user_ids", "service_user_ids", "repo_names"):
        items = _str_list(name, filters.get(name))
        if items:
            params += encode_array(name, items)
        elif items is not None and name == "session_ids":
            return None  # no ids: nothing can match
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        value = _timestamp(name, filters.get(name))
        if value is not None:
            params.append((name, value))
    for name in ("playbook_id", "schedule_id", "category"):
        text = filters.get(name)
        if text is not None:
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name} must be a non-empty string")
            params.append((name, text))
    archived = filters.get("is_archived")
    if archived is not None:
        if not isinstance(archived, bool):
            raise ValueError("is_archived must be a bool")
        params.append(("is_archived", "true" if archived else "false"))
    return params


def _unique(page: Page[Session]) -> Page[Session]:
    """Raise MalformedResponseError if a page lists one session twice in different states."""
    seen: dict[str, tuple[str, str | None, int]] = {}
    for s in page.items:
        state = (s.status.value, None if s.status_detail is None else s.status_detail.value,
                 s.updated_at)
        if seen.setdefault(s.session_id, state) != state:
            raise MalformedResponseError(
                f"a list page holds session {s.session_id} twice, in different states")
    return page


async def empty_page(cursor: str | None, first: int) -> Page[Any]:
    """A page fetcher for a listing that cannot match anything."""
    return Page(items=[])


def session_page(data: Any) -> Page[Session]:
    """Structure a page of the session list (one session twice in two states is malformed)."""
    return _unique(parse_session_page(data))


def schema_of(spec: Mapping[str, Any] | type | None) -> dict[str, Any] | None:
    """Return the JSON Schema dict a `structured_output_schema` argument stands for."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, type):
        from ._schema import schema_for

        schema: dict[str, Any] = schema_for(spec)
        return schema
    raise ValueError("structured_output_schema must be a JSON Schema dict or a class "
                     f"(attrs, dataclass or pydantic), got {type(spec).__name__}")
