"""Acceptance tests written from ../shared/CONTRACT.md (and README.md for how things are called).

Everything here is used the way a user's code would use it: public names from `devin_async`, a
`FakeDevinServer` over a real loopback socket, `aioresponses` where exact wire details matter, and
the command line through `devin_async.__main__.main`. Time is virtual wherever it can be (one
clock shared by the client and the fake server), and real only in fractions of a second.

A test that shows the implementation deviating from the contract is kept and marked
`xfail(strict=True, reason="CONTRACT: ...")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import gc
import io
import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aioresponses import aioresponses

import devin_async
import devin_async.__main__ as cli
from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchResult,
    ConflictError,
    CreateSessionRequest,
    DevinClient,
    DevinError,
    InternalServerError,
    MalformedResponseError,
    Message,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    PullRequest,
    RateLimitError,
    RetryPolicy,
    Session,
    SessionEvent,
    SessionStatus,
    StatusDetail,
    Timeouts,
    UnprocessableEntityError,
    WaitTimeoutError,
    Watcher,
)
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, ThreadedServer

TOKEN_TAG = re.compile(r"^devin-async-token:[0-9a-f]+$")
FAST = PollPolicy(initial=0.5, max=2.0, multiplier=1.5, jitter=0.0)
NO_RETRY = RetryPolicy(max_attempts=1)
SECRET = "cog_Zq8vT3mXk2LpW9sRb7NcY4hJd6FgQe1AuWXYZ"
DOC_FIELDS = (
    "session_id", "url", "status", "status_detail", "tags", "org_id", "created_at", "updated_at",
    "acus_consumed", "pull_requests", "title", "user_id", "service_user_id", "playbook_id",
    "parent_session_id", "child_session_ids", "is_archived", "is_advanced", "structured_output",
    "origin", "category", "subcategory",
)


# -- helpers ---------------------------------------------------------------------------------





@attrs.define
class Env:
    server: FakeDevinServer
    client: DevinClient
    clock: FakeClock


@contextlib.asynccontextmanager
async def fake(*, virtual: bool = True, server_kw: dict[str, Any] | None = None,
               **client_kw: Any) -> AsyncIterator[Env]:
    """A FakeDevinServer and a DevinClient on it; with `virtual`, both run on one FakeClock."""
    clock = FakeClock()
    skw = dict(server_kw or {})
    if virtual:
        skw.setdefault("clock", clock)
        client_kw.setdefault("clock", clock)
        client_kw.setdefault("sleep", clock.sleep)
    async with asyncio.timeout(20), FakeDevinServer(**skw) as server, DevinClient(
        base_url=server.url, api_key=server.api_key, org_id=server.org_id, **client_kw
    ) as client:
        yield Env(server, client, clock)  # (the timeout: a virtual-time bug must not hang)


def states(sessions: list[Session]) -> list[tuple[str, str | None]]:
    return [(s.status.value, s.status_detail.value if s.status_detail else None)
            for s in sessions]


def doc_session(session_id: str = "devin-abc123", **fields: Any) -> dict[str, Any]:
    """A SessionResponse as the docs show it."""
    data: dict[str, Any] = {
        "session_id": session_id, "url": f"https://app.devin.ai/sessions/{session_id[6:]}",
        "status": "new", "status_detail": None, "tags": [], "org_id": "org-x",
        "created_at": 1764288000, "updated_at": 1764288001, "acus_consumed": 0.0,
        "pull_requests": [], "title": None, "user_id": None, "service_user_id": None,
        "playbook_id": None, "parent_session_id": None, "child_session_ids": None,
        "is_archived": False, "is_advanced": False, "structured_output": None, "origin": "api",
        "category": None, "subcategory": None,
    }
    data.update(fields)
    return data


def sent_calls(mock: Any, method: str) -> list[tuple[str, Any]]:
    return [(str(url), call) for (m, url), calls in mock.requests.items() if m == method
            for call in calls]


def ids_in(request: Any) -> set[str]:
    return {v for raw in request.query_values("session_ids") for v in raw.split(",") if v}


async def raw(server: FakeDevinServer, method: str, path: str, *, token: str | None = None,
              version: str = "v3beta1", **kw: Any) -> tuple[int, Any, Any]:
    """One request without the SDK: (status, headers, decoded JSON or text)."""
    url = f"{server.url}/{version}/organizations/{server.org_id}/sessions{path}"
    headers = {"Authorization": f"Bearer {token or server.api_key}"}
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers,
                                                             **kw) as resp:
        text = await resp.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return resp.status, resp.headers, body


def secret_fragments(key: str) -> list[str]:
    """Every 6-character piece of a key's secret part (what must never be printed)."""
    middle = key[4:-4]
    return [middle[i:i + 6] for i in range(len(middle) - 5)]


# == public names ============================================================================

CONTRACT_NAMES = [
    "DevinClient", "Timeouts", "RetryPolicy", "PollPolicy", "CreateSessionRequest", "Session",
    "SessionStatus", "StatusDetail", "PullRequest", "Message", "BatchResult", "Watcher",
    "SessionEvent", "DevinError", "APIConnectionError", "APITimeoutError", "APIStatusError",
    "BadRequestError", "AuthenticationError", "PermissionDeniedError", "NotFoundError",
    "ConflictError", "UnprocessableEntityError", "RateLimitError", "InternalServerError",
    "WaitTimeoutError", "MalformedResponseError",
]


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_every_public_name_imports_from_the_package(name: str) -> None:
    assert hasattr(devin_async, name)
    assert name in devin_async.__all__


# == client: configuration ===================================================================


async def test_env_vars_are_the_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDevinServer() as server:
        monkeypatch.setenv("DEVIN_API_KEY", server.api_key)
        monkeypatch.setenv("DEVIN_ORG_ID", server.org_id)
        monkeypatch.setenv("DEVIN_BASE_URL", server.url)
        async with DevinClient() as client:
            assert (client.org_id, client.base_url, client.api_version) == (
                server.org_id, server.url.rstrip("/"), "v3beta1")
            created = await client.sessions.create("from the environment")
        assert created.org_id == server.org_id
        assert server.session_count == 1
        # Arguments win over the environment.
        monkeypatch.setenv("DEVIN_API_KEY", "cog_wrongwrongwrongwrong")
        monkeypatch.setenv("DEVIN_ORG_ID", "org-wrong")
        monkeypatch.setenv("DEVIN_BASE_URL", "https://nowhere.invalid")
        async with DevinClient(server.api_key, org_id=server.org_id,
                               base_url=server.url) as client:
            assert (await client.sessions.get(created.session_id)).session_id == \
                created.session_id


async def test_base_url_defaults_to_api_devin_ai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_BASE_URL", raising=False)
    with aioresponses() as mock:
        mock.get("https://api.devin.ai/v3beta1/organizations/org-x/sessions/devin-1",
                 payload=doc_session("devin-1"))
        async with DevinClient(SECRET, org_id="org-x") as client:
            session = await client.sessions.get("devin-1")
    assert session.session_id == "devin-1"
    ((url, call),) = sent_calls(mock, "GET")
    assert url == "https://api.devin.ai/v3beta1/organizations/org-x/sessions/devin-1"
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("env", "kwargs", "mentions"),
    [
        ({}, {"org_id": "org-x"}, "DEVIN_API_KEY"),
        ({"DEVIN_API_KEY": ""}, {"org_id": "org-x"}, "DEVIN_API_KEY"),
        ({}, {"api_key": SECRET}, "DEVIN_ORG_ID"),
        ({"DEVIN_ORG_ID": ""}, {"api_key": SECRET}, "DEVIN_ORG_ID"),
        ({"DEVIN_API_KEY": SECRET}, {}, "DEVIN_ORG_ID"),
        ({"DEVIN_ORG_ID": "org-x"}, {}, "DEVIN_API_KEY"),
    ],
)
def test_missing_key_or_org_is_a_value_error_at_construction(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], kwargs: dict[str, Any], mentions: str
) -> None:
    for name in ("DEVIN_API_KEY", "DEVIN_ORG_ID", "DEVIN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=mentions) as info:
        DevinClient(**kwargs)
    assert not isinstance(info.value, DevinError)
    assert SECRET not in str(info.value)


def _client_sessions(exclude: Sequence[aiohttp.ClientSession] = ()) -> list[Any]:
    """The aiohttp sessions alive now, not counting `exclude` (held alive by the caller)."""
    held = {id(e) for e in exclude}
    return [o for o in gc.get_objects()
            if isinstance(o, aiohttp.ClientSession) and id(o) not in held]


def test_client_is_built_outside_a_loop_and_opens_one_session_lazily() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = _client_sessions()  # held: their ids cannot be reused meanwhile
    # Built with no running event loop: nothing aiohttp is created yet.
    client = DevinClient("cog_" + "k" * 40, org_id="org-lazy",
                         base_url=f"http://127.0.0.1:{port}")
    assert _client_sessions(before) == []

    async def main() -> list[aiohttp.ClientSession]:
        async with FakeDevinServer(port=port, api_key="cog_" + "k" * 40,
                                   org_id="org-lazy") as server:
            async with client:
                first = await client.sessions.create("one")
                await asyncio.gather(*(client.sessions.get(first.session_id) for _ in range(10)),
                                     *(client.sessions.create(f"p{i}") for i in range(5)))
                new = _client_sessions(before)
                assert len(new) == 1  # one aiohttp.ClientSession for every request
                assert not new[0].closed
            assert server.session_count == 6
            return new

    (own,) = asyncio.run(main())
    assert own.closed  # leaving `async with` closed the client's own session


async def test_a_callers_session_is_used_and_never_closed() -> None:
    seen: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_start(_s: Any, _ctx: Any, params: Any) -> None:
        seen.append(params.method)

    trace.on_request_start.append(on_start)
    async with FakeDevinServer() as server, aiohttp.ClientSession(trace_configs=[trace]) as http:
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               session=http) as client:
            created = await client.sessions.create("x")
            await client.sessions.get(created.session_id)
        assert not http.closed
        client2 = DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                              session=http)
        await client2.sessions.get(created.session_id)
        await client2.aclose()
        assert not http.closed
        assert seen == ["POST", "GET", "GET"]  # every request went through the caller's session
        async with http.get(f"{server.url}/v3beta1/organizations/{server.org_id}/sessions",
                            headers={"Authorization": f"Bearer {server.api_key}"}) as resp:
            assert resp.status == 200  # still usable


