"""Session events through the client: filters, paging, details in chunks, search, and the live
tail (`events(..., follow=True)`, `messages(..., follow=True)`), on a MockTransport and against
FakeDevinServer (in process and on a loopback socket)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from typing import Any

import pytest

from devin_async import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    APIStatusError,
    DevinClient,
    EventCategory,
    HTTPRequest,
    MalformedResponseError,
    Message,
    RetryPolicy,
)
from devin_async._protocol import ARRAY_FORMAT
from devin_async.testing import FakeDevinServer

from .surface_support import (
    EPOCH,
    POLL,
    SID,
    FakeClock,
    Router,
    Timeline,
    event_json,
    make_client,
    message_json,
    page,
    path_of,
    query_of,
    reply,
)

EVENTS = rf"/sessions/({SID})/events"
SESSION = r"/sessions/(devin-[0-9a-f]+)"


def array(name: str, values: list[str]) -> list[tuple[str, str]]:
    """The query pairs the API description asks for, in the SDK's ARRAY_FORMAT."""
    if ARRAY_FORMAT == "comma":
        return [(name, ",".join(values))]
    return [(name, v) for v in values]


def events_router(items: list[dict[str, Any]] | None = None) -> Router:
    return Router().add("GET", EVENTS, lambda r, m: page(items or []))


# --- filters -------------------------------------------------------------------------------------
WHEN = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, []),
    ({"categories": ["shell", "git"]}, array("categories", ["shell", "git"])),
    ({"categories": [EventCategory.SHELL, "file", EventCategory.MESSAGE]},
     array("categories", ["shell", "file", "message"])),
    ({"event_types": ["command", "file_edit"]}, array("event_types", ["command", "file_edit"])),
    ({"direction": "incoming"}, [("direction", "incoming")]),
    ({"direction": "outgoing"}, [("direction", "outgoing")]),
    ({"created_after": 1_764_000_000}, [("created_after", "1764000000")]),
    ({"created_before": WHEN}, [("created_before", str(int(WHEN.timestamp())))]),
    ({"categories": ["git"], "direction": "outgoing", "created_after": WHEN,
      "created_before": 1_800_000_000},
     [*array("categories", ["git"]), ("direction", "outgoing"),
      ("created_after", str(int(WHEN.timestamp()))), ("created_before", "1800000000")]),
])
async def test_event_filters_are_encoded_as_described(filters: dict[str, Any],
                                                      expected: list[tuple[str, str]]) -> None:
    client, transport = make_client(events_router([event_json(1)]))
    async with client:
        got = [e async for e in client.sessions.events(SID, page_size=50, **filters)]
    assert [e.event_id for e in got] == ["ev-0001"]
    (request,) = transport.requests
    assert request.method == "GET" and request.body is None
    assert path_of(request) == f"/sessions/{SID}/events"
    pairs = query_of(request)
    assert pairs[0] == ("first", "50")
    assert sorted(pairs[1:]) == sorted(expected)
    if ARRAY_FORMAT == "comma" and filters.get("categories") == ["shell", "git"]:
        assert "categories=shell,git" in request.url


@pytest.mark.parametrize("filters", [
    {"categories": ["shell"], "event_types": ["command"]},
    {"categories": [EventCategory.GIT], "event_types": ["git_push"], "direction": "incoming"},
    {"direction": "sideways"},
    {"categories": "shell"},
    {"event_types": ["a,b"]},
    {"event_types": [""]},
    {"created_after": dt.datetime(2026, 1, 1)},  # naive
    {"created_before": -5},
    {"created_after": True},
    {"created_after": float("inf")},
    {"created_after": float("nan")},
    {"created_before": 1e30},
    {"created_before": "1764000000"},
    {"page_size": 0},
    {"page_size": 201},
])
async def test_bad_event_filters_raise_before_any_request(filters: dict[str, Any]) -> None:
    client, transport = make_client(events_router())
    async with client:
        with pytest.raises(ValueError) as info:
            client.sessions.events(SID, **filters)
        with pytest.raises(ValueError):
            client.sessions.search_events(SID, "q", **filters)
    assert transport.requests == []
    if "event_types" in filters and "categories" in filters:
        assert "mutually exclusive" in str(info.value)


