"""The sans-I/O protocol: requests built as data, responses decoded from (status, headers, body).

Nothing here imports aiohttp or does I/O, so every rule is tested without a socket. The client's
aiohttp layer only sends a `Request` and hands back the status, headers and bytes it got.

Rules of this file:
- every id that goes into a path passes `check_id` first, so no request can leave its endpoint;
- every way a response can be wrong ends as a DevinError subclass, never a KeyError/TypeError;
- URLs, queries and JSON bodies are encoded here; the transport only moves bytes;
- whether a failure is retried is decided in `_decisions`, not here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, urlencode

from . import _json
from ._converter import CONVERTER, CONVERTER_HOOKS, split_token, structure_page
from ._decisions import Kind
from ._errors import (
    APIStatusError,
    MalformedResponseError,
    UnprocessableEntityError,
    error_class_for,
)
from ._headers import CI_HEADER_TYPES, parse_retry_after, request_id
from ._models import MAX_TAGS, Attachment, Message, Page, Session
from ._redact import Redactor

__all__ = [
    "ARRAY_FORMAT",
    "CI_HEADER_TYPES",
    "Kind",
    "Request",
    "check_id",
    "decode_error",
    "decode_json",
    "encode_array",
    "encode_url",
    "parse_retry_after",
]

T = TypeVar("T")

#: How array filters go into a query string: "comma" (`ids=a,b`, what the API owner's SDK sends)
#: or "repeat" (`ids=a&ids=b`, the OpenAPI default). One constant so it can be switched.
ARRAY_FORMAT = "comma"

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
_MAX_DETAIL = 500


class Request(NamedTuple):
    """One API call as data: method, path below the organization, query and body.

    A NamedTuple rather than a frozen attrs class: one is built per call, and a tuple is built
    in a fifth of the instructions (immutable all the same).

    Beyond the JSON calls: `body` + `content_type` carry a raw (or streamed, re-iterable) body;
    `url` sends to an absolute URL instead (without the Authorization header: only the API
    origin ever gets the key); `redirect` returns a 3xx answer instead of failing on it.
    """

    method: str
    path: str
    kind: Kind
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    body: Any = None
    content_type: str | None = None
    url: str | None = None
    redirect: bool = False
    #: Values that must never show in an error or log (a create's session secrets).
    secrets: tuple[str, ...] = ()


def encode_url(base: str, params: tuple[tuple[str, str], ...]) -> str:
    """Return `base` with the query `params` percent-encoded, commas kept (`ids=a,b`).

    A comma is a sub-delimiter a query may carry as it is (RFC 3986); kept, 200 ids of 38
    characters fit the 8 KB request line servers accept (as `%2C`, they do not).
    """
    if not params:
        return base
    return f"{base}?{urlencode(params, quote_via=quote, safe=',')}"


@functools.lru_cache(maxsize=4096)
def _is_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def check_id(name: str, value: object) -> str:
    """Return `value` if it is a safe path segment, else raise ValueError naming `name`.

    Accepted: 1-200 ASCII letters, digits and `. _ : -`, not starting with a punctuation mark;
    so `/`, `?`, `#`, `%`, `..`, whitespace and look-alike Unicode never reach a URL.
    """
    if type(value) is str and _is_id(value):
        return value  # the common case: an id seen before, its verdict remembered
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if _ID_RE.fullmatch(value) is None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(
            f"{name} {shown!r} is not a valid id (1-200 of A-Z a-z 0-9 . _ : -, "
            "starting with a letter or digit)"
        )
    return value


def check_tags(name: str, tags: object) -> list[str]:
    """Return tags as a list if they are at most MAX_TAGS strings, else raise ValueError."""
    if isinstance(tags, str | bytes) or not isinstance(tags, Sequence | set | frozenset):
        raise ValueError(f"{name} must be a list of strings, got {type(tags).__name__}")
    items = list(tags)
    if len(items) > MAX_TAGS:
        raise ValueError(f"{name} must hold at most {MAX_TAGS} tags, got {len(items)}")
    for tag in items:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"{name} must hold non-empty strings, found {tag!r}")
    return items


def encode_array(name: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """Return query pairs for an array filter, in the ARRAY_FORMAT style."""
    if ARRAY_FORMAT == "comma":
        return [(name, ",".join(values))]
    return [(name, v) for v in values]


def _text_of(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    if "<" in text and ">" in text:  # an HTML page from a proxy: its title, else the bare text
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text[:_MAX_DETAIL]


def _format_validation(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        if isinstance(err, Mapping):
            loc = err.get("loc")
            where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
            msg = str(err.get("msg", err.get("message", err)))
            parts.append(f"{where}: {msg}" if where else msg)
        else:
            parts.append(str(err))
    return "; ".join(parts)


def _detail_of(decoded: Any) -> tuple[str, list[dict[str, Any]]]:
    """Return the human detail and the validation errors of a decoded error body."""
    detail = ""
    errors: list[dict[str, Any]] = []
    if isinstance(decoded, dict):
        raw_detail = decoded.get("detail")
        if isinstance(raw_detail, list):
            errors = [e for e in raw_detail if isinstance(e, dict)]
            detail = _format_validation(raw_detail)
        elif isinstance(raw_detail, str):
            detail = raw_detail
        elif raw_detail is not None:
            detail = json.dumps(raw_detail)[:_MAX_DETAIL]
        extra = decoded.get("errors")
        if isinstance(extra, list):
            if not errors:
                errors = [e for e in extra if isinstance(e, dict)]
            if not detail:
                detail = _format_validation(extra)
        if not detail:
            for key in ("title", "message", "error"):
                value = decoded.get(key)
                if isinstance(value, str) and value:
                    detail = value
                    break
    elif isinstance(decoded, str):
        detail = decoded[:_MAX_DETAIL]
    return detail[:_MAX_DETAIL], errors


def decode_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    now: float | None = None,
    redact: Redactor | None = None,
    loads: Callable[[bytes], Any] | None = None,
) -> APIStatusError:
    """Turn a non-2xx answer into its typed error (pure; never raises).

    `redact` masks a secret in everything taken from the answer (body, detail, request id);
    `loads` is the client's JSON codec (default: the process's).
    """
    decoded: Any
    detail = ""
    errors: list[dict[str, Any]] = []
    try:
        decoded = (loads or _json.default().loads)(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        decoded = body.decode("utf-8", errors="replace")
        detail = _text_of(body)
    else:
        try:
            detail, errors = _detail_of(decoded)
        except RecursionError:  # nested deeper than str() can walk (orjson reads 1024 deep)
            detail = _text_of(body)
    if not detail:
        detail = _REASONS.get(status, "HTTP error")
    rid = request_id(headers)
    if redact is not None:
        decoded, detail = redact.value(decoded), redact.text(detail)
        errors = redact.value(errors)
        rid = None if rid is None else redact.text(rid)
    retry_after = parse_retry_after(headers, now)
    where = f" ({method} {path})" if method else ""
    message = f"{status} {_REASONS.get(status, 'HTTP error')}: {detail}{where}"
    if rid:
        message += f" [request id {rid}]"
    cls = error_class_for(status)
    common: dict[str, Any] = dict(
        status=status,
        body=decoded,
        detail=detail,
        request_id=rid,
        retry_after=retry_after,
        method=method,
        path=path,
    )
    if cls is UnprocessableEntityError:
        return UnprocessableEntityError(message, errors=errors, **common)
    return cls(message, **common)


_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def decode_json(status: int, body: bytes, loads: Callable[[bytes], Any] | None = None) -> Any:
    """Parse a 2xx body as JSON (with the codec's `loads`), or raise MalformedResponseError."""
    if not body or body.isspace():  # == `not body.strip()`, without copying the body
        raise MalformedResponseError(
            f"the server answered {status} with an empty body where JSON was expected",
            status=status,
            body=b"",
        )
    try:
        return (loads or _json.default().loads)(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        preview = body[:200].decode("utf-8", errors="replace")
        raise MalformedResponseError(
            f"the server answered {status} with a body that is not JSON ({exc}): {preview!r}",
            status=status,
            body=body.decode("utf-8", errors="replace"),
        ) from None


def _structure(what: str, data: Any, fn: Callable[..., T], *args: Any) -> T:
    # `fn(*args)` rather than a closure: no function object is built per decoded response.
    try:
        return fn(*args)
    except MalformedResponseError:
        raise
    except Exception as exc:  # cattrs and our hooks raise many kinds; all mean "bad shape"
        raise MalformedResponseError(f"the server's {what} does not have the documented shape: "
                                     f"{type(exc).__name__}: {exc}", body=data) from None


_SESSION_HOOK = CONVERTER_HOOKS[Session]


def parse_session(data: Any, session_id: str | None = None) -> Session:
    """Structure a Session from decoded JSON; with `session_id`, it must be that session's."""
    if type(data) is not dict:
        raise MalformedResponseError(f"expected a session object, got {type(data).__name__}",
                                     body=data)
    session: Session = _structure("session", data, _SESSION_HOOK, data, Session)
    if session_id is not None and session.session_id != session_id:
        raise MalformedResponseError(
            f"asked for session {session_id}, the server answered with {session.session_id}")
    return session


def parse_session_page(data: Any) -> Page[Session]:
    """Structure a page of sessions."""
    page: Page[Session] = _structure("session page", data, structure_page, data, Session)
    return page


def parse_message_page(data: Any) -> Page[Message]:
    """Structure a page of messages."""
    return _structure("message page", data, structure_page, data, Message)


def parse_tags(data: Any) -> list[str]:
    """Structure a `{tags}` answer."""
    if type(data) is not dict or "tags" not in data:
        raise MalformedResponseError("expected an object with `tags`", body=data)
    tags: list[str] = _structure("tags", data, CONVERTER.structure, data["tags"], list[str])
    return split_token(tags)[0]


def parse_attachments(data: Any) -> list[Attachment]:
    """Structure an attachments answer: a bare array (or `{items}`, as one guide shows)."""
    if type(data) is dict and "items" in data:
        data = data["items"]
    if type(data) is not list:
        raise MalformedResponseError("expected a list of attachments", body=data)
    hook = CONVERTER_HOOKS[Attachment]
    items: list[Attachment] = _structure(
        "attachments", data, lambda: [hook(item, Attachment) for item in data]
    )
    return items
