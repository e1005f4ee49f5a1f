"""The fake server's request pipeline, free of any HTTP library: request data in, answer out.

Both fronts call `Dispatcher.handle`: the aiohttp app (a real loopback socket) and the in-process
transport (`FakeDevinServer.transport()`), so faults, rate limits, lifecycle and the request log
behave the same on either.

Pipeline of every request, in order: route -> fault (delay, drop before, status) -> authenticate
(401) -> rate limit (429) -> organization (404) -> endpoint permission (403) -> endpoint: body
validation (422), body-dependent permissions (403), session lookup (404), action -> fault (drop
after, malformed) -> `x-request-id` -> request log (Authorization masked, secret values redacted).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Literal

import attrs
from multidict import CIMultiDictProxy, MultiDictProxy

from ._attachments import Answer
from ._auth import ENDPOINT_PERMISSION, Principal, TokenRegistry, mask_authorization
from ._errors import ApiError
from ._faults import DropKind, Fault, FaultBook, malformed_body, raw_body
from ._log import RecordedRequest, RequestLog, frozen_headers
from ._ratelimit import RateLimiter, retry_after_headers
from ._routes import resolve
from ._validation import parse_json, redact_secrets

ErrorStyle = Literal["fastapi", "problem"]


@attrs.frozen
class Incoming:
    """One request as either front received it; `origin` is the API origin the client used."""

    method: str
    path: str  # percent-decoded
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    origin: str
    bucket_origin: str


@attrs.frozen
class Outcome:
    """What to do with the connection: answer, or (`drop`) close it without an answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    drop: DropKind | None = None


@attrs.frozen
class Pending:
    """A routed request whose fault was drawn, waiting for its `delay` (real seconds)."""

    incoming: Incoming
    endpoint: str | None
    params: dict[str, str]
    allowed: set[str]
    fault: Fault | None
    request_id: str

    @property
    def delay(self) -> float:
        return (self.fault.delay or 0.0) if self.fault is not None else 0.0


class Call:
    """One authorised request to an endpoint."""

    def __init__(self, incoming: Incoming, params: dict[str, str], principal: Principal) -> None:
        self.incoming = incoming
        self.params = params
        self.principal = principal

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.incoming.query

    @property
    def raw(self) -> bytes:
        return self.incoming.body

    def json(self) -> Any:
        return parse_json(self.incoming.body)