async def test_aclose_is_the_same_as_leaving_async_with() -> None:
    async with FakeDevinServer() as server:
        before = _client_sessions()
        client = DevinClient(server.api_key, org_id=server.org_id, base_url=server.url)
        await client.sessions.create("x")
        (own,) = _client_sessions(before)
        assert not own.closed
        await client.aclose()
        assert own.closed
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do; it must not send
            await client.sessions.create("after close")
        assert server.session_count == 1


async def test_repr_logs_and_errors_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="devin_async")
    clock = FakeClock()
    async with FakeDevinServer() as server:
        server.add_token(SECRET)
        server.inject("get", status=503)  # a retry: logged
        async with DevinClient(SECRET, org_id=server.org_id, base_url=server.url, clock=clock,
                               sleep=clock.sleep) as client:
            sid = (await client.sessions.create("x")).session_id
            await client.sessions.get(sid)
            text = repr(client) + str(client)
            server.revoke_token(SECRET)
            with pytest.raises(AuthenticationError) as info:
                await client.sessions.get(sid)
        await server.stop_listening()
        async with DevinClient(SECRET, org_id=server.org_id, base_url=server.url,
                               retry=NO_RETRY) as client:
            with pytest.raises(APIConnectionError) as refused:
                await client.sessions.get(sid)
    for exc in (info.value, refused.value):
        text += str(exc) + repr(exc) + repr(getattr(exc, "body", "")) + repr(exc.args)
    text += caplog.text
    assert caplog.records  # something was logged at all
    assert SECRET not in text
    for piece in secret_fragments(SECRET):
        assert piece not in text
    shown = re.findall(r"cog_\S*", repr(DevinClient(SECRET, org_id="org-x")))
    assert shown and all(s.rstrip("'\")") in ("cog_\u2026WXYZ", "cog_\u2026") for s in shown)


async def test_a_server_echoing_the_key_does_not_leak_it_into_messages_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="devin_async")
    base = "https://api.devin.ai/v3beta1/organizations/org-x/sessions"
    with aioresponses() as mock:
        mock.get(f"{base}/devin-1", status=401, payload={"detail": f"Invalid API key {SECRET}"})
        mock.get(f"{base}/devin-2", status=503, body=f"upstream rejected Bearer {SECRET}",
                 repeat=True)
        async with DevinClient(SECRET, org_id="org-x",
                               retry=RetryPolicy(max_attempts=2, initial_backoff=0.001)) as c:
            with pytest.raises(AuthenticationError) as e401:
                await c.sessions.get("devin-1")
            with pytest.raises(InternalServerError) as e503:
                await c.sessions.get("devin-2")
    text = caplog.text
    for exc in (e401.value, e503.value):
        text += str(exc) + repr(exc)
    assert SECRET not in text
    for piece in secret_fragments(SECRET):
        assert piece not in text


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (Timeouts, {"connect", "read", "total"}),
        (RetryPolicy, {"max_attempts", "initial_backoff", "max_backoff", "max_retry_after",
                       "deadline"}),
        (PollPolicy, {"initial", "max", "multiplier", "jitter"}),
    ],
)
def test_policies_are_frozen_attrs_values_with_finite_defaults(cls: type[Any],
                                                               fields: set[str]) -> None:
    assert attrs.has(cls)
    names = set(attrs.fields_dict(cls))
    assert fields <= names
    value = cls()
    for name in names:
        field = getattr(value, name)
        if isinstance(field, bool):
            continue
        if isinstance(field, int | float):
            assert math.isfinite(field) and field >= 0, name
    for name in fields:
        if name != "jitter":
            assert getattr(value, name) > 0, name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, next(iter(fields)), 1)
    assert cls() == cls() and hash(cls()) == hash(cls())


def test_documented_defaults() -> None:
    # README "Configuration and defaults".
    t = Timeouts()
    assert (t.connect, t.read, t.total) == (10, 60, 60)
    r = RetryPolicy()
    assert (r.max_attempts, r.initial_backoff, r.max_backoff, r.max_retry_after, r.deadline) == (
        4, 0.5, 8, 60, 180)
    p = PollPolicy()
    assert (p.initial, p.max, p.multiplier, p.jitter) == (1, 30, 1.5, 0.1)


async def test_timeouts_retry_and_client_accept_policies() -> None:
    async with fake(timeouts=Timeouts(connect=5, read=5, total=5),
                    retry=RetryPolicy(max_attempts=2)) as env:
        env.server.inject("get", status=503, times=2)
        sid = (await env.client.sessions.create("x")).session_id
        with pytest.raises(InternalServerError):
            await env.client.sessions.get(sid)
        assert [r.status for r in env.server.requests if r.endpoint == "get"] == [503, 503]


# == create ==================================================================================

ALL_FIELDS: dict[str, Any] = {
    "advanced_mode": "analyze", "bypass_approval": False, "child_playbook_id": "playbook-child",
    "create_as_user_id": "user-42", "knowledge_ids": ["k1", "k2"], "max_acu_limit": 7,
    "playbook_id": "playbook-1", "repos": ["me/app"], "secret_ids": ["s1"],
    "session_links": ["https://app.devin.ai/sessions/abc"], "tags": ["ci", "nightly"],
    "title": "A title",
}


async def test_create_keyword_form_sends_every_given_field() -> None:
    async with fake() as env:
        session = await env.client.sessions.create("Fix the flaky test", **ALL_FIELDS)
        assert isinstance(session, Session)
        body = env.server.create_request(session.session_id)
        token_tags = [t for t in body["tags"] if TOKEN_TAG.match(t)]
        assert len(token_tags) == 1
        assert {**body, "tags": [t for t in body["tags"] if t not in token_tags]} == {
            "prompt": "Fix the flaky test", **ALL_FIELDS}
        assert session.tags == ["ci", "nightly"]
        assert session.title == "A title"


async def test_create_request_object_form() -> None:
    async with fake() as env:
        request = CreateSessionRequest("Upgrade to 3.13", repos=["me/app"], max_acu_limit=3,
                                       devin_mode="fast")
        session = await env.client.sessions.create(request)
        body = env.server.create_request(session.session_id)
        body["tags"] = [t for t in body["tags"] if not TOKEN_TAG.match(t)]
        assert body == {"prompt": "Upgrade to 3.13", "repos": ["me/app"], "max_acu_limit": 3,
                        "tags": [], "devin_mode": "fast"}
        # Every field of the create body is a field of CreateSessionRequest (+ extra).
        assert set(attrs.fields_dict(CreateSessionRequest)) >= {"prompt", *ALL_FIELDS, "extra"}


async def test_create_sends_only_given_fields_on_the_wire() -> None:
    url = "https://api.devin.ai/v3beta1/organizations/org-x/sessions"
    with aioresponses() as mock:
        mock.post(url, payload=doc_session("devin-1"), repeat=True)
        async with DevinClient(SECRET, org_id="org-x", base_url="https://api.devin.ai") as c:
            await c.sessions.create("hello")
        async with DevinClient(SECRET, org_id="org-x", base_url="https://api.devin.ai",
                               client_tokens=False) as c:
            await c.sessions.create("hello")
            await c.sessions.create("hello", bypass_approval=False, knowledge_ids=[])
            await c.sessions.create(CreateSessionRequest("hello", title="t"))
    bodies = [json.loads(call.kwargs["data"]) for _, call in sent_calls(mock, "POST")]
    assert len(bodies) == 4
    for _, call in sent_calls(mock, "POST"):
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == f"Bearer {SECRET}"
        assert headers["User-Agent"].startswith("devin-async/")
        assert headers["Content-Type"] == "application/json"
    assert set(bodies[0]) == {"prompt", "tags"} and bodies[0]["prompt"] == "hello"
    (tag,) = bodies[0]["tags"]
    assert TOKEN_TAG.match(tag)
    assert bodies[1] == {"prompt": "hello"}
    assert bodies[2] == {"prompt": "hello", "bypass_approval": False, "knowledge_ids": []}
    assert bodies[3] == {"prompt": "hello", "title": "t"}
    for _, call in sent_calls(mock, "POST"):
        assert "null" not in call.kwargs["data"].decode()


async def test_each_create_has_its_own_client_token_hidden_from_session_tags() -> None:
    async with fake() as env:
        a = await env.client.sessions.create("a", tags=["ci"])
        b = await env.client.sessions.create("b")
        assert a.tags == ["ci"] and b.tags == []
        stored_a = env.server.session(a.session_id)["tags"]
        stored_b = env.server.session(b.session_id)["tags"]
        (token_a,) = [t for t in stored_a if TOKEN_TAG.match(t)]
        (token_b,) = [t for t in stored_b if TOKEN_TAG.match(t)]
        assert token_a != token_b
        assert a.client_token == token_a.split(":", 1)[1]
        # Hidden wherever a Session or tags come back.
        assert (await env.client.sessions.get(a.session_id)).tags == ["ci"]
        listed = {s.session_id: s async for s in env.client.sessions.list()}
        assert listed[a.session_id].tags == ["ci"] and listed[b.session_id].tags == []
        assert await env.client.sessions.get_tags(a.session_id) == ["ci"]
        assert await env.client.sessions.add_tags(a.session_id, ["x"]) == ["ci", "x"]
        assert (await env.client.sessions.send_message(a.session_id, "hi")).tags == ["ci", "x"]
        # Turned off per client (the per-call `client_token=` is gone).
        with pytest.raises(TypeError):
            await env.client.sessions.create("c", client_token=False)  # type: ignore[call-arg]
    async with fake(client_tokens=False) as env:
        d = await env.client.sessions.create("d")
        assert env.server.session(d.session_id)["tags"] == []
        assert env.server.create_request(d.session_id) == {"prompt": "d"}


