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
    async with client_for(server) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.sessions.create("x", client_token=False)
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
