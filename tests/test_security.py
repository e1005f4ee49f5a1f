"""Security: the key never leaks, never travels elsewhere, no id escapes, no response breaks out.

What is proven here, with a distinctive key (KEY) that would stand out anywhere it leaked:
- The key is in no log record at DEBUG (every logger, aiohttp's included) during a full run of
  create, get, list, poll, watch, create_many and their failures (401, 422, resets, 5xx); not in
  `repr`/`str` of the client or its parts, not in any error (str, repr, args, body, attributes,
  cause/context chain), not in the hook events, not in the fake server's request log (masked),
  not in the CLI's stdout/stderr, even with DEVIN_ASYNC_LOG=debug.
- Redirects are not followed (the decision: a 3xx is an APIStatusError carrying the status), so
  the key never reaches another origin; checked with two loopback servers for 301-308.
- Hostile ids are refused with ValueError before anything is sent; a property test shows every id
  that `check_id` accepts lands on exactly the intended path.
- Hostile responses (random statuses, bytes, nesting, wrong types, huge or compressed bodies)
  only ever surface as DevinError subclasses.
- Plain http:// to a non-loopback host is refused without `allow_insecure_http=True`; TLS
  verification has no off switch in the SDK.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import logging
import math
import shutil
import ssl
import subprocess
import traceback
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

import devin_async
from devin_async import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    DevinClient,
    DevinError,
    MalformedResponseError,
    PollPolicy,
    RetryPolicy,
    Session,
    UnprocessableEntityError,
)
from devin_async._aiohttp import AiohttpTransport
from devin_async._cli import main as cli_main
from devin_async._protocol import (
    check_id,
    decode_error,
    decode_json,
    parse_retry_after,
    parse_session,
    parse_session_page,
)
from devin_async._transport import HTTPRequest, HTTPResponse
from devin_async.testing import FakeDevinServer

from .helpers import JSON as JSON_HEADERS
from .helpers import FakeClock, ThreadedServer, parse_call, session_json
from .properties import examples

KEY = "cog_SECRETdistinctKEY_ZX81"
OTHER_KEY = "cog_SECRETotherKEY_QQ42"
#: The parts that must never show: the whole keys and their distinctive middles.
SECRETS = (KEY, OTHER_KEY, "SECRETdistinctKEY", "SECRETotherKEY")
PROPERTY = settings(max_examples=examples(150), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def assert_clean(*texts: object) -> None:
    """Fail if any secret appears in the repr of any of `texts`."""
    for text in texts:
        shown = text if isinstance(text, str) else repr(text)
        for secret in SECRETS:
            assert secret not in shown, f"secret leaked in: {shown[:300]}"


def error_texts(error: BaseException) -> Iterator[object]:
    """Everything an error shows or carries, its cause/context chain included."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield current.args
        yield {k: v for k, v in vars(current).items() if not k.startswith("__")}
        yield "".join(traceback.format_exception(current))
        current = current.__cause__ or current.__context__


# -- repr / str ------------------------------------------------------------------------------

async def test_repr_and_str_show_at_most_the_masked_key() -> None:
    async with DevinClient(KEY, org_id="org-test") as client:
        shown = [repr(client), str(client), f"{client}", repr(client.sessions),
                 repr(client.limiter), repr(client.timeouts), repr(client.retry),
                 repr(client.poll_policy), repr(client.watch(["devin-1"])),
                 repr(client.sessions.poll("devin-1"))]
        assert_clean(*shown)
    assert "cog_…ZX81" in repr(client)


@pytest.mark.parametrize("bad_key", [KEY + " ", "cog_SECRETdistinctKEY ZX81",
                                     "cog_SECRETdistinctKEY\nZX81", "cog_SECRETdistinctKEY\x00"])
def test_a_malformed_key_is_refused_without_echoing_it(bad_key: str) -> None:
    with pytest.raises(ValueError) as info:
        DevinClient(bad_key, org_id="org-test")
    assert_clean(*error_texts(info.value))


# -- a full run at DEBUG ---------------------------------------------------------------------

FAST = PollPolicy(initial=0.01, max=0.05, multiplier=2.0, jitter=0.0)
#: The fake's lists do not lag: a create's token look-ups need not keep looking for 3 s.
QUICK_RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.005, settle=0.05)
SCRIPT = [("new", None, 0.0), ("running", "working", 0.02), ("running", "finished", 0.05)]