BAD_CREATES = [
    pytest.param({"prompt": ""}, "prompt", id="empty-prompt"),
    pytest.param({"prompt": "   \n"}, "prompt", id="blank-prompt"),
    pytest.param({"prompt": "x", "advanced_mode": "analyze"}, "session_links", id="analyze"),
    pytest.param({"prompt": "x", "advanced_mode": "analyze", "session_links": []},
                 "session_links", id="analyze-empty-links"),
    pytest.param({"prompt": "x", "advanced_mode": "improve"}, "child_playbook_id", id="improve"),
    pytest.param({"prompt": "x", "advanced_mode": "batch"}, "child_playbook_id", id="batch"),
    pytest.param({"prompt": "x", "max_acu_limit": 0}, "max_acu_limit", id="acu-zero"),
    pytest.param({"prompt": "x", "max_acu_limit": -3}, "max_acu_limit", id="acu-negative"),
    pytest.param({"prompt": "x", "max_acu_limit": 2.5}, "max_acu_limit", id="acu-float"),
    pytest.param({"prompt": "x", "max_acu_limit": "10"}, "max_acu_limit", id="acu-str"),
    pytest.param({"prompt": "x", "max_acu_limit": True}, "max_acu_limit", id="acu-bool"),
    pytest.param({"prompt": "x", "tags": [f"t{i}" for i in range(51)]}, "tags", id="51-tags"),
]


@pytest.mark.parametrize("form", ["keywords", "request"])
@pytest.mark.parametrize(("fields", "named"), BAD_CREATES)
async def test_create_validation_is_a_value_error_naming_the_field_and_sends_nothing(
    fields: dict[str, Any], named: str, form: str
) -> None:
    async with fake() as env:
        with pytest.raises(ValueError, match=named) as info:
            if form == "keywords":
                rest = dict(fields)
                await env.client.sessions.create(rest.pop("prompt"), **rest)
            else:
                await env.client.sessions.create(CreateSessionRequest(**fields))
        assert not isinstance(info.value, DevinError)
        assert env.server.requests == []
        assert env.server.session_count == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"tags": [f"t{i}" for i in range(50)]},
        {"max_acu_limit": 1},
        {"advanced_mode": "analyze", "session_links": ["https://app.devin.ai/sessions/a"]},
        {"advanced_mode": "improve", "child_playbook_id": "playbook-c"},
        {"advanced_mode": "batch", "child_playbook_id": "playbook-c"},
        {"advanced_mode": "create"},
    ],
)
async def test_create_accepts_what_the_rules_allow(fields: dict[str, Any]) -> None:
    async with fake() as env:
        session = await env.client.sessions.create("ok", **fields)
        body = env.server.create_request(session.session_id)
        for name, value in fields.items():
            if name == "tags":
                assert [t for t in body["tags"] if not TOKEN_TAG.match(t)] == value
                assert session.tags == value
            else:
                assert body[name] == value


async def test_newer_fields_pass_through_named_or_as_extra_body() -> None:
    named: dict[str, Any] = {
        "devin_mode": "fast",
        "structured_output_schema": {"type": "object", "properties": {"a": {}}},
        "session_secrets": [{"key": "K", "value": "V", "sensitive": True}]}
    extra = {"brand_new_field": {"nested": [1, 2, {"x": None}]}}
    async with fake() as env:
        a = await env.client.sessions.create("a", title="t", **named, extra_body=extra)
        b = await env.client.sessions.create(CreateSessionRequest("b", **named, extra=extra))
        for sid in (a.session_id, b.session_id):
            body = env.server.create_request(sid)
            for key, value in {**named, **extra}.items():
                assert body[key] == value
        with pytest.raises(TypeError):  # an unknown keyword is a mistake, not a new field
            await env.client.sessions.create("c", brand_new_field=1)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="devin_mode"):  # a named field is not extra
            await env.client.sessions.create("c", extra_body={"devin_mode": "fast"})
        assert env.server.session_count == 2


# == the other endpoints =====================================================================


async def test_get_returns_the_session_as_the_server_has_it() -> None:
    async with fake() as env:
        sid = (await env.client.sessions.create("x", title="t", tags=["a"])).session_id
        env.server.update(sid, pull_requests=[{"pr_url": "https://github.com/me/app/pull/1",
                                               "pr_state": "open"}],
                          structured_output={"answer": 42}, category="bug_fixing")
        env.server.set_status(sid, "running", "waiting_for_approval")
        session = await env.client.sessions.get(sid)
        wire = env.server.session(sid)
        for name in DOC_FIELDS:
            value = getattr(session, name)
            if name == "tags":
                assert value == ["a"]
            elif name == "pull_requests":
                assert value == [PullRequest("https://github.com/me/app/pull/1", "open")]
            elif name in ("status", "status_detail"):
                assert value.value == wire[name]
            else:
                assert value == wire[name], name


async def test_list_follows_every_page() -> None:
    async with fake() as env:
        ids = env.server.add_sessions(7)
        got = [s.session_id async for s in env.client.sessions.list(page_size=3)]
        assert sorted(got) == sorted(ids) and len(got) == 7
        lists = [r for r in env.server.requests if r.endpoint == "list"]
        assert len(lists) == 3
        assert all(r.query_values("first") == ["3"] for r in lists)
        assert lists[0].query_values("after") == []
        assert all(len(r.query_values("after")) == 1 for r in lists[1:])
        # The default page size is 100: 250 sessions take 3 requests.
        env.server.add_sessions(243)
        env.server.clear_requests()
        assert len([s async for s in env.client.sessions.list()]) == 250
        assert [r.query_values("first") for r in env.server.requests] == [["100"]] * 3


async def test_list_filters() -> None:
    async with fake() as env:
        base = 1_760_000_000
        ids = env.server.add_sessions(
            6, created_at=lambda i: base + 100 * i, updated_at=lambda i: base + 100 * i + 50,
            tags=lambda i: ["a", "b"] if i % 2 else ["a"], status="running",
            status_detail="finished")
        sessions = env.client.sessions

        async def listed(**filters: Any) -> list[str]:
            return sorted([s.session_id async for s in sessions.list(**filters)])

        assert await listed(tags=["a", "b"]) == sorted(ids[1::2])
        assert await listed(tags=["a"]) == sorted(ids)
        assert await listed(session_ids=[ids[0], ids[4]]) == sorted([ids[0], ids[4]])
        assert await listed(created_after=base + 150) == sorted(ids[2:])
        assert await listed(created_before=base + 150) == sorted(ids[:2])
        assert await listed(updated_after=base + 360) == sorted(ids[4:])
        assert await listed(updated_before=base + 100) == sorted(ids[:1])
        assert await listed(tags=["b"], created_after=base + 150,
                            created_before=base + 450) == sorted([ids[3]])
        assert await listed(session_ids=[]) == []


async def test_send_message_and_messages() -> None:
    async with fake() as env:
        sid = (await env.client.sessions.create("Do the thing")).session_id
        env.server.set_status(sid, "running", "waiting_for_user")
        session = await env.client.sessions.send_message(sid, "Yes, go ahead")
        assert isinstance(session, Session) and session.session_id == sid
        messages = [m async for m in env.client.sessions.messages(sid)]
        assert all(isinstance(m, Message) for m in messages)
        assert [(m.message, m.source) for m in messages] == [("Do the thing", "user"),
                                                             ("Yes, go ahead", "user")]
        assert all(type(m.created_at) is int for m in messages)
        assert [m.event_id for m in messages] == [m["event_id"]
                                                 for m in env.server.messages(sid)]


async def test_messages_follow_every_page() -> None:
    async with fake() as env:
        sid = (await env.client.sessions.create("first")).session_id
        env.server.set_status(sid, "running", "waiting_for_user")
        for i in range(150):
            await env.client.sessions.send_message(sid, f"m{i}")
        got = [m.message async for m in env.client.sessions.messages(sid)]
        assert got == ["first"] + [f"m{i}" for i in range(150)]


async def test_terminate_and_archive() -> None:
    async with fake() as env:
        a = (await env.client.sessions.create("a")).session_id
        b = (await env.client.sessions.create("b")).session_id
        c = (await env.client.sessions.create("c")).session_id
        ended = await env.client.sessions.terminate(a)
        assert ended.status == SessionStatus.EXIT and ended.is_archived is False
        ended_archived = await env.client.sessions.terminate(b, archive=True)
        assert ended_archived.status == SessionStatus.EXIT and ended_archived.is_archived is True
        archived = await env.client.sessions.archive(c)
        assert isinstance(archived, Session) and archived.is_archived is True
        assert env.server.session(c)["is_archived"] is True
        terminates = [r for r in env.server.requests if r.endpoint == "terminate"]
        assert [r.method for r in terminates] == ["DELETE", "DELETE"]
        assert terminates[1].query_values("archive") == ["true"]
        assert terminates[0].query_values("archive") in ([], ["false"])


async def test_tags_endpoints_return_lists_of_str() -> None:
    async with fake() as env:
        sid = (await env.client.sessions.create("x", tags=["a"])).session_id
        assert await env.client.sessions.get_tags(sid) == ["a"]
        assert await env.client.sessions.add_tags(sid, ["b", "c"]) == ["a", "b", "c"]
        replaced = await env.client.sessions.replace_tags(sid, ["z"])
        assert replaced == ["z"] and all(type(t) is str for t in replaced)
        assert await env.client.sessions.get_tags(sid) == ["z"]


