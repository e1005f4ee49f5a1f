"""The API key never leaks: `Redactor` in every spelling a server may echo, `decode_error(redact=)`,
and the whole engine path (errors, their chain, hook events, log records)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote, unquote

import pytest

from devin_async import (
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    DevinError,
    HTTPRequest,
    HTTPResponse,
    MalformedResponseError,
    RetryPolicy,
    SessionSecret,
    UnprocessableEntityError,
)
from devin_async._protocol import decode_error
from devin_async._redact import MIN_FRAGMENT, Redactor, mask_key

from .surface_support import API_KEY, SID, FakeClock, make_client, session_json

KEY = API_KEY
MASK = mask_key(KEY)


def json_escape(text: str, *, every: int = 1, upper: bool = False) -> str:
    """Escape every `every`-th character as \\uXXXX (hex in upper or lower case)."""
    out = []
    for i, char in enumerate(text):
        if i % every == 0:
            code = f"{ord(char):04x}"
            out.append("\\u" + (code.upper() if upper else code))
        else:
            out.append(char)
    return "".join(out)


def mixed_case_escape(text: str) -> str:
    return "".join("\\u" + (f"{ord(c):04X}" if i % 2 else f"{ord(c):04x}")
                   for i, c in enumerate(text))


def percent(text: str, *, upper: bool = True) -> str:
    encoded = "".join(f"%{ord(c):02X}" for c in text)
    return encoded if upper else encoded.lower()


#: Every spelling of the key a server, proxy or parser may send back.
SPELLINGS = {
    "verbatim": KEY,
    "json-full": json_escape(KEY),
    "json-first-char": "\\u0063" + KEY[1:],
    "json-every-third": json_escape(KEY, every=3),
    "json-upper-hex": json_escape(KEY, upper=True),
    "json-mixed-hex": mixed_case_escape(KEY),
    "percent-upper": percent(KEY),
    "percent-lower": percent(KEY, upper=False),
    "percent-partial": quote(KEY, safe="").replace("c", "%63", 1).replace("_", "%5F"),
    "fragment-start": KEY[:MIN_FRAGMENT],
    "fragment-middle": KEY[7 : 7 + MIN_FRAGMENT + 3],
    "fragment-end": KEY[-MIN_FRAGMENT:],
}


def _unescape(text: str) -> str:
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return unquote(text)


def leaks(text: str) -> bool:
    """Whether `text` holds MIN_FRAGMENT characters of the key in a row, in any spelling."""
    for candidate in (text, _unescape(text)):
        for start in range(len(KEY) - MIN_FRAGMENT + 1):
            if KEY[start : start + MIN_FRAGMENT] in candidate:
                return True
    return False


def test_leaks_detects_every_spelling() -> None:  # the checker itself
    assert all(leaks(f"x {s} y") for s in SPELLINGS.values())
    assert not leaks(f"masked {MASK} here")


# --- Redactor ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=list(SPELLINGS))
def test_redactor_masks_every_spelling(spelling: str) -> None:
    redactor = Redactor(KEY)
    text = f'{{"detail": "Invalid token {spelling}, try again"}}'
    masked = redactor.text(text)
    assert not leaks(masked)
    assert MASK in masked
    # A fragment is masked up to the next space (a cut-off echo): the comma may go with it.
    assert masked.startswith('{"detail": "Invalid token ') and masked.endswith(' try again"}')
    assert redactor.contains(text) and not redactor.contains(masked)


def test_redactor_mask_shows_at_most_the_prefix_and_last_four() -> None:
    assert f"cog_…{KEY[-4:]}" == MASK
    assert mask_key("short") == "…" and mask_key("cog_short") == "cog_…"


def test_redactor_leaves_other_text_alone() -> None:
    redactor = Redactor(KEY)
    for text in ["", "nothing to see", "cog_otherkey0000000000000", "100% \\u0041 done",
                 KEY[:MIN_FRAGMENT - 1]]:
        assert redactor.text(text) == text
        assert not redactor.contains(text)


def test_redactor_masks_many_occurrences_and_escaped_slashes() -> None:
    key = "cog_ab/cd/ef0123456789XYZ"
    redactor = Redactor(key)
    text = f"{key} and {key.replace('/', chr(92) + '/')} and {json_escape(key)}"
    masked = redactor.text(text)
    assert "ab/cd" not in masked and "ab\\/cd" not in masked and masked.count(redactor.mask) == 3


def test_redactor_value_walks_json() -> None:
    redactor = Redactor(KEY)
    data = {"detail": [{"msg": f"bad {KEY}", "input": {"authorization": f"Bearer {KEY}"}}],
            KEY: [1, 2.5, None, True, json_escape(KEY)], "ok": "fine"}
    masked = redactor.value(data)
    assert not leaks(json.dumps(masked, ensure_ascii=False))
    assert masked["ok"] == "fine" and masked[MASK][:4] == [1, 2.5, None, True]


def test_redactor_raw_masks_bytes() -> None:
    redactor = Redactor(KEY)
    assert redactor.raw(f"x{KEY}y".encode()) == f"x{MASK}y".encode()
    body = b'{"a": 1}'
    assert redactor.raw(body) is body


# --- decode_error --------------------------------------------------------------------------------
def check_error(error: BaseException) -> None:
    """Nothing the caller can reach from `error` holds the key."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts = [str(current), repr(current), *(str(a) for a in current.args)]
        for name in ("detail", "body", "errors", "request_id", "path", "method"):
            if hasattr(current, name):
                texts.append(repr(getattr(current, name)))
                texts.append(json.dumps(getattr(current, name), ensure_ascii=False,
                                        default=str))
        for text in texts:
            assert not leaks(text), text
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=list(SPELLINGS))
@pytest.mark.parametrize("status", [400, 401, 422, 500])
def test_decode_error_redacts(spelling: str, status: int) -> None:
    body = json.dumps({"detail": [{"loc": ["header", "authorization"], "msg": f"bad {spelling}",
                                   "type": "value_error", "input": f"Bearer {spelling}"}]}
                      if status == 422 else {"detail": f"token {spelling} is not valid",
                                             "echo": {"auth": spelling}})
    error = decode_error(status, {"x-request-id": f"req-{spelling}"}, body.encode(),
                         method="GET", path="/sessions", redact=Redactor(KEY))
    assert isinstance(error, APIStatusError) and error.status == status
    check_error(error)
    assert error.request_id is not None and error.request_id.startswith("req-")
    if status == 422:
        assert isinstance(error, UnprocessableEntityError)
        assert error.errors and not leaks(json.dumps(error.errors))


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=list(SPELLINGS))
def test_decode_error_redacts_a_plain_text_body(spelling: str) -> None:
    error = decode_error(502, {}, f"<html>upstream said {spelling}</html>".encode(),
                         redact=Redactor(KEY))
    check_error(error)


