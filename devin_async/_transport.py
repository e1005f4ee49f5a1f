"""The transport seam: one HTTP exchange as data in, data out.

Everything above a transport (retries, rate limiting, redaction, decoding) is the same whatever
the transport; a transport only moves bytes. It is the place a test plugs in
(`devin_async.testing.MockTransport`, `FakeDevinServer.transport()`), as httpx's
`AsyncBaseTransport.handle_async_request` is.

Rules of this file:
- a transport never retries, never follows a redirect and never decodes JSON;
- a transport that failed raises `APIConnectionError` (or `APITimeoutError`) with `sent` telling
  whether any byte of the request may have reached the server; an `OSError` (`TimeoutError`
  included) it raises is treated by the engine as a failure after sending (the safe assumption);
  anything else is a bug of the transport and propagates as it is;
- `timeout` is seconds for the whole exchange, from waiting for a connection to the last byte;
- no message raised here contains a header value (the Authorization header is one).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._errors import MalformedResponseError

__all__ = ["HTTPRequest", "HTTPResponse", "Transport", "send_streaming", "whole_body"]


class HTTPRequest(NamedTuple):
    """One request as the transport sends it: the URL is complete (query encoded).

    `body` is bytes or None. A transport with a class attribute `streams_request_bodies = True`
    (the default aiohttp one) gets an upload's body as an async iterable of byte chunks that
    can be iterated again for a retry, so a large file is never held whole; any other
    transport gets bytes.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any = None


class HTTPResponse(NamedTuple):
    """One answer as the transport got it: status, headers (any case) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""


@runtime_checkable
class Transport(Protocol):
    """What `DevinClient(transport=...)` accepts."""

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        """Send `request` and return the whole answer within `timeout` seconds.

        Raises:
            APIConnectionError: no answer (`.sent` says whether the request may have arrived).
            APITimeoutError: `timeout` passed (or connecting took too long).
        """
        ...

    async def aclose(self) -> None:
        """Release connections (the client calls it once, from its own `aclose()`)."""
        ...


async def send_streaming(transport: Transport, request: HTTPRequest, *, timeout: float,
                         write: Callable[[bytes], Awaitable[None]], limit: int) -> HTTPResponse:
    """Send `request`, feeding a 2xx body to `write` (at most `limit` bytes); body left empty.

    Through the transport's own `stream()` when it has one (the aiohttp one), else from the
    whole body `send()` returns.
    """
    stream = getattr(transport, "stream", None)
    if stream is not None:
        response: HTTPResponse = await stream(request, timeout=timeout, sink=write,
                                              max_bytes=limit)
        return response
    response = await transport.send(request, timeout=timeout)
    if 200 <= response.status < 300:
        if len(response.body) > limit:
            raise MalformedResponseError(f"the download exceeds its limit of {limit} bytes",
                                         status=response.status)
        await write(response.body)
        return HTTPResponse(response.status, response.headers, b"")
    return response


async def whole_body(chunks: AsyncIterable[Any]) -> bytes:
    """Join a streamed body into bytes (for a transport that does not stream uploads)."""
    return b"".join([bytes(chunk) async for chunk in chunks])