async def _drain(make: Callable[[], Any]) -> None:
    async for _ in make():
        pass


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get(""),
        lambda s: s.get("devin-1/../../other"),
        lambda s: s.get("devin 1"),
        lambda s: s.send_message("devin-1", ""),
        lambda s: s.terminate("../x"),
        lambda s: s.add_tags("devin-1", "not-a-list"),
        lambda s: s.replace_tags("devin-1", [f"t{i}" for i in range(51)]),
        lambda s: s.wait("devin-1", timeout=-1),
        lambda s: s.wait("devin-1", until="settled"),
        lambda s: _drain(lambda: s.poll("devin 1")),
        lambda s: _drain(lambda: s.list(page_size=0)),
        lambda s: _drain(lambda: s.messages("a/b")),
        lambda s: _drain(lambda: s.create_many([CreateSessionRequest("x")], concurrency=0)),
    ],
)
async def test_bad_arguments_are_value_errors_before_any_request(
    call: Callable[[Any], Coroutine[Any, Any, Any]]
) -> None:
    async with fake() as env:
        with pytest.raises(ValueError) as info:
            await call(env.client.sessions)
        assert not isinstance(info.value, DevinError)
        assert env.server.requests == []


# == models ==================================================================================


async def test_session_fields_and_types() -> None:
    async with fake() as env:
        sid = (await env.client.sessions.create("x")).session_id
        env.server.update(sid, pull_requests=[{"pr_url": "https://github.com/o/r/pull/9",
                                               "pr_state": "merged"}])
        env.server.set_status(sid, "running", "finished")
        s = await env.client.sessions.get(sid)
    assert set(DOC_FIELDS) <= set(attrs.fields_dict(Session))
    assert isinstance(s.status, SessionStatus) and s.status == SessionStatus.RUNNING
    assert isinstance(s.status_detail, StatusDetail)
    assert s.status_detail == StatusDetail("finished")
    assert type(s.created_at) is int and type(s.updated_at) is int
    assert s.created_at == env.server.session(sid)["created_at"]
    (pr,) = s.pull_requests
    assert isinstance(pr, PullRequest)
    assert (pr.pr_url, pr.pr_state) == ("https://github.com/o/r/pull/9", "merged")


def test_session_status_members() -> None:
    names = {"NEW", "CLAIMED", "RUNNING", "EXIT", "ERROR", "SUSPENDED", "RESUMING"}
    assert {m.name for m in SessionStatus} >= names
    for name in names:
        assert SessionStatus[name].value == name.lower()


def test_models_are_frozen_slotted_attrs_classes() -> None:
    session = Session(**{k: v for k, v in doc_session().items() if k not in (
        "status", "status_detail")}, status=SessionStatus.NEW)
    objects = [session, PullRequest("https://x/pull/1", "open"),
               Message("event-1", 1764288000, "hi", "user"),
               CreateSessionRequest("p"), BatchResult(0, CreateSessionRequest("p"), session, None),
               SessionEvent(session, None)]
    for obj in objects:
        assert attrs.has(type(obj))
        assert not hasattr(obj, "__dict__"), type(obj)  # slotted
        name = attrs.fields(type(obj))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(obj, name, getattr(obj, name))


def test_model_field_names_and_order() -> None:
    pr = PullRequest("https://x/pull/1", "open")
    assert (pr.pr_url, pr.pr_state) == ("https://x/pull/1", "open")
    m = Message("event-1", 1764288000, "hello", "devin")
    assert (m.event_id, m.created_at, m.message, m.source) == ("event-1", 1764288000, "hello",
                                                               "devin")
    req = CreateSessionRequest("p")
    r = BatchResult(3, req, None, ValueError("x"))
    assert (r.index, r.request, r.session) == (3, req, None) and isinstance(r.error, ValueError)
    assert [f.name for f in attrs.fields(SessionEvent)][:2] == ["session", "previous"]


async def test_unknown_response_fields_are_ignored_and_unknown_enums_kept() -> None:
    payload = doc_session("devin-1", status="hibernating", status_detail="pondering",
                          brand_new_field={"a": 1}, another=[1, 2])
    page = {"items": [payload], "end_cursor": None, "has_next_page": False, "total": 1,
            "new_page_field": True}
    messages = {"items": [{"event_id": "event-1", "created_at": 1764288000, "message": "hi",
                           "source": "devin", "reactions": ["+1"]}],
                "end_cursor": None, "has_next_page": False, "total": None, "extra": 1}
    with aioresponses() as mock:
        mock.get("https://api.devin.ai/v3beta1/organizations/org-x/sessions/devin-1",
                 payload=payload)
        mock.get(re.compile(r"https://api\.devin\.ai/v3beta1/organizations/org-x/sessions\?.*"),
                 payload=page)
        mock.get(re.compile(r".*/sessions/devin-1/messages.*"), payload=messages)
        async with DevinClient(SECRET, org_id="org-x") as client:
            s = await client.sessions.get("devin-1")
            (listed,) = [x async for x in client.sessions.list()]
            (message,) = [m async for m in client.sessions.messages("devin-1")]
    assert message == Message("event-1", 1764288000, "hi", "devin")
    for session in (s, listed):
        assert isinstance(session.status, SessionStatus)
        assert session.status.value == "hibernating"
        assert isinstance(session.status_detail, StatusDetail)
        assert session.status_detail.value == "pondering"
        assert not Session.is_terminal(session)
        assert not hasattr(session, "brand_new_field")


async def test_unknown_status_from_the_fake_server() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1, status="paused_for_review", status_detail="queued")
        s = await env.client.sessions.get(sid)
        assert s.status.value == "paused_for_review" and s.status_detail.value == "queued"


SETTLE_TABLE = [
    # status, status_detail, is_terminal, is_settled
    ("new", None, False, False),
    ("claimed", None, False, False),
    ("resuming", None, False, False),
    ("running", None, False, False),
    ("running", "working", False, False),
    ("running", "finished", False, True),
    ("running", "waiting_for_user", False, True),
    ("running", "waiting_for_approval", False, True),
    ("suspended", None, False, True),
    ("suspended", "inactivity", False, True),
    ("suspended", "user_request", False, True),
    ("exit", None, True, True),
    ("error", None, True, True),
    ("error", "error", True, True),
    ("hibernating", None, False, False),
]


async def test_is_terminal_and_is_settled_table() -> None:
    async with fake() as env:
        ids = env.server.add_sessions(
            len(SETTLE_TABLE), status=lambda i: SETTLE_TABLE[i][0],
            status_detail=lambda i: SETTLE_TABLE[i][1])
        got = {s.session_id: s async for s in env.client.sessions.list(session_ids=ids)}
    for sid, (status, detail, terminal, settled) in zip(ids, SETTLE_TABLE, strict=True):
        s = got[sid]
        assert (s.status.value, s.status_detail.value if s.status_detail else None) == (
            status, detail)
        assert Session.is_terminal(s) is terminal, (status, detail)
        assert Session.is_settled(s) is settled, (status, detail)


# == polling =================================================================================

SCRIPT = [("new", None, 0), ("claimed", None, 1), ("running", "working", 3),
          ("running", "working", 6), ("running", "finished", 10), ("suspended", "inactivity", 20),
          ("exit", None, 30)]


async def test_poll_yields_now_then_once_per_change_and_stops_after_until() -> None:
    async with fake() as env:
        env.server.script(SCRIPT)
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        seen = [s async for s in poller]
        assert states(seen) == [("new", None), ("claimed", None), ("running", "working"),
                                ("running", "finished")]
        gets = [r for r in env.server.requests if r.endpoint == "get"]
        assert len(gets) > len(seen)  # polled more often than it yielded: one yield per change
        with contextlib.suppress(StopAsyncIteration):
            await poller.__anext__()
            pytest.fail("poll went on after until was satisfied")
        assert len([r for r in env.server.requests if r.endpoint == "get"]) == len(gets)


async def test_poll_first_yield_is_the_session_as_it_is_now() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1, status="running", status_detail="waiting_for_user")
        assert states([s async for s in env.client.sessions.poll(sid, policy=FAST)]) == [
            ("running", "waiting_for_user")]
        (working,) = env.server.add_sessions(1, status="running", status_detail="working")
        first = await env.client.sessions.poll(working, policy=FAST).__anext__()
        assert states([first]) == [("running", "working")]
        assert len([r for r in env.server.requests if r.endpoint == "get"]) == 2


async def test_poll_until_is_terminal_and_lambdas() -> None:
    async with fake() as env:
        env.server.script(SCRIPT)
        a = (await env.client.sessions.create("a")).session_id
        seen = [s async for s in env.client.sessions.poll(a, until=Session.is_terminal,
                                                          policy=FAST)]
        assert states(seen) == [("new", None), ("claimed", None), ("running", "working"),
                                ("running", "finished"), ("suspended", "inactivity"),
                                ("exit", None)]
        env.server.script(SCRIPT)
        b = (await env.client.sessions.create("b")).session_id
        seen = [s async for s in env.client.sessions.poll(
            b, until=lambda s: s.status == SessionStatus.RUNNING, policy=FAST)]
        assert states(seen)[-1] == ("running", "working")


async def test_wait_returns_the_last_session() -> None:
    async with fake() as env:
        env.server.script(SCRIPT)
        sid = (await env.client.sessions.create("x")).session_id
        done = await env.client.sessions.wait(sid, policy=FAST)
        assert isinstance(done, Session) and states([done]) == [("running", "finished")]
        final = await env.client.sessions.wait(sid, until=Session.is_terminal, policy=FAST)
        assert final.status == SessionStatus.EXIT
        again = await env.client.sessions.wait(sid, until=Session.is_terminal)
        assert again.status == SessionStatus.EXIT  # already there: returns at once


