"""Audit of CONTRACT.md "Polling", typed results (run/result/ask), events, insights, attachments.

Public imports only. A scripted `MockTransport` (on a fake clock) for exact polling behaviour;
the in-process fake server for the flows.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from devin_async import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    APIConnectionError,
    DevinClient,
    EventCategory,
    HTTPRequest,
    HTTPResponse,
    Message,
    NotFoundError,
    PollPolicy,
    RunResult,
    Session,
    SessionInsights,
    StructuredOutputError,
    UploadedAttachment,
    WaitTimeoutError,
)
from devin_async.testing import FakeDevinServer, MockTransport

FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)
BASE = {"session_id": "devin-1", "url": "https://app.devin.ai/sessions/1", "org_id": "org-a",
        "tags": [], "created_at": 1_700_000_000, "acus_consumed": 0.0, "pull_requests": []}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def scripted(steps: list[Any]) -> tuple[DevinClient, MockTransport]:
    """A client whose GETs answer the steps in turn: (status, detail), a status code, an error."""
    it: Iterator[Any] = iter(steps)
    last: list[Any] = [None]
    stamp = [1_700_000_000]

    def handler(request: HTTPRequest) -> HTTPResponse:
        step = next(it, last[0])
        last[0] = step
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, int):
            return HTTPResponse(step, {"content-type": "application/json"}, b'{"detail": "x"}')
        stamp[0] += 1
        body = {**BASE, "status": step[0], "status_detail": step[1], "updated_at": stamp[0]}
        return HTTPResponse(200, {"content-type": "application/json"}, json.dumps(body).encode())

    clock = Clock()
    transport = MockTransport(handler)
    client = DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a", transport=transport,
                         clock=clock, sleep=clock.sleep, poll=PollPolicy(jitter=0.0))
    return client, transport


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeDevinServer, DevinClient]]:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport(), poll=FAST) as client:
        yield server, client


# -- polling ----------------------------------------------------------------------------------

async def test_poll_yields_now_then_each_change_and_stops_on_until() -> None:
    client, _ = scripted([("new", None), ("new", None), ("claimed", None),
                          ("running", "working"), ("running", "working"),
                          ("running", "finished"), ("exit", None)])
    async with client:
        seen = [(s.status.value, s.status_detail) async for s in client.sessions.poll("devin-1")]
    assert seen == [("new", None), ("claimed", None), ("running", "working"),
                    ("running", "finished")]


async def test_poll_until_is_terminal_and_wait_returns_last() -> None:
    client, _ = scripted([("running", "finished"), ("suspended", "inactivity"), ("exit", None)])
    async with client:
        done = await client.sessions.wait("devin-1", until=Session.is_terminal)
    assert isinstance(done, Session) and done.status.value == "exit"


@pytest.mark.parametrize("transient", [
    503, 429, 500, 502, APIConnectionError("reset", sent=False),
])
async def test_transient_errors_do_not_end_polling(transient: Any) -> None:
    client, _ = scripted([("running", "working"), transient, transient, transient, transient,
                          transient, ("running", "finished")])
    async with client:
        done = await client.sessions.wait("devin-1", timeout=3600)
    assert done.status_detail == "finished"


async def test_not_found_ends_polling_with_the_typed_error() -> None:
    client, _ = scripted([("running", "working"), 404])
    async with client:
        with pytest.raises(NotFoundError):
            await client.sessions.wait("devin-1", timeout=3600)


async def test_wait_timeout_carries_last_session_and_never_cancels() -> None:
    client, transport = scripted([("running", "working")])
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.wait("devin-1", timeout=120)
        with pytest.raises(TimeoutError):
            await client.sessions.wait("devin-1", timeout=5)
    assert info.value.last_session is not None
    assert info.value.last_session.status_detail == "working"
    assert {r.method for r in transport.requests} == {"GET"}


# -- typed results ----------------------------------------------------------------------------

@attrs.frozen
class Review:
    verdict: str
    score: int


async def test_run_with_output_type_returns_typed_result(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    server.output_generator = lambda schema: {"verdict": "ship it", "score": 9}
    result = await client.sessions.run("Review", output_type=Review, repos=["me/app"],
                                       timeout=600)
    assert isinstance(result, RunResult)
    assert result.output == Review("ship it", 9)
    assert result.session.is_settled
    sent = server.create_request(result.session.session_id)
    assert sent["structured_output_schema"]["properties"].keys() == {"verdict", "score"}
    assert sent["repos"] == ["me/app"]


async def test_run_without_output_type_is_create_and_wait(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    _, client = fake
    result = await client.sessions.run("Do it", timeout=600)
    assert isinstance(result, RunResult) and result.session.is_settled


async def test_result_raises_structured_output_error(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    none = await client.sessions.create("no schema")
    with pytest.raises(StructuredOutputError) as info:
        await client.sessions.result(none.session_id, Review, timeout=600)
    assert info.value.raw is None and info.value.session.session_id == none.session_id
    bad = await client.sessions.create("schema", structured_output_schema=Review)
    server.set_structured_output(bad.session_id, {"verdict": 3})
    with pytest.raises(StructuredOutputError) as info:
        await client.sessions.result(bad.session_id, output_type=Review, timeout=600)
    assert info.value.raw == {"verdict": 3} and info.value.session.is_settled
    good = await client.sessions.create("schema", structured_output_schema=Review)
    server.set_structured_output(good.session_id, {"verdict": "ok", "score": 1})
    assert await client.sessions.result(good.session_id, Review) == Review("ok", 1)
    assert await client.sessions.result(good.session_id) == {"verdict": "ok", "score": 1}


async def test_ask_returns_devins_first_reply_after_ours(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    session = await client.sessions.create("Start")
    await client.sessions.wait(session.session_id)
    server.script_reply(session.session_id, "All clear")
    reply = await client.sessions.ask(session.session_id, "Anything blocking?", timeout=600)
    assert isinstance(reply, Message)
    assert (reply.source, reply.message) == ("devin", "All clear")


async def test_messages_follow_ends_when_terminal(
        fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    session = await client.sessions.create("Hi")
    server.script([("running", "working", 0.0), ("exit", None, 5.0)],
                  session_id=session.session_id)
    got = [m async for m in client.sessions.messages(session.session_id, follow=True)]
    assert got and all(isinstance(m, Message) for m in got)


# -- events and insights ------------------------------------------------------------------------

async def test_events_details_search(fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    sid = (await client.sessions.create("Run ls")).session_id
    await client.sessions.wait(sid)
    for n in range(25):
        server.add_event(sid, event_type="shell_command", category="shell",
                         summary=f"ls {n}")
    events = [e async for e in client.sessions.events(sid)]
    assert events and all(isinstance(e, ActivityEvent) for e in events)
    assert all(isinstance(e.category, EventCategory) for e in events)
    shell = [e async for e in client.sessions.events(sid, categories=["shell"], page_size=10)]
    assert len(shell) >= 25 and {e.category.value for e in shell} == {"shell"}
    details = await client.sessions.event_details(sid, [e.event_id for e in shell])
    assert isinstance(details, list) and len(details) == len(shell)
    assert all(isinstance(d, ActivityEventDetail) and isinstance(d.contents, dict)
               for d in details)
    assert [d.event_id for d in details] == [e.event_id for e in shell]
    hits = [m async for m in client.sessions.search_events(sid, "ls 1")]
    assert hits and all(isinstance(m, ActivityEventMatch) and m.match_context for m in hits)
    with pytest.raises(ValueError):
        client.sessions.events(sid, categories=["shell"], event_types=["x"])


async def test_events_follow_until_terminal(fake: tuple[FakeDevinServer, DevinClient]) -> None:
    server, client = fake
    sid = (await client.sessions.create("Hi")).session_id
    server.script([("running", "working", 0.0), ("exit", None, 5.0)], session_id=sid)
    got = [e async for e in client.sessions.events(sid, follow=True)]
    assert got and len({e.event_id for e in got}) == len(got)


async def test_insights_and_generate(fake: tuple[FakeDevinServer, DevinClient]) -> None:
    _, client = fake
    sid = (await client.sessions.create("Hi")).session_id
    await client.sessions.wait(sid)
    before = await client.sessions.insights(sid)
    assert isinstance(before, SessionInsights) and before.analysis is None
    ready = await client.sessions.generate_insights(sid, timeout=600)
    assert isinstance(ready, SessionInsights) and isinstance(ready.analysis, dict)
    assert isinstance(ready.num_devin_messages, int) and isinstance(ready.num_user_messages, int)
    assert ready.session_size and ready.session_id == sid


# -- attachments --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
async def test_upload_and_download_without_the_key(kind: str, tmp_path: Path) -> None:
    data = b"Context for Devin.\n" * 100
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    source: Any = {"path": path, "bytes": data, "file": io.BytesIO(data)}[kind]
    async with FakeDevinServer() as server, DevinClient(
            base_url=server.url, api_key=server.api_key, org_id=server.org_id) as client:
        upload = await client.attachments.upload(source, name="notes.txt")
        assert isinstance(upload, UploadedAttachment)
        assert upload.name == "notes.txt" and upload.attachment_id and upload.url
        session = await client.sessions.create("Read", attachment_urls=[upload.url])
        assert server.create_request(session.session_id)["attachment_urls"] == [upload.url]
        out = io.BytesIO()
        written = await client.attachments.download(upload.url, out)
        copy = tmp_path / "copy.txt"
        assert await client.attachments.download(upload.url, copy) == len(data)
        assert server.bucket_requests >= 2 and not server.bucket_saw_authorization
    assert written == len(data) and out.getvalue() == data and copy.read_bytes() == data
