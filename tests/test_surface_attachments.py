"""`client.attachments`: streamed multipart upload and the download that follows the presigned
redirect without the key, on a MockTransport (and a chunk-recording transport) and against
FakeDevinServer (socket: both download modes; in process)."""

from __future__ import annotations

import io
import os
import pathlib
import re
from typing import Any
from urllib.parse import quote

import pytest

from devin_async import (
    APIConnectionError,
    DevinClient,
    HTTPRequest,
    HTTPResponse,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    UploadedAttachment,
)
from devin_async.testing import FakeDevinServer

from .surface_support import (
    API_KEY,
    PREFIX,
    FakeClock,
    header,
    make_client,
    reply,
)

UUID = "0b6c3a52-8d3e-4f0a-9b1e-5f7c2d9e4a11"
FILE_URL = f"{PREFIX}/attachments/{UUID}/report.txt"
BUCKET = "https://bucket.example.com/objects/report.txt?X-Amz-Signature=abc123&X-Amz-Expires=60"


def uploaded(request: HTTPRequest) -> HTTPResponse:
    return reply(200, {"attachment_id": UUID, "name": "x",
                       "url": f"{PREFIX}/attachments/{UUID}/x"})


def parts(request: HTTPRequest) -> tuple[str, list[bytes]]:
    """Return the boundary and the parts of a multipart body (framing checked)."""
    ctype = header(request, "content-type") or ""
    match = re.fullmatch(r"multipart/form-data; boundary=(\S+)", ctype)
    assert match, ctype
    boundary = match.group(1).encode()
    body: bytes = request.body
    opening, closing = b"--" + boundary + b"\r\n", b"\r\n--" + boundary + b"--\r\n"
    assert body.startswith(opening) and body.endswith(closing)
    middle = body[len(opening) : -len(closing)]
    return match.group(1), middle.split(b"\r\n--" + boundary + b"\r\n")


def one_file_part(request: HTTPRequest) -> tuple[dict[str, str], bytes]:
    """Return the headers and content of the one `file` part."""
    _, found = parts(request)
    assert len(found) == 1
    head, _, content = found[0].partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
    assert headers["Content-Disposition"].startswith('form-data; name="file"; filename=')
    return headers, content


# --- upload --------------------------------------------------------------------------------------
class ChunkRecorder:
    """A transport that reads a streamed body chunk by chunk, recording each chunk's size."""

    streams_request_bodies = True  # opts in: without it a transport gets the body as bytes

    def __init__(self) -> None:
        self.sizes: list[list[int]] = []
        self.bodies: list[bytes] = []

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        assert not isinstance(request.body, bytes), "an upload is streamed, not one bytes body"
        sizes, data = [], bytearray()
        async for chunk in request.body:
            sizes.append(len(chunk))
            data += chunk
        self.sizes.append(sizes)
        self.bodies.append(bytes(data))
        return uploaded(request)

    async def aclose(self) -> None:
        pass


