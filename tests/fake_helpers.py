"""Helpers for the fake server's own tests: a manual clock and thin raw callers (socket or
in-process transport)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from devin_async._transport import HTTPRequest
from devin_async.testing import FakeDevinServer

_DEFAULT = object()


class ManualClock:
    """A real-seconds clock that only moves when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@attrs.frozen
class Reply:
    status: int
    body: Any  # decoded JSON, or the text when not JSON
    headers: Mapping[str, str]  # case-insensitive
    text: str

    @property
    def detail(self) -> Any:
        return self.body["detail"]


class Api:
    """Raw calls to the fake server (no SDK client): `await api.call("GET", "/sessions")`."""

    def __init__(self, http: aiohttp.ClientSession, server: FakeDevinServer, *,
                 version: str = "v3beta1", token: str | None = None) -> None:
        self.http = http
        self.server = server
        self.version = version
        self.token = token or server.api_key

    @property
    def base(self) -> str:
        return f"{self.server.url}/{self.version}/organizations/{self.server.org_id}"

    def with_(self, **changes: Any) -> Api:
        return Api(self.http, self.server, version=changes.get("version", self.version),
                   token=changes.get("token", self.token))

    async def call(
        self, method: str, path: str, *, json_body: Any = _DEFAULT, data: bytes | None = None,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        token: str | object | None = _DEFAULT, base: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent: dict[str, str] = {}
        token = self.token if token is _DEFAULT else token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": sent, "params": params, "allow_redirects": False}
        if json_body is not _DEFAULT:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        url = (base or self.base) + path
        async with self.http.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            received = CIMultiDictProxy(CIMultiDict(response.headers))
            return Reply(response.status, body, received, text)

    async def create(self, prompt: str = "Do the thing", **fields: Any) -> dict[str, Any]:
        reply = await self.call("POST", "/sessions", json_body={"prompt": prompt, **fields})
        assert reply.status == 200, reply
        return dict(reply.body)

    async def get(self, session_id: str) -> dict[str, Any]:
        reply = await self.call("GET", f"/sessions/{session_id}")
        assert reply.status == 200, reply
        return dict(reply.body)

    async def list_ids(self, params: Sequence[tuple[str, str]] | Mapping[str, str]) -> list[str]:
        """Follow every page of GET /sessions; return the ids in order."""
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        ids: list[str] = []
        after: str | None = None
        while True:
            page = await self.call("GET", "/sessions",
                                   params=pairs + ([("after", after)] if after else []))
            assert page.status == 200, page
            ids.extend(item["session_id"] for item in page.body["items"])
            if not page.body["has_next_page"]:
                return ids
            after = page.body["end_cursor"]


class TransportApi(Api):
    """The same raw calls through `server.transport()` (in process, no socket, no start)."""

    def __init__(self, server: FakeDevinServer, *, version: str = "v3beta1",
                 token: str | None = None, origin: str = "http://fake.invalid") -> None:
        self.transport = server.transport()
        self.server = server
        self.version = version
        self.token = token or server.api_key
        self.origin = origin

    @property
    def base(self) -> str:
        return f"{self.origin}/{self.version}/organizations/{self.server.org_id}"

    def with_(self, **changes: Any) -> Api:
        return TransportApi(self.server, version=changes.get("version", self.version),
                            token=changes.get("token", self.token), origin=self.origin)

    async def call(
        self, method: str, path: str, *, json_body: Any = _DEFAULT, data: bytes | None = None,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        token: str | object | None = _DEFAULT, base: str | None = None,
        headers: Mapping[str, str] | None = None, timeout: float = 5.0,
    ) -> Reply:
        sent: dict[str, str] = dict(headers or {})
        token = self.token if token is _DEFAULT else token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        body: bytes | None = data
        if json_body is not _DEFAULT:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        url = (base or self.base) + path
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        if pairs:
            url += ("&" if "?" in url else "?") + urlencode(pairs)
        answer = await self.transport.send(HTTPRequest(method, url, sent, body), timeout=timeout)
        text = answer.body.decode("utf-8", "replace")
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = text
        return Reply(answer.status, decoded, CIMultiDictProxy(CIMultiDict(answer.headers)), text)
