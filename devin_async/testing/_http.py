"""The socket fronts of the fake server: the API app and the bucket app, both thin aiohttp shells.

Everything the server does happens in `Dispatcher.handle` (shared with the in-process
transport); this module only turns an aiohttp request into an `Incoming` and an `Outcome` back
into a response, or into a closed connection for a dropped one.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from ._attachments import AttachmentStore
from ._dispatch import Dispatcher, Incoming
from ._hostile import IdleClose

MAX_BODY = 64 * 1024 * 1024
"""Largest request body either app reads (aiohttp's default, 1 MiB, is too small for uploads)."""


CATCH_ALL = r"/{tail:[\s\S]*}"
"""Every path, a decoded newline included (aiohttp's `.*` stops at one and answers a text 404)."""


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class ApiFrontend:
    """The aiohttp handler behind every path of the API origin."""

    def __init__(self, dispatcher: Dispatcher, bucket_origin: str,
                 idle: IdleClose | None = None) -> None:
        self.dispatcher = dispatcher
        self.bucket_origin = bucket_origin
        self.idle = idle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", CATCH_ALL, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        idle = self.idle
        if idle is not None:
            idle.busy(request.transport)
        incoming = Incoming(
            method=request.method, path=request.path,
            query=MultiDictProxy(MultiDict(request.query)),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)), body=await request.read(),
            origin=_origin(request), bucket_origin=self.bucket_origin)
        outcome = await self.dispatcher.handle(incoming)
        if outcome.drop is not None:
            # Close the connection with no answer; aiohttp then fails to write the dummy.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)
        response = web.Response(status=outcome.status, body=outcome.body, headers=outcome.headers)
        transport = request.transport
        if idle is not None and idle.after is not None and transport is not None \
                and not transport.is_closing():
            # Written here, so that the idle clock starts once the answer is on its way.
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                return response  # the client went away meanwhile
            idle.answered(transport)
        return response


class BucketFrontend:
    """The aiohttp handler of the second origin that serves presigned attachment URLs."""

    def __init__(self, attachments: AttachmentStore) -> None:
        self.attachments = attachments

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", CATCH_ALL, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        answer = self.attachments.bucket(request.method, request.path, request.query,
                                         request.headers)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