async def test_wait_timeout_carries_last_session_and_leaves_the_session_alone() -> None:
    async with fake() as env:
        env.server.script([("running", "working", 0)])
        sid = (await env.client.sessions.create("x")).session_id
        with pytest.raises(WaitTimeoutError) as info:
            await env.client.sessions.wait(sid, policy=FAST, timeout=30)
        assert isinstance(info.value, DevinError)
        last = info.value.last_session
        assert isinstance(last, Session) and last.session_id == sid
        assert states([last]) == [("running", "working")]
        assert 30 <= env.clock.now - 1000 <= 31
        with pytest.raises(WaitTimeoutError):
            async for _ in env.client.sessions.poll(sid, policy=FAST, timeout=5):
                pass
        # An asyncio cancellation of the wait does not cancel the session either.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(env.client.sessions.wait(sid, policy=FAST), 0.05)
        assert env.server.session(sid)["status"] == "running"
        assert {r.endpoint for r in env.server.requests} == {"create", "get"}


async def test_wait_timeout_bounds_a_hanging_server_in_real_time() -> None:
    async with FakeDevinServer() as server, DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url
    ) as client:
        (sid,) = server.add_sessions(1, status="running", status_detail="working")
        server.inject("get", delay=3, times=None)
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.wait(sid, timeout=0.2)
        assert time.monotonic() - started < 1.0
        assert info.value.last_session is None  # nothing was read
        server.clear_faults()
        assert server.session(sid)["status"] == "running"


async def test_transient_errors_while_polling_do_not_end_it() -> None:
    async with fake() as env:
        env.server.script([("new", None, 0), ("running", "working", 5),
                           ("running", "finished", 12)])
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        seen = [await poller.__anext__()]
        for fault in (dict(status=429, retry_after=2), dict(status=503), dict(status=500),
                      dict(status=502), dict(status=504), dict(drop="before"),
                      dict(drop="after"), dict(status=429), dict(status=503, retry_after=1)):
            env.server.inject("get", **fault)
        seen += [s async for s in poller]
        assert states(seen) == [("new", None), ("running", "working"), ("running", "finished")]
        assert env.server.faults == []  # every fault was met (and ridden out)


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 507, 520])
async def test_every_5xx_while_polling_is_transient(status: int) -> None:
    async with fake() as env:
        env.server.script([("running", "working", 0), ("running", "finished", 5)])
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        await poller.__anext__()
        env.server.inject("get", status=status, times=6)
        assert states([s async for s in poller]) == [("running", "finished")]


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError),
                                               (403, PermissionDeniedError),
                                               (404, NotFoundError)])
async def test_401_403_404_end_polling_with_the_typed_error(status: int,
                                                             error: type[Exception]) -> None:
    async with fake() as env:
        env.server.script([("running", "working", 0), ("running", "finished", 50)])
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        await poller.__anext__()
        env.server.inject("get", status=status, times=None)
        with pytest.raises(error) as info:
            await poller.__anext__()
        assert info.value.status == status
        assert [r.status for r in env.server.requests].count(status) == 1  # not retried
        with pytest.raises(StopAsyncIteration):
            await poller.__anext__()


async def test_real_404_and_401_end_wait() -> None:
    async with fake() as env:
        with pytest.raises(NotFoundError):
            await env.client.sessions.wait("devin-doesnotexist", policy=FAST)
        assert len(env.server.requests) == 1
        sid = (await env.client.sessions.create("x")).session_id
        env.server.revoke_token(env.server.api_key)
        with pytest.raises(AuthenticationError):
            await env.client.sessions.wait(sid, policy=FAST)


async def test_poll_intervals_come_from_the_policy() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1, status="running", status_detail="working")
        policy = PollPolicy(initial=1, max=4, multiplier=2, jitter=0)
        with pytest.raises(WaitTimeoutError):
            await env.client.sessions.wait(sid, policy=policy, timeout=15)
        assert env.clock.sleeps[:4] == [1, 2, 4, 4]
        assert max(env.clock.sleeps) <= 4
        env.clock.sleeps.clear()
        jittery = PollPolicy(initial=2, max=2, multiplier=1, jitter=0.5)
        with pytest.raises(WaitTimeoutError):
            await env.client.sessions.wait(sid, policy=jittery, timeout=100)
        body = env.clock.sleeps[:-1]
        assert len(body) > 10 and all(1 <= s <= 3 for s in body) and len(set(body)) > 1


async def test_the_default_poll_policy_is_used_without_one() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1, status="running", status_detail="working")
        with pytest.raises(WaitTimeoutError):
            await env.client.sessions.wait(sid, timeout=300)
        body = env.clock.sleeps[:-1]
        assert 0.9 <= body[0] <= 1.1  # README: starts at 1 s, backs off x1.5 to 30 s
        assert 1.35 <= body[1] <= 1.65
        assert max(body) <= 33 and max(body) >= 27


async def test_a_timeout_while_polling_is_transient() -> None:
    async with fake(timeouts=Timeouts(connect=1, read=0.05, total=0.1)) as env:
        env.server.script([("running", "working", 0), ("running", "finished", 3)])
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        await poller.__anext__()
        env.server.inject("get", delay=0.3, times=2)
        assert states([s async for s in poller]) == [("running", "finished")]


async def test_a_retry_after_is_honoured_on_every_poll_response() -> None:
    async with fake() as env:
        env.server.script([("new", None, 0), ("running", "working", 2),
                           ("running", "finished", 14)])
        sid = (await env.client.sessions.create("x")).session_id
        env.server.inject("get", retry_after=4, times=None)  # a hint on every 200
        seen = [s async for s in env.client.sessions.poll(sid, policy=FAST)]
        assert states(seen)[-1] == ("running", "finished")
        positive = [s for s in env.clock.sleeps if s > 0]
        assert len(positive) >= 3
        assert all(s >= 4 for s in positive), positive


async def test_a_retry_after_on_a_429_while_polling_is_honoured() -> None:
    async with fake() as env:
        env.server.script([("running", "working", 0), ("running", "finished", 3)])
        sid = (await env.client.sessions.create("x")).session_id
        poller = env.client.sessions.poll(sid, policy=FAST)
        await poller.__anext__()
        env.server.inject("get", status=429, retry_after=9)
        assert states([s async for s in poller]) == [("running", "finished")]
        assert max(env.clock.sleeps) >= 9


# == watch ===================================================================================


async def test_watch_reports_every_change_across_sessions_from_the_list_endpoint() -> None:
    scripts = {
        0: [("new", None, 0), ("running", "working", 2), ("running", "finished", 6)],
        1: [("claimed", None, 0), ("running", "working", 4), ("running", "waiting_for_user", 9)],
        2: [("running", "working", 0), ("error", None, 5)],
    }
    async with fake() as env:
        ids = env.server.add_sessions(3)
        for i, steps in scripts.items():
            env.server.script(steps, session_id=ids[i])
        env.server.clear_requests()
        watcher = env.client.watch(ids, policy=FAST)
        assert isinstance(watcher, Watcher)
        events: list[SessionEvent] = []
        async with asyncio.timeout(5):
            async for event in watcher:
                events.append(event)
        assert all(isinstance(e, SessionEvent) for e in events)
        for i, sid in enumerate(ids):
            mine = [e for e in events if e.session.session_id == sid]
            assert states([e.session for e in mine]) == [(s, d) for s, d, _ in scripts[i]]
            assert mine[0].previous is None
            for before, after in itertools.pairwise(mine):
                assert after.previous is not None
                assert after.previous.session_id == sid
                assert states([after.previous]) == states([before.session])
        reads = env.server.requests
        assert reads and all(r.endpoint == "list" for r in reads)  # never one GET per session
        assert all(ids_in(r) == set(ids) for r in reads)


async def test_watch_add_and_remove_while_running() -> None:
    async with fake() as env:
        a, b, c = env.server.add_sessions(3)
        env.server.script([("running", "working", 0), ("running", "finished", 8)], session_id=a)
        env.server.script([("running", "working", 0)], session_id=b)  # never settles
        env.server.script([("running", "working", 0), ("running", "waiting_for_user", 4)],
                          session_id=c)
        watcher = env.client.watch([a, b], policy=FAST)
        events: list[SessionEvent] = []
        mark = 0
        async with asyncio.timeout(5):
            async for event in watcher:
                events.append(event)
                if len(events) == 1:
                    watcher.remove(b)
                    watcher.add(c)
                    mark = len(env.server.requests)
        by_id: dict[str, list[Any]] = {}
        for e in events:
            by_id.setdefault(e.session.session_id, []).append(e.session)
        assert states(by_id[a]) == [("running", "working"), ("running", "finished")]
        assert states(by_id[c]) == [("running", "working"), ("running", "waiting_for_user")]
        assert len(by_id.get(b, [])) <= 1
        later = env.server.requests[mark:]
        assert later and all(b not in ids_in(r) for r in later)
        assert any(c in ids_in(r) for r in later)


async def test_watch_until_and_close() -> None:
    async with fake() as env:
        a, b = env.server.add_sessions(2)
        env.server.script([("running", "finished", 0), ("exit", None, 5)], session_id=a)
        env.server.script([("running", "waiting_for_user", 0), ("error", None, 3)],
                          session_id=b)
        events = [e async for e in env.client.watch([a, b], until=Session.is_terminal,
                                                     policy=FAST)]
        last = {e.session.session_id: e.session.status for e in events}
        assert last == {a: SessionStatus.EXIT, b: SessionStatus.ERROR}
        (forever,) = env.server.add_sessions(1, status="running", status_detail="working")
        watcher = env.client.watch([forever], policy=FAST)
        first = await watcher.__anext__()
        assert first.session.session_id == forever
        await watcher.aclose()
        with pytest.raises(StopAsyncIteration):
            await watcher.__anext__()


async def test_watch_intervals_come_from_the_policy() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1, status="running", status_detail="working")
        policy = PollPolicy(initial=1, max=4, multiplier=2, jitter=0)
        watcher = env.client.watch([sid], policy=policy)
        await watcher.__anext__()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.1):
                await watcher.__anext__()  # nothing changes: it polls on, backing off
        await watcher.aclose()
        assert env.clock.sleeps[:4] == [1, 2, 4, 4]
        assert max(env.clock.sleeps) <= 4
        assert all(r.endpoint == "list" for r in env.server.requests)