# --- through the engine --------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def check(self) -> None:
        assert self.events
        for event in self.events:
            assert not leaks(repr(event)), event
            error = getattr(event, "error", None)
            if error is not None:
                check_error(error)


def echo_400(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        body = {"detail": f"invalid token {spelling}", "headers": {"authorization": spelling}}
        return HTTPResponse(400, {"content-type": "application/json",
                                  "x-request-id": f"r-{spelling}"}, json.dumps(body).encode())
    return handler


def echo_422(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        body = {"detail": [{"loc": ["body"], "msg": f"no {spelling}", "type": "x",
                            "input": {"k": spelling}}]}
        return HTTPResponse(422, {"content-type": "application/json"}, json.dumps(body).encode())
    return handler


def echo_text(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(503, {"content-type": "text/plain", "request-id": spelling},
                            f"proxy: bad Authorization: Bearer {spelling}".encode())
    return handler


def echo_malformed_2xx(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(200, {"content-type": "application/json"},
                            f"{{not json, token={spelling}".encode())
    return handler


def connection_error(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        raise APIConnectionError(f"Invalid header line: b'Authorization: Bearer {spelling}'",
                                 sent=False)
    return handler


def os_error(spelling: str) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        raise ConnectionResetError(f"reset while sending Bearer {spelling}")
    return handler


HANDLERS = {"400": (echo_400, BadRequestError), "422": (echo_422, UnprocessableEntityError),
            "503-text": (echo_text, APIStatusError),
            "malformed-2xx": (echo_malformed_2xx, MalformedResponseError),
            "connection": (connection_error, APIConnectionError),
            "os-error": (os_error, APIConnectionError)}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=list(SPELLINGS))
@pytest.mark.parametrize("kind", list(HANDLERS))
async def test_nothing_leaks_through_the_engine(kind: str, spelling: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    make_handler, expected = HANDLERS[kind]
    hooks = Recorder()
    client, transport = make_client(make_handler(spelling), FakeClock(), on_request=hooks,
                                    on_response=hooks, on_retry=hooks)
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        async with client:
            with pytest.raises(DevinError) as info:
                await client.sessions.get(SID)
            assert not leaks(repr(client))
    assert isinstance(info.value, expected)
    check_error(info.value)
    hooks.check()
    assert any(type(e).__name__ == "ResponseEvent" for e in hooks.events)
    assert caplog.records
    for record in caplog.records:
        assert not leaks(record.getMessage()), record.getMessage()
        assert not leaks(str(record.exc_text or ""))
    assert not leaks(caplog.text)
    # The key went where it belongs, and nowhere else in the request.
    assert transport.requests[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_a_follower_logs_no_key(caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    def handler(request: HTTPRequest) -> HTTPResponse:
        calls["n"] += 1
        if request.url.endswith(f"/sessions/{SID}"):
            return HTTPResponse(200, {}, json.dumps(session_json(SID, "exit", None)).encode())
        if calls["n"] < 3:
            return HTTPResponse(503, {}, f"busy {json_escape(KEY)}".encode())
        return HTTPResponse(200, {}, b'{"items": [], "end_cursor": null, "has_next_page": false}')

    client, _ = make_client(handler, FakeClock(), retry=RetryPolicy(max_attempts=1))
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        async with client:
            assert [e async for e in client.sessions.events(SID, follow=True)] == []
    assert any("503" in r.getMessage() for r in caplog.records)
    assert not leaks(caplog.text)


@pytest.mark.parametrize("spelling", [json_escape(KEY[:MIN_FRAGMENT + 8]),
                                      percent(KEY[3 : 3 + MIN_FRAGMENT + 8])],
                         ids=["json-escaped-fragment", "percent-encoded-fragment"])
def test_redactor_masks_an_escaped_fragment(spelling: str) -> None:
    # A cut-off echo that is also escaped: a plain-text body or a header quoting the start of
    # an escaped Authorization line. MIN_FRAGMENT characters of the key must not survive.
    assert not leaks(Redactor(KEY).text(f"upstream said: {spelling}"))


# --- session secrets -----------------------------------------------------------------------------
SECRET_VALUE = "s3cr3t-value-Qm8Z"


@pytest.mark.parametrize("where", ["input", "msg", "both"])
async def test_a_session_secret_echoed_by_the_server_does_not_leak(
        where: str, caplog: pytest.LogCaptureFixture) -> None:
    # FastAPI's 422 echoes the offending `input`; some validators put the value in `msg`.
    def handler(request: HTTPRequest) -> HTTPResponse:
        sent = json.loads(request.body)["session_secrets"][0]
        item = {"loc": ["body", "session_secrets", 0], "type": "value_error",
                "msg": f"invalid value {sent['value']}" if where != "input" else "invalid",
                "input": sent if where != "msg" else None}
        return HTTPResponse(422, {"content-type": "application/json"},
                            json.dumps({"detail": [item]}).encode())

    hooks = Recorder()
    client, _ = make_client(handler, FakeClock(), on_response=hooks, on_retry=hooks)
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        async with client:
            with pytest.raises(UnprocessableEntityError) as info:
                await client.sessions.create("p", session_secrets=[SessionSecret("K",
                                                                                 SECRET_VALUE)])
    error = info.value
    for text in (str(error), repr(error), error.detail, repr(error.body), repr(error.errors),
                 caplog.text, *(repr(e) for e in hooks.events)):
        assert SECRET_VALUE not in text, text