async def test_bad_session_id_raises_before_any_request() -> None:
    client, transport = make_client(events_router())
    async with client:
        for bad in ("", "../x", "devin-1/events", "a b"):
            with pytest.raises(ValueError, match="session_id"):
                client.sessions.events(bad)
    assert transport.requests == []


async def test_events_follow_every_page_in_order() -> None:
    items = [event_json(n) for n in range(7)]

    def pages(request: HTTPRequest, _m: re.Match[str]) -> Any:
        query = dict(query_of(request))
        start = int(query.get("after", "0"))
        first = int(query["first"])
        chunk = items[start : start + first]
        more = start + first < len(items)
        return page(chunk, str(start + first) if more else None, more)

    client, transport = make_client(Router().add("GET", EVENTS, pages))
    async with client:
        got = [e async for e in client.sessions.events(SID, page_size=3)]
    assert all(isinstance(e, ActivityEvent) for e in got)
    assert [e.event_id for e in got] == [i["event_id"] for i in items]
    assert got[0].category is EventCategory.SHELL and got[0].created_at == EPOCH
    afters = [dict(query_of(r)).get("after") for r in transport.requests]
    assert afters == [None, "3", "6"]
    assert {dict(query_of(r))["first"] for r in transport.requests} == {"3"}


async def test_an_unknown_category_is_kept_and_unknown_fields_ignored() -> None:
    item = {**event_json(1, category="telepathy"), "brand_new_field": [1, 2]}
    client, _ = make_client(events_router([item]))
    async with client:
        (event,) = [e async for e in client.sessions.events(SID)]
    assert event.category.value == "telepathy"


async def test_a_repeated_cursor_is_malformed() -> None:
    client, transport = make_client(Router().add(
        "GET", EVENTS, lambda r, m: page([event_json(len(query_of(r)))], "same", True)))
    async with client:
        with pytest.raises(MalformedResponseError):
            _ = [e async for e in client.sessions.events(SID)]
    assert len(transport.requests) == 2


# --- event details -------------------------------------------------------------------------------
def detail_json(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "command", "category": "shell",
            "direction": "outgoing", "created_at": EPOCH, "contents": {"cmd": event_id},
            "truncated_fields": None}


def details_router() -> Router:
    def details(request: HTTPRequest, _m: re.Match[str]) -> Any:
        ids = [v for k, v in query_of(request) if k == "event_ids"]
        ids = ids[0].split(",") if ARRAY_FORMAT == "comma" else ids
        return {"items": [detail_json(i) for i in ids]}

    return Router().add("GET", rf"/sessions/{SID}/events/details", details)


@pytest.mark.parametrize(("count", "chunks"), [(1, [1]), (20, [20]), (21, [20, 1]),
                                               (45, [20, 20, 5])])
async def test_event_details_go_twenty_ids_at_a_time(count: int, chunks: list[int]) -> None:
    ids = [f"ev-{n:04d}" for n in range(count)]
    client, transport = make_client(details_router())
    async with client:
        got = await client.sessions.event_details(SID, ids, max_content_length=500)
    assert all(isinstance(d, ActivityEventDetail) for d in got)
    assert [d.event_id for d in got] == ids
    assert got[0].contents == {"cmd": ids[0]}
    sent: list[list[str]] = []
    for request in transport.requests:
        assert path_of(request) == f"/sessions/{SID}/events/details"
        query = query_of(request)
        assert ("max_content_length", "500") in query
        values = [v for k, v in query if k == "event_ids"]
        sent.append(values[0].split(",") if ARRAY_FORMAT == "comma" else values)
    assert [len(c) for c in sent] == chunks
    assert [i for c in sent for i in c] == ids


@pytest.mark.parametrize(("ids", "kwargs"), [
    ([], {}),
    ((), {}),
    (["ev-1", "ev/2"], {}),
    (["ev-1", ""], {}),
    ("ev-1", {}),
    (["ev-1"], {"max_content_length": 0}),
    (["ev-1"], {"max_content_length": True}),
])
async def test_bad_event_details_raise_before_any_request(ids: Any, kwargs: dict[str, Any],
                                                          ) -> None:
    client, transport = make_client(details_router())
    async with client:
        with pytest.raises(ValueError):
            await client.sessions.event_details(SID, ids, **kwargs)
    assert transport.requests == []


