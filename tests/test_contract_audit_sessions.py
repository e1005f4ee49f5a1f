"""Audit of CONTRACT.md "Sessions" (create, reads, actions, tags) and "Models", called as a user.

Public imports only: the in-process fake server for behaviour, `MockTransport` for exact bytes.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from devin_async import (
    CreateSessionRequest,
    DevinClient,
    HTTPResponse,
    Message,
    PollPolicy,
    PullRequest,
    Session,
    SessionSecret,
    SessionStatus,
    StatusDetail,
)
from devin_async.testing import FakeDevinServer, MockTransport

FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)
CREATE_FIELDS = ["advanced_mode", "bypass_approval", "child_playbook_id", "create_as_user_id",
                 "knowledge_ids", "max_acu_limit", "playbook_id", "repos", "secret_ids",
                 "session_links", "tags", "title", "attachment_urls", "session_secrets",
                 "structured_output_schema", "structured_output_required", "devin_mode",
                 "idempotency_key", "extra_body"]
SESSION = {"session_id": "devin-1", "status": "running", "status_detail": "working",
           "url": "https://app.devin.ai/sessions/1", "org_id": "org-a", "tags": ["x"],
           "created_at": 1_700_000_000, "updated_at": 1_700_000_001, "acus_consumed": 0.5,
           "pull_requests": [{"pr_url": "https://github.com/a/b/pull/1", "pr_state": "open"}]}


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeDevinServer, DevinClient]]:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport(), poll=FAST) as client:
        yield server, client


def recorder(body: Any = SESSION) -> MockTransport:
    raw = json.dumps(body).encode()
    return MockTransport(lambda r: HTTPResponse(200, {"content-type": "application/json"}, raw))


def mock(transport: MockTransport, **kw: Any) -> DevinClient:
    return DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a", transport=transport,
                       **kw)


def sent_json(transport: MockTransport, n: int = 0) -> Any:
    return json.loads(transport.requests[n].body)


# -- create: signature, body, rules -------------------------------------------------------------

def test_create_signature_matches_contract() -> None:
    params = inspect.signature(DevinClient(api_key="cog_x_123456789", org_id="org-a")
                               .sessions.create).parameters
    assert next(iter(params)) == "prompt"
    assert params["prompt"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name in CREATE_FIELDS:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default is None, name
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


async def test_create_sends_only_given_fields() -> None:
    transport = recorder()
    async with mock(transport, client_tokens=False) as client:
        session = await client.sessions.create("Fix it", repos=["me/app"], title="T",
                                               bypass_approval=False, max_acu_limit=5)
    assert isinstance(session, Session)
    assert sent_json(transport) == {"prompt": "Fix it", "repos": ["me/app"], "title": "T",
                                    "bypass_approval": False, "max_acu_limit": 5}
    assert transport.requests[0].method == "POST"
    assert transport.requests[0].url.endswith("/v3beta1/organizations/org-a/sessions")


async def test_create_accepts_a_request_object_and_extra() -> None:
    transport = recorder()
    async with mock(transport, client_tokens=False) as client:
        await client.sessions.create(CreateSessionRequest("Do", tags=["t"],
                                                          extra={"platform": "x"}))
        await client.sessions.create("Do", extra_body={"resumable": True, "nested": {"a": [1]}})
        await client.sessions.create("Do", extra_body={"resumable": None})  # no nulls, ever
    assert sent_json(transport, 0) == {"prompt": "Do", "tags": ["t"], "platform": "x"}
    assert sent_json(transport, 1) == {"prompt": "Do", "resumable": True, "nested": {"a": [1]}}
    assert sent_json(transport, 2) == {"prompt": "Do"}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x", "advanced_mode": "analyze"}, "session_links"),
    ({"prompt": "x", "advanced_mode": "improve"}, "child_playbook_id"),
    ({"prompt": "x", "advanced_mode": "batch"}, "child_playbook_id"),
    ({"prompt": "x", "max_acu_limit": 0}, "max_acu_limit"),
    ({"prompt": "x", "max_acu_limit": -3}, "max_acu_limit"),
    ({"prompt": "x", "max_acu_limit": 2.5}, "max_acu_limit"),
    ({"prompt": "x", "max_acu_limit": True}, "max_acu_limit"),
    ({"prompt": "x", "tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"prompt": "x", "tags": ["devin-async-mine"]}, "tags"),
    ({"prompt": "x", "idempotency_key": ""}, "idempotency_key"),
    ({"prompt": "x", "idempotency_key": "k" * 257}, "idempotency_key"),
])
async def test_create_rules_are_value_errors_before_any_request(kwargs: dict[str, Any],
                                                                field: str) -> None:
    transport = recorder()
    async with mock(transport) as client:
        with pytest.raises(ValueError, match=field):
            await client.sessions.create(**kwargs)
    assert transport.requests == []


async def test_create_rules_pass_at_the_limits(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    await client.sessions.create("x", tags=[f"t{i}" for i in range(49)])  # + the token tag
    await client.sessions.create("x", advanced_mode="analyze", session_links=["https://a"])
    await client.sessions.create("x", advanced_mode="improve", child_playbook_id="pb-1")
    await client.sessions.create("x", idempotency_key="k" * 256)
    assert server.session_count == 4


async def test_unknown_keyword_is_type_error() -> None:
    transport = recorder()
    async with mock(transport) as client:
        with pytest.raises(TypeError):
            await client.sessions.create("x", platform="y")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            await client.sessions.run("x", not_a_field=1)
    assert transport.requests == []


# -- create: idempotency, schema, secrets -------------------------------------------------------

async def test_idempotency_key_same_session_across_clients_and_concurrently(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    import asyncio

    server, client = fake
    first = await client.sessions.create("Deploy", idempotency_key="order-12345")
    again = await client.sessions.create("Deploy", idempotency_key="order-12345")
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport()) as other:  # "another process"
        third = await other.sessions.create("Deploy", idempotency_key="order-12345")
    together = await asyncio.gather(*(client.sessions.create("Deploy", idempotency_key="k2")
                                      for _ in range(5)))
    assert first.session_id == again.session_id == third.session_id
    assert len({s.session_id for s in together}) == 1
    assert server.session_count == 2
    assert first.client_token and first.client_token == again.client_token


async def test_client_token_set_and_kept_out_of_tags(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    _, client = fake
    session = await client.sessions.create("x", tags=["mine"])
    assert session.client_token
    assert session.tags == ["mine"]
    assert (await client.sessions.get(session.session_id)).client_token == session.client_token
    assert await client.sessions.get_tags(session.session_id) == ["mine"]


@attrs.frozen
class Verdict:
    verdict: str
    score: int


@dataclasses.dataclass
class Plan:
    steps: list[str]


@pytest.mark.parametrize("cls", [Verdict, Plan])
async def test_structured_output_schema_from_a_class(cls: type) -> None:
    transport = recorder()
    async with mock(transport, client_tokens=False) as client:
        await client.sessions.create("x", structured_output_schema=cls)
    schema = sent_json(transport)["structured_output_schema"]
    assert schema["type"] == "object"
    assert "draft-07" in schema.get("$schema", "draft-07")
    assert set(schema["properties"]) == {f.name for f in attrs.fields(cls)} if attrs.has(cls) \
        else set(schema["properties"]) == {f.name for f in dataclasses.fields(cls)}
    assert '"$ref": "http' not in json.dumps(schema)


async def test_session_secrets_never_leak(caplog: pytest.LogCaptureFixture) -> None:
    value = "s3cr3t-VALUE-never-shown"
    events: list[Any] = []
    transport = recorder()
    caplog.set_level(logging.DEBUG, logger="devin_async")
    secret = SessionSecret("TOKEN", value)
    assert secret.sensitive is True
    async with mock(transport, client_tokens=False, on_request=events.append,
                    on_response=events.append) as client:
        await client.sessions.create("x", session_secrets=[secret,
                                                           {"key": "B", "value": value}])
    assert sent_json(transport)["session_secrets"] == [
        {"key": "TOKEN", "value": value, "sensitive": True},
        {"key": "B", "value": value, "sensitive": True}]
    request = CreateSessionRequest("x", session_secrets=[secret])
    for text in (repr(secret), str(secret), repr(request), str(request), caplog.text,
                 repr(events)):
        assert value not in text


# -- reads ------------------------------------------------------------------------------------

async def test_session_model_fields_and_open_enums() -> None:
    body = {**SESSION, "status": "hibernating", "status_detail": "pondering", "new_field": 1,
            "child_session_ids": ["devin-2"], "structured_output": {"a": 1}}
    async with mock(recorder(body)) as client:
        session = await client.sessions.get("devin-1")
    assert session.status.value == "hibernating" and isinstance(session.status, SessionStatus)
    assert session.status_detail is not None and session.status_detail.value == "pondering"
    assert isinstance(session.status_detail, StatusDetail)
    assert session.pull_requests == [PullRequest("https://github.com/a/b/pull/1", "open")]
    assert isinstance(session.created_at, int) and session.created_at == 1_700_000_000
    assert session.child_session_ids == ["devin-2"] and session.structured_output == {"a": 1}
    assert not session.is_terminal and not session.is_settled
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        session.title = "x"  # type: ignore[misc]
    assert "__slots__" in Session.__dict__


@pytest.mark.parametrize(("status", "detail", "terminal", "settled"), [
    ("new", None, False, False), ("claimed", None, False, False),
    ("running", "working", False, False), ("running", "finished", False, True),
    ("running", "waiting_for_user", False, True), ("running", "waiting_for_approval", False, True),
    ("suspended", "inactivity", False, True), ("resuming", None, False, False),
    ("exit", None, True, True), ("error", "error", True, True),
])
async def test_is_terminal_and_is_settled(status: str, detail: str | None, terminal: bool,
                                          settled: bool) -> None:
    async with mock(recorder({**SESSION, "status": status, "status_detail": detail})) as client:
        session = await client.sessions.get("devin-1")
    assert (session.is_terminal, session.is_settled) == (terminal, settled)
    assert (Session.is_terminal(session), Session.is_settled(session)) == (terminal, settled)


async def test_list_follows_every_page_and_is_an_async_iterator(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    ids = server.add_sessions(7, tags=["batch"])
    server.add_sessions(2)
    listing = client.sessions.list(tags=["batch"], page_size=3)
    assert hasattr(listing, "__aiter__") and not inspect.isawaitable(listing)
    got = [s async for s in listing]
    assert sorted(s.session_id for s in got) == sorted(ids)
    assert all(isinstance(s, Session) for s in got)
    assert [(s.created_at, s.session_id) for s in got] == sorted(
        (s.created_at, s.session_id) for s in got)  # oldest first
    pages = [r for r in server.requests if r.path.endswith("/sessions")]
    assert len(pages) == 3
    assert all(dict(r.query).get("first") == "3" for r in pages)
    assert "after" in dict(pages[1].query)


async def test_messages_send_message_terminate_archive_tags(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    sid = (await client.sessions.create("Hello", tags=["a"])).session_id
    after = await client.sessions.send_message(sid, "More context",
                                               attachment_urls=["https://x.invalid/f.txt"])
    assert isinstance(after, Session) and after.session_id == sid
    msgs = [m async for m in client.sessions.messages(sid)]
    assert msgs and all(isinstance(m, Message) for m in msgs)
    assert any(m.message == "More context" and m.source == "user" for m in msgs)
    assert {"event_id", "created_at", "message", "source"} <= {f.name for f in
                                                                attrs.fields(Message)}
    assert await client.sessions.add_tags(sid, ["b"]) == ["a", "b"]
    token = (await client.sessions.get(sid)).client_token
    assert await client.sessions.replace_tags(sid, ["c"]) == ["c"]
    assert await client.sessions.get_tags(sid) == ["c"]
    assert token and (await client.sessions.get(sid)).client_token == token  # kept
    archived = await client.sessions.archive(sid)
    assert isinstance(archived, Session) and archived.is_archived
    sid2 = (await client.sessions.create("Bye")).session_id
    ended = await client.sessions.terminate(sid2)
    assert isinstance(ended, Session)
    await client.sessions.terminate(sid, archive=True)
    deletes = [r for r in server.requests if r.method == "DELETE"]
    assert [dict(r.query).get("archive") for r in deletes] == ["false", "true"]


async def test_positional_misuse_is_type_error() -> None:
    async with mock(recorder()) as client:
        with pytest.raises(TypeError):
            await client.sessions.terminate("devin-1", True)  # type: ignore[misc]
        with pytest.raises(TypeError):
            client.sessions.poll("devin-1", Session.is_terminal)  # type: ignore[misc]
        with pytest.raises(TypeError):
            client.sessions.create_many([], 4)  # type: ignore[misc]


@pytest.mark.parametrize("how", ["request", "dict"])
async def test_request_object_takes_a_schema_class_too(how: str) -> None:
    # Fixed in this audit: CreateSessionRequest(structured_output_schema=Verdict) was a
    # ValueError, though the contract lets the field be a class and create_many takes requests.
    transport = recorder()
    async with mock(transport, client_tokens=False) as client:
        if how == "request":
            await client.sessions.create(CreateSessionRequest("x",
                                                              structured_output_schema=Verdict))
        else:
            [r.unwrap() async for r in client.sessions.create_many(
                [{"prompt": "x", "structured_output_schema": Verdict}])]
    schema = sent_json(transport)["structured_output_schema"]
    assert set(schema["properties"]) == {"verdict", "score"}