async def test_watching_many_sessions_reads_many_per_request() -> None:
    async with fake() as env:
        ids = env.server.add_sessions(450, status="running", status_detail="finished")
        events = [e async for e in env.client.watch(ids, policy=FAST)]
        assert sorted(e.session.session_id for e in events) == sorted(ids)
        assert all(e.previous is None for e in events)
        reads = env.server.requests
        assert all(r.endpoint == "list" for r in reads)
        assert len(reads) <= 3  # README: up to 200 sessions per request


# == create_many =============================================================================


def _tracer() -> tuple[aiohttp.TraceConfig, dict[str, Any]]:
    stats: dict[str, Any] = {"inflight": 0, "max": 0, "starts": [], "ends": []}
    trace = aiohttp.TraceConfig()

    async def start(_s: Any, _ctx: Any, params: Any) -> None:
        if params.method == "POST":
            stats["inflight"] += 1
            stats["max"] = max(stats["max"], stats["inflight"])
            stats["starts"].append(time.monotonic())

    async def end(_s: Any, _ctx: Any, params: Any) -> None:
        if params.method == "POST":
            stats["inflight"] -= 1
            stats["ends"].append((time.monotonic(), params.response.status))

    async def failed(_s: Any, _ctx: Any, params: Any) -> None:
        if params.method == "POST":
            stats["inflight"] -= 1
            stats["ends"].append((time.monotonic(), None))

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace, stats


@pytest.mark.parametrize(("n", "concurrency"), [(12, 3), (20, None), (3, 8)])
async def test_create_many_runs_at_most_concurrency_at_once(n: int,
                                                           concurrency: int | None) -> None:
    trace, stats = _tracer()
    async with FakeDevinServer() as server, aiohttp.ClientSession(trace_configs=[trace]) as http:
        server.inject("create", delay=0.04, times=None)
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               session=http) as client:
            requests = [CreateSessionRequest(f"p{i}") for i in range(n)]
            kw = {} if concurrency is None else {"concurrency": concurrency}
            results = [r async for r in client.sessions.create_many(requests, **kw)]
        limit = 8 if concurrency is None else concurrency
        assert stats["max"] == min(limit, n)
        assert len(results) == n and all(r.error is None for r in results)
        assert server.session_count == n


async def test_a_429_pauses_every_create_many_worker() -> None:
    trace, stats = _tracer()
    async with FakeDevinServer() as server, aiohttp.ClientSession(trace_configs=[trace]) as http:
        server.inject("create", status=429, retry_after=1)
        server.inject("create", delay=0.05, times=None)
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               session=http) as client:
            requests = [CreateSessionRequest(f"p{i}") for i in range(8)]
            results = [r async for r in client.sessions.create_many(requests, concurrency=4)]
        assert all(r.error is None for r in results) and server.session_count == 8
        (throttled_at,) = [t for t, status in stats["ends"] if status == 429]
        later = [t for t in stats["starts"] if t > throttled_at + 0.02]
        assert later  # the retry and the rest
        assert all(t >= throttled_at + 0.95 for t in later), [t - throttled_at for t in later]


@pytest.mark.parametrize("fault", [dict(drop="after"), dict(malformed="truncated"),
                                   dict(status=500), dict(status=502), dict(status=504),
                                   dict(drop="before"), dict(status=503), dict(status=429)])
async def test_one_create_never_makes_two_sessions(fault: dict[str, Any]) -> None:
    async with fake() as env:
        env.server.inject("create", **fault)
        session = await env.client.sessions.create("exactly once", tags=["t"])
        assert env.server.session_count == 1
        (stored,) = env.server.sessions.values()
        assert stored["session_id"] == session.session_id and session.tags == ["t"]


async def test_create_many_never_creates_twice() -> None:
    async with fake() as env:
        env.server.inject("create", drop="after", times=3)
        env.server.inject("create", malformed="html", times=1)
        requests = [CreateSessionRequest(f"prompt {i}") for i in range(8)]
        results = [r async for r in env.client.sessions.create_many(requests, concurrency=3)]
        assert sorted(r.index for r in results) == list(range(8))
        assert all(r.error is None and r.session is not None for r in results)
        assert env.server.session_count == 8
        assert len({r.session.session_id for r in results if r.session}) == 8
        for r in results:
            assert r.session is not None
            body = env.server.create_request(r.session.session_id)
            assert body["prompt"] == requests[r.index].prompt
            assert r.request is requests[r.index]


async def test_create_many_without_tokens_still_never_duplicates() -> None:
    async with fake(client_tokens=False) as env:
        env.server.inject("create", drop="after")
        results = [r async for r in env.client.sessions.create_many(
            [CreateSessionRequest("only")])]
        assert env.server.session_count == 1
        (result,) = results
        assert result.session is not None or isinstance(result.error, DevinError)


async def test_create_many_reports_each_request_and_one_failure_hides_nothing() -> None:
    async with fake() as env:
        limited = env.server.add_token(permissions=["ManageOrgSessions", "ViewOrgSessions"])
        requests = [
            CreateSessionRequest("fine"),
            CreateSessionRequest("expert", advanced_mode="create"),  # 403 for this token
            CreateSessionRequest(""),  # ValueError, nothing sent
            CreateSessionRequest("acu", max_acu_limit=0),  # ValueError, nothing sent
            CreateSessionRequest("also fine", tags=["x"]),
            CreateSessionRequest("server refuses", extra={"platform": 5}),  # 422
        ]
        async with DevinClient(limited, org_id=env.server.org_id, base_url=env.server.url,
                               clock=env.clock, sleep=env.clock.sleep) as client:
            results = [r async for r in client.sessions.create_many(requests, concurrency=2)]
        assert all(isinstance(r, BatchResult) for r in results)
        by_index = {r.index: r for r in results}
        assert sorted(by_index) == list(range(len(requests)))
        for i, r in by_index.items():
            assert r.request is requests[i]
            assert (r.session is None) != (r.error is None)
        assert isinstance(by_index[1].error, PermissionDeniedError)
        assert isinstance(by_index[2].error, ValueError)
        assert "prompt" in str(by_index[2].error)
        assert isinstance(by_index[3].error, ValueError)
        assert "max_acu_limit" in str(by_index[3].error)
        assert isinstance(by_index[5].error, UnprocessableEntityError)
        assert by_index[4].session is not None and by_index[4].session.tags == ["x"]
        assert env.server.session_count == 2
        assert len([r for r in env.server.requests if r.endpoint == "create"]) == 4


async def test_create_many_yields_in_completion_order() -> None:
    async with FakeDevinServer() as server, DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url
    ) as client:
        server.inject("create", delay=0.3)  # the first create to arrive is slow
        requests = [CreateSessionRequest(f"p{i}") for i in range(5)]
        order = [r.index async for r in client.sessions.create_many(requests, concurrency=2)]
        assert sorted(order) == list(range(5))
        assert order != sorted(order)
        assert order[-1] in (0, 1)


# == errors ==================================================================================


def test_error_tree() -> None:
    pairs = [
        (APIConnectionError, DevinError), (APITimeoutError, APIConnectionError),
        (APIStatusError, DevinError), (BadRequestError, APIStatusError),
        (AuthenticationError, APIStatusError), (PermissionDeniedError, APIStatusError),
        (NotFoundError, APIStatusError), (ConflictError, APIStatusError),
        (UnprocessableEntityError, APIStatusError), (RateLimitError, APIStatusError),
        (InternalServerError, APIStatusError), (WaitTimeoutError, DevinError),
        (MalformedResponseError, DevinError), (DevinError, Exception),
    ]
    for sub, parent in pairs:
        assert issubclass(sub, parent), (sub, parent)
    assert not issubclass(APIStatusError, APIConnectionError)
    assert not issubclass(APIConnectionError, APIStatusError)
    assert not issubclass(WaitTimeoutError, APIStatusError)
    assert not issubclass(MalformedResponseError, APIStatusError)
    assert not issubclass(ValueError, DevinError) and not issubclass(DevinError, ValueError)


@pytest.mark.parametrize(("status", "error"), [
    (400, BadRequestError), (401, AuthenticationError), (403, PermissionDeniedError),
    (404, NotFoundError), (409, ConflictError), (422, UnprocessableEntityError),
    (429, RateLimitError), (500, InternalServerError), (501, InternalServerError),
    (502, InternalServerError), (503, InternalServerError), (504, InternalServerError),
    (507, InternalServerError),
])
async def test_status_errors_are_typed_and_carry_their_attributes(status: int,
                                                                  error: type[Any]) -> None:
    async with fake(retry=NO_RETRY) as env:
        (sid,) = env.server.add_sessions(1)
        env.server.inject("get", status=status)
        with pytest.raises(error) as info:
            await env.client.sessions.get(sid)
        exc = info.value
        assert type(exc) is error
        answered = env.server.requests[-1]
        assert exc.status == status
        assert isinstance(exc.detail, str) and exc.detail
        assert exc.body == {"detail": exc.detail}
        assert exc.request_id == answered.request_id
        assert exc.retry_after is None
        assert str(status) in str(exc)


async def test_retry_after_attribute() -> None:
    async with fake(retry=NO_RETRY) as env:
        (sid,) = env.server.add_sessions(1)
        env.server.inject("get", status=429, retry_after=7)
        with pytest.raises(RateLimitError) as info:
            await env.client.sessions.get(sid)
        assert info.value.retry_after == 7.0
        env.server.inject("get", status=503, retry_after=2)
        with pytest.raises(InternalServerError) as other:
            await env.client.sessions.get(sid)
        assert other.value.retry_after == 2.0