# --- search --------------------------------------------------------------------------------------
async def test_search_events_sends_the_query_and_parses_match_context() -> None:
    hits = [{**event_json(n), "match_context": f"...pytest {n}..."} for n in range(3)]

    def search(request: HTTPRequest, _m: re.Match[str]) -> Any:
        after = dict(query_of(request)).get("after")
        return page(hits[:2], "p2", True) if after is None else page(hits[2:])

    client, transport = make_client(Router().add("GET", rf"/sessions/{SID}/events/search",
                                                 search))
    async with client:
        got = [m async for m in client.sessions.search_events(
            SID, "pytest -q", categories=["shell"], page_size=2)]
    assert all(isinstance(m, ActivityEventMatch) for m in got)
    assert [m.match_context for m in got] == ["...pytest 0...", "...pytest 1...",
                                              "...pytest 2..."]
    first, second = (query_of(r) for r in transport.requests)
    assert ("query", "pytest -q") in first and ("first", "2") in first
    assert array("categories", ["shell"])[0] in first
    assert ("after", "p2") in second and ("query", "pytest -q") in second


@pytest.mark.parametrize("query", ["", "   ", None, 5])
async def test_search_events_needs_a_query(query: Any) -> None:
    client, transport = make_client(Router())
    async with client:
        with pytest.raises(ValueError, match="query"):
            client.sessions.search_events(SID, query)
    assert transport.requests == []


async def test_a_search_hit_without_match_context_is_malformed() -> None:
    client, _ = make_client(Router().add("GET", rf"/sessions/{SID}/events/search",
                                         lambda r, m: page([event_json(1)])))
    async with client:
        with pytest.raises(MalformedResponseError):
            _ = [m async for m in client.sessions.search_events(SID, "x")]


# --- follow --------------------------------------------------------------------------------------
def timeline_client(timeline: Timeline, clock: FakeClock, kind: str = "events",
                    ) -> tuple[DevinClient, Any]:
    router = Router().add("GET", rf"/sessions/({SID})/{kind}", timeline.list_page)
    router.add("GET", rf"/sessions/({SID})", timeline.session)
    return make_client(router, clock)


SCRIPT = [(0, 0), (0, 1), (0, 2), (2.5, 3), (2.5, 4), (9, 5)]


@pytest.mark.parametrize("last_cursor", [True, False])
@pytest.mark.parametrize("page_size", [100, 2])
async def test_follow_tails_events_until_terminal(last_cursor: bool, page_size: int) -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(at, event_json(n)) for at, n in SCRIPT], end=12,
                        last_cursor=last_cursor)
    client, transport = timeline_client(timeline, clock)
    async with client:
        got = [e.event_id async for e in client.sessions.events(SID, follow=True,
                                                                 page_size=page_size)]
    assert got == [f"ev-{n:04d}" for _, n in SCRIPT]  # none repeated, none lost, in order
    # PollPolicy cadence: initial after news, growing x2 to max=4 while nothing comes.
    assert clock.sleeps == [1, 2, 1, 2, 4, 1, 2]
    assert timeline.status_reads == [1, 4, 6, 11, 13]  # checked only after an empty read
    assert clock.elapsed == 13
    assert all(dict(query_of(r)).get("first", str(page_size)) == str(page_size)
               for r in transport.requests if r.url.split("?")[0].endswith("/events"))


async def test_follow_reads_once_more_after_the_session_ended() -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(0, event_json(0))], end=3)
    plain = timeline.session

    def session(request: HTTPRequest, match: re.Match[str]) -> Any:
        answer = plain(request, match)
        if answer["status"] == "exit" and len(timeline.items) == 1:
            timeline.items.append((clock.elapsed, event_json(1)))  # came just before the end
        return answer

    router = Router().add("GET", rf"/sessions/({SID})/events", timeline.list_page)
    router.add("GET", rf"/sessions/({SID})", session)
    client, _ = make_client(router, clock)
    async with client:
        got = [e.event_id async for e in client.sessions.events(SID, follow=True)]
    assert got == ["ev-0000", "ev-0001"]


