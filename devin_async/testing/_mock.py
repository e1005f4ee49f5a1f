"""`MockTransport`: answer the client's requests with a function, no socket (httpx's idea)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._transport import HTTPRequest, HTTPResponse, whole_body

__all__ = ["MockTransport"]

Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


class MockTransport:
    """A transport whose answers come from `handler(request)` (a plain or an async function).

    The handler may raise `APIConnectionError`/`APITimeoutError` to stand for a network failure.
    Every request is kept in `requests`, in order.

    Example:
        def handler(request: HTTPRequest) -> HTTPResponse:
            return HTTPResponse(200, {"content-type": "application/json"}, b'{"tags": []}')

        client = DevinClient(api_key="cog_test", org_id="org-1", transport=MockTransport(handler))
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []
        self.timeouts: list[float] = []
        self.closed = False

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        """Record the request and return the handler's answer."""
        if request.body is not None and not isinstance(request.body, bytes):
            # A streamed body (sent here directly, not through a client) reaches it as bytes.
            request = request._replace(body=await whole_body(request.body))
        self.requests.append(request)
        self.timeouts.append(timeout)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        assert isinstance(answer, HTTPResponse), "a MockTransport handler returns HTTPResponse"
        return answer

    async def aclose(self) -> None:
        """Mark the transport closed."""
        self.closed = True
