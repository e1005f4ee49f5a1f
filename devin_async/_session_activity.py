"""What a session did: its events (list, details, search, live tail) and its insights.

A base class of `Sessions`. Rules kept here, before any request: `categories` and `event_types`
exclude each other; at most 20 event ids go in one details request (more are split into several
requests, in order, under one deadline); `generate_insights` is a long-running operation: POST
generate, then poll GET insights per `PollPolicy` until the analysis is there, within `timeout`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._activity import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    EventCategory,
    SessionInsights,
    parse_event_details,
    parse_event_match_page,
    parse_event_page,
    parse_insights,
    parse_insights_page,
)
from ._decisions import Kind
from ._engine import Engine
from ._errors import MalformedResponseError, WaitTimeoutError
from ._filters import page_size_of, session_filters
from ._follow import Follower
from ._pagination import Paginator
from ._polling import jittered
from ._protocol import Request, check_id, encode_array

if TYPE_CHECKING:
    from ._config import PollPolicy
    from ._sessions import Sessions

__all__ = ["MAX_DETAIL_IDS", "SessionActivity"]

#: Event ids per details request (the API's limit).
MAX_DETAIL_IDS = 20
DIRECTIONS = ("incoming", "outgoing")


def _stamp(name: str, value: int | dt.datetime | None) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (or Unix seconds)")
        return [(name, str(int(value.timestamp())))]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e11:
        raise ValueError(f"{name} must be Unix seconds or a datetime")
    return [(name, str(int(value)))]


def _names(name: str, values: Iterable[str | EventCategory] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a list, not a single string")
    items = [v.value if isinstance(v, EventCategory) else v for v in values]
    for item in items:
        if not isinstance(item, str) or not item or "," in item:
            raise ValueError(f"{name} must hold non-empty strings without commas, found {item!r}")
    return items


def event_filters(categories: Iterable[str | EventCategory] | None,
                  event_types: Iterable[str] | None, direction: str | None,
                  created_after: int | dt.datetime | None,
                  created_before: int | dt.datetime | None) -> list[tuple[str, str]]:
    """Return the event list's query pairs (ValueError on a bad or conflicting filter)."""
    cats, types = _names("categories", categories), _names("event_types", event_types)
    if cats and types:
        raise ValueError("categories and event_types are mutually exclusive: pass one")
    params: list[tuple[str, str]] = []
    if cats:
        params += encode_array("categories", cats)
    if types:
        params += encode_array("event_types", types)
    if direction is not None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS} (or None), got {direction!r}")
        params.append(("direction", direction))
    return params + _stamp("created_after", created_after) + _stamp("created_before",
                                                                     created_before)


def _event_key(event: ActivityEvent) -> str:
    return event.event_id


