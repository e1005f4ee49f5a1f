"""OpenTelemetry spans: one CLIENT span per attempt (HTTP client semantic conventions) under the
INTERNAL spans of wait/poll/run; no secret in any attribute; nothing at all when off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from devin_async import (
    APIConnectionError,
    DevinClient,
    HTTPRequest,
    HTTPResponse,
    NotFoundError,
    RetryPolicy,
    SessionSecret,
)
from devin_async.testing import FakeDevinServer

from .surface_support import (
    API_KEY,
    PREFIX,
    SID,
    FakeClock,
    Router,
    body_of,
    make_client,
    page,
    reply,
    session_json,
)

SESSION_ROUTE = "GET /v3beta1/organizations/{org_id}/sessions/{devin_id}"
SECRET = "s3cr3t-value-7Hq"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def client_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan, exporter: InMemorySpanExporter) -> ReadableSpan | None:
    if span.parent is None:
        return None
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
    return by_id.get(span.parent.span_id)


def ancestors(span: ReadableSpan, exporter: InMemorySpanExporter) -> list[str]:
    names = []
    current = parent_of(span, exporter)
    while current is not None:
        names.append(current.name)
        current = parent_of(current, exporter)
    return names


def sequence(*answers: Any) -> Any:
    """A handler answering each of `answers` in turn (an exception is raised), the last forever."""
    queue = list(answers)

    def handler(_request: HTTPRequest) -> HTTPResponse:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, HTTPResponse)
        return answer
    return handler


async def test_one_client_span_per_request(spans: Any) -> None:
    provider, exporter = spans
    client, _ = make_client(sequence(reply(200, session_json())), tracing=provider)
    async with client:
        await client.sessions.get(SID)
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.CLIENT and span.name == SESSION_ROUTE
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": f"{PREFIX}/sessions/{SID}",
        "server.address": "api.devin.test",
        "server.port": 443,
        "http.response.status_code": 200,
        "devin.session_id": SID,
    }
    assert span.status.status_code is not StatusCode.ERROR


async def test_a_retried_request_has_a_span_per_attempt(spans: Any) -> None:
    provider, exporter = spans
    client, transport = make_client(
        sequence(reply(503, {"detail": "busy"}),
                 APIConnectionError("connection refused", sent=False),
                 reply(200, session_json())), FakeClock(), tracing=provider)
    async with client:
        await client.sessions.get(SID)
    assert len(transport.requests) == 3
    first, second, third = client_spans(exporter)
    assert {s.name for s in (first, second, third)} == {SESSION_ROUTE}
    assert first.attributes is not None and second.attributes is not None
    assert third.attributes is not None
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert "http.request.resend_count" not in first.attributes
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in second.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert third.attributes["http.request.resend_count"] == 2
    assert "error.type" not in third.attributes
    assert third.attributes["http.response.status_code"] == 200


async def test_a_failed_request_span_carries_the_error(spans: Any) -> None:
    provider, exporter = spans
    client, _ = make_client(sequence(reply(404, {"detail": "no"})), tracing=provider)
    async with client:
        with pytest.raises(NotFoundError):
            await client.sessions.get(SID)
    (span,) = client_spans(exporter)
    assert span.attributes is not None
    assert span.attributes["error.type"] == "404"
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.ERROR


async def test_span_names_are_route_templates(spans: Any) -> None:
    provider, exporter = spans
    router = Router()
    router.add("GET", "/sessions", lambda r, m: page([session_json()]))
    router.add("GET", rf"/sessions/{SID}/messages", lambda r, m: page([]))
    router.add("GET", "/v3/self", lambda r, m: {"principal_type": "service_user"})
    client, _ = make_client(router, tracing=provider)
    async with client:
        _ = [s async for s in client.sessions.list(tags=["a"], page_size=5)]
        _ = [m async for m in client.sessions.messages(SID)]
        await client.whoami()
    listed, messages, whoami = client_spans(exporter)
    assert listed.name == "GET /v3beta1/organizations/{org_id}/sessions"
    assert listed.attributes is not None
    assert listed.attributes["url.full"].startswith(f"{PREFIX}/sessions?first=5")
    assert messages.name == "GET /v3beta1/organizations/{org_id}/sessions/{devin_id}/messages"
    assert messages.attributes is not None and messages.attributes["devin.session_id"] == SID
    assert whoami.name == "GET /v3/self"


async def test_download_spans_drop_the_presigned_query(spans: Any, tmp_path: Any) -> None:
    provider, exporter = spans
    uuid = "0b6c3a52-8d3e-4f0a-9b1e-5f7c2d9e4a11"
    url = f"{PREFIX}/attachments/{uuid}/r.txt"
    bucket = "https://bucket.example.com:8443/o/r.txt?X-Amz-Signature=deadbeef&X-Amz-Credential=AK"

    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.url == url:
            return HTTPResponse(307, {"Location": bucket})
        return HTTPResponse(200, {}, b"file")

    client, _ = make_client(handler, tracing=provider)
    async with client:
        await client.attachments.download(url, tmp_path / "r.txt")
    api, store = client_spans(exporter)
    assert api.name == "GET /v3beta1/organizations/{org_id}/attachments/{uuid}/{name}"
    assert api.attributes is not None and api.attributes["http.response.status_code"] == 307
    assert "error.type" not in api.attributes
    assert store.name == "GET"
    assert store.attributes is not None
    assert store.attributes["url.full"] == "https://bucket.example.com:8443/o/r.txt"
    assert (store.attributes["server.address"], store.attributes["server.port"]) == (
        "bucket.example.com", 8443)
    assert all("deadbeef" not in str(v) for s in exporter.get_finished_spans()
               for v in (s.attributes or {}).values())


def waiting_router(polls_before_done: int) -> Router:
    count = {"n": 0}

    def get(_r: HTTPRequest, _m: re.Match[str]) -> Any:
        count["n"] += 1
        done = count["n"] > polls_before_done
        return session_json(SID, "exit" if done else "running", None if done else "working",
                            structured_output={"n": 1})

    router = Router().add("GET", rf"/sessions/{SID}", get)
    router.add("POST", "/sessions", lambda r, m: session_json(SID, "new", None,
                                                              tags=body_of(r).get("tags", [])))
    return router


async def test_wait_and_poll_spans_are_parents_of_the_requests(spans: Any) -> None:
    provider, exporter = spans
    client, _ = make_client(waiting_router(3), FakeClock(), tracing=provider)
    async with client:
        await client.sessions.wait(SID)
    (wait,) = named(exporter, "devin.wait")
    assert wait.kind is SpanKind.INTERNAL and wait.parent is None
    assert wait.attributes is not None and wait.attributes["devin.session_id"] == SID
    polls = named(exporter, "devin.poll")
    assert polls and all(p.kind is SpanKind.INTERNAL for p in polls)
    requests = client_spans(exporter)
    assert len(requests) == 4
    for span in requests:
        assert ancestors(span, exporter) == ["devin.poll", "devin.wait"]
        assert span.context.trace_id == wait.context.trace_id


async def test_run_span_is_the_root_of_create_and_wait(spans: Any) -> None:
    provider, exporter = spans
    client, _ = make_client(waiting_router(1), FakeClock(), tracing=provider)
    async with client:
        await client.sessions.run("p")
    (run,) = named(exporter, "devin.run")
    assert run.kind is SpanKind.INTERNAL and run.parent is None
    requests = client_spans(exporter)
    create = next(s for s in requests if s.name == "POST /v3beta1/organizations/{org_id}/sessions")
    assert ancestors(create, exporter) == ["devin.run"]
    assert create.attributes is not None and create.attributes["devin.session_id"] == SID
    assert all(ancestors(s, exporter)[-1] == "devin.run" for s in requests)
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {run.context.trace_id}


async def test_no_attribute_holds_the_key_or_a_secret(spans: Any) -> None:
    provider, exporter = spans
    echo = {"detail": f"bad key {API_KEY} and secret {SECRET}"}
    client, _ = make_client(sequence(reply(200, session_json(SID, "new", None)),
                                     reply(400, echo)), FakeClock(), tracing=provider)
    async with client:
        await client.sessions.create("p", session_secrets=[SessionSecret("K", SECRET)])
        with pytest.raises(Exception):  # noqa: B017 - the 400 echoing both
            await client.sessions.get(SID)
    everything = exporter.get_finished_spans()
    assert len(everything) >= 2
    for span in everything:
        texts = [span.name, *(str(v) for v in (span.attributes or {}).values()),
                 str(span.status.description or "")]
        texts += [str(e.attributes) for e in span.events]
        for text in texts:
            assert API_KEY not in text and SECRET not in text
            assert API_KEY[4:20] not in text


@pytest.mark.parametrize("tracing", [True, False])
async def test_tracing_flag(tracing: bool, spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = spans
    # The global tracer provider can be set once per process: route get_tracer to ours instead.
    monkeypatch.setattr(trace, "get_tracer", lambda *a, **k: provider.get_tracer(*a, **k))
    client, _ = make_client(waiting_router(0), FakeClock(), tracing=tracing)
    async with client:
        await client.sessions.wait(SID)
        await client.sessions.get(SID)
    if tracing:
        assert client.engine.tracer is not None
        assert {s.name for s in exporter.get_finished_spans()} >= {"devin.wait", SESSION_ROUTE}
    else:
        assert client.engine.tracer is None
        assert exporter.get_finished_spans() == ()


async def test_spans_against_the_fake_server_in_process(spans: Any) -> None:
    provider, exporter = spans
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=21)
    server.script([("running", "working", 0), ("exit", None, 3)])
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           base_url="http://fake.invalid", allow_insecure_http=True,
                           transport=server.transport(), clock=clock, sleep=clock.sleep,
                           tracing=provider) as client:
        result = await client.sessions.run(
            "p", session_secrets=[SessionSecret("TOKEN", SECRET)])
    sid = result.session.session_id
    requests = client_spans(exporter)
    assert requests and all(s.attributes is not None and
                            s.attributes["server.address"] == "fake.invalid" and
                            s.attributes["server.port"] == 80 for s in requests)
    assert all(s.attributes is not None and s.attributes.get("devin.session_id") == sid
               for s in requests)
    assert all(ancestors(s, exporter)[-1] == "devin.run" for s in requests)
    blob = repr([(s.name, dict(s.attributes or {})) for s in exporter.get_finished_spans()])
    assert server.api_key not in blob and SECRET not in blob


async def test_spans_over_a_loopback_socket(spans: Any) -> None:
    provider, exporter = spans
    async with FakeDevinServer(seed=22) as server, DevinClient(
            api_key=server.api_key, org_id=server.org_id, base_url=server.url,
            retry=RetryPolicy(initial_backoff=0.01, jitter=False), tracing=provider) as client:
        server.inject("get", status=503, times=1)
        session = await client.sessions.create("p")
        await client.sessions.get(session.session_id)
    create, failed, got = client_spans(exporter)
    assert create.name == "POST /v3beta1/organizations/{org_id}/sessions"
    for span in (create, failed, got):
        assert span.attributes is not None
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == server.port
        assert span.attributes["devin.session_id"] == session.session_id
    assert failed.attributes is not None and got.attributes is not None
    assert failed.attributes["error.type"] == "503"
    assert got.attributes["http.request.resend_count"] == 1
    assert got.attributes["url.full"] == (
        f"{server.url}/v3beta1/organizations/{server.org_id}/sessions/{session.session_id}")