async def test_upload_from_a_path_streams_in_chunks(tmp_path: pathlib.Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    recorder = ChunkRecorder()
    async with DevinClient(api_key=API_KEY, org_id="org-surface",
                           base_url="https://api.devin.test", transport=recorder,
                           tracing=False) as client:
        got = await client.attachments.upload(path)
    assert got == UploadedAttachment(UUID, "x", f"{PREFIX}/attachments/{UUID}/x")
    (sizes,) = recorder.sizes
    assert len(sizes) > 64 and max(sizes) <= 1024 * 1024  # never the whole file at once
    assert data in recorder.bodies[0]


async def test_upload_from_a_path_frames_one_file_part(tmp_path: pathlib.Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    client, transport = make_client(uploaded)
    async with client:
        await client.attachments.upload(str(path))
    (request,) = transport.requests
    assert (request.method, request.url) == ("POST", f"{PREFIX}/attachments")
    assert header(request, "authorization") == f"Bearer {API_KEY}"
    headers, content = one_file_part(request)
    assert 'filename="big.bin"' in headers["Content-Disposition"]
    assert headers["Content-Type"] == "application/octet-stream"
    assert content == data


@pytest.mark.parametrize(("name", "quoted"), [
    ("notes.txt", 'filename="notes.txt"'),
    ('we"ird.txt', 'filename="we\\"ird.txt"'),
    ("r\u00e9sum\u00e9.pdf", "filename*=UTF-8''" + quote("r\u00e9sum\u00e9.pdf")),
])
async def test_upload_from_bytes(name: str, quoted: str) -> None:
    client, transport = make_client(uploaded)
    async with client:
        await client.attachments.upload(b"hello\r\n--not-a-boundary\r\n", name=name)
        await client.attachments.upload(bytearray(b"x"), name=name)
    headers, content = one_file_part(transport.requests[0])
    assert quoted in headers["Content-Disposition"]
    assert content == b"hello\r\n--not-a-boundary\r\n"
    assert one_file_part(transport.requests[1])[1] == b"x"


async def test_upload_from_binary_file_objects(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    client, transport = make_client(uploaded)
    async with client:
        with open(path, "rb") as handle:  # noqa: ASYNC230 - a small test file
            await client.attachments.upload(handle)
        buffer = io.BytesIO(b"0123456789")
        buffer.seek(4)
        await client.attachments.upload(buffer, name="digits.txt")
    first, second = (one_file_part(r) for r in transport.requests)
    assert 'filename="data.csv"' in first[0]["Content-Disposition"]
    assert first[1] == path.read_bytes()
    assert 'filename="digits.txt"' in second[0]["Content-Disposition"]
    assert second[1] == b"0123456789"  # a seekable object is sent whole, from its start


@pytest.mark.parametrize("kind", ["text-file", "stringio", "no-name-bytes", "slash-name",
                                  "missing-path", "directory", "not-a-file", "nul-name"])
async def test_upload_bad_input_raises_before_any_request(kind: str,
                                                          tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    client, transport = make_client(uploaded)
    async with client:
        with pytest.raises(ValueError):
            if kind == "text-file":
                with open(path) as handle:  # noqa: ASYNC230 - a small test file
                    await client.attachments.upload(handle)  # type: ignore[arg-type]
            elif kind == "stringio":
                await client.attachments.upload(io.StringIO("x"), name="a.txt")  # type: ignore[arg-type]
            elif kind == "no-name-bytes":
                await client.attachments.upload(b"x")
            elif kind == "slash-name":
                await client.attachments.upload(b"x", name="a/b.txt")
            elif kind == "nul-name":
                await client.attachments.upload(b"x", name="a\x00b")
            elif kind == "missing-path":
                await client.attachments.upload(tmp_path / "nope.bin")
            elif kind == "directory":
                await client.attachments.upload(tmp_path)
            else:
                await client.attachments.upload(12345)  # type: ignore[arg-type]
    assert transport.requests == []


@pytest.mark.parametrize(("sent", "requests"), [(False, 2), (True, 1)])
async def test_upload_is_retried_only_when_never_sent(sent: bool, requests: int,
                                                      tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"payload" * 1000)
    calls = {"n": 0}

    def flaky(request: HTTPRequest) -> HTTPResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            raise APIConnectionError("connection reset", sent=sent)
        return uploaded(request)

    client, transport = make_client(flaky, FakeClock())
    async with client:
        if sent:
            with pytest.raises(APIConnectionError):
                await client.attachments.upload(path)
        else:
            await client.attachments.upload(path)
    assert len(transport.requests) == requests
    for request in transport.requests:  # the streamed body is whole on every attempt
        assert one_file_part(request)[1] == path.read_bytes()


# --- download ------------------------------------------------------------------------------------
def redirects(hops: list[str], content: bytes = b"the file", *, final: int = 200,
              ) -> Any:
    """The API origin answers 307 to hops[0], each hop to the next, the last one 200."""
    def handler(request: HTTPRequest) -> HTTPResponse:
        url = request.url
        if url == FILE_URL:
            return HTTPResponse(307, {"Location": hops[0]}) if hops else \
                HTTPResponse(200, {"content-type": "text/plain"}, content)
        index = next(i for i, hop in enumerate(hops) if url == hop)
        if index + 1 < len(hops):
            return HTTPResponse(302, {"Location": hops[index + 1]})
        return HTTPResponse(final, {"content-type": "application/octet-stream"},
                            content if final == 200 else b"<Error>AccessDenied</Error>")
    return handler


def leftovers(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("dest_kind", ["path", "str", "bytesio"])
async def test_download_follows_the_redirect_without_the_key(dest_kind: str,
                                                             tmp_path: pathlib.Path) -> None:
    content = os.urandom(300_000)
    client, transport = make_client(redirects([BUCKET], content))
    target = tmp_path / "out.bin"
    dest: Any = {"path": target, "str": str(target), "bytesio": io.BytesIO()}[dest_kind]
    async with client:
        written = await client.attachments.download(FILE_URL, dest)
    assert written == len(content)
    api, bucket = transport.requests
    assert (api.method, api.url) == ("GET", FILE_URL)
    assert header(api, "authorization") == f"Bearer {API_KEY}"
    assert (bucket.method, bucket.url) == ("GET", BUCKET)  # the signature query kept as is
    assert header(bucket, "authorization") is None
    assert all(API_KEY not in v for v in bucket.headers.values())
    if dest_kind == "bytesio":
        assert dest.getvalue() == content
    else:
        assert target.read_bytes() == content
        assert leftovers(tmp_path) == ["out.bin"]


async def test_download_direct_200_and_an_uploaded_attachment_as_url(
        tmp_path: pathlib.Path) -> None:
    client, transport = make_client(redirects([], b"direct bytes"))
    attachment = UploadedAttachment(UUID, "report.txt", FILE_URL)
    async with client:
        assert await client.attachments.download(attachment, tmp_path / "r.txt") == 12
    assert (tmp_path / "r.txt").read_bytes() == b"direct bytes"
    assert len(transport.requests) == 1


async def test_download_into_a_file_object_keeps_what_was_there() -> None:
    client, _ = make_client(redirects([BUCKET], b"new"))
    sink = io.BytesIO(b"prefix:")
    sink.seek(0, io.SEEK_END)
    async with client:
        await client.attachments.download(FILE_URL, sink)
    assert sink.getvalue() == b"prefix:new"


@pytest.mark.parametrize("hops", [[], [BUCKET]])
async def test_download_size_cap_leaves_no_partial_file(hops: list[str],
                                                        tmp_path: pathlib.Path) -> None:
    client, _ = make_client(redirects(hops, b"x" * 1000))
    target = tmp_path / "capped.bin"
    async with client:
        with pytest.raises(MalformedResponseError):
            await client.attachments.download(FILE_URL, target, max_bytes=999)
        assert await client.attachments.download(FILE_URL, target, max_bytes=1000) == 1000
        target.unlink()
        with pytest.raises(MalformedResponseError):
            await client.attachments.download(FILE_URL, target, max_bytes=10)
    assert not target.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("location", [
    "http://bucket.example.com/o?sig=1",  # plain http to another host: the URL itself leaks
    "ftp://bucket.example.com/o",
    "file:///etc/passwd",
])
async def test_download_refuses_an_insecure_redirect(location: str,
                                                     tmp_path: pathlib.Path) -> None:
    client, transport = make_client(redirects([location]))
    async with client:
        with pytest.raises(MalformedResponseError, match="refusing"):
            await client.attachments.download(FILE_URL, tmp_path / "o")
    assert len(transport.requests) == 1
    assert leftovers(tmp_path) == []


async def test_download_may_redirect_to_loopback_http(tmp_path: pathlib.Path) -> None:
    hop = "http://127.0.0.1:9/bucket/o?sig=1"
    client, transport = make_client(redirects([hop], b"local"))
    async with client:
        assert await client.attachments.download(FILE_URL, tmp_path / "o") == 5
    assert header(transport.requests[1], "authorization") is None


@pytest.mark.parametrize(("count", "ok"), [(1, True), (3, True), (4, False), (6, False)])
async def test_download_redirect_hops_are_capped(count: int, ok: bool,
                                                 tmp_path: pathlib.Path) -> None:
    hops = [f"https://hop{n}.example.com/o?sig={n}" for n in range(count)]
    client, transport = make_client(redirects(hops, b"end"))
    async with client:
        if ok:
            assert await client.attachments.download(FILE_URL, tmp_path / "o") == 3
        else:
            with pytest.raises(MalformedResponseError, match="redirect"):
                await client.attachments.download(FILE_URL, tmp_path / "o")
    assert len(transport.requests) == (count + 1 if ok else 4)
    assert all(header(r, "authorization") is None for r in transport.requests[1:])
    assert leftovers(tmp_path) == (["o"] if ok else [])


async def test_download_resolves_a_relative_location(tmp_path: pathlib.Path) -> None:
    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.url == FILE_URL:
            return HTTPResponse(307, {"Location": BUCKET})
        if request.url == BUCKET:
            return HTTPResponse(302, {"Location": "/moved/report.txt?sig=2"})
        assert request.url == "https://bucket.example.com/moved/report.txt?sig=2"
        return HTTPResponse(200, {}, b"moved")

    client, transport = make_client(handler)
    async with client:
        assert await client.attachments.download(FILE_URL, tmp_path / "o") == 5
    assert len(transport.requests) == 3


async def test_download_redirect_without_location(tmp_path: pathlib.Path) -> None:
    client, _ = make_client(lambda r: HTTPResponse(307, {}))
    async with client:
        with pytest.raises(MalformedResponseError, match="Location"):
            await client.attachments.download(FILE_URL, tmp_path / "o")


@pytest.mark.parametrize(("handler", "error"), [
    (lambda r: reply(404, {"detail": "Attachment not found"}), NotFoundError),
    (redirects([BUCKET], final=403), PermissionDeniedError),
])
async def test_download_errors_leave_no_file(handler: Any, error: type[Exception],
                                             tmp_path: pathlib.Path) -> None:
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(error):
            await client.attachments.download(FILE_URL, tmp_path / "o")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("url", "kwargs"), [
    (f"https://evil.example.com/v3beta1/organizations/org-surface/attachments/{UUID}/a", {}),
    (f"http://api.devin.test/v3beta1/organizations/org-surface/attachments/{UUID}/a", {}),
    (f"https://api.devin.test:8443/v3beta1/organizations/org-surface/attachments/{UUID}/a", {}),
    (f"{PREFIX}/sessions/devin-1", {}),
    ("not a url", {}),
    (12, {}),
    (FILE_URL, {"max_bytes": 0}),
    (FILE_URL, {"max_bytes": True}),
])
async def test_download_refuses_other_urls_before_any_request(url: Any, kwargs: dict[str, Any],
                                                              tmp_path: pathlib.Path) -> None:
    client, transport = make_client(redirects([BUCKET]))
    async with client:
        with pytest.raises(ValueError):
            await client.attachments.download(url, tmp_path / "o", **kwargs)
    assert transport.requests == []


# --- against FakeDevinServer ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["redirect", "direct"])
async def test_fake_server_round_trip_over_a_socket(mode: Any, tmp_path: pathlib.Path) -> None:
    data = os.urandom(200_000)
    source = tmp_path / "in put.bin"
    source.write_bytes(data)
    async with FakeDevinServer(seed=3, download_mode=mode) as server, DevinClient(
            api_key=server.api_key, org_id=server.org_id, base_url=server.url,
            tracing=False) as client:
        up = await client.attachments.upload(source)
        assert server.file(up.attachment_id) == data
        assert server.uploads[up.attachment_id] == "in put.bin" == up.name
        assert up.url.startswith(server.url)
        written = await client.attachments.download(up, tmp_path / "out.bin")
        buffer = io.BytesIO()
        await client.attachments.download(up.url, buffer)
        session = await client.sessions.create("Read the file", attachment_urls=[up.url])
        assert server.create_request(session.session_id)["attachment_urls"] == [up.url]
    assert written == len(data) and (tmp_path / "out.bin").read_bytes() == data
    assert buffer.getvalue() == data
    assert server.bucket_requests == (2 if mode == "redirect" else 0)
    assert server.bucket_saw_authorization is False
    assert server.bucket_authorization_refusals == 0


async def test_fake_server_download_in_process(tmp_path: pathlib.Path) -> None:
    server = FakeDevinServer(seed=3)
    stored = server.add_file(b"in process bytes", name="notes.txt")
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           base_url="http://fake.invalid", allow_insecure_http=True,
                           transport=server.transport(), tracing=False) as client:
        assert await client.attachments.download(stored["url"], tmp_path / "n.txt") == 16
        with pytest.raises(MalformedResponseError):
            await client.attachments.download(stored["url"], tmp_path / "m.txt", max_bytes=4)
    assert (tmp_path / "n.txt").read_bytes() == b"in process bytes"
    assert leftovers(tmp_path) == ["n.txt"]
    assert server.bucket_requests == 2 and server.bucket_saw_authorization is False


async def test_fake_server_upload_in_process() -> None:
    server = FakeDevinServer(seed=3)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           base_url="http://fake.invalid", allow_insecure_http=True,
                           transport=server.transport(), tracing=False) as client:
        up = await client.attachments.upload(b"streamed in process", name="s.txt")
    assert server.file(up.attachment_id) == b"streamed in process"


@pytest.mark.parametrize("kind", ["missing-directory", "a-directory", "text-file-object"])
async def test_download_bad_destination_raises_before_any_request(kind: str,
                                                                  tmp_path: pathlib.Path,
                                                                  ) -> None:
    dest: Any = {"missing-directory": tmp_path / "nope" / "f.txt", "a-directory": tmp_path,
                 "text-file-object": io.StringIO()}[kind]
    clock = FakeClock()
    client, transport = make_client(redirects([BUCKET]), clock)
    async with client:
        with pytest.raises(ValueError, match="dest"):
            await client.attachments.download(FILE_URL, dest)
    assert transport.requests == [] and clock.sleeps == []
    assert leftovers(tmp_path) == []
    assert not any(p.name.endswith(".part") for p in tmp_path.parent.iterdir())


@pytest.mark.parametrize("mode", ["redirect", "direct"])
async def test_fake_server_size_cap_over_a_socket(mode: Any, tmp_path: pathlib.Path) -> None:
    data = os.urandom(300_000)
    async with FakeDevinServer(seed=4, download_mode=mode) as server, DevinClient(
            api_key=server.api_key, org_id=server.org_id, base_url=server.url,
            tracing=False) as client:
        up = await client.attachments.upload(data, name="big.bin")
        with pytest.raises(MalformedResponseError):
            await client.attachments.download(up, tmp_path / "big.bin", max_bytes=100_000)
        buffer = io.BytesIO()
        assert await client.attachments.download(up, buffer, max_bytes=len(data)) == len(data)
    assert leftovers(tmp_path) == []
    assert buffer.getvalue() == data
    assert server.bucket_saw_authorization is False
