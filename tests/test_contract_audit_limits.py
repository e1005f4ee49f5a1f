"""Audit, fourth pass: one rate limiter for a batch, hints against deadlines, pydantic outputs,
the fake server's faults, and a borrowed aiohttp session really used.

Public imports only; a fake clock wherever time passes.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pydantic
import pytest

from devin_async import (
    CreateSessionRequest,
    DevinClient,
    HTTPRequest,
    HTTPResponse,
    MalformedResponseError,
    PollPolicy,
    RateLimitError,
    RetryPolicy,
)
from devin_async.testing import FakeDevinServer, MockTransport

JSON = {"content-type": "application/json"}
FAST = PollPolicy(initial=0.005, max=0.01, jitter=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def session_body(n: int) -> bytes:
    return json.dumps({"session_id": f"devin-{n}", "status": "new", "url": "https://a/s",
                       "org_id": "org-a", "tags": [], "created_at": 1, "updated_at": 1,
                       "acus_consumed": 0.0, "pull_requests": []}).encode()


async def test_a_429_pauses_every_batch_worker() -> None:
    clock = Clock()
    posts: list[float] = []
    first = [True]

    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.method == "POST":
            posts.append(clock.now)
            if first[0]:
                first[0] = False
                return HTTPResponse(429, {**JSON, "Retry-After": "2"}, b'{"detail": "slow"}')
            return HTTPResponse(200, JSON, session_body(len(posts)))
        return HTTPResponse(200, JSON, b'{"items": [], "has_next_page": false}')

    async with DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a", clock=clock,
                           sleep=clock.sleep, transport=MockTransport(handler),
                           client_tokens=False) as client:
        results = [r async for r in client.sessions.create_many(
            [CreateSessionRequest(f"T{n}") for n in range(6)], concurrency=4)]
    assert all(r.ok for r in results) and len(posts) == 7
    assert all(t >= posts[0] + 2 for t in posts[1:])  # nobody sent during the pause


async def test_a_hint_within_max_retry_after_never_outlasts_the_deadline() -> None:
    clock = Clock()
    transport = MockTransport(
        lambda r: HTTPResponse(429, {**JSON, "Retry-After": "50"}, b'{"detail": "slow"}'))
    start = clock.now
    async with DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a", clock=clock,
                           sleep=clock.sleep, transport=transport,
                           retry=RetryPolicy(deadline=10.0, max_retry_after=60.0)) as client:
        with pytest.raises(RateLimitError):
            await client.sessions.get("devin-1")
    assert clock.now - start <= 10.0


class Summary(pydantic.BaseModel):
    title: str
    lines: int


async def test_run_with_a_pydantic_output_type() -> None:
    server = FakeDevinServer(time_scale=2000)
    server.output_generator = lambda schema: {"title": "Repo", "lines": 3}
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=FAST,
                           transport=server.transport()) as client:
        result = await client.sessions.run("Summarize", output_type=Summary, timeout=600)
    assert result.output == Summary(title="Repo", lines=3)
    schema = server.create_request(result.session.session_id)["structured_output_schema"]
    assert set(schema["properties"]) == {"title", "lines"}


@pytest.mark.parametrize("kind", ["truncated", "non_json", "html", "empty"])
async def test_fake_malformed_bodies_are_malformed_response_errors(kind: Any) -> None:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport(),
                           retry=RetryPolicy(max_attempts=1)) as client:
        sid = (await client.sessions.create("x")).session_id
        server.inject("get", malformed=kind, times=None)
        with pytest.raises(MalformedResponseError):
            await client.sessions.get(sid)


async def test_fake_rate_limit_per_token_is_ridden_out() -> None:
    server = FakeDevinServer(time_scale=2000, rate_limit=200.0, rate_limit_burst=2)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport()) as client:
        sid = (await client.sessions.create("x")).session_id
        for _ in range(6):
            assert (await client.sessions.get(sid)).session_id == sid
    assert server.stats.get("rate_limited", 0) >= 1


async def test_a_borrowed_aiohttp_session_carries_the_requests() -> None:
    sent: list[str] = []

    async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        sent.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with FakeDevinServer() as server, aiohttp.ClientSession(trace_configs=[trace]) as http:
        async with DevinClient(base_url=server.url, api_key=server.api_key,
                               org_id=server.org_id, session=http) as client:
            await client.sessions.create("x")
        assert not http.closed
    assert any(url.endswith("/sessions") for url in sent)
