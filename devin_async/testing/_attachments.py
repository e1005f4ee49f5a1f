"""Attachments of the fake server: the uploaded bytes, multipart parsing, and the "bucket".

Downloads go through a redirect as on the real API: `GET .../attachments/{uuid}/{name}` answers
307 to a presigned-looking URL on a second origin (the bucket: its own loopback port, or
`https://bucket.fake.invalid` in process). The bucket checks the signature and the deadline
(`ttl` real seconds, like S3's X-Amz-Expires) and REFUSES (403) any request that carries an
`Authorization` header, counting it, so a test can prove the API key never followed the redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

import attrs

from ._errors import ValidationFailed, field_error

BUCKET_PREFIX = "/fake-bucket/attachments/"
IN_PROCESS_BUCKET = "https://bucket.fake.invalid"
_UPLOAD_URL = re.compile(r"/organizations/[^/]+/attachments/([^/?#]+)/([^/?#]+)$")
_PARAM = re.compile(r';\s*([\w*]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@attrs.define(slots=True, eq=False)
class Blob:
    attachment_id: str
    name: str
    content_type: str
    data: bytes


@attrs.frozen
class Answer:
    """A non-JSON answer: a redirect, raw bytes, or the bucket's XML error."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""


def _params(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + header.split(";", 1)[-1] if ";" in header else ""):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if key.endswith("*") and "''" in value:  # RFC 5987: charset''percent-encoded
            value = unquote(value.split("''", 1)[1])
            key = key[:-1]
        out.setdefault(key.lower(), value)
    return out


def parse_upload(content_type: str | None, body: bytes) -> tuple[str, str, bytes]:
    """Return (file name, content type, bytes) of the multipart part `file`, or raise a 422."""
    ctype = content_type or ""
    boundary = _params(ctype).get("boundary") if ctype.lower().startswith("multipart/") else None
    if boundary:
        for part in body.split(b"--" + boundary.encode())[1:]:
            if part.startswith(b"--"):
                break
            head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            if not sep:
                continue
            headers = {}
            for line in head.decode("utf-8", "replace").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            disposition = _params(headers.get("content-disposition", ""))
            if disposition.get("name") == "file":
                filename = disposition.get("filename") or "file"
                part_type = headers.get("content-type") or "application/octet-stream"
                return filename, part_type, data.removesuffix(b"\r\n")
    raise ValidationFailed([field_error(("body", "file"), "Field required", "missing", None)])


class AttachmentStore:
    """The uploaded files and the bucket that serves them behind presigned URLs."""

    def __init__(self, *, rng: random.Random, clock: Callable[[], float],
                 ttl: float = 60.0) -> None:
        self.rng = rng
        self.clock = clock
        self.ttl = ttl
        self._key = rng.getrandbits(256).to_bytes(32, "big")
        self.blobs: dict[str, Blob] = {}
        self.bucket_requests = 0
        self.bucket_authorization = 0  # requests the bucket refused for carrying Authorization

    def add(self, name: str, content_type: str, data: bytes) -> Blob:
        raw = f"{self.rng.getrandbits(128):032x}"
        attachment_id = f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"
        blob = Blob(attachment_id, name, content_type, data)
        self.blobs[attachment_id] = blob
        return blob

    def find(self, attachment_id: str, name: str) -> Blob | None:
        blob = self.blobs.get(attachment_id)
        return blob if blob is not None and blob.name == name else None

    def by_url(self, url: str) -> dict[str, Any] | None:
        """The session-attachment fields of an uploaded file's `url` (None: not an upload)."""
        match = _UPLOAD_URL.search(url)
        blob = None if match is None else self.find(match[1], unquote(match[2]))
        if blob is None:
            return None
        return {"attachment_id": blob.attachment_id, "name": blob.name,
                "content_type": blob.content_type}

    def api_path(self, blob: Blob, *, version: str, org_id: str) -> str:
        return (f"/{version}/organizations/{org_id}/attachments/{blob.attachment_id}/"
                f"{quote(blob.name, safe='')}")

    def _sign(self, path: str, deadline: str) -> str:
        return hmac.new(self._key, f"{path}|{deadline}".encode(), hashlib.sha256).hexdigest()

    def presign(self, blob: Blob, origin: str) -> str:
        """A presigned-looking bucket URL for `blob`, valid for `ttl` real seconds."""
        path = f"{BUCKET_PREFIX}{blob.attachment_id}/{blob.name}"
        deadline = f"{self.clock() + self.ttl:.3f}"
        return (f"{origin}{BUCKET_PREFIX}{blob.attachment_id}/{quote(blob.name, safe='')}"
                f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={int(self.ttl)}"
                f"&X-Fake-Deadline={deadline}&X-Amz-Signature={self._sign(path, deadline)}")

    def bucket(self, method: str, path: str, query: Mapping[str, str],
               headers: Mapping[str, str]) -> Answer:
        """Serve one request to the bucket origin (`path` percent-decoded)."""
        self.bucket_requests += 1
        if any(k.lower() == "authorization" for k in headers):
            self.bucket_authorization += 1
            return _s3_error(403, "InvalidArgument", "Only one auth mechanism allowed; the "
                             "Authorization header must not be sent with a presigned URL")
        if method not in ("GET", "HEAD") or not path.startswith(BUCKET_PREFIX):
            return _s3_error(403 if method in ("GET", "HEAD") else 405, "AccessDenied",
                             "Access Denied")
        deadline = query.get("X-Fake-Deadline", "")
        signature = query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(self._sign(path, deadline), signature):
            return _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated "
                             "does not match the signature you provided")
        if float(deadline) < self.clock():
            return _s3_error(403, "AccessDenied", "Request has expired")
        attachment_id, _, name = path.removeprefix(BUCKET_PREFIX).partition("/")
        blob = self.find(attachment_id, name)
        if blob is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return Answer(200, content_headers(blob), b"" if method == "HEAD" else blob.data)


def content_headers(blob: Blob) -> dict[str, str]:
    return {"Content-Type": blob.content_type,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(blob.name, safe='')}"}


def _s3_error(status: int, code: str, message: str) -> Answer:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    return Answer(status, {"Content-Type": "application/xml"}, body)


def upload_json(blob: Blob, url: str) -> dict[str, Any]:
    return {"attachment_id": blob.attachment_id, "name": blob.name, "url": url}