async def test_retry_after_is_honoured_by_retries() -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1)
        env.server.inject("get", status=429, retry_after=7)
        env.server.inject("get", status=503, retry_after=3)
        assert (await env.client.sessions.get(sid)).session_id == sid
        assert [round(s, 3) for s in env.clock.sleeps if s > 0][:2] == [7, 3]


async def test_a_retry_after_http_date_is_honoured() -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    async with fake() as env:
        (sid,) = env.server.add_sessions(1)
        env.server.inject("get", status=503, retry_after=email.utils.format_datetime(
            when, usegmt=True))
        assert (await env.client.sessions.get(sid)).session_id == sid
        (waited,) = [s for s in env.clock.sleeps if s > 0]
        assert 4 <= waited <= 6.5


async def test_a_server_422_has_errors_list_and_detail_string() -> None:
    async with fake() as env:
        with pytest.raises(UnprocessableEntityError) as info:
            await env.client.sessions.create("x", extra_body={"platform": 5})
        exc = info.value
        assert exc.status == 422
        assert isinstance(exc.errors, list) and len(exc.errors) == 1
        assert all(isinstance(e, dict) for e in exc.errors)
        assert exc.errors == exc.body["detail"]
        assert {tuple(e["loc"]) for e in exc.errors} == {("body", "platform")}
        assert isinstance(exc.detail, str)
        for e in exc.errors:
            assert e["msg"] in exc.detail
        assert env.server.session_count == 0


async def test_422_string_detail_and_non_json_error_bodies_on_the_wire() -> None:
    base = "https://api.devin.ai/v3beta1/organizations/org-x/sessions"
    errors = [{"type": "missing", "loc": ["body", "prompt"], "msg": "Field required",
               "input": {}},
              {"type": "int_type", "loc": ["body", "max_acu_limit"],
               "msg": "Input should be a valid integer", "input": "x"}]
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with aioresponses() as mock:
        mock.get(f"{base}/devin-1", status=422, payload={"detail": errors},
                 headers={"x-request-id": "req-abc"})
        mock.get(f"{base}/devin-2", status=502, body=html, content_type="text/html")
        mock.get(f"{base}/devin-3", status=404, payload={"detail": "Session devin-3 not found"})
        async with DevinClient(SECRET, org_id="org-x", retry=NO_RETRY) as client:
            with pytest.raises(UnprocessableEntityError) as e422:
                await client.sessions.get("devin-1")
            with pytest.raises(InternalServerError) as e502:
                await client.sessions.get("devin-2")
            with pytest.raises(NotFoundError) as e404:
                await client.sessions.get("devin-3")
    assert e422.value.errors == errors
    assert "Field required" in e422.value.detail
    assert "Input should be a valid integer" in e422.value.detail
    assert e422.value.request_id == "req-abc"
    assert e502.value.body == html and isinstance(e502.value.detail, str)
    assert e502.value.detail
    assert e404.value.detail == "Session devin-3 not found"
    assert e404.value.body == {"detail": "Session devin-3 not found"}


async def test_real_server_errors_are_typed() -> None:
    async with fake() as env:
        with pytest.raises(NotFoundError) as nf:
            await env.client.sessions.get("devin-nope")
        assert "devin-nope" in nf.value.detail
        sid = (await env.client.sessions.create("x")).session_id
        await env.client.sessions.terminate(sid)
        with pytest.raises(ConflictError) as conflict:
            await env.client.sessions.send_message(sid, "are you there?")
        assert conflict.value.status == 409 and isinstance(conflict.value.detail, str)
        viewer = env.server.add_token(permissions=["ViewOrgSessions"])
        async with DevinClient(viewer, org_id=env.server.org_id, base_url=env.server.url) as c:
            assert (await c.sessions.get(sid)).session_id == sid
            with pytest.raises(PermissionDeniedError):
                await c.sessions.create("not allowed")
        async with DevinClient("cog_notarealkey000000000000", org_id=env.server.org_id,
                               base_url=env.server.url) as c:
            with pytest.raises(AuthenticationError):
                await c.sessions.get(sid)


@pytest.mark.parametrize("kind", ["non_json", "html", "empty", "truncated"])
async def test_a_2xx_that_is_not_json_is_a_malformed_response(kind: str) -> None:
    async with fake() as env:
        (sid,) = env.server.add_sessions(1)
        env.server.inject("get", malformed=kind, times=None)
        with pytest.raises(MalformedResponseError):
            await env.client.sessions.get(sid)


async def test_a_2xx_of_the_wrong_shape_is_a_malformed_response() -> None:
    base = "https://api.devin.ai/v3beta1/organizations/org-x/sessions"
    with aioresponses() as mock:
        mock.get(f"{base}/devin-1", status=200, body="definitely not json",
                 content_type="application/json")
        mock.get(f"{base}/devin-2", status=200, payload=[1, 2, 3])
        mock.get(f"{base}/devin-3", status=200, payload={"session_id": "devin-3"})
        async with DevinClient(SECRET, org_id="org-x") as client:
            for sid in ("devin-1", "devin-2", "devin-3"):
                with pytest.raises(MalformedResponseError):
                    await client.sessions.get(sid)


async def test_network_failures_are_connection_errors() -> None:
    async with FakeDevinServer() as server:
        (sid,) = server.add_sessions(1)
        server.inject("get", delay=0.5)
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               retry=NO_RETRY,
                               timeouts=Timeouts(connect=1, read=0.1, total=0.2)) as client:
            with pytest.raises(APITimeoutError) as timeout:
                await client.sessions.get(sid)
            assert isinstance(timeout.value, APIConnectionError)
        # (aiohttp itself resends an idempotent request once after a reset: drop them all.)
        server.inject("get", drop="before", times=None)
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               retry=NO_RETRY) as client:
            with pytest.raises(APIConnectionError):
                await client.sessions.get(sid)
            server.clear_faults()
            server.inject("send_message", drop="before")
            with pytest.raises(APIConnectionError):
                await client.sessions.send_message(sid, "hello?")
        await server.stop_listening()
        async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                               retry=NO_RETRY) as client:
            with pytest.raises(APIConnectionError) as refused:
                await client.sessions.get(sid)
            assert not isinstance(refused.value, APIStatusError)
    async with DevinClient(SECRET, org_id="org-x", base_url="https://devin.invalid",
                           retry=NO_RETRY, timeouts=Timeouts(connect=1, read=1, total=1)) as c:
        with pytest.raises(APIConnectionError):  # DNS
            await c.sessions.get("devin-1")


# == command line ============================================================================


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedServer]:
    with ThreadedServer(time_scale=50.0) as threaded:
        monkeypatch.setenv("DEVIN_API_KEY", threaded.server.api_key)
        monkeypatch.setenv("DEVIN_ORG_ID", threaded.server.org_id)
        monkeypatch.setenv("DEVIN_BASE_URL", threaded.server.url)
        yield threaded


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any], str]:
    code = cli.main([*argv, "--json"])
    out = capsys.readouterr()
    assert "\x1b" not in out.out
    return code, [json.loads(line) for line in out.out.splitlines() if line.strip()], out.err


def test_cli_create_get_list(remote: ThreadedServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "create", "Fix the flaky test", "--tag", "ci", "--title", "t")
    assert code == 0
    (created,) = out
    sid = created["session_id"]
    assert created["tags"] == ["ci"] and created["title"] == "t"
    body = remote.do(remote.server.create_request, sid)
    assert body["prompt"] == "Fix the flaky test"
    code, out, _ = run_cli(capsys, "get", sid)
    assert code == 0 and out[0]["session_id"] == sid and out[0]["status"] in (
        "new", "claimed", "running")
    remote.do(remote.server.add_sessions, 3, tags=["other"])
    code, out, _ = run_cli(capsys, "list", "--tag", "ci")
    assert code == 0 and [s["session_id"] for s in out] == [sid]
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and len(out) == 4


def test_cli_message_and_terminate(remote: ThreadedServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = remote.do(remote.server.add_sessions, 1, status="running",
                       status_detail="waiting_for_user")
    code, out, _ = run_cli(capsys, "message", sid, "please add tests")
    assert code == 0 and out[0]["session_id"] == sid
    messages = remote.do(remote.server.messages, sid)
    assert messages[-1]["message"] == "please add tests"
    code, out, _ = run_cli(capsys, "terminate", sid, "--archive")
    assert code == 0 and out[0]["status"] == "exit" and out[0]["is_archived"] is True


def test_cli_wait(remote: ThreadedServer, capsys: pytest.CaptureFixture[str]) -> None:
    remote.do(remote.server.script, [("running", "working", 0), ("running", "finished", 1),
                                     ("exit", None, 2)])
    _, (created,), _ = run_cli(capsys, "create", "x")
    sid = created["session_id"]
    code, out, _ = run_cli(capsys, "wait", sid, "--until", "terminal", "--poll-interval", "0.01")
    assert code == 0 and out[-1]["session_id"] == sid and out[-1]["status"] == "exit"
    (failed,) = remote.do(remote.server.add_sessions, 1, status="error")
    code, out, _ = run_cli(capsys, "wait", failed)
    assert code == 4 and out[-1]["status"] == "error"
    (busy,) = remote.do(remote.server.add_sessions, 1, status="running", status_detail="working")
    code, out, err = run_cli(capsys, "wait", busy, "--timeout", "0.2", "--poll-interval", "0.05")
    assert code == 5 and "timeout" in err.lower()


def test_cli_watch(remote: ThreadedServer, capsys: pytest.CaptureFixture[str]) -> None:
    ids = remote.do(remote.server.add_sessions, 2, status="running",
                    status_detail="waiting_for_user")
    code, out, _ = run_cli(capsys, "watch", *ids)
    assert code == 0
    assert {e["session"]["session_id"] for e in out} == set(ids)


def test_cli_create_many(remote: ThreadedServer, capsys: pytest.CaptureFixture[str],
                         tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "tags": ["batch"]}) + "\n"
                            for i in range(4)))
    code, out, _ = run_cli(capsys, "create-many", str(path), "--concurrency", "2")
    assert code == 0 and len(out) == 4
    assert remote.do(lambda: remote.server.session_count) == 4
    path.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": ""}) + "\n")
    code, out, _ = run_cli(capsys, "create-many", str(path))  # a bad line: nothing is sent
    assert code != 0 and [r["ok"] for r in out] == [False]
    assert remote.do(lambda: remote.server.session_count) == 4
    code, out, _ = run_cli(capsys, "create-many", str(path), "--keep-going")
    assert code != 0 and len(out) == 2
    assert remote.do(lambda: remote.server.session_count) == 5