async def test_follow_honours_a_2xx_retry_after_capped(caplog: pytest.LogCaptureFixture,
                                                       ) -> None:
    clock = FakeClock()
    hints = {2: 3.0, 3: 500.0}
    timeline = Timeline(clock, [(0, event_json(0))], end=9, hint=hints.get)
    client, _ = timeline_client(timeline, clock)
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        async with client:
            got = [e.event_id async for e in client.sessions.events(SID, follow=True)]
    assert got == ["ev-0000"]
    # read 2 (t=1): interval 2 but the hint says 3; read 3 (t=4): 500 s cut to max_retry_after=5.
    assert clock.sleeps == [1, 3, 5]
    assert max(clock.sleeps) <= client.retry.max_retry_after
    assert sum("max_retry_after" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("status", "hint", "raised"), [
    (503, None, False), (429, None, False), (429, "900", False), (503, "3600", False),
    (400, None, True), (404, None, True)])
async def test_follow_rides_out_transient_failures_only(status: int, hint: str | None,
                                                        raised: bool) -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(0, event_json(0)), (5, event_json(1))], end=8)
    calls = {"n": 0}

    def flaky(request: HTTPRequest, match: re.Match[str]) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            return reply(status, {"detail": "not now"}, {"Retry-After": hint} if hint else {})
        return timeline.list_page(request, match)

    router = Router().add("GET", rf"/sessions/({SID})/events", flaky)
    router.add("GET", rf"/sessions/({SID})", timeline.session)
    client, _ = make_client(router, clock, retry=RetryPolicy(max_attempts=1,
                                                              max_retry_after=5.0))
    got: list[str] = []
    async with client:
        if raised:
            with pytest.raises(APIStatusError) as info:
                async for e in client.sessions.events(SID, follow=True):
                    got.append(e.event_id)
            assert info.value.status == status
            assert got == ["ev-0000"]
        else:
            got = [e.event_id async for e in client.sessions.events(SID, follow=True)]
            assert got == ["ev-0000", "ev-0001"]
            assert max(clock.sleeps) <= client.retry.max_retry_after  # a long hint is capped


async def test_breaking_out_of_follow_leaves_nothing_running() -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(n, event_json(n)) for n in range(50)], end=10_000)
    client, transport = timeline_client(timeline, clock)
    async with client:
        follower = client.sessions.events(SID, follow=True)
        got = []
        async for event in follower:
            got.append(event.event_id)
            if len(got) == 3:
                break
        sent = len(transport.requests)
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(transport.requests) == sent
        assert asyncio.all_tasks() == {asyncio.current_task()}
        await follower.aclose()
        with pytest.raises(StopAsyncIteration):
            await follower.__anext__()
    assert got == ["ev-0000", "ev-0001", "ev-0002"]
    assert len(transport.requests) == sent


async def test_cancelling_a_follow_leaves_nothing_running() -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(0, event_json(0))], end=10_000)
    client, transport = timeline_client(timeline, clock)
    seen: list[str] = []

    async def consume() -> None:
        async for event in client.sessions.events(SID, follow=True):
            seen.append(event.event_id)

    async with client:
        task = asyncio.create_task(consume())
        await transport.handler.after(6).wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sent = len(transport.requests)
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert len(transport.requests) == sent
    assert seen == ["ev-0000"]


@pytest.mark.parametrize("last_cursor", [True, False])
async def test_messages_follow_tails_until_terminal(last_cursor: bool) -> None:
    clock = FakeClock()
    script = [(0, message_json(0, source="user")), (0, message_json(1)),
              (2.5, message_json(2)), (9, message_json(3, source="user"))]
    timeline = Timeline(clock, script, end=12, last_cursor=last_cursor)
    client, transport = timeline_client(timeline, clock, kind="messages")
    async with client:
        follower = client.sessions.messages(SID, follow=True, page_size=2)
        got = [m async for m in follower]
    assert all(isinstance(m, Message) for m in got)
    assert [m.event_id for m in got] == ["msg-0000", "msg-0001", "msg-0002", "msg-0003"]
    assert [m.source for m in got] == ["user", "devin", "devin", "user"]
    assert clock.sleeps == [1, 2, 1, 2, 4, 1, 2]
    assert all(path_of(r) in (f"/sessions/{SID}/messages", f"/sessions/{SID}")
               for r in transport.requests)


