"""Class 6: a server that echoes the API key back, in every form, never gets it printed.

Each form is served to every request (so retries and a create's token look-ups see it too).
What must stay clean: the raised exception and its whole cause/context chain (str, repr,
`.detail`, `.body`, `.errors`, `.request_id`, the formatted traceback), every hook event, and
every log record of the `devin_async` logger at DEBUG. Forbidden: the key, its secret part
(without `cog_`), and the exact text the server sent it as (an escaped key is still the key).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import pytest

from devin_async import DevinError, RetryPolicy

from .servers import KEY, Answer, Raw, RawServer, Reply, client_for

ESCAPED = "".join(f"\\u{ord(c):04x}" for c in KEY)
PARTLY = "\\u0063" + KEY[1:]
PERCENT = "".join(f"%{ord(c):02X}" for c in KEY)


def _json(status: int, text: str, **kw: Any) -> Answer:
    return Answer(status, text.encode(), **kw)


#: form -> (the reply, the text the key travels as)
FORMS: dict[str, tuple[Reply, str]] = {
    "verbatim-401": (_json(401, f'{{"detail": "invalid key {KEY}"}}'), KEY),
    "json-escaped-401": (_json(401, f'{{"detail": "invalid key {ESCAPED}"}}'), ESCAPED),
    "partly-escaped-500": (_json(500, f'{{"detail": "upstream saw {PARTLY}"}}'), PARTLY),
    "escaped-in-422-errors": (_json(422, '{"detail": [{"loc": ["header", "authorization"], '
                                         f'"msg": "bad {ESCAPED}", "type": "value_error"}}]}}'),
                              ESCAPED),
    "url-encoded-400": (_json(400, f'{{"detail": "bad header Bearer%20{PERCENT}"}}'), PERCENT),
    "escaped-in-malformed-2xx": (_json(200, f"<html>token {PARTLY}</html>"), PARTLY),
    "x-request-id-header": (Answer(500, {"detail": "oops"}, headers=(("x-request-id", KEY),)),
                            KEY),
    "bad-status-line": (Raw(f"HTTP/1.1 {KEY} OK\r\nContent-Length: 0\r\n\r\n".encode()), KEY),
    "over-long-header": (Raw(b"HTTP/1.1 200 OK\r\nX-Echo: " + KEY.encode() * 300
                             + b"\r\nContent-Length: 2\r\n\r\n{}"), KEY),
    "header-without-colon": (Raw(f"HTTP/1.1 200 OK\r\nAuthorization Bearer {KEY}\r\n"
                                 "Content-Length: 2\r\n\r\n{}".encode()), KEY),
    "bad-chunk-size": (Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" + KEY.encode()
                           + b"\r\n{}\r\n0\r\n\r\n"), KEY),
}
# A short settle: a create's look-ups fail on the echo at once either way (the same requests
# reach the server as with the default 3 s); only the waits between them are shorter.
RETRY = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01, jitter=False,
                    settle=0.05)


def chain(exc: BaseException) -> list[BaseException]:
    """Return `exc` and every exception reachable by __cause__, __context__ and .original."""
    out: list[BaseException] = []
    todo = [exc]
    while todo:
        item = todo.pop()
        if any(item is seen for seen in out):
            continue
        out.append(item)
        for nxt in (item.__cause__, item.__context__, getattr(item, "original", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return out


def texts_of(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for item in chain(exc):
        texts += [str(item), repr(item)]
        for name in ("detail", "body", "errors", "request_id"):
            texts.append(str(getattr(item, name, "")))
    return texts


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [t for r in records for t in (r.getMessage(), repr(r.args), formatter.format(r))]


def leaks(texts: list[str], wire: str) -> list[str]:
    forbidden = {KEY, KEY[4:], wire}
    return [t[:300] for t in texts if any(f in t for f in forbidden)]


async def run(client: Any, operation: str) -> None:
    if operation == "get":
        await client.sessions.get("devin-1")
    else:
        await client.sessions.create("echo the key back")


@pytest.mark.parametrize("operation", ["get", "create"])
@pytest.mark.parametrize("form", list(FORMS))
async def test_an_echoed_key_is_never_shown(
    form: str, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    reply, wire = FORMS[form]
    events: list[object] = []
    caplog.set_level(logging.DEBUG, logger="devin_async")
    async with RawServer(lambda _seen: reply) as server, client_for(
        server, retry=RETRY, on_request=events.append, on_response=events.append,
        on_retry=events.append,
    ) as client:
        with pytest.raises(DevinError) as info:
            async with asyncio.timeout(2.0):
                await run(client, operation)
    assert server.seen, "the request reached the server"
    assert events, "the hooks fired"
    records = [r for r in caplog.records if r.name.startswith("devin_async")]
    assert not leaks(texts_of(info.value), wire), "the error shows the key"
    assert not leaks([repr(e) for e in events], wire), "a hook event shows the key"
    assert not leaks(record_texts(records), wire), "a log record shows the key"