async def test_a_full_run_leaks_the_key_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root: every logger, aiohttp's and asyncio's included
    for name in ("devin_async", "aiohttp", "aiohttp.client", "aiohttp.server", "aiohttp.access",
                 "aiohttp.internal", "aiohttp.web", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    events: list[object] = []
    errors: list[BaseException] = []
    async with FakeDevinServer(api_key=KEY) as server:
        client = DevinClient(KEY, org_id=server.org_id, base_url=server.url, poll=FAST,
                             retry=QUICK_RETRY, on_request=events.append,
                             on_response=events.append, on_retry=events.append)
        async with client:
            server.inject("create", status=500)  # retried through a token lookup
            created = await client.sessions.create("leak check", tags=["a"])
            server.inject("get", drop="before")  # a reset, retried
            await client.sessions.get(created.session_id)
            server.inject("list", malformed="truncated")
            with pytest.raises(MalformedResponseError) as malformed:
                await client.sessions.list().to_list()
            errors.append(malformed.value)
            await client.sessions.list(tags=["a"]).to_list()
            server.script(SCRIPT, session_id=created.session_id)
            [s async for s in client.sessions.poll(created.session_id)]
            ids = server.add_sessions(3, status="new")
            for sid in ids:
                server.script(SCRIPT, session_id=sid)
            async with client.watch(ids) as watcher:
                [e async for e in watcher]
            server.inject("create", drop="after")
            results = [r async for r in client.sessions.create_many(
                [{"prompt": "one"}, {"prompt": "two", "extra_body": {"platform": 5}}])]
            errors += [r.error for r in results if r.error is not None]
            assert any(isinstance(e, UnprocessableEntityError) for e in errors)
            server.inject("get", times=None, drop="before")
            with pytest.raises(APIConnectionError) as reset:
                await client.sessions.get(created.session_id)
            errors.append(reset.value)
            server.clear_faults()
        async with DevinClient(OTHER_KEY, org_id=server.org_id, base_url=server.url) as wrong:
            with pytest.raises(AuthenticationError) as denied:
                await wrong.sessions.get(created.session_id)
            errors.append(denied.value)
        requests = server.requests

    records = caplog.records
    assert any(r.name == "devin_async" and r.levelno == logging.DEBUG for r in records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        assert_clean(record.getMessage(), record.args, formatter.format(record),
                     {k: v for k, v in vars(record).items() if k != "msg"}, record.msg)
        if record.name == "devin_async":  # a kept record must not keep a traceback alive
            assert record.exc_info is None
            assert not any(isinstance(a, BaseException) for a in record.args or ())
    failed = [r for r in records if "failed" in r.getMessage() and r.name == "devin_async"]
    assert len(failed) >= 2  # the reset get and the ambiguous create were logged
    assert_clean(caplog.text)
    assert len(events) > 10
    assert_clean(*events)
    assert errors and all(isinstance(e, DevinError) for e in errors)
    for error in errors:
        assert_clean(*error_texts(error))
    assert requests
    for entry in requests:
        assert_clean(entry, dict(entry.headers), entry.body)
        if "Authorization" in entry.headers:
            assert entry.headers["Authorization"] in ("Bearer cog_…ZX81", "Bearer cog_…QQ42")


async def test_a_garbled_http_answer_leaves_the_key_out_of_the_error_chain() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with DevinClient(KEY, org_id="org-test", base_url=f"http://127.0.0.1:{port}",
                               retry=RetryPolicy.disabled()) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.sessions.get("devin-1")
    finally:
        listener.close()
        await listener.wait_closed()
    assert "Content-Length" in str(info.value)
    assert_clean(*error_texts(info.value))


# -- the command line ------------------------------------------------------------------------

@pytest.fixture
def cli_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedServer]:
    with ThreadedServer(api_key=KEY, time_scale=50.0, seed=2) as thread:
        monkeypatch.setenv("DEVIN_API_KEY", KEY)
        monkeypatch.setenv("DEVIN_ORG_ID", thread.server.org_id)
        monkeypatch.setenv("DEVIN_BASE_URL", thread.server.url)
        monkeypatch.delenv("DEVIN_ASYNC_LOG", raising=False)
        yield thread


@pytest.fixture
def sdk_logging() -> Iterator[None]:
    """Undo what DEVIN_ASYNC_LOG=debug does to the `devin_async` logger (a process global)."""
    from devin_async import _instrument

    logger = logging.getLogger("devin_async")
    handlers, level, configured = list(logger.handlers), logger.level, _instrument._configured
    _instrument._configured = False
    yield
    for handler in logger.handlers[:]:
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
    _instrument._configured = configured


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_output_and_errors_never_show_the_key(
    cli_server: ThreadedServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, sdk_logging: None,
) -> None:
    from devin_async._cli import _commands

    make_client = _commands.make_client  # the CLI's own client, with quick retries
    monkeypatch.setattr(_commands, "make_client",
                        lambda args, **kw: make_client(args, **{"retry": QUICK_RETRY, **kw}))
    server = cli_server.server
    fast = ["--poll-interval", "0.02"]
    outputs: list[str] = []

    def ok(*argv: str) -> str:
        code, text = run_cli(capsys, *argv)
        assert code == 0, text
        outputs.append(text)
        return text

    sid = json.loads(ok("create", "leak check", "--tag", "x", "--json"))["session_id"]
    cli_server.call(server.script, SCRIPT, session_id=sid)
    ok("get", sid)
    ok("list", "--tag", "x")
    ok("wait", sid, *fast)
    ok("watch", sid, *fast)
    ok("message", sid, "more please")
    ok("terminate", sid)
    requests = tmp_path / "many.jsonl"
    requests.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    ok("create-many", str(requests))

    failures: list[tuple[int, str]] = []
    cli_server.call(server.inject, "create", status=422,
                    body={"detail": [{"loc": ["body", "prompt"], "msg": "bad", "type": "x"}]})
    failures.append(run_cli(capsys, "create", "refused"))
    cli_server.call(server.inject, "get", times=None, drop="before")
    failures.append(run_cli(capsys, "get", sid))
    cli_server.call(server.clear_faults)
    failures.append(run_cli(capsys, "--api-key", OTHER_KEY, "get", sid))  # 401, flag warning
    monkeypatch.setenv("DEVIN_API_KEY", OTHER_KEY)
    failures.append(run_cli(capsys, "list"))  # 401 from the environment's key
    monkeypatch.setenv("DEVIN_API_KEY", KEY)
    monkeypatch.setenv("DEVIN_BASE_URL", "http://127.0.0.1:9")  # nothing listens: refused
    failures.append(run_cli(capsys, "get", sid))
    monkeypatch.setenv("DEVIN_BASE_URL", server.url)
    monkeypatch.setenv("DEVIN_ASYNC_LOG", "debug")  # debug logs and tracebacks on stderr
    failures.append(run_cli(capsys, "get", sid))
    failures.append(run_cli(capsys, "get", "devin-does-not-exist"))
    assert [code for code, _ in failures] == [3, 3, 3, 3, 3, 0, 3]
    assert "401" in failures[2][1] and "prefer DEVIN_API_KEY" in failures[2][1]
    assert "GET" in failures[5][1]  # the debug log did reach stderr
    assert_clean(*outputs, *(text for _, text in failures))


def test_cli_unexpected_error_traceback_never_shows_the_key(
    cli_server: ThreadedServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, sdk_logging: None,
) -> None:
    from devin_async._cli import _commands

    async def broken(args: Any, out: Any) -> int:
        async with _commands.make_client(args) as client:
            client.sessions.__dict__["boom"] = client
            raise RuntimeError(f"boom: {client!r}")

    monkeypatch.setitem(_commands.COMMANDS, "get", broken)
    monkeypatch.setenv("DEVIN_ASYNC_LOG", "debug")
    code, text = run_cli(capsys, "get", "devin-1")
    assert code == 1 and "Traceback" in text and "RuntimeError: boom" in text
    assert_clean(text)


# -- redirects -------------------------------------------------------------------------------

class Origin:
    """A loopback HTTP server recording the Authorization header of each request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.auth: list[str | None] = []
        self.target = ""
        self.status = 302
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        if self.target:
            return web.Response(status=self.status,
                                headers={"Location": self.target + request.path_qs})
        return web.json_response(session_json("devin-1"))

    async def __aenter__(self) -> Origin:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("borrowed", [False, True], ids=["own session", "borrowed session"])
async def test_redirects_are_not_followed_so_the_key_stays_home(status: int,
                                                                borrowed: bool) -> None:
    async with Origin() as home, Origin("127.0.0.2") as elsewhere, \
            aiohttp.ClientSession() as http:
        home.target, home.status = elsewhere.url, status
        client = DevinClient(KEY, org_id="org-test", base_url=home.url,
                             session=http if borrowed else None, retry=RetryPolicy.disabled())
        async with client:
            with pytest.raises(APIStatusError) as info:
                await client.sessions.get("devin-1")
            with pytest.raises(APIStatusError):
                await client.sessions.create("follow me?")
        assert type(info.value) is APIStatusError and info.value.status == status
        assert home.auth == [f"Bearer {KEY}"] * 2
        assert elsewhere.auth == []  # nothing reached the other origin
        assert_clean(*error_texts(info.value))


# -- hostile ids -----------------------------------------------------------------------------

HOSTILE_IDS: list[Any] = [
    "", " ", "..", ".", "../", "../../etc/passwd", "devin-1/../../sessions", "%2e%2e",
    "%2E%2E%2F", "devin%2F1", "a/b", "/", "a?b", "a?x=1", "a#b", "#", "a b", "a\tb", "a\nb",
    "a\x00b", "a\\b", "-devin", ".devin", "_devin", ":devin", "devin;1", "devin&x=1",
    "devin\u20101",  # a Unicode hyphen that looks like '-'
    "d\u0435vin-1",  # a Cyrillic ie (U+0435) for the 'e'
    "devin\uff0f1",  # fullwidth solidus
    "devin\u20251",  # two-dot leader
    "devin-1\u200b",  # zero-width space
    "\u217devin-1",  # small roman numeral five hundred, NFKC-folds to 'd'
    "a" * 201, "a" * 10_000, 7, None, b"devin-1", ["devin-1"],
]
ID_USES: dict[str, Callable[[DevinClient, Any], Awaitable[Any]]] = {
    "get": lambda c, i: c.sessions.get(i),
    "terminate": lambda c, i: c.sessions.terminate(i),
    "archive": lambda c, i: c.sessions.archive(i),
    "send_message": lambda c, i: c.sessions.send_message(i, "hi"),
    "messages": lambda c, i: c.sessions.messages(i).to_list(),
    "get_tags": lambda c, i: c.sessions.get_tags(i),
    "add_tags": lambda c, i: c.sessions.add_tags(i, ["t"]),
    "replace_tags": lambda c, i: c.sessions.replace_tags(i, ["t"]),
    "attachments": lambda c, i: c.sessions.attachments(i),
    "poll": lambda c, i: anext(aiter(c.sessions.poll(i))),
    "wait": lambda c, i: c.sessions.wait(i),
    "watch": lambda c, i: anext(aiter(c.watch([i]))),
    "watch.add": lambda c, i: _watch_add(c, i),
}


async def _watch_add(client: DevinClient, session_id: Any) -> None:
    client.watch(["devin-1"]).add(session_id)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY) as server:
        yield server


async def test_hostile_ids_are_refused_before_sending(fake: FakeDevinServer) -> None:
    async with DevinClient(KEY, org_id=fake.org_id, base_url=fake.url) as client:
        for use, call in ID_USES.items():
            for hostile in HOSTILE_IDS:
                with pytest.raises(ValueError, match="session_id") as info:
                    await call(client, hostile)
                assert len(str(info.value)) < 300, use  # a 10,000-char id is not echoed whole
    assert fake.stats.get("requests", 0) == 0


@pytest.mark.parametrize("org_id", ["org/../x", "org?x", "org#x", "%2e%2e", "org-\u0131"])
def test_hostile_org_ids_are_refused(org_id: str) -> None:
    with pytest.raises(ValueError, match="org_id"):
        DevinClient(KEY, org_id=org_id)


SUB_PATHS: dict[str, tuple[Callable[[DevinClient, str], Awaitable[Any]], tuple[str, ...]]] = {
    "get": (lambda c, i: c.sessions.get(i), ()),
    "terminate": (lambda c, i: c.sessions.terminate(i), ()),
    "archive": (lambda c, i: c.sessions.archive(i), ("archive",)),
    "send_message": (lambda c, i: c.sessions.send_message(i, "hi"), ("messages",)),
    "messages": (lambda c, i: c.sessions.messages(i).to_list(), ("messages",)),
    "tags": (lambda c, i: c.sessions.get_tags(i), ("tags",)),
    "attachments": (lambda c, i: c.sessions.attachments(i), ("attachments",)),
    "poll": (lambda c, i: anext(aiter(c.sessions.poll(i))), ()),
}
ACCEPTED_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}", fullmatch=True)


class Recorder:
    """A `Transport` that records each request and answers with something valid for it."""

    def __init__(self) -> None:
        self.sent: list[HTTPRequest] = []

    async def aclose(self) -> None:
        pass

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        self.sent.append(request)
        req = parse_call(request, org=URL(request.url, encoded=True).parts[3])
        sid = req.path.split("/")[2] if req.path.count("/") >= 2 else "devin-1"
        if req.path.endswith("/tags"):
            body: Any = {"tags": ["t"]}
        elif req.path.endswith("/attachments"):
            body = []
        elif req.method == "GET" and (req.path.endswith("/messages") or req.path == "/sessions"):
            body = {"items": [], "has_next_page": False}
        else:
            body = session_json(sid, status="exit")
        return HTTPResponse(200, JSON_HEADERS, json.dumps(body).encode())


def wire_url(request: HTTPRequest) -> URL:
    """The URL the transport was asked to send to, query included."""
    return URL(request.url, encoded=True)


@PROPERTY
@given(candidate=st.one_of(st.text(max_size=60), ACCEPTED_ID,
                           st.text(alphabet="./%?#:-_aZ09\\", max_size=12)),
       org=ACCEPTED_ID, use=st.sampled_from(sorted(SUB_PATHS)))
def test_every_accepted_id_lands_on_its_endpoint(candidate: str, org: str, use: str) -> None:
    try:
        check_id("session_id", candidate)
    except ValueError:
        accepted = False
    else:
        accepted = True
    call, tail = SUB_PATHS[use]
    recorder = Recorder()

    async def run() -> None:
        async with DevinClient(KEY, org_id=org, base_url="https://api.devin.ai",
                               transport=recorder) as client:
            if not accepted:
                with pytest.raises(ValueError):
                    await call(client, candidate)
                return
            await call(client, candidate)
            for req in recorder.sent:
                url = wire_url(req)
                assert url.scheme == "https" and url.host == "api.devin.ai"
                assert url.raw_path == url.path  # nothing needed escaping
                assert url.parts == ("/", "v3beta1", "organizations", org, "sessions",
                                     candidate, *tail)
                assert url.fragment == ""

    asyncio.run(run())
    if not accepted:
        assert recorder.sent == []


@PROPERTY
@given(values=st.lists(st.text(min_size=1, max_size=30).filter(lambda v: "," not in v),
                       min_size=1, max_size=3),
       tags=st.lists(st.text(min_size=1, max_size=30).filter(lambda v: "," not in v),
                     max_size=3))
def test_list_filters_stay_query_values(values: list[str], tags: list[str]) -> None:
    """Whatever the filter text, the request goes to /sessions and each value comes back whole."""
    recorder = Recorder()

    async def run() -> None:
        async with DevinClient(KEY, org_id="org-1", base_url="https://api.devin.ai",
                               transport=recorder) as client:
            await client.sessions.list(session_ids=values, tags=tags or None).to_list()
            (req,) = recorder.sent
            url = wire_url(req)
            assert url.parts == ("/", "v3beta1", "organizations", "org-1", "sessions")
            assert url.fragment == ""
            sent = URL(str(url))  # re-parsed as a server would
            assert sent.path == url.path
            assert sent.query.getall("session_ids") == [",".join(values)]
            if tags:
                assert sent.query.getall("tags") == [",".join(tags)]
            assert set(sent.query) <= {"first", "session_ids", "tags"}

    asyncio.run(run())


@pytest.mark.parametrize("session_id", ["a..", "a.-:_", "0" * 200, "Z", "devin-1.2:3"])
async def test_accepted_ids_reach_the_server_verbatim(fake: FakeDevinServer,
                                                     session_id: str) -> None:
    async with DevinClient(KEY, org_id=fake.org_id, base_url=fake.url) as client:
        with pytest.raises(APIStatusError) as info:
            await client.sessions.get_tags(session_id)
    assert info.value.status == 404
    (entry,) = fake.requests
    assert entry.path == f"/v3beta1/organizations/{fake.org_id}/sessions/{session_id}/tags"
    assert entry.endpoint == "get_tags"


# -- hostile responses -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)
SESSION_FIELDS = [f.name for f in attrs.fields(Session)
                  if f.name not in ("client_token", "sdk_tags")]  # derived from `tags`


def valid_session(sid: str = "devin-1", **fields: Any) -> dict[str, Any]:
    data = session_json(sid, status="exit")
    data.update(fields)
    return data


@st.composite
def session_like(draw: st.DrawFn) -> Any:
    """A session with one field given a random value, or random JSON altogether."""
    if draw(st.booleans()):
        return draw(JSON)
    data = valid_session()
    field = draw(st.sampled_from(SESSION_FIELDS))
    if draw(st.booleans()):
        data[field] = draw(JSON)
    else:
        data.pop(field, None)
    return data


BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda v: json.dumps(v).encode()),
    session_like().map(lambda v: json.dumps(v).encode()),
    st.builds(lambda v: json.dumps({"items": [v], "has_next_page": False}).encode(),
              session_like()),
    st.builds(lambda v: json.dumps({"detail": v}).encode(), JSON),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"detail":' * n + b"1" + b"}" * n),
)
HEADERS = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after-ms", "x-request-id", "Content-Type"]),
    st.one_of(st.text(max_size=40), st.floats().map(str), st.integers().map(str)),
    max_size=3,
)
RESPONSE = st.tuples(st.integers(100, 599), HEADERS, BODIES)


def type_ok(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` names (the subset the models use)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        (item,) = typing.get_args(hint)
        return type(value) is list and all(type_ok(v, item) for v in value)
    if origin is dict:
        return type(value) is dict
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return type(value) is tuple and all(type_ok(v, item) for v in value)
    if attrs.has(hint):
        hints = typing.get_type_hints(hint)
        return isinstance(value, hint) and all(
            type_ok(getattr(value, f.name), hints[f.name]) for f in attrs.fields(hint))
    if hint is float:
        return type(value) is float
    if hint in (int, str, bool):
        return type(value) is hint
    return isinstance(value, hint)


def assert_well_typed(session: Session) -> None:
    assert type_ok(session, Session), session


@PROPERTY
@given(data=session_like())
def test_wrong_types_in_any_session_field_are_malformed_never_a_crash(data: Any) -> None:
    try:
        session = parse_session(data)
    except MalformedResponseError as exc:
        assert isinstance(str(exc), str)
        return
    assert_well_typed(session)


@pytest.mark.parametrize("field", SESSION_FIELDS)
@pytest.mark.parametrize("wrong", [True, 1.5, "1", [1], {"a": 1}, []],
                         ids=["bool", "float", "str", "int list", "object", "empty list"])
def test_each_field_rejects_each_wrong_type(field: str, wrong: Any) -> None:
    hint = typing.get_type_hints(Session)[field]
    data = valid_session(**{field: wrong})
    try:
        session = parse_session(data)
    except MalformedResponseError:
        assert not type_ok(wrong, hint) or field in ("status", "status_detail")
        return
    assert_well_typed(session)


@PROPERTY
@given(status=st.integers(0, 999), headers=HEADERS, body=BODIES)
def test_protocol_decoders_only_raise_devin_errors(status: int, headers: dict[str, str],
                                                    body: bytes) -> None:
    error = decode_error(status, headers, body, method="GET", path="/x")
    assert isinstance(error, APIStatusError) and error.status == status
    assert isinstance(error.detail, str) and len(error.detail) <= 500
    assert error.retry_after is None or (math.isfinite(error.retry_after)
                                         and error.retry_after >= 0)
    if isinstance(error, UnprocessableEntityError):
        assert all(isinstance(e, dict) for e in error.errors)
    try:
        data = decode_json(200, body)
    except MalformedResponseError:
        return
    for parse in (parse_session, parse_session_page):
        try:
            parse(data)
        except MalformedResponseError:
            pass


@PROPERTY
@given(headers=st.dictionaries(st.sampled_from(["Retry-After", "retry-after-ms", "RETRY-AFTER"]),
                               st.text(max_size=50), max_size=2))
def test_retry_after_is_none_or_a_finite_wait(headers: dict[str, str]) -> None:
    hint = parse_retry_after(headers)
    assert hint is None or (math.isfinite(hint) and hint >= 0)


@pytest.mark.parametrize("depth", [*range(10, 3001, 97), 995, 996, 997, 998, 999, 1000])
def test_deep_nesting_is_malformed_never_a_recursion_error(depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth,
                 b'{"detail":' * depth + b"1" + b"}" * depth,
                 b'{"detail":[' + b"[" * depth + b"]" * depth + b"]}",
                 b'{"items":[' + b"[" * depth + b"]" * depth + b"]}",
                 json.dumps(valid_session()).encode()[:-1]
                 + b',"structured_output":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"):
        assert isinstance(decode_error(500, {}, body), APIStatusError)
        try:
            data = decode_json(200, body)
        except MalformedResponseError:
            continue
        for parse in (parse_session, parse_session_page):
            try:
                parse(data)
            except MalformedResponseError:
                pass


class HostileApi:
    """A `Transport` that answers with the drawn responses, then with valid ones."""

    def __init__(self, responses: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.responses = list(responses)
        self.calls = 0

    async def aclose(self) -> None:
        pass

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        self.calls += 1
        await asyncio.sleep(0)
        if self.responses:
            return HTTPResponse(*self.responses.pop(0))
        req = parse_call(request, org="org-1")
        if req.path == "/sessions" and req.method == "GET":
            return HTTPResponse(200, JSON_HEADERS, json.dumps(
                {"items": [valid_session()], "has_next_page": False}).encode())
        return HTTPResponse(200, JSON_HEADERS, json.dumps(valid_session()).encode())


HOSTILE_OPS: dict[str, Callable[[DevinClient], Awaitable[Any]]] = {
    "get": lambda c: c.sessions.get("devin-1"),
    "list": lambda c: c.sessions.list().to_list(),
    "create": lambda c: c.sessions.create("x"),
    "poll": lambda c: c.sessions.wait("devin-1", timeout=3600),
    "watch": lambda c: anext(aiter(c.watch(["devin-1"]))),
    "create_many": lambda c: _create_many_errors(c),
}


async def _create_many_errors(client: DevinClient) -> None:
    async for result in client.sessions.create_many([{"prompt": "x"}, {"prompt": "y"}]):
        if result.error is not None:
            raise result.error


@PROPERTY
@given(op=st.sampled_from(sorted(HOSTILE_OPS)), responses=st.lists(RESPONSE, max_size=4))
def test_hostile_responses_only_surface_as_devin_errors(
        op: str, responses: list[tuple[int, dict[str, str], bytes]]) -> None:
    api = HostileApi(responses)
    clock = FakeClock()

    async def run() -> Any:
        async with DevinClient(KEY, org_id="org-1", clock=clock, sleep=clock.sleep,
                               retry=RetryPolicy(max_attempts=3), transport=api) as client:
            async with asyncio.timeout(10):  # a hang is a failure too
                return await HOSTILE_OPS[op](client)

    try:
        result = asyncio.run(run())
    except DevinError as exc:
        assert_clean(*error_texts(exc))
        return
    if isinstance(result, Session):
        assert_well_typed(result)


# -- huge bodies over a socket ---------------------------------------------------------------

LIMIT = 64 * 1024
BIG = json.dumps(valid_session(title="x" * (4 * LIMIT))).encode()


async def sized(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BIG, content_type="application/json")


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(BIG), 8192):
        await response.write(BIG[start:start + 8192])
    await response.write_eof()
    return response


async def gzipped(request: web.Request) -> web.StreamResponse:
    return web.Response(body=gzip.compress(BIG), headers={"Content-Encoding": "gzip",
                                                         "Content-Type": "application/json"})


@pytest.mark.parametrize("handler", [sized, chunked, gzipped],
                         ids=["content-length", "chunked", "gzip"])
async def test_bodies_over_the_cap_are_refused_and_say_so(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with DevinClient(KEY, org_id="org-test", base_url=f"http://127.0.0.1:{port}",
                               max_response_bytes=LIMIT, retry=RetryPolicy.disabled()) as client:
            with pytest.raises(MalformedResponseError, match=f"limit of {LIMIT} bytes"):
                await client.sessions.get("devin-1")
    finally:
        await runner.cleanup()


# -- transport security ----------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://api.devin.ai", "HTTP://API.DEVIN.AI", "http://10.0.0.1:8080", "http://[2001:db8::1]",
    "http://localhost.evil.example", "http://127.0.0.1.nip.io", "http://0x7f000001",
    "http://[::ffff:127.0.0.1]", "http://api.example.com", "http://devin.internal/",
    "http://localhost.evil.com", "HTTP://api.example.com",
])
def test_plain_http_to_a_remote_host_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http") as info:
        DevinClient(KEY, org_id="org-test", base_url=url)
    assert KEY not in str(info.value)
    monkeypatch.setenv("DEVIN_BASE_URL", url)
    with pytest.raises(ValueError, match="allow_insecure_http"):
        DevinClient(KEY, org_id="org-test")
    opted = DevinClient(KEY, org_id="org-test", base_url=url, allow_insecure_http=True)
    assert opted.base_url.lower() == url.lower().rstrip("/")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9",
                                 "http://localhost:8000", "https://api.example.com"])
def test_loopback_http_and_https_are_accepted(url: str) -> None:
    assert DevinClient(KEY, org_id="org-test", base_url=url).base_url == url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1@evil.example", "http://user:pass@127.0.0.1", "http://evil.example#@127.0.0.1",
    "ftp://127.0.0.1", "file:///etc/passwd", "http://", "//127.0.0.1",
])
def test_base_urls_that_hide_their_host_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        DevinClient(KEY, org_id="org-test", base_url=url, allow_insecure_http=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost", "http://[::1]:80",
                                 "http://127.8.9.10", "http://api.localhost"])
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert DevinClient(KEY, org_id="org-test", base_url=url).base_url == url


def test_there_is_no_switch_to_turn_tls_verification_off() -> None:
    """TLS verification cannot be turned off through the SDK.

    `DevinClient` has no `ssl`/`verify` parameter, its own connector keeps aiohttp's verifying
    default, and no request passes `ssl=`; the SDK's source never mentions CERT_NONE or
    `ssl=False`. A caller who passes their own `aiohttp.ClientSession` built with
    `ssl=False` has turned verification off themselves, explicitly: that session is theirs
    and the client uses it as given (see the test below).
    """
    names = set(inspect.signature(DevinClient).parameters)
    assert not names & {"ssl", "verify", "verify_ssl", "ssl_context", "insecure", "cert_reqs"}
    with pytest.raises(TypeError):
        DevinClient(KEY, org_id="org-test", ssl=False)  # type: ignore[call-arg]
    source = Path(devin_async.__file__).parent
    for path in source.rglob("*.py"):
        text = path.read_text()
        for banned in ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname"):
            assert banned not in text, f"{banned} in {path}"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_an_untrusted_certificate_is_refused_before_the_key_is_sent(
        self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.json_response(session_json("devin-1"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with DevinClient(KEY, org_id="org-test", base_url=url,
                               retry=RetryPolicy.disabled()) as client:
            with pytest.raises(APIConnectionError, match="certificate") as info:
                await client.sessions.get("devin-1")
        assert not info.value.sent
        assert seen == []  # the handshake failed: no request, no key
        # The caller's own session, built with verification off on purpose, is used as given.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http, \
                DevinClient(KEY, org_id="org-test", base_url=url, session=http) as client:
            assert (await client.sessions.get("devin-1")).session_id == "devin-1"
        assert seen == [f"Bearer {KEY}"]
    finally:
        await runner.cleanup()


async def test_requests_never_pass_an_ssl_override(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Mapping[str, Any]] = []

    class Boom(Exception):
        pass

    def request(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        raise Boom

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    async with DevinClient(KEY, org_id="org-test") as client:
        with pytest.raises(Boom):
            await client.sessions.get("devin-1")
        transport = client.transport
        assert isinstance(transport, AiohttpTransport)
        http = transport.session
        assert http is not None and http.connector is not None
        assert getattr(http.connector, "_ssl", True) is True  # aiohttp's verifying default
    assert seen and all("ssl" not in kw and "verify_ssl" not in kw for kw in seen)
    assert all(kw["allow_redirects"] is False for kw in seen)


def test_the_leak_check_catches_a_leak() -> None:
    """Sanity: the secrets this module hunts for are found when present, masked forms pass."""
    with pytest.raises(AssertionError):
        assert_clean(f"Authorization: Bearer {KEY}")
    with pytest.raises(AssertionError):
        assert_clean({"key": "…SECRETdistinctKEY…"})
    assert_clean("Bearer cog_…ZX81", "Bearer cog_…QQ42")


@pytest.mark.parametrize("body", [
    f"<html>proxy error for Bearer {KEY}</html>".encode(),
    f'{{"echo": "{KEY}", '.encode(),  # truncated JSON
    b"\xef\xbb\xbf" + f"oops {KEY}".encode(),  # a BOM, then not JSON
])
async def test_a_2xx_body_that_is_not_json_echoing_the_key_leaks_it_nowhere(body: bytes) -> None:
    from devin_async.testing import MockTransport

    transport = MockTransport(lambda request: HTTPResponse(200, {}, body))
    async with DevinClient(KEY, org_id="org-test", transport=transport, tracing=False,
                           retry=QUICK_RETRY) as client:
        with pytest.raises(MalformedResponseError) as info:
            await client.sessions.get("devin-1")
    assert "not JSON" in str(info.value) and info.value.status == 200
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert_clean(*error_texts(info.value))