class SessionActivity:
    """Events and insights of sessions (part of `client.sessions`)."""

    engine: Engine
    poll_policy: PollPolicy

    def _source(self) -> Sessions:
        return self  # type: ignore[return-value]  # a base class of Sessions

    def events(
        self,
        session_id: str,
        *,
        categories: Iterable[str | EventCategory] | None = None,
        event_types: Iterable[str] | None = None,
        direction: str | None = None,
        created_after: int | dt.datetime | None = None,
        created_before: int | dt.datetime | None = None,
        page_size: int = 100,
        follow: bool = False,
    ) -> Paginator[ActivityEvent] | Follower[ActivityEvent]:
        """List a session's events, following every page; with `follow`, tail new ones live.

        Raises:
            ValueError: both `categories` and `event_types`, or a malformed filter.
        """
        sid = check_id("session_id", session_id)
        params = event_filters(categories, event_types, direction, created_after,
                               created_before)
        size = page_size_of(page_size)
        sessions = self._source()
        path = f"/sessions/{sid}/events"
        if follow:
            return Follower(sessions, sid, sessions.page_reader(path, params, parse_event_page),
                            _event_key, page_size=size)
        return Paginator(sessions.fetcher(path, params, parse_event_page), page_size=size)

    async def event_details(self, session_id: str, event_ids: Iterable[str], *,
                            max_content_length: int | None = None,
                            ) -> list[ActivityEventDetail]:
        """Return the full contents of events (20 ids per request; more are split).

        Raises:
            ValueError: no ids, a malformed id, or a bad `max_content_length`.
        """
        sid = check_id("session_id", session_id)
        if isinstance(event_ids, str | bytes):
            raise ValueError("event_ids must be a list of ids, not one string")
        ids = [check_id("event_ids", e) for e in event_ids]
        if not ids:
            raise ValueError("event_ids must hold at least one id")
        extra: list[tuple[str, str]] = []
        if max_content_length is not None:
            if isinstance(max_content_length, bool) or not isinstance(max_content_length, int) \
                    or max_content_length < 1:
                raise ValueError("max_content_length must be an int >= 1")
            extra.append(("max_content_length", str(max_content_length)))
        deadline = self.engine.deadline()
        out: list[ActivityEventDetail] = []
        for start in range(0, len(ids), MAX_DETAIL_IDS):
            chunk = ids[start : start + MAX_DETAIL_IDS]
            reply = await self.engine.request(Request(
                "GET", f"/sessions/{sid}/events/details", Kind.READ,
                params=(*encode_array("event_ids", chunk), *extra)), deadline=deadline)
            out += parse_event_details(reply.data)
        return out

    def search_events(
        self,
        session_id: str,
        query: str,
        *,
        categories: Iterable[str | EventCategory] | None = None,
        event_types: Iterable[str] | None = None,
        direction: str | None = None,
        created_after: int | dt.datetime | None = None,
        created_before: int | dt.datetime | None = None,
        page_size: int = 100,
    ) -> Paginator[ActivityEventMatch]:
        """Search a session's events (case-insensitive), following every page of hits.

        Raises:
            ValueError: an empty query, or a filter as `events()` refuses.
        """
        sid = check_id("session_id", session_id)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        params = [("query", query), *event_filters(categories, event_types, direction,
                                                    created_after, created_before)]
        return Paginator(self._source().fetcher(f"/sessions/{sid}/events/search", params,
                                                parse_event_match_page),
                         page_size=page_size_of(page_size))

    async def insights(self, session_id: str) -> SessionInsights:
        """Return a session's insights (`analysis` is None until generated)."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(Request("GET", f"/sessions/{sid}/insights", Kind.READ))
        return parse_insights(reply.data)

    def list_insights(self, *, page_size: int = 100, **filters: Any) -> Paginator[SessionInsights]:
        """List sessions with their insights; `filters` are `list()`'s (tags, session_ids...).

        Raises:
            ValueError: an unknown or malformed filter.
        """
        known = {"tags", "session_ids", "created_after", "created_before", "updated_after",
                 "updated_before", "playbook_id", "origins", "schedule_id", "user_ids",
                 "service_user_ids"}
        unknown = sorted(set(filters) - known)
        if unknown:
            raise TypeError(f"list_insights() got unexpected filter(s): {', '.join(unknown)}")
        size = page_size_of(page_size)
        params = session_filters(**filters)
        if params is None:
            from ._filters import empty_page

            return Paginator(empty_page, page_size=size)
        return Paginator(self._source().fetcher("/sessions/insights", params,
                                                parse_insights_page), page_size=size)

    async def generate_insights(self, session_id: str, *,
                                timeout: float | None = None) -> SessionInsights:
        """Ask for a session's insights and wait until the analysis is ready.

        Raises:
            WaitTimeoutError: `timeout` passed before the analysis was ready.
        """
        sid = check_id("session_id", session_id)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or not timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        engine = self.engine
        started = engine.clock()
        end = None if timeout is None else started + timeout
        reply = await engine.request(
            Request("POST", f"/sessions/{sid}/insights/generate", Kind.IDEMPOTENT),
            deadline=engine.deadline(timeout))
        data = reply.data
        # `status` is an open string (the docs name started and already_exists): any one means
        # the request was taken; the insights themselves tell when they are ready.
        if type(data) is not dict or type(data.get("status")) is not str:
            raise MalformedResponseError("expected {session_id, status}", body=data)
        policy, interval = self.poll_policy, self.poll_policy.initial
        while True:
            call = engine.deadline() if end is None else min(end, engine.deadline())
            got = await engine.request(
                Request("GET", f"/sessions/{sid}/insights", Kind.READ), deadline=call)
            insights = parse_insights(got.data)
            if insights.analysis is not None:
                return insights
            wait = max(jittered(policy, interval), got.retry_after or 0.0)
            interval = policy.next_interval(interval)
            if end is not None and engine.clock() + wait >= end:
                await engine.sleep(max(0.0, end - engine.clock()))  # as wait(): to the end
                raise WaitTimeoutError(
                    f"the insights of session {sid} were not ready within {timeout:g} s",
                    last_session=None)
            await engine.sleep(wait)
