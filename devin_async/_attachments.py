"""`client.attachments`: upload a file for sessions, download an attachment.

Why it looks like this:
- Upload streams: a path is read in chunks while the multipart body is sent, never whole; the
  body is re-iterable (it reopens the file), so an attempt that was never sent can be retried.
  An upload whose answer was lost is not resent (the table's UNSAFE column): a second upload
  would make a second attachment.
- Download: the API answers 307 with a short-lived presigned URL on another host. The SDK follows
  it itself, WITHOUT the Authorization header (only the API origin ever gets the key), refuses a
  redirect to plain http:// (except loopback) and more than MAX_HOPS hops, streams the body to
  the destination and caps its size. An org with an IP allowlist may answer 200 with the file.
"""

from __future__ import annotations

import io
import os
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

from ._activity import UploadedAttachment, parse_uploaded_attachment
from ._aiohttp import DEFAULT_MAX_RESPONSE_BYTES
from ._decisions import Kind
from ._engine import Engine
from ._errors import MalformedResponseError
from ._headers import header
from ._protocol import Request

__all__ = ["MAX_HOPS", "Attachments", "UploadedAttachment"]

#: Redirects followed by one download.
MAX_HOPS = 3
CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

FileLike = str | os.PathLike[str] | bytes | IO[bytes]


def _loopback(host: str | None) -> bool:
    from ._client import is_loopback

    return host is not None and is_loopback(host)


class _Multipart:
    """A `multipart/form-data` body with one `file` part, streamed (re-iterable)."""

    def __init__(self, source: FileLike, name: str) -> None:
        self.boundary = f"devin-async-{uuid.uuid4().hex}"
        self._source = source
        safe = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        self._head = (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{safe}\"; filename*=UTF-8''{quote(name)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield self._head
        source = self._source
        if isinstance(source, bytes):
            for start in range(0, len(source), CHUNK):
                yield source[start : start + CHUNK]
        elif isinstance(source, str | os.PathLike):
            with open(source, "rb") as handle:  # noqa: ASYNC230 - chunked, bounded reads
                while chunk := handle.read(CHUNK):
                    yield chunk
        else:
            if source.seekable():
                source.seek(0)
            while chunk := source.read(CHUNK):
                yield chunk
        yield self._tail


class _WriteError(Exception):
    """Writing the download failed locally (carries the OSError, raised as it is)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _FileSink:
    """Write a download to a path (via a temporary file, renamed at the end) or a file object."""

    def __init__(self, dest: str | os.PathLike[str] | IO[bytes], limit: int) -> None:
        self.limit = limit
        self.written = 0
        self._path = None if not isinstance(dest, str | os.PathLike) else pathlib.Path(dest)
        self._temp = None if self._path is None else self._path.with_name(
            f".{self._path.name}.{uuid.uuid4().hex[:8]}.part")
        self._handle: IO[bytes] | None = None if self._path is not None else dest  # type: ignore[assignment]
        self._start = self._handle.tell() if self._handle is not None and \
            self._handle.seekable() else None

    async def write(self, chunk: bytes) -> None:
        try:
            if self._handle is None:
                assert self._temp is not None
                self._handle = open(self._temp, "wb")  # noqa: ASYNC230, SIM115 - closed in finish
            self._handle.write(chunk)
        except OSError as exc:  # a local failure (a full disk) is not a network one: no retry
            raise _WriteError(exc) from exc
        self.written += len(chunk)

    def reset(self) -> bool:
        if self.written == 0:
            return True
        if self._path is not None and self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
        elif self._start is not None and self._handle is not None:
            self._handle.seek(self._start)
            self._handle.truncate()
        else:
            return False
        self.written = 0
        return True

    def finish(self, ok: bool) -> None:
        if self._path is None:
            return
        if self._handle is not None:
            self._handle.close()
        assert self._temp is not None
        if ok:
            if not self._temp.exists():
                self._temp.write_bytes(b"")
            os.replace(self._temp, self._path)
        elif self._temp.exists():
            self._temp.unlink()


class Attachments:
    """The attachment endpoints of one client (`client.attachments`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def upload(self, file: FileLike, *, name: str | None = None) -> UploadedAttachment:
        """Upload a file (a path, bytes, or a binary file object), streamed as multipart.

        Raises:
            ValueError: no usable name, a missing path, or a text-mode file object.
        """
        if isinstance(file, str | os.PathLike):
            path = pathlib.Path(file)
            if not path.is_file():  # noqa: ASYNC240 - one stat before streaming
                raise ValueError(f"file {str(path)!r} is not a readable file")
            name = name or path.name
        elif isinstance(file, bytes | bytearray):
            file = bytes(file)
        elif isinstance(file, io.TextIOBase) or not hasattr(file, "read"):
            raise ValueError("file must be a path, bytes, or a file object opened in binary mode")
        else:
            name = name or os.path.basename(str(getattr(file, "name", "") or ""))
        if not name or not isinstance(name, str) or "/" in name or "\x00" in name:
            raise ValueError("name must be a non-empty file name without '/' (give name=)")
        body = _Multipart(file, name)
        reply = await self.engine.request(Request(
            "POST", "/attachments", Kind.UNSAFE, body=body, content_type=body.content_type))
        return parse_uploaded_attachment(reply.data)

    async def download(self, url: str | UploadedAttachment, dest: str | os.PathLike[str] |
                       IO[bytes], *, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> int:
        """Download an attachment to `dest` (a path or a binary file); return the bytes written.

        Raises:
            ValueError: `url` is not an attachment URL of this client's API origin, or `dest`
                is a directory, in a missing directory, or a text-mode file.
            MalformedResponseError: too many redirects, a redirect to plain http, or a body
                larger than `max_bytes`.
        """
        if isinstance(url, UploadedAttachment):
            url = url.url
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError("max_bytes must be an int >= 1")
        local = pathlib.Path(dest) if isinstance(dest, str | os.PathLike) else None
        if isinstance(dest, io.TextIOBase) or (local is not None and (
                local.is_dir() or not local.absolute().parent.is_dir())):
            raise ValueError("dest must be a binary file object or a file path in an existing "
                             "directory")
        engine = self.engine
        parts = urlsplit(url) if isinstance(url, str) else None
        base = urlsplit(engine.base_url)
        if parts is None or (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or \
                "/attachments/" not in parts.path:
            raise ValueError(f"url must be an attachment URL of {engine.base_url} "
                             "(.../attachments/<uuid>/<name>)")
        deadline = engine.deadline()
        sink = _FileSink(dest, max_bytes)
        ok = False
        try:
            reply = await engine.request(
                Request("GET", parts.path, Kind.READ, redirect=True), root=True,
                deadline=deadline, sink=sink)
            hops = 0
            current = url
            while reply.status in _REDIRECTS:
                hops += 1
                location = _location(reply.headers)
                if hops > MAX_HOPS or location is None:
                    raise MalformedResponseError(
                        "the download redirected too often" if location else
                        f"a {reply.status} redirect without a Location", status=reply.status)
                current = urljoin(current, location)
                target = urlsplit(current)
                if target.scheme != "https" and not (target.scheme == "http" and
                                                     _loopback(target.hostname)):
                    raise MalformedResponseError(
                        f"refusing to follow a redirect to {target.scheme}://{target.hostname}",
                        status=reply.status)
                reply = await engine.request(
                    Request("GET", target.path, Kind.READ, url=current, redirect=True),
                    deadline=deadline, sink=sink)
            ok = True
            return sink.written
        except _WriteError as exc:
            raise exc.error from None
        finally:
            sink.finish(ok)


def _location(headers: Any) -> str | None:
    return header(headers, "location")
