"""The default transport: aiohttp, thin.

It keeps a connection pool, caps the body it reads (counted after decompression), never follows a
redirect, and maps aiohttp's failures to `APIConnectionError`/`APITimeoutError` with `sent` set.

Why a second, connection-per-request session: a server may close a keep-alive connection just
after answering (no `Connection: close`). A request written to such a pooled connection fails
before any byte of the answer arrives. Sending the retry (or a create's resend after its token
look-up) through the same pool could pick another dead connection, so after such a failure every
request goes out on a fresh connection for FRESH_PERIOD seconds (then the pool is tried again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
from yarl import URL

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    EventLoopMismatchError,
    MalformedResponseError,
)
from ._transport import HTTPRequest, HTTPResponse

__all__ = ["DEFAULT_CONNECTION_LIMIT", "DEFAULT_MAX_RESPONSE_BYTES", "AiohttpTransport"]

#: Connection pool: enough sockets for a fan-out of hundreds without opening thousands.
DEFAULT_CONNECTION_LIMIT = 64
#: The largest body the client reads; a bigger one is an error, never an unbounded buffer.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Seconds during which requests go out on fresh connections, after one failed on a (probably)
#: dead pooled connection.
FRESH_PERIOD = 60.0

_ConnectionTimeout: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


#: Builds a NamedTuple without its constructor, a Python function (half the instructions).
_new = tuple.__new__


def client_timeout(total: float, connect: float, read: float) -> aiohttp.ClientTimeout:
    """Return aiohttp's timeouts for one attempt of at most `total` seconds.

    - `sock_connect` is `connect`: opening a connection (TCP and TLS).
    - aiohttp's `connect` (waiting for a pooled connection, resolving, connecting) may take all
      but the end of the attempt. Queueing for the pool under fan-out is not a failure to
      connect; but an attempt that never got a connection still fails as a connect timeout,
      before `total` fires, so it is known unsent (safe to retry, even a create). aiohttp rounds
      timers over 5 s up to whole seconds, so the margin is a second there.
    - `sock_read` only when `read` is shorter than the attempt: otherwise `total` fires first
      anyway, and aiohttp would re-arm an unneeded timer on every chunk.
    """
    queue = max(total - 1.0, total * 0.9)
    return aiohttp.ClientTimeout(
        total=total,
        connect=queue,
        sock_connect=min(connect, queue),
        sock_read=read if read < total else None,
    )


def _encoded(resp: aiohttp.ClientResponse) -> bool:
    """Whether the body is sent compressed (Content-Length is then not the size read)."""
    return resp.headers.get("Content-Encoding", "identity").strip().lower() not in (
        "", "identity")


def _where(request: HTTPRequest) -> str:
    url = URL(request.url, encoded=True)
    return f"{request.method} {url.path}"


class AiohttpTransport:
    """Send requests with one pooled `aiohttp.ClientSession`, created lazily in the running loop.

    Args:
        session: an aiohttp.ClientSession to borrow (never closed here).
        connection_limit: pooled connections at most.
        max_response_bytes: the largest body read (after decompression).
        connect, read: seconds to open a connection and to wait for the next bytes.
    """

    #: An upload's body is sent as it is read (re-iterable async chunks), never held whole.
    streams_request_bodies = True

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        connect: float = 10.0,
        read: float = 60.0,
    ) -> None:
        self._borrowed = session
        self._session = session
        self._fresh_session: aiohttp.ClientSession | None = None
        self._fresh_until = 0.0
        self._limit = connection_limit
        self._max_body = max_response_bytes
        self._connect = connect
        self._read = read
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The pooled aiohttp session, once created (or the borrowed one)."""
        return self._session

    def _timeout(self, total: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(total)
        if timeout is None:
            timeout = client_timeout(total, self._connect, self._read)
            if len(self._timeouts) < 8:  # the common totals only (a deadline's tail varies)
                self._timeouts[total] = timeout
        return timeout

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if loop is self._loop and not self._fresh_until and session is not None:
            return session  # the common case: the pool, in the loop it was made in, open
        if self._closed:
            raise ClientClosedError("this DevinClient is closed; create a new one")
        if self._loop is not None and self._loop is not loop and self._borrowed is None:
            raise EventLoopMismatchError(
                "this DevinClient was first used in another event loop; a client (and its "
                "connection pool) belongs to one loop: create a new DevinClient in this one "
                "(e.g. one per asyncio.run)")
        self._loop = loop
        if self._fresh_until and loop.time() < self._fresh_until:
            if self._fresh_session is None or self._fresh_session.closed:
                self._fresh_session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True), raise_for_status=False
                )
            return self._fresh_session
        self._fresh_until = 0.0  # the fresh period is over: the pool again
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            self._session = session
        return session

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._max_body
        # Content-Length counts the bytes on the wire: for a compressed body (which aiohttp
        # inflates as it reads) it says nothing of the size we would hold, so stream and count.
        length = None if _encoded(resp) else resp.content_length
        if length is not None and length > limit:
            raise MalformedResponseError(
                f"the response body ({length} bytes) exceeds the client's limit of {limit} bytes",
                status=resp.status,
            )
        if length is not None:
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise MalformedResponseError(
                    f"the response body exceeds the client's limit of {limit} bytes",
                    status=resp.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        """Send one request; return the whole answer or raise APIConnectionError."""
        # The hot path of every call, so no helper coroutine: the exchange is written out here
        # and `stream` has its own; both map failures with `_failure`.
        answered = False
        try:
            async with self._open(request, timeout) as resp:
                answered = True
                length = resp.content_length
                if length is not None and length <= self._max_body and not _encoded(resp):
                    body = await resp.read()  # the common case, without another coroutine
                else:
                    body = await self._read_body(resp)
                return _new(HTTPResponse, (resp.status, resp.headers, body))  # see `_new`
        except Exception as exc:
            error = self._failure(exc, request, answered)
        # Raised here, outside the handler, so it has no __context__: aiohttp's exception
        # carries the request headers (the API key) in its request_info.
        raise error

    async def stream(self, request: HTTPRequest, *, timeout: float,
                     sink: Callable[[bytes], Awaitable[None]], max_bytes: int) -> HTTPResponse:
        """Send `request`; feed a 2xx body to `sink` chunk by chunk (at most `max_bytes`).

        The returned response's body is empty for a 2xx answer, the (capped) body otherwise.
        """
        answered = False
        try:
            async with self._open(request, timeout) as resp:
                answered = True
                if not 200 <= resp.status < 300:
                    return HTTPResponse(resp.status, resp.headers, await self._read_body(resp))
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MalformedResponseError(
                            f"the download exceeds its limit of {max_bytes} bytes",
                            status=resp.status)
                    await sink(chunk)
                return HTTPResponse(resp.status, resp.headers, b"")
        except Exception as exc:
            error = self._failure(exc, request, answered)
        raise error  # outside the handler: see `send`

    def _open(self, request: HTTPRequest, timeout: float,
              ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Start `request` on the pool (aiohttp's request context manager); never redirect."""
        return self._http().request(
            request.method,
            URL(request.url, encoded=True),
            data=request.body,
            headers=request.headers,
            allow_redirects=False,
            timeout=self._timeouts.get(timeout) or self._timeout(timeout),  # a hit: no call
        )

    def _failure(self, exc: Exception, request: HTTPRequest, answered: bool) -> Exception:
        """Return the error to raise for `exc` (`exc` itself when it is not aiohttp's)."""
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = getattr(exc, "os_error", None) or exc  # not on every aiohttp version
            return APIConnectionError(
                f"could not connect ({_where(request)}): {type(exc).__name__}: {reason}",
                sent=False)
        if isinstance(exc, _ConnectionTimeout):
            return APITimeoutError(f"timed out connecting ({_where(request)})", sent=False)
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            # aiohttp before 3.10 has no ConnectionTimeoutError: its message says which it was.
            unsent = not answered and str(exc).startswith("Connection timeout")
            return APITimeoutError(
                f"timed out connecting ({_where(request)})" if unsent else
                f"timed out waiting for the answer to {_where(request)}", sent=not unsent)
        if isinstance(exc, aiohttp.ClientError):
            if not answered and isinstance(
                exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
            ):
                # Probably a pooled connection the server had already closed: what follows
                # goes out on fresh connections for a while.
                self._fresh_until = asyncio.get_running_loop().time() + FRESH_PERIOD
            return APIConnectionError(
                f"the connection failed during {_where(request)}: {type(exc).__name__}: {exc}",
                sent=True)
        if isinstance(exc, RuntimeError | AssertionError | AttributeError):
            if self._closed:
                # aiohttp before 3.12.6 fails a request in flight on a session closed under it
                # with an error of its own, not a ClientError.
                return ClientClosedError("this DevinClient is closed; create a new one")
            if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
                return EventLoopMismatchError(
                    "the event loop this DevinClient was first used in is closed; create a new "
                    "DevinClient in the running loop")
        return exc  # not a transport failure (our own MalformedResponseError among them)

    async def aclose(self) -> None:
        """Close the sessions this transport made (a borrowed one is left open)."""
        self._closed = True
        self._loop = None  # off `_http`'s fast path: every later request is refused there
        for session in (self._fresh_session, self._session):
            if session is not None and session is not self._borrowed and not session.closed:
                await session.close()
        self._session = self._borrowed
        self._fresh_session = None

    def unclosed(self) -> bool:
        """Whether a session this transport made is still open."""
        session = self._session
        return session is not None and session is not self._borrowed and not session.closed

