"""Raw HTTP/1.1 servers on loopback, written by hand so that they can misbehave.

Why not aiohttp's server: it cannot send a bad status line, a header without a colon, a broken
chunk, or close a keep-alive connection a millisecond after answering without saying so. Here a
test gives a *handler* (`Seen -> Reply`, plain or async) and the server speaks exactly what the
reply says. Rules of this file:
- every server binds 127.0.0.1 port 0 and stops itself on `async with` exit: the listener is
  closed, every connection aborted, every handler task (a hanging one too) cancelled;
- the server records every request it parsed (`server.seen`), with the loop's monotonic time,
  so tests count requests and measure when they arrived.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

__all__ = [
    "KEY",
    "ORG",
    "PREFIX",
    "Answer",
    "Drop",
    "Hang",
    "Raw",
    "RawServer",
    "Reply",
    "Reset",
    "Seen",
    "client_for",
    "page_json",
    "session_json",
]

ORG = "org-test"
PREFIX = f"/v3beta1/organizations/{ORG}"
EPOCH = 1_764_288_000

_REASONS = {200: "OK", 201: "Created", 401: "Unauthorized", 404: "Not Found", 422:
            "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


@attrs.frozen
class Seen:
    """One request as the server parsed it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # the loop's monotonic time when it was parsed

    def param(self, name: str) -> str | None:
        """Return the first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def array(self, name: str) -> list[str]:
        """Return an array filter, comma-joined or repeated."""
        return [v for raw in self.query.get(name, []) for v in raw.split(",") if v]

    def json(self) -> Any:
        """Return the decoded JSON body."""
        return json.loads(self.body)


@attrs.frozen
class Answer:
    """A well-formed answer; `close_after` closes the connection that long after (no notice)."""

    status: int = 200
    body: Any = None  # bytes as is, anything else as JSON
    headers: tuple[tuple[str, str], ...] = ()
    close_after: float | None = None


@attrs.frozen
class Raw:
    """Exactly these bytes, then the connection is closed."""

    data: bytes


@attrs.frozen
class Drop:
    """Close the connection without answering."""


@attrs.frozen
class Reset:
    """Reset the connection (RST) without answering."""


@attrs.frozen
class Hang:
    """Never answer (until the server stops)."""


Reply = Answer | Raw | Drop | Reset | Hang
Handler = Callable[[Seen], "Reply | Awaitable[Reply]"]


def encode(answer: Answer) -> bytes:
    """Return the bytes of a well-formed answer."""
    if isinstance(answer.body, bytes):
        body = answer.body
    elif answer.body is None:
        body = b""
    else:
        body = json.dumps(answer.body).encode()
    names = {name.lower() for name, _ in answer.headers}
    head = [f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, 'Whatever')}"]
    if "content-type" not in names:
        head.append("Content-Type: application/json")
    head += [f"{name}: {value}" for name, value in answer.headers]
    if "content-length" not in names and "transfer-encoding" not in names:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class RawServer:
    """A loopback HTTP/1.1 server driven by `handler`; use as `async with RawServer(h) as s`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        await self._server.wait_closed()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """Return the requests seen, optionally only those of one method and path."""
        return [s for s in self.seen
                if (method is None or s.method == method) and (path is None or s.path == path)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                seen = await _read_request(reader)
                if seen is None:
                    return
                self.seen.append(seen)
                reply = self.handler(seen)
                if inspect.isawaitable(reply):
                    reply = await reply
                if not await self._reply(reply, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            return  # the server is stopping (only __aexit__ cancels a connection's task)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _reply(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        """Send `reply`; return whether the connection stays open."""
        if isinstance(reply, Hang):
            await asyncio.Event().wait()  # until cancelled by __aexit__
            return False
        if isinstance(reply, Reset):
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if isinstance(reply, Drop):
            return False
        if isinstance(reply, Raw):
            writer.write(reply.data)
            await writer.drain()
            return False
        writer.write(encode(reply))
        await writer.drain()
        if reply.close_after is not None:
            await asyncio.sleep(reply.close_after)
            return False
        return True


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    parts = urlsplit(target)
    return Seen(method, parts.path, parse_qs(parts.query), headers, body,
                asyncio.get_running_loop().time())


def session_json(session_id: str, status: str = "running", detail: str | None = "working",
                 *, updated_at: int = EPOCH, tags: list[str] | None = None,
                 **fields: Any) -> dict[str, Any]:
    """Return a Session as the API sends it."""
    data: dict[str, Any] = {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id.removeprefix('devin-')}",
        "status": status,
        "status_detail": detail,
        "tags": list(tags or []),
        "org_id": ORG,
        "created_at": EPOCH,
        "updated_at": updated_at,
        "acus_consumed": 0,
        "pull_requests": [],
        "title": None,
        "user_id": None,
        "is_archived": False,
    }
    data.update(fields)
    return data


def page_json(items: list[dict[str, Any]], end_cursor: str | None = None,
              has_next_page: bool = False) -> dict[str, Any]:
    """Return a list page as the API sends it."""
    return {"items": items, "end_cursor": end_cursor, "has_next_page": has_next_page}


#: A realistic service-user key: `cog_` and 40 letters and digits.
KEY = "cog_7Hq2mZ9xKc4TfW1bLp8RvN3sYd6GjA0eUo5iXk2M"


def client_for(server: RawServer, **kw: Any) -> Any:
    """Return a DevinClient bound to `server` (public API only)."""
    from devin_async import DevinClient

    return DevinClient(api_key=KEY, org_id=ORG, base_url=server.url, **kw)
