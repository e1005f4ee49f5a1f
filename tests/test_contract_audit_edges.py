"""Audit, third pass: the lazy session and event loops, vanished sessions, downloads, bad config.

Public imports only.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from devin_async import (
    CreateSessionRequest,
    DevinClient,
    DevinError,
    EventLoopMismatchError,
    HTTPRequest,
    HTTPResponse,
    PollPolicy,
    RetryPolicy,
    Session,
    Timeouts,
)
from devin_async.testing import FakeDevinServer, MockTransport

FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)
JSON = {"content-type": "application/json"}


def test_client_built_outside_a_loop_works_inside_one() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = FakeDevinServer(port=port, time_scale=2000)
    # No loop runs here: the client must open nothing yet (its session is made lazily).
    client = DevinClient(base_url=f"http://127.0.0.1:{port}", api_key=server.api_key,
                         org_id=server.org_id)

    async def use() -> str:
        async with server, client:
            return (await client.sessions.create("hi")).status.value

    assert asyncio.run(use()) == "new"


def test_a_client_used_in_a_second_loop_is_a_clear_error() -> None:
    holder: dict[str, Any] = {}

    async def first() -> None:
        async with FakeDevinServer(time_scale=2000) as server:
            client = DevinClient(base_url=server.url, api_key=server.api_key,
                                 org_id=server.org_id)
            holder["client"] = client
            await client.sessions.create("one")

    async def second() -> type[BaseException] | None:
        client: DevinClient = holder["client"]
        try:
            await client.sessions.create("two")
        except DevinError as exc:
            return type(exc)
        finally:
            await client.aclose()
        return None

    asyncio.run(first())
    assert asyncio.run(second()) is EventLoopMismatchError


async def test_a_vanished_session_gives_one_gone_event() -> None:
    base = {"url": "https://app.devin.ai/s", "org_id": "org-a", "tags": [], "created_at": 1,
            "acus_consumed": 0, "pull_requests": [], "status": "running",
            "status_detail": "working", "updated_at": 5}
    present = [True]

    def handler(request: HTTPRequest) -> HTTPResponse:
        items = [{**base, "session_id": "devin-1"}] if present[0] else []
        if "/sessions/devin-1" in request.url:
            if present[0]:
                return HTTPResponse(200, JSON, json.dumps(items[0]).encode())
            return HTTPResponse(404, JSON, b'{"detail": "Session not found"}')
        present[0] = False  # gone after the first listing
        return HTTPResponse(200, JSON, json.dumps({"items": items, "has_next_page": False})
                            .encode())

    now = [0.0]

    async def sleep(seconds: float) -> None:  # a fake clock: the full re-read comes at once
        now[0] += seconds

    client = DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a",
                         poll=PollPolicy(initial=10.0, max=30.0, jitter=0.0),
                         transport=MockTransport(handler), clock=lambda: now[0], sleep=sleep)
    async with client, client.watch(["devin-1"]) as watcher:
        events = [e async for e in watcher]
    assert [e.gone for e in events][-1] is True
    assert sum(e.gone for e in events) == 1
    assert events[-1].session.session_id == "devin-1"


async def test_download_caps_the_size_and_refuses_foreign_urls(tmp_path: Path) -> None:
    async with FakeDevinServer() as server, DevinClient(
            base_url=server.url, api_key=server.api_key, org_id=server.org_id) as client:
        upload = await client.attachments.upload(b"x" * 5000, name="big.bin")
        with pytest.raises(DevinError):
            await client.attachments.download(upload.url, io.BytesIO(), max_bytes=1000)
        with pytest.raises(ValueError):
            await client.attachments.download("https://elsewhere.invalid/a/b", tmp_path / "x")
        assert not server.bucket_saw_authorization


@pytest.mark.parametrize(("cls", "field", "bad"), [
    (Timeouts, "total", True), (Timeouts, "connect", "10"), (RetryPolicy, "deadline", None),
    (PollPolicy, "max", [1]), (RetryPolicy, "max_attempts", 2.5),
])
def test_policy_values_of_the_wrong_type(cls: type, field: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=field):
        cls(**{field: bad})


@pytest.mark.parametrize("url", ["https://api.devin.ai/v3beta1", " https://api.devin.ai",
                                 "https://api.devin.ai/\n", "ftp://api.devin.ai"])
def test_bad_base_url_names_the_field(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        DevinClient(api_key="cog_x_1234567890", org_id="org-a", base_url=url)


@pytest.mark.parametrize("bad", [0, 201, 2.0, True])
def test_page_size_is_checked_before_any_request(bad: Any) -> None:
    client = DevinClient(api_key="cog_x_1234567890", org_id="org-a",
                         transport=MockTransport(lambda r: HTTPResponse(500, {}, b"")))
    with pytest.raises(ValueError, match="page_size"):
        client.sessions.list(page_size=bad)
    assert client.transport.requests == []  # type: ignore[attr-defined]


async def test_empty_session_ids_lists_nothing_without_a_request() -> None:
    transport = MockTransport(lambda r: HTTPResponse(500, {}, b""))
    async with DevinClient(api_key="cog_x_1234567890", org_id="org-a",
                           transport=transport) as client:
        assert await client.sessions.list(session_ids=[]).to_list() == []
    assert transport.requests == []


async def test_follow_iterators_close_cleanly() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=FAST,
                           transport=server.transport()) as client:
        sid = (await client.sessions.create("x")).session_id
        for follow in (client.sessions.events(sid, follow=True),
                       client.sessions.messages(sid, follow=True)):
            first = await anext(aiter(follow))
            assert first is not None
            await follow.aclose()  # type: ignore[union-attr]
        until_called: list[Session] = []

        def until(session: Session) -> bool:
            until_called.append(session)
            return True

        assert (await client.sessions.wait(sid, until=until)).session_id == sid
        assert len(until_called) == 1


# -- leaving an iterator early (filterwarnings=error catches a leaked task or session) ---------

async def test_watch_without_async_with_leaves_nothing() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=FAST,
                           transport=server.transport()) as client:
        ids = [(await client.sessions.create(f"T{n}")).session_id for n in range(2)]
        seen = [e async for e in client.watch(ids)]
        assert seen
        async for _e in client.watch(ids, forever=True):
            break
        gc.collect()


async def test_break_out_of_create_many_without_async_with_leaves_nothing() -> None:
    server = FakeDevinServer(time_scale=2000)
    server.inject("create", delay=0.05, times=None)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=FAST,
                           transport=server.transport(),
                           retry=RetryPolicy(settle=0.01)) as client:
        async for _r in client.sessions.create_many(
                [CreateSessionRequest(f"T{n}") for n in range(10)], concurrency=3):
            break
        gc.collect()
    gc.collect()


async def test_break_out_of_every_iterator_leaves_nothing() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=FAST,
                           transport=server.transport()) as client:
        sid = (await client.sessions.create("x")).session_id
        async for _s in client.sessions.poll(sid):
            break
        async for _e in client.sessions.events(sid, follow=True):
            break
        async for _m in client.sessions.messages(sid, follow=True):
            break
        async for _s in client.sessions.list():
            break
        gc.collect()


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
async def test_a_custom_transport_gets_bytes_bodies_even_for_uploads(kind: str,
                                                                    tmp_path: Path) -> None:
    # CONTRACT.md: "HTTPRequest(method, url, headers, body) (`body: bytes | None`)". A
    # transport written to the contract gets an upload as bytes; only one that sets
    # `streams_request_bodies = True` (the default aiohttp one) gets the streamed chunks.
    bodies: list[object] = []

    class Mine:
        async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
            bodies.append(request.body)
            return HTTPResponse(200, JSON, json.dumps(
                {"attachment_id": "a-1", "name": "f.txt", "url": "https://x/a"}).encode())

        async def aclose(self) -> None:
            return None

    path = tmp_path / "f.txt"
    path.write_bytes(b"payload")
    source: Any = {"bytes": b"payload", "path": path, "file": io.BytesIO(b"payload")}[kind]
    async with DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a",
                           transport=Mine()) as client:
        await client.attachments.upload(source, name="f.txt")
    assert len(bodies) == 1 and isinstance(bodies[0], bytes) and b"payload" in bodies[0]
