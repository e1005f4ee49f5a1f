"""Insights (get, list, generate as a long-running operation) and `client.whoami()`, on a
MockTransport and against FakeDevinServer."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devin_async import (
    DevinClient,
    HTTPRequest,
    MalformedResponseError,
    NotFoundError,
    Principal,
    SessionInsights,
    SessionStatus,
    WaitTimeoutError,
)
from devin_async._protocol import ARRAY_FORMAT
from devin_async.testing import FakeDevinServer

from .surface_support import (
    BASE_URL,
    ORG,
    POLL,
    SID,
    FakeClock,
    Router,
    insights_json,
    make_client,
    page,
    path_of,
    query_of,
    reply,
)

ANALYSIS = {"category": "bug_fix", "summary": "Fixed the flaky test", "confidence": 0.9}


def joined(name: str, values: list[str]) -> list[tuple[str, str]]:
    if ARRAY_FORMAT == "comma":
        return [(name, ",".join(values))]
    return [(name, v) for v in values]


# --- get -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("analysis", [None, ANALYSIS])
async def test_insights_get(analysis: dict[str, Any] | None) -> None:
    body = {**insights_json(analysis=analysis), "a_newer_field": {"x": 1}}
    client, transport = make_client(Router().add("GET", rf"/sessions/{SID}/insights",
                                                 lambda r, m: body))
    async with client:
        got = await client.sessions.insights(SID)
    assert isinstance(got, SessionInsights)
    assert got.session_id == SID and got.status is SessionStatus.EXIT
    assert (got.num_devin_messages, got.num_user_messages, got.session_size) == (2, 1, "s")
    assert got.analysis == analysis
    (request,) = transport.requests
    assert request.method == "GET" and request.url == (
        f"{BASE_URL}/v3beta1/organizations/{ORG}/sessions/{SID}/insights")


@pytest.mark.parametrize("body", [[], {"session_id": SID}, {**insights_json(), "analysis": 5},
                                  {**insights_json(), "num_devin_messages": "2"}])
async def test_malformed_insights(body: Any) -> None:
    client, _ = make_client(Router().add("GET", rf"/sessions/{SID}/insights", lambda r, m: body))
    async with client:
        with pytest.raises(MalformedResponseError):
            await client.sessions.insights(SID)


# --- list ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("filters", "expected"), [
    ({}, []),
    ({"tags": ["a", "b"]}, joined("tags", ["a", "b"])),
    ({"session_ids": ["devin-1", "devin-2"]}, joined("session_ids", ["devin-1", "devin-2"])),
    ({"created_after": 1_764_000_000, "updated_before": 1_765_000_000},
     [("created_after", "1764000000"), ("updated_before", "1765000000")]),
    ({"playbook_id": "playbook-9", "schedule_id": "sch-1"},
     [("playbook_id", "playbook-9"), ("schedule_id", "sch-1")]),
    ({"origins": ["api"], "user_ids": ["u1"], "service_user_ids": ["su1", "su2"]},
     [*joined("origins", ["api"]), *joined("user_ids", ["u1"]),
      *joined("service_user_ids", ["su1", "su2"])]),
])
async def test_list_insights_filters_and_paging(filters: dict[str, Any],
                                                expected: list[tuple[str, str]]) -> None:
    def pages(request: HTTPRequest, _m: re.Match[str]) -> Any:
        if dict(query_of(request)).get("after") is None:
            return page([insights_json("devin-1")], "next", True)
        return page([insights_json("devin-2", ANALYSIS)])

    client, transport = make_client(Router().add("GET", "/sessions/insights", pages))
    async with client:
        got = [i async for i in client.sessions.list_insights(page_size=1, **filters)]
    assert [i.session_id for i in got] == ["devin-1", "devin-2"]
    assert got[1].analysis == ANALYSIS
    first, second = transport.requests
    assert path_of(first) == "/sessions/insights"
    assert query_of(first)[0] == ("first", "1")
    assert sorted(query_of(first)[1:]) == sorted(expected)
    assert ("after", "next") in query_of(second)


@pytest.mark.parametrize("filters", [{"is_archived": True}, {"repo_names": ["r"]},
                                     {"category": "bug"}, {"tag": ["a"]}, {"follow": True}])
async def test_list_insights_refuses_unknown_filters(filters: dict[str, Any]) -> None:
    client, transport = make_client(Router())
    async with client:
        with pytest.raises(TypeError, match=next(iter(filters))):
            client.sessions.list_insights(**filters)
    assert transport.requests == []


@pytest.mark.parametrize("filters", [{"tags": "a"}, {"page_size": 0}, {"created_after": -1},
                                     {"playbook_id": ""}])
async def test_list_insights_malformed_filter_is_a_value_error(filters: dict[str, Any]) -> None:
    client, transport = make_client(Router())
    async with client:
        with pytest.raises(ValueError):
            client.sessions.list_insights(**filters)
    assert transport.requests == []


async def test_list_insights_with_no_session_ids_sends_nothing() -> None:
    client, transport = make_client(Router())
    async with client:
        assert [i async for i in client.sessions.list_insights(session_ids=[])] == []
    assert transport.requests == []


# --- generate ------------------------------------------------------------------------------------
def generating(ready_after: int, answer: Any = None, hint: float | None = None) -> Router:
    """POST generate answers `answer`; GET insights has an analysis from read `ready_after`."""
    reads = {"n": 0}

    def get(_r: HTTPRequest, _m: re.Match[str]) -> Any:
        reads["n"] += 1
        ready = reads["n"] >= ready_after
        headers = {} if hint is None else {"Retry-After": f"{hint:g}"}
        return reply(200, insights_json(analysis=ANALYSIS if ready else None), headers)

    router = Router().add("GET", rf"/sessions/{SID}/insights", get)
    router.add("POST", rf"/sessions/{SID}/insights/generate", lambda r, m: answer or {
        "session_id": SID, "status": "started"})
    return router


@pytest.mark.parametrize("status", ["started", "already_exists"])
async def test_generate_insights_posts_then_polls_until_ready(status: str) -> None:
    clock = FakeClock()
    client, transport = make_client(generating(4, {"session_id": SID, "status": status}), clock)
    async with client:
        got = await client.sessions.generate_insights(SID)
    assert got.analysis == ANALYSIS
    methods = [(r.method, path_of(r)) for r in transport.requests]
    assert methods == [("POST", f"/sessions/{SID}/insights/generate")] + [
        ("GET", f"/sessions/{SID}/insights")] * 4
    assert transport.requests[0].body in (None, b"")
    assert clock.sleeps == [1, 2, 4]  # PollPolicy: initial, growing x2 up to max


async def test_generate_insights_already_ready_does_not_sleep() -> None:
    clock = FakeClock()
    client, transport = make_client(generating(1), clock)
    async with client:
        assert (await client.sessions.generate_insights(SID)).analysis == ANALYSIS
    assert clock.sleeps == [] and len(transport.requests) == 2


async def test_generate_insights_honours_a_capped_2xx_hint() -> None:
    clock = FakeClock()
    client, _ = make_client(generating(3, hint=900), clock)
    async with client:
        await client.sessions.generate_insights(SID)
    assert clock.sleeps == [client.retry.max_retry_after] * 2


async def test_generate_insights_times_out() -> None:
    clock = FakeClock()
    client, transport = make_client(generating(10_000), clock)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.generate_insights(SID, timeout=6)
    assert isinstance(info.value, TimeoutError)
    assert clock.elapsed <= 6
    assert len(transport.requests) >= 3  # it did poll before giving up


# A status other than started/already_exists is not malformed: the spec keeps it an open string
# (tests/test_contract_audit_extra.py::test_generate_insights_takes_any_status_string).
@pytest.mark.parametrize("answer", [{"session_id": SID}, ["started"], {"status": None},
                                    {"session_id": SID, "status": 3}])
async def test_generate_insights_malformed_answer(answer: Any) -> None:
    client, transport = make_client(generating(1, answer))
    async with client:
        with pytest.raises(MalformedResponseError):
            await client.sessions.generate_insights(SID)
    assert [r.method for r in transport.requests] == ["POST"]


@pytest.mark.parametrize("timeout", [0, -1, True, "10", float("nan")])
async def test_generate_insights_bad_timeout(timeout: Any) -> None:
    client, transport = make_client(generating(1))
    async with client:
        with pytest.raises(ValueError, match="timeout"):
            await client.sessions.generate_insights(SID, timeout=timeout)
    assert transport.requests == []


async def test_generate_insights_404_is_raised() -> None:
    client, _ = make_client(Router())
    async with client:
        with pytest.raises(NotFoundError):
            await client.sessions.generate_insights(SID)


# --- whoami --------------------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", ["v3beta1", "v3"])
@pytest.mark.parametrize(("body", "expected"), [
    ({"principal_type": "service_user", "service_user_id": "su-1",
      "service_user_name": "ci", "org_id": ORG, "new_field": [1]},
     Principal("service_user", org_id=ORG, service_user_id="su-1", service_user_name="ci")),
    ({"principal_type": "pat_user", "user_id": "u-1", "user_name": "ada", "org_id": ORG,
      "api_key_id": "k", "api_key_name": "kn"},
     Principal("pat_user", org_id=ORG, user_id="u-1", user_name="ada", api_key_id="k",
               api_key_name="kn")),
    ({"principal_type": "windsurf_session_user"}, Principal("windsurf_session_user")),
])
async def test_whoami_reads_root_self(api_version: str, body: dict[str, Any],
                                      expected: Principal) -> None:
    client, transport = make_client(lambda r: reply(200, body), api_version=api_version)
    async with client:
        got = await client.whoami()
    assert got == expected
    (request,) = transport.requests
    assert (request.method, request.url) == ("GET", f"{BASE_URL}/v3/self")
    assert request.headers["Authorization"].startswith("Bearer cog_")


@pytest.mark.parametrize("body", [{}, {"principal_type": 3}, [], {"principal_type": "x",
                                                                  "org_id": 5}])
async def test_whoami_malformed(body: Any) -> None:
    client, _ = make_client(lambda r: reply(200, body))
    async with client:
        with pytest.raises(MalformedResponseError):
            await client.whoami()


# --- against FakeDevinServer ---------------------------------------------------------------------
def in_process(server: FakeDevinServer, clock: FakeClock, **kw: Any) -> DevinClient:
    return DevinClient(api_key=kw.pop("api_key", server.api_key), org_id=server.org_id,
                       base_url="http://fake.invalid", allow_insecure_http=True,
                       transport=server.transport(), clock=clock, sleep=clock.sleep,
                       poll=POLL, tracing=False, **kw)


async def test_fake_server_insights_in_process() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=12)
    async with in_process(server, clock) as client:
        sid = (await client.sessions.create("Fix the flaky login test", tags=["ins"])).session_id
        other = (await client.sessions.create("Write docs")).session_id
        server.advance(40)
        before = await client.sessions.insights(sid)
        assert before.analysis is None and before.session_id == sid
        got = await client.sessions.generate_insights(sid, timeout=60)
        assert got.analysis is not None and got.session_id == sid
        assert (await client.sessions.insights(sid)).analysis == got.analysis
        again = await client.sessions.generate_insights(sid)  # already_exists: ready at once
        assert again.analysis == got.analysis
        listed = [i async for i in client.sessions.list_insights(tags=["ins"])]
        assert [i.session_id for i in listed] == [sid]
        both = [i.session_id async for i in client.sessions.list_insights(
            session_ids=[sid, other], page_size=1)]
        assert sorted(both) == sorted([sid, other])
    assert server.stats.get("requests", 0) > 0


async def test_fake_server_generate_insights_timeout_in_process() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=12)
    async with in_process(server, clock) as client:
        sid = (await client.sessions.create("p")).session_id
        with pytest.raises(WaitTimeoutError):
            await client.sessions.generate_insights(sid, timeout=2)  # ready after 5 s


@pytest.mark.parametrize("principal_type", ["service_user", "pat_user"])
async def test_fake_server_whoami_over_a_loopback_socket(principal_type: Any) -> None:
    async with FakeDevinServer(seed=1) as server:
        token = server.add_token(principal_type=principal_type, name="robot")
        async with DevinClient(api_key=token, org_id=server.org_id, base_url=server.url,
                               tracing=False) as client:
            me = await client.whoami()
    assert me.principal_type == principal_type and me.org_id == server.org_id
    name = me.service_user_name if principal_type == "service_user" else me.user_name
    assert name == "robot"
    (request,) = [r for r in server.requests if r.endpoint == "self"]
    assert request.path == "/v3/self"


@pytest.mark.parametrize("bad", ["", "devin/1", "../x", " devin-1", "devin-1?x=1"])
async def test_bad_session_ids_raise_before_any_request(bad: str) -> None:
    client, transport = make_client(Router())
    async with client:
        with pytest.raises(ValueError, match="session_id"):
            await client.sessions.insights(bad)
        with pytest.raises(ValueError, match="session_id"):
            await client.sessions.generate_insights(bad)
        with pytest.raises(ValueError, match="session_id"):
            await client.sessions.event_details(bad, ["ev-1"])
        with pytest.raises(ValueError, match="session_id"):
            client.sessions.search_events(bad, "q")
        with pytest.raises(ValueError, match="session_id"):
            await client.sessions.result(bad)
        with pytest.raises(ValueError, match="session_id"):
            await client.sessions.ask(bad, "hi")
    assert transport.requests == []
