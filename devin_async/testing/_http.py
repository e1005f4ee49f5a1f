"""The HTTP face of the fake server: routing table, request pipeline and the endpoint bodies.

Pipeline of every request, in order: route -> fault (delay, drop before, status) -> authenticate
(401) -> rate limit (429) -> organization (404) -> endpoint permission (403) -> endpoint: body
validation (422), body-dependent permissions (403), session lookup (404), action -> fault (drop
after, malformed) -> `x-request-id` -> request log.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web

from ._auth import ENDPOINT_PERMISSION, Permission, Principal, TokenRegistry, mask_authorization
from ._errors import ApiError, ValidationFailed
from ._faults import Fault, FaultBook, malformed_body, raw_body
from ._log import RecordedRequest, RequestLog, frozen_headers
from ._query import list_messages, list_sessions
from ._ratelimit import RateLimiter, retry_after_headers
from ._state import SessionRecord, SessionStore
from ._validation import (
    page_params,
    parse_json,
    parse_list_query,
    query_bool,
    validate_create,
    validate_message,
    validate_tags,
)

ErrorStyle = Literal["fastapi", "problem"]

_PREFIX = re.compile(r"^/(?:v3beta1|v3)/organizations/(?P<org_id>[^/]+)/sessions(?P<rest>/.*)?$")
_ROUTES: tuple[tuple[str, str, str], ...] = (
    # method, path after /{version}/organizations/{org_id}/sessions, endpoint name
    ("POST", "", "create"),
    ("GET", "", "list"),
    ("GET", "/{devin_id}", "get"),
    ("DELETE", "/{devin_id}", "terminate"),
    ("POST", "/{devin_id}/archive", "archive"),
    ("GET", "/{devin_id}/messages", "messages"),
    ("POST", "/{devin_id}/messages", "send_message"),
    ("GET", "/{devin_id}/tags", "get_tags"),
    ("POST", "/{devin_id}/tags", "add_tags"),
    ("PUT", "/{devin_id}/tags", "replace_tags"),
    ("GET", "/{devin_id}/attachments", "attachments"),
)
_COMPILED = [(method, re.compile("^" + tail.replace("{devin_id}", "(?P<devin_id>[^/]+)") + "$"),
              name) for method, tail, name in _ROUTES]


def resolve(method: str, path: str) -> tuple[str | None, dict[str, str], set[str]]:
    """Return (endpoint, path params, methods allowed on the path) for a request line."""
    prefix = _PREFIX.match(path)
    if prefix is None:
        return None, {}, set()
    rest = prefix["rest"] or ""
    allowed: set[str] = set()
    for route_method, pattern, name in _COMPILED:
        match = pattern.match(rest)
        if match is None:
            continue
        params = {"org_id": prefix["org_id"], **match.groupdict()}
        if route_method == method:
            return name, params, allowed
        allowed.add(route_method)
    return None, {}, allowed


class Call:
    """One authorised request to an endpoint."""

    def __init__(self, request: web.Request, params: dict[str, str], principal: Principal,
                 raw: bytes) -> None:
        self.request = request
        self.params = params
        self.principal = principal
        self.raw = raw

    def json(self) -> Any:
        return parse_json(self.raw)


class SessionsApi:
    """The endpoint bodies: validated input in, JSON-ready payload out."""

    def __init__(self, store: SessionStore, log: RequestLog) -> None:
        self.store = store
        self.log = log
        self.dispatch: dict[str, Callable[[Call], Any]] = {
            "create": self.create, "list": self.list_sessions, "get": self.get,
            "terminate": self.terminate, "archive": self.archive,
            "send_message": self.send_message, "messages": self.messages,
            "get_tags": self.get_tags, "add_tags": self.add_tags,
            "replace_tags": self.replace_tags, "attachments": self.attachments,
        }

    def _record(self, call: Call) -> SessionRecord:
        return self.store.get(call.params["devin_id"])

    def _session(self, record: SessionRecord, *, full: bool) -> dict[str, Any]:
        return self.store.render(record, self.store.clock.now(), full=full)

    def create(self, call: Call) -> Any:
        body = validate_create(call.json())
        if body.get("create_as_user_id") is not None:
            call.principal.require(Permission.IMPERSONATE_ORG_SESSIONS)
        if body.get("advanced_mode") is not None:
            call.principal.require(Permission.USE_DEVIN_EXPERT)
        record = self.store.create(body, service_user_id=call.principal.service_user_id)
        self.log.stats["creates"] += 1
        return self._session(record, full=False)

    def list_sessions(self, call: Call) -> Any:
        query = parse_list_query(call.request.query)
        return list_sessions(self.store, query, self.store.clock.now())

    def get(self, call: Call) -> Any:
        return self._session(self._record(call), full=True)

    def terminate(self, call: Call) -> Any:
        errors: list[dict[str, Any]] = []
        archive = query_bool(call.request.query, "archive", errors)
        if errors:
            raise ValidationFailed(errors)
        record = self._record(call)
        self.store.terminate(record, archive=bool(archive))
        return self._session(record, full=False)

    def archive(self, call: Call) -> Any:
        record = self._record(call)
        self.store.archive(record)
        return self._session(record, full=False)

    def send_message(self, call: Call) -> Any:
        message, as_user = validate_message(call.json())
        if as_user is not None:
            call.principal.require(Permission.IMPERSONATE_ORG_SESSIONS)
        record = self._record(call)
        self.store.send_message(record, message)
        return self._session(record, full=False)

    def messages(self, call: Call) -> Any:
        errors: list[dict[str, Any]] = []
        first, after = page_params(call.request.query, errors)
        if errors:
            raise ValidationFailed(errors)
        record = self._record(call)
        return list_messages(self.store, record, first, after, self.store.clock.now())

    def get_tags(self, call: Call) -> Any:
        return {"tags": list(self._record(call).tags)}

    def add_tags(self, call: Call) -> Any:
        tags = validate_tags(call.json())
        return {"tags": self.store.set_tags(self._record(call), tags, append=True)}

    def replace_tags(self, call: Call) -> Any:
        tags = validate_tags(call.json())
        return {"tags": self.store.set_tags(self._record(call), tags, append=False)}

    def attachments(self, call: Call) -> Any:
        return [dict(a) for a in self._record(call).attachments]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_body(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class HttpFrontend:
    """The single aiohttp handler behind every path of the fake server."""

    def __init__(
        self, *, store: SessionStore, tokens: TokenRegistry, faults: FaultBook,
        limiter: RateLimiter, log: RequestLog, error_style: ErrorStyle = "fastapi",
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.faults = faults
        self.limiter = limiter
        self.log = log
        self.error_style = error_style
        self.api = SessionsApi(store, log)

    def error_response(self, status: int, detail: str | list[dict[str, Any]],
                       headers: dict[str, str] | None = None) -> web.Response:
        """`{"detail": ...}` (FastAPI); error_style="problem": an RFC 9457 body (except 422s)."""
        if self.error_style == "problem" and isinstance(detail, str):
            payload: dict[str, Any] = {"type": "about:blank", "title": _phrase(status),
                                       "status": status, "detail": detail}
            ctype = "application/problem+json"
        else:
            payload, ctype = {"detail": detail}, "application/json"
        return web.Response(status=status, body=_json_body(payload), content_type=ctype,
                            headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = f"req_{uuid.uuid4().hex}"
        endpoint, params, allowed = resolve(request.method, request.path)
        raw = await request.read()
        fault = self.faults.take(endpoint)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.drop == "before":
            return self._drop(request, raw, endpoint, request_id, fault)
        if fault is not None and fault.status is not None:
            response = self._fault_response(fault)
        else:
            response = self._answer(request, endpoint, params, allowed, raw)
            if fault is not None:
                if fault.drop == "after":
                    return self._drop(request, raw, endpoint, request_id, fault)
                if fault.malformed is not None:
                    response.body, response.content_type = malformed_body(
                        fault.malformed, bytes(response.body or b""))  # type: ignore[arg-type]
                response.headers.update(fault.extra_headers())
        response.headers["x-request-id"] = request_id
        self._record(request, raw, endpoint, response.status, request_id, fault)
        return response

    def _answer(self, request: web.Request, endpoint: str | None, params: dict[str, str],
                allowed: set[str], raw: bytes) -> web.Response:
        try:
            if endpoint is None:
                if allowed:
                    raise ApiError(405, "Method Not Allowed",
                                   headers={"Allow": ", ".join(sorted(allowed))})
                raise ApiError(404, "Not Found")
            principal = self.tokens.authenticate(request.headers.get("Authorization"))
            wait = self.limiter.acquire(principal.token)
            if wait is not None:
                self.log.stats["rate_limited"] += 1
                raise ApiError(429, "Rate limit exceeded", headers=retry_after_headers(wait))
            if params["org_id"] != self.store.org_id:
                raise ApiError(404, f"Organization {params['org_id']} not found")
            principal.require(ENDPOINT_PERMISSION[endpoint])
            payload = self.api.dispatch[endpoint](Call(request, params, principal, raw))
        except ApiError as err:
            return self.error_response(err.status, err.detail, err.headers)
        return web.Response(body=_json_body(payload), content_type="application/json")

    def _fault_response(self, fault: Fault) -> web.Response:
        assert fault.status is not None
        if fault.body is not None:
            body, ctype = raw_body(fault.body)
            response = web.Response(status=fault.status, body=body)
            response.content_type = ctype.split(";")[0]
        else:
            detail = "Rate limit exceeded" if fault.status == 429 else _phrase(fault.status)
            response = self.error_response(fault.status, detail)
        if fault.malformed is not None:
            response.body, response.content_type = malformed_body(
                fault.malformed, bytes(response.body or b""))  # type: ignore[arg-type]
        response.headers.update(fault.extra_headers())
        return response

    def _drop(self, request: web.Request, raw: bytes, endpoint: str | None, request_id: str,
              fault: Fault) -> web.StreamResponse:
        """Close the connection with no answer; aiohttp then fails to write the dummy response."""
        if request.transport is not None:
            request.transport.close()
        self._record(request, raw, endpoint, None, request_id, fault)
        return web.Response(status=204)

    def _record(self, request: web.Request, raw: bytes, endpoint: str | None, status: int | None,
                request_id: str, fault: Fault | None) -> None:
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        headers = [(k, mask_authorization(v) if k.lower() == "authorization" else v)
                   for k, v in request.headers.items()]
        self.log.record(RecordedRequest(
            method=request.method, path=request.path, query=tuple(request.query.items()),
            json=body, headers=frozen_headers(headers), endpoint=endpoint, status=status,
            request_id=request_id, fault=None if fault is None else fault.kind, body=raw))
