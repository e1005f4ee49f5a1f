"""`FakeDevinServer.transport()`: the fake server answering a client in process, with no socket.

Requests go through the same `Dispatcher` as the socket front (faults, rate limits, lifecycle,
request log); the bucket origin of attachment downloads is served here too. Failures map onto the
transport contract: a fault's `drop="before"` is a connection error with `sent=False` (the server
did nothing), `drop="after"` one with `sent=True`; a `delay` at least `timeout` long is an
`APITimeoutError(sent=True)`, and the server still acts once the delay is over, as a socket server
whose client gave up would. The common path awaits nothing: a request costs a few microseconds.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, unquote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .._errors import APIConnectionError, APITimeoutError
from .._transport import HTTPRequest, HTTPResponse, whole_body
from ._attachments import IN_PROCESS_BUCKET, AttachmentStore
from ._dispatch import Dispatcher, Incoming


class InProcessTransport:
    """A `devin_async.Transport` whose server is a `FakeDevinServer` in this process."""

    def __init__(self, dispatcher: Dispatcher, attachments: AttachmentStore, *,
                 bucket_origin: str = IN_PROCESS_BUCKET) -> None:
        self._dispatcher = dispatcher
        self._attachments = attachments
        self.bucket_origin = bucket_origin
        self.closed = False
        self.requests = 0

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        """Serve `request` in process and return the whole answer.

        Raises:
            APIConnectionError: the transport is closed, or a fault dropped the connection.
            APITimeoutError: a fault's delay reached `timeout`.
        """
        split = urlsplit(request.url)
        if self.closed:
            raise APIConnectionError("the in-process transport is closed",
                                     method=request.method, path=split.path, sent=False)
        self.requests += 1
        origin = f"{split.scheme}://{split.netloc}"
        path = unquote(split.path) or "/"
        query = MultiDictProxy(MultiDict(parse_qsl(split.query, keep_blank_values=True)))
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        if origin == self.bucket_origin:
            answer = self._attachments.bucket(request.method, path, query, headers)
            return HTTPResponse(answer.status, dict(answer.headers), answer.body)
        body = request.body
        if body is not None and not isinstance(body, bytes | bytearray):
            body = await whole_body(body)  # a streamed upload (sent here directly)
        dispatcher = self._dispatcher
        pending = dispatcher.begin(Incoming(
            method=request.method, path=path, query=query, headers=headers,
            body=body or b"", origin=origin, bucket_origin=self.bucket_origin))
        delay = pending.delay
        if delay:
            if delay >= timeout:
                asyncio.get_running_loop().call_later(delay, dispatcher.finish, pending)
                await asyncio.sleep(timeout)
                raise APITimeoutError(f"no answer within {timeout:g} s", method=request.method,
                                      path=split.path, sent=True)
            await asyncio.sleep(delay)
        outcome = dispatcher.finish(pending)
        if outcome.drop is not None:
            raise APIConnectionError("the fake server closed the connection without an answer",
                                     method=request.method, path=split.path,
                                     sent=outcome.drop == "after")
        return HTTPResponse(outcome.status, outcome.headers, outcome.body)

    async def aclose(self) -> None:
        """Refuse further requests (the server and its state stay)."""
        self.closed = True
