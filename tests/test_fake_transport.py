"""`FakeDevinServer.transport()`: the fake served in process through the transport seam."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from devin_async import APIConnectionError, APITimeoutError
from devin_async._transport import HTTPRequest, HTTPResponse, Transport
from devin_async.testing import FakeDevinServer

from .fake_helpers import ManualClock

ORIGIN = "http://fake.invalid"


def request(server: FakeDevinServer, method: str, path: str, body: Any = None, *,
            token: str | None = None, version: str = "v3beta1") -> HTTPRequest:
    headers = {"Authorization": f"Bearer {token or server.api_key}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    url = f"{ORIGIN}/{version}/organizations/{server.org_id}{path}"
    return HTTPRequest(method, url, headers, data)


def decoded(response: HTTPResponse) -> Any:
    return json.loads(response.body)


async def test_it_serves_without_a_socket_and_is_a_transport() -> None:
    server = FakeDevinServer(clock=ManualClock())
    transport = server.transport()
    assert isinstance(transport, Transport)
    created = await transport.send(request(server, "POST", "/sessions", {"prompt": "p"}),
                                   timeout=5)
    assert created.status == 200 and created.headers["Content-Type"] == "application/json"
    assert created.headers["x-request-id"].startswith("req_")
    sid = decoded(created)["session_id"]
    got = await transport.send(request(server, "GET", f"/sessions/{sid}", version="v3"), timeout=5)
    assert decoded(got)["session_id"] == sid and not server.listening
    assert [r.endpoint for r in server.requests] == ["create", "get"]
    assert server.requests[0].headers["Authorization"].startswith("Bearer cog_…")


async def test_state_is_shared_with_the_socket_front() -> None:
    async with FakeDevinServer() as server:
        transport = server.transport()
        (sid,) = server.add_sessions(1, tags=["seed"])
        listed = await transport.send(request(server, "GET", "/sessions?tags=seed"), timeout=5)
        assert [s["session_id"] for s in decoded(listed)["items"]] == [sid]


@pytest.mark.parametrize(("path", "status"), [
    ("/sessions/devin-x%0A", 404),
    ("/sessions/devin-%00x/messages", 404),
    ("/nowhere", 404),
])
async def test_odd_paths_get_json_errors(path: str, status: int) -> None:
    server = FakeDevinServer()
    answer = await server.transport().send(request(server, "GET", path), timeout=5)
    assert answer.status == status and set(decoded(answer)) == {"detail"}


async def test_errors_limits_and_faults_behave_as_on_the_socket() -> None:
    server = FakeDevinServer(clock=ManualClock(), rate_limit=1, rate_limit_burst=1)
    transport = server.transport()
    unauthorised = await transport.send(request(server, "GET", "/sessions", token="cog_nope"),
                                        timeout=5)
    assert unauthorised.status == 401 and unauthorised.headers["WWW-Authenticate"] == "Bearer"
    assert (await transport.send(request(server, "GET", "/sessions"), timeout=5)).status == 200
    limited = await transport.send(request(server, "GET", "/sessions"), timeout=5)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    server.set_rate_limit(None)
    server.inject("list", status=503, retry_after=2)
    unavailable = await transport.send(request(server, "GET", "/sessions"), timeout=5)
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == "2"
    server.inject("list", malformed="truncated")
    broken = await transport.send(request(server, "GET", "/sessions"), timeout=5)
    with pytest.raises(ValueError):
        json.loads(broken.body)


@pytest.mark.parametrize(("drop", "sent", "created"), [("before", False, 0), ("after", True, 1)])
async def test_a_dropped_connection_is_a_connection_error(drop: Any, sent: bool,
                                                          created: int) -> None:
    server = FakeDevinServer()
    server.inject("create", drop=drop)
    with pytest.raises(APIConnectionError) as info:
        await server.transport().send(request(server, "POST", "/sessions", {"prompt": "p"}),
                                      timeout=5)
    assert type(info.value) is APIConnectionError and info.value.sent is sent
    assert server.session_count == created and server.stats["drops"] == 1
    assert server.requests[-1].status is None


async def test_a_slow_answer_times_out_and_the_server_still_acts() -> None:
    server = FakeDevinServer()
    transport = server.transport()
    server.inject("create", delay=0.05)
    with pytest.raises(APITimeoutError) as info:
        await transport.send(request(server, "POST", "/sessions", {"prompt": "p"}), timeout=0.01)
    assert info.value.sent is True and server.session_count == 0
    await asyncio.sleep(0.08)
    assert server.session_count == 1
    server.inject("get", delay=0.01)
    (sid,) = server.sessions
    late = await transport.send(request(server, "GET", f"/sessions/{sid}"), timeout=1)
    assert late.status == 200


async def test_secret_values_stay_out_of_the_log_and_of_every_answer() -> None:
    server = FakeDevinServer(clock=ManualClock())
    transport = server.transport()
    secret = "hunter2-Very-Secret"
    body = {"prompt": "p", "session_secrets": [{"key": "TOKEN", "value": secret}]}
    created = await transport.send(request(server, "POST", "/sessions", body), timeout=5)
    sid = decoded(created)["session_id"]
    bad = {"prompt": "", "session_secrets": [{"key": "", "value": secret, "sensitive": 1}]}
    refused = await transport.send(request(server, "POST", "/sessions", bad), timeout=5)
    assert refused.status == 422
    answers = [created, refused]
    for path in ("", "/events", "/events/details?limit=50", "/events/search?query=TOKEN",
                 "/messages", "/insights"):
        answers.append(await transport.send(request(server, "GET", f"/sessions/{sid}{path}"),
                                            timeout=5))
    assert all(secret.encode() not in a.body for a in answers)
    assert b"TOKEN" in answers[-3].body  # the secret event names the key, not the value
    for entry in server.requests:
        assert secret not in repr(entry) and secret.encode() not in entry.body
    assert server.requests[0].json["session_secrets"][0] == {"key": "TOKEN",
                                                             "value": "<redacted>"}
    assert server.session_secrets(sid) == body["session_secrets"]


async def test_a_closed_transport_refuses_and_the_server_stays() -> None:
    server = FakeDevinServer()
    transport = server.transport()
    await transport.aclose()
    with pytest.raises(APIConnectionError) as info:
        await transport.send(request(server, "GET", "/sessions"), timeout=5)
    assert info.value.sent is False
    assert (await server.transport().send(request(server, "GET", "/sessions"),
                                          timeout=5)).status == 200


async def test_the_in_process_path_is_fast() -> None:
    server = FakeDevinServer(clock=ManualClock())
    transport = server.transport()
    (sid,) = server.add_sessions(1)
    get = request(server, "GET", f"/sessions/{sid}")
    start = time.perf_counter()
    for _ in range(500):
        await transport.send(get, timeout=5)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"500 in-process requests took {elapsed:.2f} s"