async def test_messages_without_follow_is_one_pass() -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(0, message_json(0)), (5, message_json(1))], end=100)
    client, transport = timeline_client(timeline, clock, kind="messages")
    async with client:
        got = [m.event_id async for m in client.sessions.messages(SID)]
    assert got == ["msg-0000"] and clock.sleeps == [] and len(transport.requests) == 1


# --- against FakeDevinServer ---------------------------------------------------------------------
def in_process(server: FakeDevinServer, clock: FakeClock) -> DevinClient:
    return DevinClient(api_key=server.api_key, org_id=server.org_id,
                       base_url="http://fake.invalid", allow_insecure_http=True,
                       transport=server.transport(), clock=clock, sleep=clock.sleep,
                       poll=POLL, tracing=False)


async def test_fake_server_events_filters_details_search_in_process() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=5)
    async with in_process(server, clock) as client:
        sid = (await client.sessions.create("Fix the flaky test")).session_id
        server.advance(45)
        server.add_event(sid, event_type="command", category="shell",
                         summary="ran pytest -q twice")
        everything = [e async for e in client.sessions.events(sid, page_size=3)]
        assert [e.event_id for e in everything] == [e["event_id"] for e in server.events(sid)]
        assert len(everything) > 5
        shells = [e async for e in client.sessions.events(sid, categories=["shell"])]
        assert shells and all(e.category is EventCategory.SHELL for e in shells)
        assert {e.event_id for e in shells} == {e.event_id for e in everything
                                                 if e.category is EventCategory.SHELL}
        incoming = [e async for e in client.sessions.events(sid, direction="incoming")]
        assert incoming and all(e.direction == "incoming" for e in incoming)
        ids = [e.event_id for e in everything]
        details = await client.sessions.event_details(sid, ids)
        assert [d.event_id for d in details] == ids
        hits = [m async for m in client.sessions.search_events(sid, "PYTEST -q twice")]
        assert [h.summary for h in hits] == ["ran pytest -q twice"]
        assert "pytest -q twice" in hits[0].match_context
        with pytest.raises(ValueError):
            client.sessions.events(sid, categories=["shell"], event_types=["command"])


async def test_fake_server_follow_in_process_sees_every_event_once() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=8)
    async with in_process(server, clock) as client:
        sid = (await client.sessions.create("Write the docs")).session_id
        server.script([("running", "working", 0), ("exit", None, 25)], session_id=sid)
        for n in range(4):
            server.add_event(sid, event_type="note", category="other", summary=f"note {n}",
                             after=3.0 * n + 1)
        got = [e async for e in client.sessions.events(sid, follow=True)]
    ids = [e.event_id for e in got]
    assert len(ids) == len(set(ids))
    assert ids == [e["event_id"] for e in server.events(sid)]
    assert [e.summary for e in got if e.category.value == "other"] == [
        f"note {n}" for n in range(4)]
    assert clock.elapsed >= 25


async def test_fake_server_events_over_a_loopback_socket() -> None:
    server = FakeDevinServer(seed=2)
    async with server, DevinClient(api_key=server.api_key, org_id=server.org_id,
                                   base_url=server.url, tracing=False) as client:
        sid = (await client.sessions.create("Count the tests")).session_id
        server.add_event(sid, event_type="command", category="shell", summary="ls tests")
        got = [e async for e in client.sessions.events(sid, page_size=1)]
        details = await client.sessions.event_details(sid, [e.event_id for e in got])
    assert "ls tests" in [e.summary for e in got]
    assert [d.event_id for d in details] == [e.event_id for e in got]
    events_reads = [r for r in server.requests if r.endpoint == "events"]
    assert len(events_reads) >= len(got) > 1  # one event per page


async def test_follow_keeps_the_filters_on_every_read() -> None:
    clock = FakeClock()
    timeline = Timeline(clock, [(0, event_json(0)), (3, event_json(1))], end=5)
    client, transport = timeline_client(timeline, clock)
    async with client:
        got = [e.event_id async for e in client.sessions.events(
            SID, follow=True, categories=["shell"], direction="outgoing", page_size=7)]
    assert got == ["ev-0000", "ev-0001"]
    reads = [query_of(r) for r in transport.requests if path_of(r).endswith("/events")]
    assert len(reads) >= 3
    for query in reads:
        assert query[0] == ("first", "7")
        assert array("categories", ["shell"])[0] in query and ("direction", "outgoing") in query