def test_cli_errors_and_exit_codes(remote: ThreadedServer, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli(capsys, "get", "devin-doesnotexist")
    assert code == 3 and out == [] and "404" in err
    code, _, err = run_cli(capsys, "create", "   ")
    assert code == 2 and "prompt" in err
    monkeypatch.setenv("DEVIN_API_KEY", SECRET)
    code, _, err = run_cli(capsys, "get", "devin-doesnotexist")
    assert code == 3 and SECRET not in err
    assert all(piece not in err for piece in secret_fragments(SECRET))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_draws_a_live_table_on_a_terminal(remote: ThreadedServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    ids = remote.do(remote.server.add_sessions, 2, status="running", status_detail="finished")
    for argv in (["watch", *ids], ["wait", ids[0]]):
        terminal = _Terminal()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", terminal)
            assert cli.main(argv) == 0
        text = terminal.getvalue()
        assert "\x1b[" in text, argv  # redrawn in place
        assert ids[0] in text


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("create", "get", "list", "watch", "wait", "message", "terminate",
                    "create-many", "demo", "serve-fake"):
        assert command in out
    result = subprocess.run([sys.executable, "-m", "devin_async", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "create-many" in result.stdout


def test_cli_demo_runs_against_the_in_process_fake(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVIN_API_KEY", "DEVIN_ORG_ID", "DEVIN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["demo", "--sessions", "3", "--time-scale", "200", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines


def test_cli_serve_fake_serves_other_programs() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "devin_async", "serve-fake", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        found = dict(re.findall(r"(DEVIN_\w+)=(\S+)", proc.stdout.readline()))
        assert found["DEVIN_BASE_URL"] == f"http://127.0.0.1:{port}"
        request = urllib.request.Request(
            f"{found['DEVIN_BASE_URL']}/v3/organizations/{found['DEVIN_ORG_ID']}/sessions",
            data=json.dumps({"prompt": "from another program"}).encode(), method="POST",
            headers={"Authorization": f"Bearer {found['DEVIN_API_KEY']}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["status"] == "new"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# == the fake server =========================================================================


@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_the_sdk_works_on_both_api_versions(version: str) -> None:
    async with fake(api_version=version) as env:
        s = await env.client.sessions.create("x", tags=["a"])
        await env.client.sessions.get(s.session_id)
        assert [x.session_id async for x in env.client.sessions.list()] == [s.session_id]
        env.server.set_status(s.session_id, "running", "waiting_for_user")
        await env.client.sessions.send_message(s.session_id, "hi")
        assert [m.message async for m in env.client.sessions.messages(s.session_id)]
        await env.client.sessions.add_tags(s.session_id, ["b"])
        await env.client.sessions.replace_tags(s.session_id, ["c"])
        assert await env.client.sessions.get_tags(s.session_id) == ["c"]
        await env.client.sessions.archive(s.session_id)
        await env.client.sessions.terminate(s.session_id)
        prefix = f"/{version}/organizations/{env.server.org_id}/sessions"
        # 11: replace_tags reads the tags first, to keep the client token tag.
        assert len(env.server.requests) == 11
        assert all(r.path.startswith(prefix) and r.status == 200 for r in env.server.requests)


async def test_fake_server_serves_the_same_json_under_both_paths() -> None:
    async with FakeDevinServer() as server:
        (sid,) = server.add_sessions(1, status="running", status_detail="finished")
        _, _, beta = await raw(server, "GET", f"/{sid}")
        _, _, v3 = await raw(server, "GET", f"/{sid}", version="v3")
        assert beta == v3 == server.session(sid)
        assert set(DOC_FIELDS) <= set(beta)
        status, _, body = await raw(server, "GET", "/devin-unknown", version="v3")
        assert status == 404 and isinstance(body["detail"], str)


async def test_fake_server_lifecycle_runs_on_a_scaled_clock() -> None:
    manual = FakeClock(0.0)
    async with FakeDevinServer(time_scale=10, clock=manual) as server, DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url
    ) as client:
        sid = (await client.sessions.create("x")).session_id

        async def now() -> tuple[str, str | None]:
            return states([await client.sessions.get(sid)])[0]

        assert await now() == ("new", None)
        manual.now += 0.15  # 1.5 server seconds
        assert await now() == ("claimed", None)
        manual.now += 0.2  # 3.5
        assert await now() == ("running", "working")
        manual.now += 3.65  # 40
        assert await now() in (("running", "finished"), ("running", "waiting_for_user"))
        manual.now += 6  # 100
        assert await now() == ("suspended", "inactivity")
        await client.sessions.send_message(sid, "wake up")
        assert (await now())[0] == "resuming"
        server.advance(2)  # server seconds, directly
        assert await now() == ("running", "working")


async def test_fake_server_scripts_statuses() -> None:
    manual = FakeClock(0.0)
    async with FakeDevinServer(clock=manual) as server:
        server.script([("new", None, 0), ("running", "working", 5), ("error", None, 9)])
        _, _, created = await raw(server, "POST", "", json={"prompt": "x"})
        sid = created["session_id"]
        seen = []
        for t in (0, 5, 9, 100):
            manual.now = t
            seen.append(server.session(sid)["status"])
        assert seen == ["new", "running", "error", "error"]


async def test_fake_server_faults_on_demand() -> None:
    async with FakeDevinServer() as server:
        (sid,) = server.add_sessions(1)
        server.inject("get", status=503, retry_after=2)
        status, headers, body = await raw(server, "GET", f"/{sid}")
        assert status == 503 and headers["Retry-After"] == "2"
        assert isinstance(body["detail"], str)
        server.inject("get", status=500)
        status, headers, body = await raw(server, "GET", f"/{sid}")
        assert status == 500 and "Retry-After" not in headers and "detail" in body
        server.inject("create", drop="before")
        with pytest.raises(aiohttp.ClientError):
            await raw(server, "POST", "", json={"prompt": "lost"})
        assert server.session_count == 1  # nothing happened
        server.inject("create", drop="after")
        with pytest.raises(aiohttp.ClientError):
            await raw(server, "POST", "", json={"prompt": "acted"})
        assert server.session_count == 2  # the create happened, the answer was lost
        server.inject("get", delay=0.15)
        started = time.monotonic()
        status, _, _ = await raw(server, "GET", f"/{sid}")
        assert status == 200 and time.monotonic() - started >= 0.15
        server.inject("get", malformed="non_json")
        status, _, body = await raw(server, "GET", f"/{sid}")
        assert status == 200 and isinstance(body, str)
        status, _, body = await raw(server, "GET", f"/{sid}")
        assert status == 200 and body["session_id"] == sid  # a fault is used up


async def test_fake_server_rate_limits_per_token() -> None:
    manual = FakeClock(0.0)
    async with FakeDevinServer(clock=manual, rate_limit=2) as server:
        other = server.add_token()
        codes = [(await raw(server, "GET", ""))[0] for _ in range(3)]
        assert codes == [200, 200, 429]
        status, headers, body = await raw(server, "GET", "")
        assert status == 429 and int(headers["Retry-After"]) >= 1 and "detail" in body
        assert (await raw(server, "GET", "", token=other))[0] == 200  # per token
        manual.now += 1
        assert (await raw(server, "GET", ""))[0] == 200


async def test_the_sdk_rides_out_the_fake_rate_limit() -> None:
    clock = FakeClock()
    async with FakeDevinServer(clock=clock, rate_limit=1) as server, DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url, clock=clock,
        sleep=clock.sleep
    ) as client:
        (sid,) = server.add_sessions(1)
        for _ in range(5):
            await client.sessions.get(sid)
        assert server.stats.get("rate_limited", 0) >= 1
        assert sum(clock.sleeps) >= 3


async def test_fake_server_permissions_per_token() -> None:
    async with fake() as env:
        plain = env.server.add_token(permissions=["ManageOrgSessions", "ViewOrgSessions"])
        async with DevinClient(plain, org_id=env.server.org_id, base_url=env.server.url) as c:
            assert (await c.sessions.create("plain")).session_id
            with pytest.raises(PermissionDeniedError):
                await c.sessions.create("expert", advanced_mode="create")
            with pytest.raises(PermissionDeniedError):
                await c.sessions.create("as someone", create_as_user_id="user-1")
        await env.client.sessions.create("expert", advanced_mode="create")
        await env.client.sessions.create("as someone", create_as_user_id="user-1")
        assert env.server.session_count == 3


async def test_fake_server_422_is_shaped_like_fastapi() -> None:
    async with FakeDevinServer() as server:
        status, _, body = await raw(server, "POST", "",
                                    json={"prompt": "", "max_acu_limit": -1, "tags": "x"})
        assert status == 422
        detail = body["detail"]
        assert isinstance(detail, list) and len(detail) == 3
        for error in detail:
            assert {"type", "loc", "msg", "input"} <= set(error)
            assert error["loc"][0] == "body" and isinstance(error["msg"], str)
        assert {error["loc"][1] for error in detail} == {"prompt", "max_acu_limit", "tags"}
        status, _, body = await raw(server, "POST", "", json={})
        assert status == 422 and body["detail"][0]["loc"] == ["body", "prompt"]
        assert server.session_count == 0
