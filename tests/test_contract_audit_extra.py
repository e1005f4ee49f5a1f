"""Audit, second pass: secrets echoed by a 422, spec examples, signatures, README promises.

Public imports only; MockTransport on a fake clock, or the in-process fake server.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from devin_async import (
    AuthenticationError,
    BatchMismatchError,
    CreateSessionRequest,
    DevinClient,
    EventCategory,
    HTTPRequest,
    HTTPResponse,
    PermissionDeniedError,
    PollPolicy,
    RequestEvent,
    RetryPolicy,
    SessionFailedError,
    SessionSecret,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from devin_async.testing import ALL_PERMISSIONS, FakeDevinServer, MockTransport, Permission

from .helpers import FakeClock

FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)
SECRET = "hunter2-SECRET-value-xyz"
JSON = {"content-type": "application/json"}
SPEC = Path(__file__).parent / "data" / "devin-v3beta1-sessions.openapi.yaml"


def mock(handler: Callable[[HTTPRequest], HTTPResponse], clock: FakeClock | None = None,
         **kw: Any) -> DevinClient:
    clock = clock or FakeClock()
    return DevinClient(api_key="cog_audit_key_0123456789ABCD", org_id="org-a", clock=clock,
                       sleep=clock.sleep, transport=MockTransport(handler), **kw)


def fake_client(server: FakeDevinServer, **kw: Any) -> DevinClient:
    return DevinClient(api_key=kw.pop("api_key", server.api_key), org_id=server.org_id,
                       transport=server.transport(), poll=FAST, **kw)


@cache
def examples() -> dict[str, Any]:
    spec = yaml.safe_load(SPEC.read_text())
    return {name: ex["value"] for name, ex in spec["components"]["examples"].items()}


# -- secrets echoed in a FastAPI 422 (its `input` is the value sent) ---------------------------

async def test_a_422_echoing_a_secret_value_or_the_key_never_shows_them(
        caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: HTTPRequest) -> HTTPResponse:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        detail = [{"loc": ["body", "session_secrets", 0, "value"], "msg": "bad value",
                   "type": "value_error", "input": SECRET},
                  {"loc": ["header", "authorization"], "msg": "bad key", "type": "value_error",
                   "input": key}]
        return HTTPResponse(422, JSON, json.dumps({"detail": detail}).encode())

    caplog.set_level(logging.DEBUG, logger="devin_async")
    events: list[Any] = []
    async with mock(handler, client_tokens=False, on_response=events.append) as client:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.sessions.create("x", session_secrets=[SessionSecret("K", SECRET)])
    exc = info.value
    assert len(exc.errors) == 2 and exc.errors[0]["loc"][-1] == "value"
    seen = " ".join([str(exc), repr(exc), repr(exc.body), repr(exc.errors), exc.detail,
                     caplog.text, repr(events)])
    assert SECRET not in seen
    assert "0123456789ABCD" not in seen


# -- responses the spec shows parse -------------------------------------------------------------

async def test_spec_examples_and_number_forms_parse() -> None:
    new = {**examples()["SessionNew"], "acus_consumed": 0}  # `number` allows an integer
    page = examples()["SessionEventListPage"]

    def handler(request: HTTPRequest) -> HTTPResponse:
        body = page if "/events" in request.url else new
        return HTTPResponse(200, JSON, json.dumps(body).encode())

    async with mock(handler) as client:
        session = await client.sessions.get(new["session_id"])
        events = [e async for e in client.sessions.events(new["session_id"])]
    assert session.acus_consumed == 0 and session.session_id == new["session_id"]
    assert [e.event_id for e in events] == [i["event_id"] for i in page["items"]]


def test_event_category_is_open() -> None:
    assert EventCategory("shell") is EventCategory.SHELL
    assert EventCategory("teleport").value == "teleport"


# -- signatures ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "expected"), [
    ("create_many", {"concurrency": 8, "batch_key": None}),
    ("poll", {"until": None, "policy": None, "timeout": None}),
    ("events", {"categories": None, "event_types": None, "direction": None,
                "created_after": None, "created_before": None, "page_size": 100,
                "follow": False}),
    ("list", {"tags": None, "session_ids": None, "created_after": None, "created_before": None,
              "updated_after": None, "updated_before": None, "page_size": 100}),
    ("generate_insights", {"timeout": None}),
    ("ask", {"timeout": None}),
    ("terminate", {"archive": False}),
    ("send_message", {"attachment_urls": None}),
])
def test_sessions_keyword_defaults(method: str, expected: dict[str, Any]) -> None:
    client = DevinClient(api_key="cog_x_1234567890", org_id="org-a")
    params = inspect.signature(getattr(client.sessions, method)).parameters
    for name, default in expected.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default, name


def test_watch_upload_download_signatures() -> None:
    client = DevinClient(api_key="cog_x_1234567890", org_id="org-a")
    watch = inspect.signature(client.watch).parameters
    assert {n: (p.default, p.kind.name) for n, p in watch.items() if n != "session_ids"} == {
        n: (d, "KEYWORD_ONLY") for n, d in {"until": None, "policy": None, "tags": None,
                                            "follow_children": False, "forever": False,
                                            "resume": None}.items()}
    upload = inspect.signature(client.attachments.upload).parameters
    assert upload["name"].kind is inspect.Parameter.KEYWORD_ONLY
    download = list(inspect.signature(client.attachments.download).parameters)
    assert download[:2] == ["url", "dest"]


def test_positional_model_fields_in_contract_order() -> None:
    from devin_async import (
        ActivityEvent,
        BatchResult,
        Message,
        PullRequest,
        RunResult,
        SessionEvent,
        UploadedAttachment,
    )
    orders = {PullRequest: ["pr_url", "pr_state"],
              Message: ["event_id", "created_at", "message", "source"],
              BatchResult: ["index", "request", "session", "error", "existing"],
              ActivityEvent: ["event_id", "event_type", "category", "direction", "created_at",
                              "summary"],
              UploadedAttachment: ["attachment_id", "name", "url"],
              SessionSecret: ["key", "value", "sensitive"], RunResult: ["session", "output"],
              SessionEvent: ["session", "previous", "gone"]}
    for cls, names in orders.items():
        assert [f.name for f in attrs.fields(cls)][:len(names)] == names, cls


# -- polling: 401/403 end it, every hint honoured -------------------------------------------

@pytest.mark.parametrize(("status", "cls"), [(401, AuthenticationError),
                                             (403, PermissionDeniedError)])
async def test_auth_errors_end_polling(status: int, cls: type) -> None:
    answers = iter([200, status])

    def handler(request: HTTPRequest) -> HTTPResponse:
        code = next(answers, status)
        body = examples()["SessionNew"] if code == 200 else {"detail": "no"}
        return HTTPResponse(code, JSON, json.dumps(body).encode())

    async with mock(handler) as client:
        with pytest.raises(cls):
            await client.sessions.wait("devin-1", timeout=3600)


async def test_retry_after_on_every_poll_response_is_honoured() -> None:
    clock = FakeClock()
    count = [0]

    def handler(request: HTTPRequest) -> HTTPResponse:
        count[0] += 1
        body = {**examples()["SessionNew"], "updated_at": 1_700_000_000 + count[0]}
        if count[0] >= 5:
            body.update(status="exit")
        return HTTPResponse(200, {**JSON, "Retry-After": "5"}, json.dumps(body).encode())

    async with mock(handler, clock, poll=PollPolicy(initial=1.0, jitter=0.0)) as client:
        await client.sessions.wait(examples()["SessionNew"]["session_id"], timeout=3600)
    assert len(clock.sleeps) >= 4 and min(clock.sleeps) >= 5.0


# -- typed results: failures -------------------------------------------------------------------

async def test_run_error_session_and_timeouts() -> None:
    server = FakeDevinServer(time_scale=2000)
    server.script([("error", "error", 0.0)])
    async with fake_client(server) as client:
        with pytest.raises(SessionFailedError) as info:
            await client.sessions.run("fail")
        assert info.value.session_id == info.value.session.session_id
        sid = (await client.sessions.create("quiet")).session_id
        server.set_status(sid, "running", "working")
        server.time_scale = 0.001  # nothing more happens within the test
        with pytest.raises(WaitTimeoutError):
            await client.sessions.ask(sid, "hello?", timeout=0.1)
        with pytest.raises(WaitTimeoutError):
            await client.sessions.generate_insights(sid, timeout=0.1)


# -- fake server: permissions and 422s -----------------------------------------------------------

async def test_fake_permissions_and_validation() -> None:
    server = FakeDevinServer(time_scale=2000)
    limited = server.add_token(permissions=ALL_PERMISSIONS - {Permission.USE_DEVIN_EXPERT})
    async with fake_client(server, api_key=limited) as client:
        with pytest.raises(PermissionDeniedError):
            await client.sessions.create("x", advanced_mode="analyze", session_links=["l"])
        with pytest.raises(UnprocessableEntityError) as info:
            await client.sessions.create("x", extra_body={"platform": 5})
    assert info.value.errors and {"loc", "msg", "type"} <= set(info.value.errors[0])


@pytest.mark.parametrize("devin_fake", [{"rate_limit": 1000.0, "seed": 3}], indirect=True)
async def test_plugin_indirect_parameter(devin_fake: FakeDevinServer) -> None:
    assert devin_fake.url.startswith("http://127.0.0.1:")


# -- README promises ----------------------------------------------------------------------------

async def test_readme_listing_helpers_and_unwrap() -> None:
    server = FakeDevinServer(time_scale=2000)
    server.add_sessions(5, tags=["r"])
    async with fake_client(server, tracing=False, json_codec="json") as client:
        assert len(await client.sessions.list(tags=["r"]).to_list(limit=3)) == 3
        pages = [p async for p in client.sessions.list(tags=["r"], page_size=2).pages()]
        assert [len(p.items) for p in pages] == [2, 2, 1]
        assert len(await client.sessions.list_insights(tags=["r"]).to_list()) == 5
        results = [r async for r in client.sessions.create_many([{"prompt": ""}])]
        with pytest.raises(ValueError):
            results[0].unwrap()


async def test_readme_batch_mismatch_is_an_error_for_that_index() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with fake_client(server, retry=RetryPolicy(settle=0.01)) as client:
        first = [CreateSessionRequest("A"), CreateSessionRequest("B")]
        [r async for r in client.sessions.create_many(first, batch_key="m")]
        changed = [CreateSessionRequest("A"), CreateSessionRequest("B changed")]
        again = {r.index: r async for r in client.sessions.create_many(changed, batch_key="m")}
    assert again[0].existing and isinstance(again[1].error, BatchMismatchError)
    assert server.session_count == 2


async def test_event_details_split_by_20() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with fake_client(server) as client:
        sid = (await client.sessions.create("x")).session_id
        for n in range(45):
            server.add_event(sid, event_type="shell_command", category="shell", summary=f"{n}")
        ids = [e.event_id async for e in client.sessions.events(sid, categories=["shell"])]
        server.clear_requests()
        got = await client.sessions.event_details(sid, ids)
    assert len(got) == len(ids) and len(server.requests) == -(-len(ids) // 20)


async def test_hook_events_are_frozen() -> None:
    events: list[RequestEvent] = []
    ok = HTTPResponse(200, JSON, json.dumps(examples()["SessionNew"]).encode())
    async with mock(lambda r: ok, on_request=events.append) as client:
        await client.sessions.get(examples()["SessionNew"]["session_id"])
    assert events and isinstance(events[0], RequestEvent)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        events[0].method = "X"  # type: ignore[misc]


@pytest.mark.parametrize("status", ["started", "already_exists", "queued"])
async def test_generate_insights_takes_any_status_string(status: str) -> None:
    # Fixed in this audit: the spec's SessionInsightsGenerateResponse.status is an open string
    # ("started"/"already_exists" are examples); any other value was a MalformedResponseError.
    polls = [0]
    insights = {**examples()["SessionNew"], "num_devin_messages": 1, "num_user_messages": 1,
                "session_size": "xs", "analysis": None}

    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.method == "POST":
            body: Any = {"session_id": insights["session_id"], "status": status}
        else:
            polls[0] += 1
            body = {**insights, "analysis": {"issues": []} if polls[0] > 1 else None}
        return HTTPResponse(200, JSON, json.dumps(body).encode())

    async with mock(handler) as client:
        ready = await client.sessions.generate_insights(insights["session_id"], timeout=600)
    assert ready.analysis == {"issues": []}