Endpoint = Callable[[Call], Any]


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class Dispatcher:
    """Route, guard, act and log: the whole server behaviour behind one coroutine."""

    def __init__(
        self, *, org_id: str, tokens: TokenRegistry, faults: FaultBook, limiter: RateLimiter,
        log: RequestLog, endpoints: Mapping[str, Endpoint], error_style: ErrorStyle = "fastapi",
    ) -> None:
        self.org_id = org_id
        self.tokens = tokens
        self.faults = faults
        self.limiter = limiter
        self.log = log
        self.endpoints = dict(endpoints)
        self.error_style = error_style

    def error(self, status: int, detail: str | list[dict[str, Any]],
              headers: Mapping[str, str] | None = None) -> Outcome:
        """`{"detail": ...}` (FastAPI); error_style="problem": an RFC 9457 body (except 422s)."""
        if self.error_style == "problem" and isinstance(detail, str):
            payload: dict[str, Any] = {"type": "about:blank", "title": phrase(status),
                                       "status": status, "detail": detail}
            ctype = "application/problem+json"
        else:
            payload, ctype = {"detail": detail}, "application/json"
        return Outcome(status, {**(headers or {}), "Content-Type": ctype}, json_bytes(payload))

    async def handle(self, incoming: Incoming) -> Outcome:
        """Answer one request (sleeping first when a fault says so)."""
        pending = self.begin(incoming)
        if pending.delay:
            await asyncio.sleep(pending.delay)
        return self.finish(pending)

    def begin(self, incoming: Incoming) -> Pending:
        """Route the request and draw its fault; `finish` does the rest after `delay`."""
        endpoint, params, allowed = resolve(incoming.method, incoming.path)
        fault = self.faults.take(endpoint)
        return Pending(incoming, endpoint, params, allowed, fault, f"req_{os.urandom(16).hex()}")

    def finish(self, pending: Pending) -> Outcome:
        """Act on a begun request and log it; never raises for a request's content."""
        incoming, endpoint, fault = pending.incoming, pending.endpoint, pending.fault
        request_id = pending.request_id
        if fault is not None and fault.drop == "before":
            return self._drop(incoming, endpoint, request_id, fault)
        if fault is not None and fault.status is not None:
            outcome = self._fault_answer(fault)
        else:
            outcome = self._answer(incoming, endpoint, pending.params, pending.allowed)
            if fault is not None:
                if fault.drop == "after":
                    return self._drop(incoming, endpoint, request_id, fault)
                if fault.malformed is not None:
                    outcome = _malformed(outcome, fault)
                outcome.headers.update(fault.extra_headers())
        outcome.headers["x-request-id"] = request_id
        self._record(incoming, endpoint, outcome.status, request_id, fault)
        return outcome

    def _answer(self, incoming: Incoming, endpoint: str | None, params: dict[str, str],
                allowed: set[str]) -> Outcome:
        try:
            if endpoint is None:
                if allowed:
                    raise ApiError(405, "Method Not Allowed",
                                   headers={"Allow": ", ".join(sorted(allowed))})
                raise ApiError(404, "Not Found")
            principal = self.tokens.authenticate(incoming.headers.get("Authorization"))
            wait = self.limiter.acquire(principal.token)
            if wait is not None:
                self.log.stats["rate_limited"] += 1
                raise ApiError(429, "Rate limit exceeded", headers=retry_after_headers(wait))
            if "org_id" in params and params["org_id"] != self.org_id:
                raise ApiError(404, f"Organization {params['org_id']} not found")
            principal.require(ENDPOINT_PERMISSION[endpoint])
            payload = self.endpoints[endpoint](Call(incoming, params, principal))
        except ApiError as err:
            return self.error(err.status, err.detail, err.headers)
        if isinstance(payload, Answer):
            return Outcome(payload.status, dict(payload.headers), payload.body)
        return Outcome(200, {"Content-Type": "application/json"}, json_bytes(payload))

    def _fault_answer(self, fault: Fault) -> Outcome:
        assert fault.status is not None
        if fault.body is not None:
            body, ctype = raw_body(fault.body)
            outcome = Outcome(fault.status, {"Content-Type": ctype}, body)
        else:
            detail = "Rate limit exceeded" if fault.status == 429 else phrase(fault.status)
            outcome = self.error(fault.status, detail)
        if fault.malformed is not None:
            outcome = _malformed(outcome, fault)
        outcome.headers.update(fault.extra_headers())
        return outcome

    def _drop(self, incoming: Incoming, endpoint: str | None, request_id: str,
              fault: Fault) -> Outcome:
        self._record(incoming, endpoint, None, request_id, fault)
        return Outcome(0, {}, b"", drop=fault.drop)

    def _record(self, incoming: Incoming, endpoint: str | None, status: int | None,
                request_id: str, fault: Fault | None) -> None:
        raw = incoming.body
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        redacted = redact_secrets(body)
        if redacted is not body:
            body, raw = redacted, json.dumps(redacted).encode()
        headers = [(k, mask_authorization(v) if k.lower() == "authorization" else v)
                   for k, v in incoming.headers.items()]
        self.log.record(RecordedRequest(
            method=incoming.method, path=incoming.path, query=tuple(incoming.query.items()),
            json=body, headers=frozen_headers(headers), endpoint=endpoint, status=status,
            request_id=request_id, fault=None if fault is None else fault.kind, body=raw))


def _malformed(outcome: Outcome, fault: Fault) -> Outcome:
    assert fault.malformed is not None
    body, ctype = malformed_body(fault.malformed, outcome.body)
    return Outcome(outcome.status, {**outcome.headers, "Content-Type": ctype}, body)
