"""Audit of CONTRACT.md "Client", "Transport seam" and "Errors", called as a user would.

Public imports only. Requests are answered by `MockTransport` (exact bytes) or the in-process
fake server; no test sleeps on a real clock (a fake clock is injected where time passes).
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs
import pytest

from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DevinClient,
    DevinError,
    HTTPRequest,
    HTTPResponse,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    Principal,
    RateLimitError,
    RetryPolicy,
    StructuredOutputError,
    Timeouts,
    Transport,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from devin_async.testing import FakeDevinServer, MockTransport

from .helpers import FakeClock

KEY = "cog_audit_secret_key_0123456789abcdefWXYZ"
JSON = {"content-type": "application/json"}
SESSION = {"session_id": "devin-1", "status": "running", "status_detail": "working",
           "url": "https://app.devin.ai/sessions/1", "org_id": "org-a", "tags": [],
           "created_at": 1_700_000_000, "updated_at": 1_700_000_001, "acus_consumed": 0.5,
           "pull_requests": []}


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTPResponse(status, {**JSON, **(headers or {})}, raw)


def mock_client(handler: Callable[[HTTPRequest], HTTPResponse], clock: FakeClock | None = None,
                **kw: Any) -> tuple[DevinClient, MockTransport]:
    transport = MockTransport(handler)
    clock = clock or FakeClock()
    client = DevinClient(api_key=KEY, org_id="org-a", transport=transport, clock=clock,
                         sleep=clock.sleep, **kw)
    return client, transport


# -- construction ------------------------------------------------------------------------------

def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", KEY)
    monkeypatch.setenv("DEVIN_ORG_ID", "org-env")
    monkeypatch.setenv("DEVIN_BASE_URL", "https://devin.example.com")
    client = DevinClient()
    assert client.org_id == "org-env"
    assert client.base_url == "https://devin.example.com"
    monkeypatch.delenv("DEVIN_BASE_URL")
    assert DevinClient().base_url == "https://api.devin.ai"


@pytest.mark.parametrize("missing", ["DEVIN_API_KEY", "DEVIN_ORG_ID"])
def test_missing_key_or_org_is_value_error(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", KEY)
    monkeypatch.setenv("DEVIN_ORG_ID", "org-env")
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError):
        DevinClient()


def test_signature_key_positional_rest_keyword_only() -> None:
    client = DevinClient(KEY, org_id="org-a", base_url=None, api_version="v3beta1",
                         timeouts=Timeouts(), retry=RetryPolicy(), session=None, transport=None)
    assert client.org_id == "org-a"
    with pytest.raises(TypeError):
        DevinClient(KEY, "org-a")  # type: ignore[misc]


@pytest.mark.parametrize("url", ["http://api.example.com", "http://10.0.0.1:8080"])
def test_plain_http_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ValueError):
        DevinClient(api_key=KEY, org_id="org-a", base_url=url)
    assert DevinClient(api_key=KEY, org_id="org-a", base_url=url,
                       allow_insecure_http=True).base_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"])
def test_plain_http_to_loopback_allowed(url: str) -> None:
    assert DevinClient(api_key=KEY, org_id="org-a", base_url=url).base_url == url


def test_repr_shows_at_most_last4() -> None:
    text = repr(DevinClient(api_key=KEY, org_id="org-a"))
    assert KEY not in text and KEY[4:-4] not in text
    assert "WXYZ" in text or "cog_" in text


# -- policies ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "expected"), [
    (Timeouts, {"connect": 10.0, "read": 60.0, "total": 60.0}),
    (RetryPolicy, {"max_attempts": 4, "initial_backoff": 0.5, "max_backoff": 8.0,
                   "max_retry_after": 60.0, "deadline": 180.0, "settle": 3.0}),
    (PollPolicy, {"initial": 1.0, "max": 30.0, "multiplier": 1.5, "jitter": 0.1}),
])
def test_policy_defaults_as_readme_table(cls: type, expected: dict[str, float]) -> None:
    policy = cls()
    for name, value in expected.items():
        assert getattr(policy, name) == value, name
        assert math.isfinite(getattr(policy, name))
    assert attrs.has(cls) and "__slots__" in cls.__dict__
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(policy, next(iter(expected)), 1.0)


DURATIONS = [(Timeouts, "connect"), (Timeouts, "read"), (Timeouts, "total"),
             (RetryPolicy, "initial_backoff"), (RetryPolicy, "max_backoff"),
             (RetryPolicy, "max_retry_after"), (RetryPolicy, "deadline"),
             (PollPolicy, "initial"), (PollPolicy, "max")]


@pytest.mark.parametrize(("cls", "field"), DURATIONS)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 0, -1.0])
def test_policy_rejects_non_finite_or_non_positive(cls: type, field: str, bad: float) -> None:
    with pytest.raises(ValueError, match=field):
        cls(**{field: bad})


def test_retry_policy_max_attempts_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# -- transport seam ----------------------------------------------------------------------------

@pytest.mark.parametrize("is_async", [False, True])
async def test_mock_transport_plain_or_async_handler(is_async: bool) -> None:
    def plain(request: HTTPRequest) -> HTTPResponse:
        return answer(200, SESSION)

    async def coro(request: HTTPRequest) -> HTTPResponse:
        return answer(200, SESSION)

    transport = MockTransport(coro if is_async else plain)
    assert isinstance(transport, Transport)
    async with DevinClient(api_key=KEY, org_id="org-a", transport=transport) as client:
        session = await client.sessions.get("devin-1")
    assert session.session_id == "devin-1"
    sent = transport.requests[0]
    assert isinstance(sent, HTTPRequest)
    assert (sent.method, sent.body) == ("GET", None)
    assert sent.url == "https://api.devin.ai/v3beta1/organizations/org-a/sessions/devin-1"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert transport.closed  # the client closes a transport it was given


async def test_api_version_v3_paths() -> None:
    client, transport = mock_client(lambda r: answer(200, SESSION), api_version="v3")
    async with client:
        await client.sessions.get("devin-1")
    assert "/v3/organizations/org-a/sessions/devin-1" in transport.requests[0].url


async def test_post_body_is_json_bytes() -> None:
    client, transport = mock_client(lambda r: answer(200, SESSION), client_tokens=False)
    async with client:
        await client.sessions.create("hello")
    body = transport.requests[0].body
    assert isinstance(body, bytes) and json.loads(body) == {"prompt": "hello"}


async def test_fake_server_in_process_transport() -> None:
    server = FakeDevinServer(time_scale=100)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport()) as client:
        session = await client.sessions.create("hi")
        assert (await client.sessions.get(session.session_id)).session_id == session.session_id
    assert server.session_count == 1


async def test_borrowed_session_never_closed_and_aclose_idempotent() -> None:
    async with FakeDevinServer() as server, aiohttp.ClientSession() as http:
        client = DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id,
                             session=http)
        async with client:
            await client.sessions.create("hi")
        await client.aclose()  # same as leaving the async with; twice is harmless
        assert client.closed and not http.closed


async def test_whoami_root_path_and_unknown_fields_ignored() -> None:
    me = {"principal_type": "pat_user", "user_id": "u-1", "user_name": "Ann",
          "api_key_id": "k", "api_key_name": "n", "org_id": "org-a", "brand_new": {"x": 1}}
    client, transport = mock_client(lambda r: answer(200, me))
    async with client:
        principal = await client.whoami()
    assert isinstance(principal, Principal)
    assert (principal.principal_type, principal.user_id, principal.user_name,
            principal.org_id, principal.service_user_id, principal.service_user_name) == (
        "pat_user", "u-1", "Ann", "org-a", None, None)
    assert transport.requests[0].url == "https://api.devin.ai/v3/self"


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "cls"), [
    (400, BadRequestError), (401, AuthenticationError), (403, PermissionDeniedError),
    (404, NotFoundError), (409, ConflictError), (422, UnprocessableEntityError),
    (429, RateLimitError), (500, InternalServerError), (502, InternalServerError),
    (503, InternalServerError), (504, InternalServerError),
])
async def test_status_error_classes_and_attributes(status: int, cls: type) -> None:
    body: Any = {"detail": "nope"}
    if status == 422:
        body = {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"},
                           {"loc": ["body", "tags"], "msg": "too many", "type": "value_error"}]}
    headers = {"x-request-id": "req-42", "Retry-After": "2"}
    client, _ = mock_client(lambda r: answer(status, body, headers),
                            retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(cls) as info:
            await client.sessions.get("devin-1")
    exc = info.value
    assert isinstance(exc, APIStatusError) and isinstance(exc, DevinError)
    assert (exc.status, exc.request_id, exc.retry_after) == (status, "req-42", 2.0)
    assert exc.body == body
    assert isinstance(exc.detail, str)
    if status == 422:
        assert isinstance(exc, UnprocessableEntityError)
        assert exc.errors == body["detail"]
        assert "field required" in exc.detail and "too many" in exc.detail
    else:
        assert exc.detail == "nope"


@pytest.mark.parametrize(("body", "detail_part"), [
    ({"type": "about:blank", "title": "Forbidden", "status": 403, "detail": "no perm"}, "no perm"),
    (b"<html>502 Bad Gateway</html>", "Bad Gateway"),
])
async def test_error_detail_always_string(body: Any, detail_part: str) -> None:
    client, _ = mock_client(lambda r: answer(403, body), retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(PermissionDeniedError) as info:
            await client.sessions.get("devin-1")
    assert isinstance(info.value.detail, str) and detail_part in info.value.detail
    if isinstance(body, bytes):
        assert info.value.body == body.decode()


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"session_id": 3}'])
async def test_malformed_2xx(raw: bytes) -> None:
    client, _ = mock_client(lambda r: answer(200, raw), retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(MalformedResponseError):
            await client.sessions.get("devin-1")
    assert issubclass(MalformedResponseError, DevinError)


async def test_connection_refused_is_api_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with DevinClient(api_key=KEY, org_id="org-a", base_url=f"http://127.0.0.1:{port}",
                           retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(APIConnectionError):
            await client.sessions.get("devin-1")


async def test_an_unmapped_status_is_the_base_status_error() -> None:
    client, _ = mock_client(lambda r: answer(418, {"detail": "teapot"}),
                            retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(APIStatusError) as info:
            await client.sessions.get("devin-1")
    assert type(info.value) is APIStatusError and info.value.status == 418


def test_error_tree() -> None:
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(APIConnectionError, DevinError)
    assert issubclass(WaitTimeoutError, DevinError) and issubclass(WaitTimeoutError, TimeoutError)
    assert issubclass(StructuredOutputError, DevinError)
    assert not issubclass(ValueError, DevinError)


# -- the key stays secret ------------------------------------------------------------------------

ECHOES: list[Callable[[str], tuple[bytes, dict[str, str]]]] = [
    lambda k: (json.dumps({"detail": f"bad key {k}"}).encode(), {}),
    lambda k: (json.dumps({"detail": f"bad key {k}"}, ensure_ascii=True).encode()
               .replace(b"_", b"\\u005f"), {}),
    lambda k: (b'{"detail": "denied"}', {"x-echo": k}),
    lambda k: (f"parser error near 'Bearer {k}'".encode(), {}),
]


@pytest.mark.parametrize("echo", ECHOES)
async def test_key_never_in_errors_or_logs(echo: Callable[[str], tuple[bytes, dict[str, str]]],
                                           caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: HTTPRequest) -> HTTPResponse:
        body, headers = echo(request.headers["Authorization"].removeprefix("Bearer "))
        return HTTPResponse(401, {**JSON, **headers, "x-request-id": headers.get("x-echo", "r")},
                            body)

    caplog.set_level(logging.DEBUG, logger="devin_async")
    client, _ = mock_client(handler, retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.sessions.get("devin-1")
    exc = info.value
    everything = " ".join([str(exc), repr(exc), repr(exc.body), exc.detail, str(exc.request_id),
                           caplog.text, repr(exc.__cause__), repr(exc.__context__)])
    assert KEY not in everything and KEY[4:] not in everything


# -- server hints and deadlines ----------------------------------------------------------------

async def test_long_retry_after_fails_at_once_with_hint() -> None:
    clock = FakeClock()
    client, transport = mock_client(
        lambda r: answer(429, {"detail": "slow"}, {"Retry-After": "86400"}), clock)
    async with client:
        with pytest.raises(RateLimitError) as info:
            await client.sessions.get("devin-1")
    assert info.value.retry_after == 86400
    assert len(transport.requests) == 1 and sum(clock.sleeps) <= 60


async def test_deadline_bounds_a_whole_call() -> None:
    clock = FakeClock()
    client, _ = mock_client(lambda r: answer(503, {"detail": "down"}, {"Retry-After": "5"}),
                            clock, retry=RetryPolicy(max_attempts=100, deadline=12.0))
    start = clock.now
    async with client:
        with pytest.raises(DevinError):
            await client.sessions.get("devin-1")
    assert clock.now - start <= 12.0 + 1e-6


async def test_retry_after_on_2xx_while_polling_is_capped() -> None:
    states = iter([("running", "working")] * 3 + [("running", "finished")])
    clock = FakeClock()

    def handler(request: HTTPRequest) -> HTTPResponse:
        status, detail = next(states, ("running", "finished"))
        return answer(200, {**SESSION, "status": status, "status_detail": detail},
                      {"Retry-After": "86400"})

    client, _ = mock_client(handler, clock, retry=RetryPolicy(max_retry_after=7.0))
    async with client:
        done = await client.sessions.wait("devin-1", timeout=3600)
    assert done.status_detail == "finished"
    assert clock.sleeps and max(clock.sleeps) <= 7.0
