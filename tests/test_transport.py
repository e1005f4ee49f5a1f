"""What crosses a real socket: keep-alive, resets, timeouts, redirects, body caps.

Each test runs a tiny aiohttp server on 127.0.0.1 with handlers that misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DevinClient,
    MalformedResponseError,
    RetryPolicy,
    Timeouts,
)
from devin_async._aiohttp import client_timeout

from .helpers import KEY, FakeClock, session_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.peers: list[Any] = []
        self.auth: list[str | None] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(request.transport.get_extra_info("peername") if request.transport
                          else None)
        self.auth.append(request.headers.get("Authorization"))
        assert self.handler is not None
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    yield s
    await s.close()


def client_for(server: Server, **kw: Any) -> DevinClient:
    clock = FakeClock()
    kw.setdefault("clock", clock)
    kw.setdefault("sleep", clock.sleep)
    return DevinClient(KEY, org_id="org-test", base_url=server.url, **kw)


async def ok(request: web.Request) -> web.Response:
    return web.json_response(session_json("devin-1"))


async def test_keep_alive_reuses_one_connection(server: Server) -> None:
    server.handler = ok
    async with client_for(server) as c:
        for _ in range(5):
            await c.sessions.get("devin-1")
    assert len(server.peers) == 5 and len(set(server.peers)) == 1


async def test_reset_before_answer_is_retried_for_reads(server: Server) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.01)
        return await ok(request)

    server.handler = flaky
    async with client_for(server) as c:
        assert (await c.sessions.get("devin-1")).session_id == "devin-1"
    assert calls == 2


async def test_reset_on_unguarded_create_is_not_retried(server: Server) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.01)
        return web.Response()

    server.handler = drop
    async with client_for(server, client_tokens=False) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.sessions.create("x")
    assert info.value.sent
    assert len(server.peers) == 1
    assert KEY not in str(info.value)


async def test_read_timeout(server: Server) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return await ok(request)

    server.handler = slow
    async with client_for(server, timeouts=Timeouts(read=0.05, total=0.1),
                          retry=RetryPolicy.disabled()) as c:
        with pytest.raises(APITimeoutError) as info:
            await c.sessions.get("devin-1")
    assert info.value.sent


async def test_read_timeout_between_chunks(server: Server) -> None:
    # A `read` shorter than `total` is armed on its own: a stall after the first bytes ends the
    # attempt after `read`, long before `total`.
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"session_id": ')
        await asyncio.sleep(0.5)
        return resp

    server.handler = stall
    loop = asyncio.get_running_loop()
    async with client_for(server, timeouts=Timeouts(read=0.05, total=5),
                          retry=RetryPolicy.disabled()) as c:
        start = loop.time()
        with pytest.raises(APITimeoutError) as info:
            await c.sessions.get("devin-1")
        assert loop.time() - start < 2.5  # `read` fired, not `total` (5 s)
    assert info.value.sent


async def test_total_bounds_the_attempt_when_read_is_not_shorter(server: Server) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return await ok(request)

    server.handler = slow
    loop = asyncio.get_running_loop()
    async with client_for(server, timeouts=Timeouts(read=0.1, total=0.1),
                          retry=RetryPolicy.disabled()) as c:
        start = loop.time()
        with pytest.raises(APITimeoutError):
            await c.sessions.get("devin-1")
        assert loop.time() - start < 0.4


async def test_waiting_for_a_pooled_connection_is_not_a_connect_timeout(server: Server) -> None:
    # `connect` times opening a connection, not queueing for one of the pool's: with one
    # connection and two requests, the second waits longer than `connect` and still succeeds.
    async def slowish(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.15)
        return await ok(request)

    server.handler = slowish
    async with client_for(server, timeouts=Timeouts(connect=0.05, read=2, total=2),
                          retry=RetryPolicy.disabled(), connection_limit=1) as c:
        first, second = await asyncio.gather(c.sessions.get("devin-1"), c.sessions.get("devin-1"))
    assert first.session_id == second.session_id == "devin-1"
    assert len(set(server.peers)) == 1


async def test_an_attempt_that_never_got_a_connection_is_known_unsent(server: Server) -> None:
    # The pool wait ends before `total`, as a connect timeout: the create was never sent, so
    # it is safe to say so (and to retry it), not an ambiguous "timed out after sending".
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.4)
        return web.json_response(session_json("devin-1"))

    server.handler = slow
    async with client_for(server, timeouts=Timeouts(total=0.2), retry=RetryPolicy.disabled(),
                          connection_limit=1, client_tokens=False) as c:
        first, second = await asyncio.gather(
            c.sessions.get("devin-1"), c.sessions.create("p"),
            return_exceptions=True)
    assert isinstance(first, APITimeoutError) and first.sent
    assert isinstance(second, APITimeoutError) and not second.sent
    assert len(server.peers) == 1  # the create never left the pool


def test_aiohttp_timeouts_follow_the_policy() -> None:
    t = Timeouts()
    default = client_timeout(t.total, t.connect, t.read)
    assert (default.total, default.sock_connect, default.sock_read, default.connect) == (
        60, 10, None, 59)  # read == total: no per-chunk timer; the pool wait ends first
    shorter = client_timeout(30, t.connect, 5)
    assert (shorter.total, shorter.sock_read) == (30, 5)
    # A retry near the call's deadline gets what is left; a read past it is not armed.
    near = client_timeout(2, t.connect, 5)
    assert near.sock_read is None and near.connect == 1.8 and near.sock_connect == 1.8


async def test_connection_refused_is_not_sent(server: Server) -> None:
    url = server.url
    await server.close()
    server.runner = None
    async with DevinClient(KEY, org_id="org-test", base_url=url,
                           retry=RetryPolicy.disabled()) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.sessions.get("devin-1")
    assert not info.value.sent
    await server.start()  # so the fixture can close it


async def test_redirect_is_not_followed_and_key_stays_home(server: Server) -> None:
    other = Server()
    other.handler = ok
    await other.start()
    try:
        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(other.url + request.path)

        server.handler = redirect
        async with client_for(server) as c:
            with pytest.raises(APIStatusError) as info:
                await c.sessions.get("devin-1")
        assert info.value.status == 302
        assert other.auth == []
    finally:
        await other.close()


async def test_body_cap(server: Server) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=json.dumps({"x": "y" * 5000}).encode(),
                            content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b" " * 1000)
        await resp.write_eof()
        return resp

    async with client_for(server, max_response_bytes=2000) as c:
        for handler in (huge, chunked):
            server.handler = handler
            with pytest.raises(MalformedResponseError, match="limit of 2000 bytes"):
                await c.sessions.get("devin-1")


async def test_v3_paths_on_the_wire(server: Server) -> None:
    paths: list[str] = []

    async def record(request: web.Request) -> web.StreamResponse:
        paths.append(request.path_qs)
        return await ok(request)

    server.handler = record
    async with client_for(server, api_version="v3") as c:
        await c.sessions.get("devin-1")
        await c.sessions.terminate("devin-1")
    assert paths == ["/v3/organizations/org-test/sessions/devin-1",
                     "/v3/organizations/org-test/sessions/devin-1?archive=false"]
