"""Attachments on the fake server: upload, the 307 to the bucket origin (which refuses an
Authorization header), direct mode, the session listing; and GET /v3/self."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from devin_async.testing import FakeDevinServer

from .fake_helpers import Api, ManualClock, TransportApi

PAYLOAD = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def upload(http: aiohttp.ClientSession, api: Api, data: bytes, name: str,
                 token: str | None = None) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="text/csv")
    return await http.post(f"{api.base}/attachments", data=form,
                           headers={"Authorization": f"Bearer {token or api.token}"})


@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_upload_then_download_through_the_bucket(http: aiohttp.ClientSession,
                                                       version: str) -> None:
    async with FakeDevinServer() as server:
        api = Api(http, server, version=version)
        async with await upload(http, api, PAYLOAD, "data.csv") as response:
            assert response.status == 200
            uploaded = await response.json()
        assert set(uploaded) == {"attachment_id", "name", "url"}
        assert uploaded["name"] == "data.csv"
        assert uploaded["url"].startswith(f"{server.url}/{version}/organizations/")
        assert server.file(uploaded["attachment_id"]) == PAYLOAD
        key = {"Authorization": f"Bearer {server.api_key}"}
        async with http.get(uploaded["url"], headers=key, allow_redirects=False) as redirect:
            assert redirect.status == 307
            location = redirect.headers["Location"]
        assert location.startswith(server.bucket_url + "/") and "X-Amz-Signature=" in location
        async with http.get(location) as fetched:
            assert fetched.status == 200 and await fetched.read() == PAYLOAD
            assert fetched.headers["Content-Type"].startswith("text/csv")
        assert not server.bucket_saw_authorization
        async with http.get(location, headers=key) as refused:
            assert refused.status == 403
            assert b"Authorization" in await refused.read()
        assert server.bucket_saw_authorization and server.bucket_authorization_refusals == 1
        # aiohttp drops the header on a redirect to another origin (another port is one).
        async with http.get(uploaded["url"], headers=key) as followed:
            assert followed.status == 200 and await followed.read() == PAYLOAD
        assert server.bucket_authorization_refusals == 1 and server.bucket_requests == 3


async def test_bucket_urls_are_signed_and_expire(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeDevinServer(clock=clock, attachment_url_ttl=60) as server:
        api = Api(http, server)
        url = server.add_file(b"abc", name="a.txt")["url"]
        assert url.startswith(api.base)
        async with http.get(url, headers={"Authorization": f"Bearer {server.api_key}"},
                            allow_redirects=False) as redirect:
            location = redirect.headers["Location"]
        async with http.get(location.replace("X-Amz-Signature=", "X-Amz-Signature=0")) as forged:
            assert forged.status == 403 and b"SignatureDoesNotMatch" in await forged.read()
        clock.advance(61)
        async with http.get(location) as expired:
            assert expired.status == 403 and b"expired" in await expired.read()


async def test_direct_mode_answers_the_bytes(http: aiohttp.ClientSession) -> None:
    async with FakeDevinServer(download_mode="direct") as server:
        url = server.add_file(PAYLOAD, name="out.bin")["url"]
        async with http.get(url, headers={"Authorization": f"Bearer {server.api_key}"},
                            allow_redirects=False) as response:
            assert response.status == 200 and await response.read() == PAYLOAD
        server.download_mode = "redirect"
        async with http.get(url, headers={"Authorization": f"Bearer {server.api_key}"},
                            allow_redirects=False) as response:
            assert response.status == 307
        with pytest.raises(ValueError):
            server.download_mode = "teleport"  # type: ignore[assignment]


async def test_in_process_upload_download_and_bucket() -> None:
    server = FakeDevinServer()
    api = TransportApi(server)
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ü n.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n").encode()
    uploaded = await api.call("POST", "/attachments", data=body,
                              headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert uploaded.status == 200 and uploaded.body["name"] == "ü n.txt"
    assert uploaded.body["url"].endswith("/%C3%BC%20n.txt")
    assert uploaded.body["url"].startswith("http://fake.invalid/v3beta1/")
    path = uploaded.body["url"].removeprefix(api.base)
    redirect = await api.call("GET", path)
    assert redirect.status == 307
    location = redirect.headers["Location"]
    assert location.startswith("https://bucket.fake.invalid/")
    fetched = await api.call("GET", "", base=location, token=None)
    assert fetched.status == 200 and fetched.text == "hello"
    refused = await api.call("GET", "", base=location)
    assert refused.status == 403 and server.bucket_saw_authorization
    assert server.bucket_requests == 2


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b'{"file": "x"}'),
    ("multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data; "
     b"name=\"other\"\r\n\r\nx\r\n--B--\r\n"),
    ("multipart/form-data", b""),
])
async def test_an_upload_without_a_file_part_is_a_422(content_type: str, body: bytes) -> None:
    api = TransportApi(FakeDevinServer())
    reply = await api.call("POST", "/attachments", data=body,
                           headers={"Content-Type": content_type})
    assert reply.status == 422 and reply.detail[0]["loc"] == ["body", "file"]


async def test_unknown_attachments_are_404_and_links_show_in_the_session() -> None:
    server = FakeDevinServer()
    api = TransportApi(server)
    assert (await api.call("GET", "/attachments/nope/x.txt")).status == 404
    uploaded = server.add_file(b"x", name="x.txt", content_type="text/plain")
    wrong_name = f"/attachments/{uploaded['attachment_id']}/y.txt"
    assert (await api.call("GET", wrong_name)).status == 404
    sid = (await api.create("p", attachment_urls=[uploaded["url"]]))["session_id"]
    await api.call("POST", f"/sessions/{sid}/messages",
                   json_body={"message": "and this", "attachment_urls": ["https://f.example/z"]})
    listing = (await api.call("GET", f"/sessions/{sid}/attachments")).body
    assert [(a["name"], a["url"], a["source"], a["content_type"]) for a in listing] == [
        ("x.txt", uploaded["url"], "user", "text/plain"),
        ("z", "https://f.example/z", "user", None)]
    assert listing[0]["attachment_id"] == uploaded["attachment_id"]


async def test_upload_needs_use_devin_sessions() -> None:
    server = FakeDevinServer()
    token = server.add_token(permissions={"ViewOrgSessions", "ManageOrgSessions"})
    api = TransportApi(server, token=token)
    reply = await api.call("POST", "/attachments", data=b"",
                           headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 403 and "UseDevinSessions" in reply.detail


# --- GET /v3/self ---------------------------------------------------------------------------------
async def test_self_reports_the_principal_under_v3_only() -> None:
    server = FakeDevinServer()
    api = TransportApi(server)
    me = await api.call("GET", "/v3/self", base="http://fake.invalid")
    assert me.status == 200
    assert me.body["principal_type"] == "service_user" and me.body["org_id"] == server.org_id
    assert me.body["service_user_id"].startswith("service-user-")
    assert me.body["service_user_name"] == "fake-service-user"
    assert (await api.call("GET", "/v3beta1/self", base="http://fake.invalid")).status == 404
    assert (await api.call("GET", "/v3/self", base="http://fake.invalid", token=None)).status == 401
    narrow = server.add_token(permissions=(), principal_type="pat_user", name="Ada")
    pat = await api.call("GET", "/v3/self", base="http://fake.invalid", token=narrow)
    assert pat.status == 200 and pat.body["principal_type"] == "pat_user"
    assert pat.body["user_name"] == "Ada" and pat.body["user_id"].startswith("user-")
    writer = server.add_token(principal_type="pat_user")
    created = await TransportApi(server, token=writer).create("p")
    assert created["user_id"] is not None and created["service_user_id"] is None
