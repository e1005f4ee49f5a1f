"""The client over aiohttp's transport with aioresponses: configuration, endpoints, retries.

(The request core's own unit tests use `MockTransport` / `StubOrg`; these check that the default
aiohttp transport carries what the engine builds, unchanged.)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from devin_async import (
    APIConnectionError,
    ClientClosedError,
    CreateSessionRequest,
    DevinClient,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
)
from devin_async._aiohttp import AiohttpTransport

from .helpers import BASE, KEY, FakeClock, reply, session_json
from .helpers import mock as mock_transport


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[DevinClient]:
    """Over the default aiohttp transport (aioresponses answers), without client tokens."""
    async with DevinClient(KEY, org_id="org-test", clock=clock, sleep=clock.sleep,
                           client_tokens=False) as c:
        yield c


@pytest.fixture
def mock() -> Any:
    with aioresponses() as m:
        yield m


def sent(mock: Any, method: str, url: str) -> list[Any]:
    return [call for (m, u), calls in mock.requests.items() if m == method
            and str(u).split("?")[0] == url for call in calls]


# -- construction ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_key": KEY, "org_id": "../evil"}, "org_id"),
        ({"api_key": KEY, "org_id": "org-1", "api_version": "v2"}, "api_version"),
        ({"api_key": KEY, "org_id": "org-1", "base_url": "ftp://x"}, "base_url"),
        ({"api_key": KEY, "org_id": "org-1", "base_url": "https://u:p@h"}, "credentials"),
        ({"api_key": "cog_ x", "org_id": "org-1"}, "whitespace"),
    ],
)
def test_construction_errors(monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any],
                             match: str) -> None:
    for var in ("DEVIN_API_KEY", "DEVIN_ORG_ID", "DEVIN_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match=match) as info:
        DevinClient(**kwargs)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_api_version_paths(version: str) -> None:
    transport = mock_transport(lambda call: reply(200, session_json("devin-1")))
    async with DevinClient(KEY, org_id="org-1", api_version=version,
                           transport=transport) as c:
        await c.sessions.get("devin-1")
    (request,) = transport.requests
    assert request.url == f"https://api.devin.ai/{version}/organizations/org-1/sessions/devin-1"


# -- endpoints ----------------------------------------------------------------------------------

async def test_create_with_request_object_and_token(mock: Any) -> None:
    def echo(url: URL, **kw: Any) -> CallbackResult:
        body = json.loads(kw["data"])
        return CallbackResult(payload=session_json(tags=body["tags"]))

    mock.post(f"{BASE}/sessions", callback=echo)
    async with DevinClient(KEY, org_id="org-test") as guarded:  # client tokens on (default)
        s = await guarded.sessions.create(CreateSessionRequest("p", tags=["mine"]))
    body = json.loads(sent(mock, "POST", f"{BASE}/sessions")[0].kwargs["data"])
    assert body["tags"][0] == "mine"
    assert re.fullmatch(r"devin-async-token:[0-9a-f]{32}", body["tags"][1])
    assert s.tags == ["mine"] and s.client_token == body["tags"][1].split(":")[1]


async def test_create_rejects_mixed_forms(client: DevinClient) -> None:
    with pytest.raises(ValueError, match="not both"):
        await client.sessions.create(CreateSessionRequest("p"), title="x")


async def test_bad_input_sends_nothing(client: DevinClient, mock: Any) -> None:
    for call in (
        client.sessions.create(""),
        client.sessions.create("x", advanced_mode="analyze"),
        client.sessions.get("../../admin"),
        client.sessions.send_message("devin-1", ""),
        client.sessions.add_tags("devin-1", [f"t{i}" for i in range(51)]),
        client.sessions.terminate("devin-1", archive="yes"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError):
            await call
    with pytest.raises(ValueError, match="page_size"):
        client.sessions.list(page_size=500)
    with pytest.raises(ValueError, match="tags"):
        client.sessions.list(tags="abc")
    assert not mock.requests


async def test_get_and_not_found(client: DevinClient, mock: Any) -> None:
    mock.get(f"{BASE}/sessions/devin-abc123", payload=session_json(status="running",
                                                                   status_detail="finished"))
    s = await client.sessions.get("devin-abc123")
    assert s.is_settled
    mock.get(f"{BASE}/sessions/devin-zzz", status=404, payload={"detail": "Session not found"},
             headers={"x-request-id": "r-1"})
    with pytest.raises(NotFoundError) as info:
        await client.sessions.get("devin-zzz")
    assert info.value.detail == "Session not found" and info.value.request_id == "r-1"
    assert len(sent(mock, "GET", f"{BASE}/sessions/devin-zzz")) == 1  # 404 is not retried


async def test_list_follows_every_page(client: DevinClient, mock: Any) -> None:
    pattern = re.compile(re.escape(f"{BASE}/sessions") + r"\?.*")
    mock.get(pattern, payload={"items": [session_json("devin-1")], "end_cursor": "c1",
                               "has_next_page": True})
    mock.get(pattern, payload={"items": [session_json("devin-2"), session_json("devin-3")],
                               "end_cursor": None, "has_next_page": False})
    ids = [s.session_id async for s in client.sessions.list(
        tags=["a", "b"], session_ids=["devin-1", "devin-2"], created_after=5, page_size=2,
        is_archived=False)]
    assert ids == ["devin-1", "devin-2", "devin-3"]
    urls = [u for (m, u) in mock.requests]
    assert len(urls) == 2
    first, second = (dict(u.query) for u in urls)
    assert first == {"first": "2", "session_ids": "devin-1,devin-2", "tags": "a,b",
                     "created_after": "5", "is_archived": "false"}
    assert second["after"] == "c1"


async def test_list_pages_and_empty_ids(client: DevinClient, mock: Any) -> None:
    mock.get(re.compile(re.escape(f"{BASE}/sessions") + r"\?.*"),
             payload={"items": [session_json()], "has_next_page": False, "total": 1})
    pages = [p async for p in client.sessions.list().pages()]
    assert len(pages) == 1 and pages[0].total == 1
    assert [s async for s in client.sessions.list(session_ids=[])] == []


async def test_messages_terminate_archive_tags_attachments(client: DevinClient,
                                                           mock: Any) -> None:
    sid = "devin-abc123"
    mock.get(re.compile(re.escape(f"{BASE}/sessions/{sid}/messages") + r"\?.*"), payload={
        "items": [{"event_id": "e1", "created_at": 1, "message": "hi", "source": "devin"}]})
    mock.post(f"{BASE}/sessions/{sid}/messages", payload=session_json(status="resuming"))
    mock.delete(re.compile(re.escape(f"{BASE}/sessions/{sid}") + r"\?archive=true"),
                payload=session_json(status="exit", is_archived=True))
    mock.post(f"{BASE}/sessions/{sid}/archive", payload=session_json(is_archived=True))
    mock.get(f"{BASE}/sessions/{sid}/tags", payload={"tags": ["a"]}, repeat=True)
    mock.post(f"{BASE}/sessions/{sid}/tags", payload={"tags": ["a", "b"]})
    mock.put(f"{BASE}/sessions/{sid}/tags", payload={"tags": ["c"]})
    mock.get(f"{BASE}/sessions/{sid}/attachments", payload=[
        {"attachment_id": "a1", "name": "n", "source": "devin", "url": "https://f"}])

    assert [m.message async for m in client.sessions.messages(sid)] == ["hi"]
    assert (await client.sessions.send_message(sid, "go on")).status == "resuming"
    assert json.loads(sent(mock, "POST", f"{BASE}/sessions/{sid}/messages")[0]
                      .kwargs["data"]) == {"message": "go on"}
    assert (await client.sessions.terminate(sid, archive=True)).is_terminal
    assert (await client.sessions.archive(sid)).is_archived
    assert await client.sessions.get_tags(sid) == ["a"]
    assert await client.sessions.add_tags(sid, ["b"]) == ["a", "b"]
    assert await client.sessions.replace_tags(sid, ["c"]) == ["c"]
    assert json.loads(sent(mock, "PUT", f"{BASE}/sessions/{sid}/tags")[0]
                      .kwargs["data"]) == {"tags": ["c"]}
    assert (await client.sessions.attachments(sid))[0].attachment_id == "a1"


# -- retries ------------------------------------------------------------------------------------

async def test_retry_after_is_honoured(client: DevinClient, clock: FakeClock, mock: Any) -> None:
    url = f"{BASE}/sessions/devin-abc123"
    mock.get(url, status=429, payload={"detail": "slow"}, headers={"Retry-After": "7"})
    mock.get(url, status=503, headers={"retry-after-ms": "1500"}, body="busy")
    mock.get(url, payload=session_json())
    await client.sessions.get("devin-abc123")
    assert clock.sleeps[:1] == [7.0]
    assert 1.5 in clock.sleeps
    assert len(sent(mock, "GET", url)) == 3


async def test_retry_after_over_cap_fails_fast(client: DevinClient, clock: FakeClock,
                                               mock: Any) -> None:
    url = f"{BASE}/sessions/devin-abc123"
    mock.get(url, status=429, payload={"detail": "quota"}, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError) as info:
        await client.sessions.get("devin-abc123")
    assert info.value.retry_after == 3600
    assert clock.sleeps == []


async def test_5xx_read_retried_then_gives_up(client: DevinClient, clock: FakeClock,
                                              mock: Any) -> None:
    url = f"{BASE}/sessions/devin-abc123"
    for _ in range(4):
        mock.get(url, status=500, payload={"detail": "boom"})
    with pytest.raises(InternalServerError):
        await client.sessions.get("devin-abc123")
    assert len(sent(mock, "GET", url)) == RetryPolicy().max_attempts
    assert all(0 <= s <= RetryPolicy().max_backoff for s in clock.sleeps)


async def test_connection_error_retried(client: DevinClient, mock: Any) -> None:
    url = f"{BASE}/sessions/devin-abc123"
    mock.get(url, exception=aiohttp.ClientConnectionError("reset"))
    mock.get(url, payload=session_json())
    assert (await client.sessions.get("devin-abc123")).session_id == "devin-abc123"


async def test_connection_error_surfaces_typed(clock: FakeClock, mock: Any) -> None:
    async with DevinClient(KEY, org_id="org-test", retry=RetryPolicy.disabled(), clock=clock,
                           sleep=clock.sleep) as c:
        mock.get(f"{BASE}/sessions/devin-1", exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(APIConnectionError) as info:
            await c.sessions.get("devin-1")
    assert info.value.sent and KEY not in str(info.value)


async def test_unsafe_create_not_retried_on_500_without_token(client: DevinClient,
                                                              mock: Any) -> None:
    mock.post(f"{BASE}/sessions", status=500, payload={"detail": "boom"})
    with pytest.raises(InternalServerError):
        await client.sessions.create("x")
    assert len(sent(mock, "POST", f"{BASE}/sessions")) == 1


async def test_create_retried_on_429_and_503(client: DevinClient, mock: Any) -> None:
    mock.post(f"{BASE}/sessions", status=429, headers={"Retry-After": "1"})
    mock.post(f"{BASE}/sessions", status=503)
    mock.post(f"{BASE}/sessions", payload=session_json())
    await client.sessions.create("x")
    assert len(sent(mock, "POST", f"{BASE}/sessions")) == 3


async def test_deadline_bounds_all_attempts(clock: FakeClock, mock: Any) -> None:
    policy = RetryPolicy(max_attempts=50, deadline=10.0, jitter=False)
    async with DevinClient(KEY, org_id="org-test", retry=policy, clock=clock,
                           sleep=clock.sleep) as c:
        url = f"{BASE}/sessions/devin-1"
        for _ in range(50):
            mock.get(url, status=503)
        start = clock.now
        with pytest.raises(InternalServerError):
            await c.sessions.get("devin-1")
        assert clock.now - start <= 10.0
        assert len(sent(mock, "GET", url)) < 50


async def test_422_carries_errors(client: DevinClient, mock: Any) -> None:
    detail = [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]
    mock.post(f"{BASE}/sessions", status=422, payload={"detail": detail})
    with pytest.raises(UnprocessableEntityError) as info:
        await client.sessions.create("x")
    assert info.value.errors == detail and info.value.status == 422


# -- lifecycle, hooks, logging -------------------------------------------------------------------

async def test_closed_client_raises(mock: Any) -> None:
    c = DevinClient(KEY, org_id="org-test")
    await c.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        await c.sessions.get("devin-1")


async def test_session_created_lazily_and_closed(mock: Any) -> None:
    c = DevinClient(KEY, org_id="org-test")
    transport = c.transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.session is None  # nothing is opened before the first request
    mock.get(f"{BASE}/sessions/devin-1", payload=session_json("devin-1"))
    await c.sessions.get("devin-1")
    http = transport.session
    assert http is not None and not http.closed and transport.unclosed()
    await c.aclose()
    assert http.closed and not transport.unclosed()


async def test_hooks_and_logs_never_show_the_key(clock: FakeClock, mock: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = []
    caplog.set_level(logging.DEBUG, logger="devin_async")
    async with DevinClient(KEY, org_id="org-test", clock=clock, sleep=clock.sleep,
                           on_request=events.append, on_response=events.append,
                           on_retry=[events.append]) as c:
        url = f"{BASE}/sessions/devin-1"
        mock.get(url, status=502, payload={"detail": "gateway"})
        mock.get(url, payload=session_json("devin-1"))
        await c.sessions.get("devin-1")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["RequestEvent", "ResponseEvent", "RetryEvent", "RequestEvent",
                     "ResponseEvent"]
    assert events[1].status == 502 and events[4].status == 200
    assert any("retrying GET" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.DEBUG and "-> 200" in r.getMessage()
               for r in caplog.records)
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert all(KEY not in repr(e) for e in events)


async def test_failing_hook_does_not_break_requests(mock: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: object) -> None:
        raise RuntimeError("metrics down")

    async with DevinClient(KEY, org_id="org-test", on_request=boom) as c:
        mock.get(f"{BASE}/sessions/devin-1", payload=session_json("devin-1"))
        assert (await c.sessions.get("devin-1")).session_id == "devin-1"
    assert "hook" in caplog.text


async def test_malformed_success_body(client: DevinClient, mock: Any) -> None:
    from devin_async import MalformedResponseError

    mock.get(f"{BASE}/sessions/devin-1", body="<html>oops</html>", content_type="text/html")
    with pytest.raises(MalformedResponseError):
        await client.sessions.get("devin-1")
    mock.get(f"{BASE}/sessions/devin-1", payload={"session_id": "devin-1"})
    with pytest.raises(MalformedResponseError):
        await client.sessions.get("devin-1")
