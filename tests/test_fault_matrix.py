"""The fault matrix: every operation against every fault, over a real loopback socket.

Each row of MATRIX below is one cell of the spec: a fault injected once (unless the row says
otherwise) into the FakeDevinServer, an operation run through a real DevinClient, and the exact
outcome: `ok(...)` means retried (or resolved) then succeeded; `fails(...)` names the typed error
and its data. Every row also states how many requests each endpoint saw, and for creates how many
sessions exist afterwards (each carrying its own client token: never a duplicate).

Conventions:
- The client runs on a FakeClock (`clock=`, `sleep=`): backoffs and Retry-After waits are
  instant, and `waited=` is how much fake time passed. The server keeps its own real clock.
- Retries use the default RetryPolicy (4 attempts) without jitter, so waits are exact.
- `create_many` sends 3 requests with concurrency 1: the fault hits request 0, requests 1 and 2
  always succeed, so its counts are the `create` counts plus 2 creates and 2 sessions.
- A poll watches a session that is already settled: it yields it once and ends.

The hostile classes (cursor loops, hints over the cap, deadlines, hints on 2xx answers, a
lagging index, the key echoed back, configuration, keep-alive closes, stale or wrong answers)
have their own tables: tests/test_fault_matrix_hostile.py and test_fault_matrix_hostile_more.py.
Outcome types and the runner live in tests/fault_matrix_support.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devin_async import (
    AuthenticationError,
    ConflictError,
    CreateUnconfirmedError,
    DevinClient,
    DevinError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    Timeouts,
    UnprocessableEntityError,
)
from devin_async.testing import FakeDevinServer

from .fault_matrix_support import (
    OPS,
    Op,
    Outcome,
    check_error,
    check_success,
    fails,
    looks_in_window,
    ok,
    run,
    token_counts,
)
from .helpers import FakeClock

#: Real seconds: the server sits on a request longer than the client's read timeout.
SERVER_DELAY = 0.3
READ_TIMEOUT = 0.1

HTML_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
VALIDATION: list[dict[str, Any]] = [
    {"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": None},
    {"type": "int_parsing", "loc": ["query", "first"], "msg": "Input should be a valid integer",
     "input": "x"},
]
VALIDATION_DETAIL = "body.prompt: Field required; query.first: Input should be a valid integer"


def http_date(seconds_from_now: float) -> str:
    """An HTTP date (IMF-fixdate) `seconds_from_now` in the future, by the wall clock."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# -- the faults ------------------------------------------------------------------------------

#: name -> keyword arguments of `FakeDevinServer.inject` (a callable value is called at injection).
FAULTS: dict[str, dict[str, Any]] = {
    "429 Retry-After seconds": dict(status=429, retry_after=2),
    "429 Retry-After HTTP date": dict(status=429, retry_after=lambda: http_date(3)),
    "429 retry-after-ms": dict(status=429, retry_after_ms=1500),
    "429 Retry-After over the cap": dict(status=429, retry_after=120),
    "500": dict(status=500),
    "502": dict(status=502),
    "503": dict(status=503),
    "504": dict(status=504),
    "reset before acting": dict(drop="before"),
    "reset after acting": dict(drop="after"),
    "read timeout": dict(delay=SERVER_DELAY),
    "truncated body": dict(malformed="truncated"),
    "malformed JSON": dict(malformed="non_json"),
    "HTML page with 200": dict(malformed="html"),
    "HTML page with 502, every attempt": dict(status=502, body=HTML_PAGE, times=4),
    "401": dict(status=401, body={"detail": "Invalid API key"}),
    "403": dict(status=403, body={"detail": "Missing permission: ManageOrgSessions"}),
    "404": dict(status=404, body={"detail": "Session not found"}),
    "409": dict(status=409, body={"detail": "Session has ended and cannot be resumed"}),
    "422 list detail": dict(status=422, body={"detail": VALIDATION}),
    "422 string detail": dict(status=422, body={"detail": "Invalid cursor"}),
}

#: The server endpoint each operation's fault is injected into.
ENDPOINT: dict[Op, str] = {
    "get": "get", "list": "list", "poll": "get", "create": "create", "create_many": "create",
}

#: A lost create not found: one settling window of look-ups, the resend, then one check for a
#: duplicate once the index has settled.
WINDOW = looks_in_window()
LOST = WINDOW + 1
NO_WAIT = (0.0, 0.0)
# One row per fault x operation. Counts: create_many = the create column + 2 creates, 2 sessions.
MATRIX: list[Any] = [  # (fault, op, outcome) tuples, or pytest.param(...) of one
    # -- 429 Retry-After: 2 (seconds): honoured exactly, by every operation.
    ("429 Retry-After seconds", "get", ok(get=2, waited=(2.0, 2.0))),
    ("429 Retry-After seconds", "list", ok(list=2, waited=(2.0, 2.0))),
    ("429 Retry-After seconds", "create", ok(create=2, sessions=1, waited=(2.0, 2.0))),
    ("429 Retry-After seconds", "poll", ok(get=2, waited=(2.0, 2.0))),
    ("429 Retry-After seconds", "create_many", ok(create=4, sessions=3, waited=(2.0, 2.0))),
    # -- 429 Retry-After: <HTTP date 3 s ahead> (whole seconds: 2-3 s).
    ("429 Retry-After HTTP date", "get", ok(get=2, waited=(1.5, 3.0))),
    ("429 Retry-After HTTP date", "list", ok(list=2, waited=(1.5, 3.0))),
    ("429 Retry-After HTTP date", "create", ok(create=2, sessions=1, waited=(1.5, 3.0))),
    ("429 Retry-After HTTP date", "poll", ok(get=2, waited=(1.5, 3.0))),
    ("429 Retry-After HTTP date", "create_many", ok(create=4, sessions=3, waited=(1.5, 3.0))),
    # -- 429 retry-after-ms: 1500.
    ("429 retry-after-ms", "get", ok(get=2, waited=(1.5, 1.5))),
    ("429 retry-after-ms", "list", ok(list=2, waited=(1.5, 1.5))),
    ("429 retry-after-ms", "create", ok(create=2, sessions=1, waited=(1.5, 1.5))),
    ("429 retry-after-ms", "poll", ok(get=2, waited=(1.5, 1.5))),
    ("429 retry-after-ms", "create_many", ok(create=4, sessions=3, waited=(1.5, 1.5))),
    # -- 429 Retry-After: 120, over max_retry_after (60): a call fails fast, with the hint; a
    #    poll waits (at most max_retry_after) and goes on; a batch's create fails like a create
    #    (create_many keeps to the call's retries).
    ("429 Retry-After over the cap", "get",
     fails(RateLimitError, 429, "Rate limit exceeded", retry_after=120.0, get=1, waited=NO_WAIT)),
    ("429 Retry-After over the cap", "list",
     fails(RateLimitError, 429, "Rate limit exceeded", retry_after=120.0, list=1,
           waited=NO_WAIT)),
    ("429 Retry-After over the cap", "create",
     fails(RateLimitError, 429, "Rate limit exceeded", retry_after=120.0, create=1, sessions=0,
           waited=NO_WAIT)),
    ("429 Retry-After over the cap", "poll", ok(get=2, waited=(60.0, 60.0))),
    ("429 Retry-After over the cap", "create_many",
     fails(RateLimitError, 429, "Rate limit exceeded", retry_after=120.0, create=3, sessions=2,
           waited=NO_WAIT)),
    # -- 500: reads retried; a create may have happened: its token is looked up, then resent.
    ("500", "get", ok(get=2)),
    ("500", "list", ok(list=2)),
    ("500", "create", ok(create=2, list=LOST, sessions=1)),
    ("500", "poll", ok(get=2)),
    ("500", "create_many", ok(create=4, list=LOST, sessions=3)),
    # -- 502: the same.
    ("502", "get", ok(get=2)),
    ("502", "list", ok(list=2)),
    ("502", "create", ok(create=2, list=LOST, sessions=1)),
    ("502", "poll", ok(get=2)),
    ("502", "create_many", ok(create=4, list=LOST, sessions=3)),
    # -- 503: not taken in, so even a create is simply retried (no lookup).
    ("503", "get", ok(get=2)),
    ("503", "list", ok(list=2)),
    ("503", "create", ok(create=2, sessions=1)),
    ("503", "poll", ok(get=2)),
    ("503", "create_many", ok(create=4, sessions=3)),
    # -- 504: like 500.
    ("504", "get", ok(get=2)),
    ("504", "list", ok(list=2)),
    ("504", "create", ok(create=2, list=LOST, sessions=1)),
    ("504", "poll", ok(get=2)),
    ("504", "create_many", ok(create=4, list=LOST, sessions=3)),
    # -- connection reset before the server acted: lookup finds nothing, the create is resent.
    ("reset before acting", "get", ok(get=2)),
    ("reset before acting", "list", ok(list=2)),
    ("reset before acting", "create", ok(create=2, list=LOST, sessions=1)),
    ("reset before acting", "poll", ok(get=2)),
    ("reset before acting", "create_many", ok(create=4, list=LOST, sessions=3)),
    # -- connection reset after the server acted: the lookup finds the session; never resent.
    ("reset after acting", "get", ok(get=2)),
    ("reset after acting", "list", ok(list=2)),
    ("reset after acting", "create", ok(create=1, list=1, sessions=1)),
    ("reset after acting", "poll", ok(get=2)),
    ("reset after acting", "create_many", ok(create=3, list=1, sessions=3)),
    # -- read timeout (server delay 0.3 s > read timeout 0.1 s); the server acts late.
    ("read timeout", "get", ok(get=2)),
    ("read timeout", "list", ok(list=2)),
    ("read timeout", "create",
     fails(CreateUnconfirmedError, create=1, sessions=1, loose=frozenset({"list"}))),
    ("read timeout", "poll", ok(get=2)),
    ("read timeout", "create_many",
     fails(CreateUnconfirmedError, create=3, sessions=3, loose=frozenset({"list"}))),
    # -- a 2xx with a truncated body: reads fail (a shape that will not fix itself); a poll rides
    #    it out; a create happened, and the lookup finds it.
    ("truncated body", "get", fails(MalformedResponseError, 200, get=1)),
    ("truncated body", "list", fails(MalformedResponseError, 200, list=1)),
    ("truncated body", "create", ok(create=1, list=1, sessions=1)),
    ("truncated body", "poll", ok(get=2)),
    ("truncated body", "create_many", ok(create=3, list=1, sessions=3)),
    # -- a 2xx that is not JSON at all: the same.
    ("malformed JSON", "get", fails(MalformedResponseError, 200, get=1)),
    ("malformed JSON", "list", fails(MalformedResponseError, 200, list=1)),
    ("malformed JSON", "create", ok(create=1, list=1, sessions=1)),
    ("malformed JSON", "poll", ok(get=2)),
    ("malformed JSON", "create_many", ok(create=3, list=1, sessions=3)),
    # -- a 2xx HTML page (a captive proxy): the same.
    ("HTML page with 200", "get", fails(MalformedResponseError, 200, get=1)),
    ("HTML page with 200", "list", fails(MalformedResponseError, 200, list=1)),
    ("HTML page with 200", "create", ok(create=1, list=1, sessions=1)),
    ("HTML page with 200", "poll", ok(get=2)),
    ("HTML page with 200", "create_many", ok(create=3, list=1, sessions=3)),
    # -- a proxy's HTML 502 on every attempt: retries run out; the detail is the page's title.
    #    A create: each failed attempt is looked up through a whole settling window.
    ("HTML page with 502, every attempt", "get",
     fails(InternalServerError, 502, "502 Bad Gateway", get=4)),
    ("HTML page with 502, every attempt", "list",
     fails(InternalServerError, 502, "502 Bad Gateway", list=4)),
    ("HTML page with 502, every attempt", "create",
     fails(InternalServerError, 502, "502 Bad Gateway", create=4, list=4 * WINDOW,
           sessions=0)),
    ("HTML page with 502, every attempt", "poll", ok(get=5)),
    ("HTML page with 502, every attempt", "create_many",
     fails(InternalServerError, 502, "502 Bad Gateway", create=6, list=4 * WINDOW,
           sessions=2)),
    # -- 401: never retried; a poll ends with it.
    ("401", "get", fails(AuthenticationError, 401, "Invalid API key", get=1)),
    ("401", "list", fails(AuthenticationError, 401, "Invalid API key", list=1)),
    ("401", "create", fails(AuthenticationError, 401, "Invalid API key", create=1, sessions=0)),
    ("401", "poll", fails(AuthenticationError, 401, "Invalid API key", get=1)),
    ("401", "create_many",
     fails(AuthenticationError, 401, "Invalid API key", create=3, sessions=2)),
    # -- 403.
    ("403", "get", fails(PermissionDeniedError, 403, "Missing permission: ManageOrgSessions",
                         get=1)),
    ("403", "list", fails(PermissionDeniedError, 403, "Missing permission: ManageOrgSessions",
                          list=1)),
    ("403", "create", fails(PermissionDeniedError, 403, "Missing permission: ManageOrgSessions",
                            create=1, sessions=0)),
    ("403", "poll", fails(PermissionDeniedError, 403, "Missing permission: ManageOrgSessions",
                          get=1)),
    ("403", "create_many",
     fails(PermissionDeniedError, 403, "Missing permission: ManageOrgSessions", create=3,
           sessions=2)),
    # -- 404.
    ("404", "get", fails(NotFoundError, 404, "Session not found", get=1)),
    ("404", "list", fails(NotFoundError, 404, "Session not found", list=1)),
    ("404", "create", fails(NotFoundError, 404, "Session not found", create=1, sessions=0)),
    ("404", "poll", fails(NotFoundError, 404, "Session not found", get=1)),
    ("404", "create_many", fails(NotFoundError, 404, "Session not found", create=3, sessions=2)),
    # -- 409: not transient, so a poll ends with it too.
    ("409", "get", fails(ConflictError, 409, "Session has ended and cannot be resumed", get=1)),
    ("409", "list", fails(ConflictError, 409, "Session has ended and cannot be resumed",
                          list=1)),
    ("409", "create", fails(ConflictError, 409, "Session has ended and cannot be resumed",
                            create=1, sessions=0)),
    ("409", "poll", fails(ConflictError, 409, "Session has ended and cannot be resumed", get=1)),
    ("409", "create_many", fails(ConflictError, 409, "Session has ended and cannot be resumed",
                                 create=3, sessions=2)),
    # -- 422 with FastAPI's list of errors: `.errors` as sent, `.detail` the messages joined.
    ("422 list detail", "get", fails(UnprocessableEntityError, 422, VALIDATION_DETAIL,
                                     errors=VALIDATION, get=1)),
    ("422 list detail", "list", fails(UnprocessableEntityError, 422, VALIDATION_DETAIL,
                                      errors=VALIDATION, list=1)),
    ("422 list detail", "create", fails(UnprocessableEntityError, 422, VALIDATION_DETAIL,
                                        errors=VALIDATION, create=1, sessions=0)),
    ("422 list detail", "poll", fails(UnprocessableEntityError, 422, VALIDATION_DETAIL,
                                      errors=VALIDATION, get=1)),
    ("422 list detail", "create_many", fails(UnprocessableEntityError, 422, VALIDATION_DETAIL,
                                             errors=VALIDATION, create=3, sessions=2)),
    # -- 422 with a string detail: `.errors` empty.
    ("422 string detail", "get", fails(UnprocessableEntityError, 422, "Invalid cursor",
                                       errors=[], get=1)),
    ("422 string detail", "list", fails(UnprocessableEntityError, 422, "Invalid cursor",
                                        errors=[], list=1)),
    ("422 string detail", "create", fails(UnprocessableEntityError, 422, "Invalid cursor",
                                          errors=[], create=1, sessions=0)),
    ("422 string detail", "poll", fails(UnprocessableEntityError, 422, "Invalid cursor",
                                        errors=[], get=1)),
    ("422 string detail", "create_many", fails(UnprocessableEntityError, 422, "Invalid cursor",
                                               errors=[], create=3, sessions=2)),
]


def _params() -> list[Any]:
    """MATRIX as pytest params with readable ids (`500 | get`), marks kept."""
    params = []
    for row in MATRIX:
        values, marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
        fault, op, _ = values
        params.append(pytest.param(*values, marks=marks, id=f"{fault} | {op}"))
    return params


CELLS = _params()


def test_the_matrix_is_complete() -> None:
    assert len(CELLS) == len(FAULTS) * len(OPS)
    assert {tuple(p.values[:2]) for p in CELLS} == {(f, op) for f in FAULTS for op in OPS}


# -- running one cell ------------------------------------------------------------------------

@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(seed=3) as fake:
        yield fake


@pytest.mark.parametrize(("fault", "op", "want"), CELLS)
async def test_cell(server: FakeDevinServer, fault: str, op: Op, want: Outcome) -> None:
    (sid,) = server.add_sessions(1, status="running", status_detail="finished")
    clock = FakeClock()
    client = DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url, clock=clock,
        sleep=clock.sleep, retry=RetryPolicy(jitter=False),
        timeouts=Timeouts(read=READ_TIMEOUT) if fault == "read timeout" else None,
    )
    spec = {k: (v() if callable(v) else v) for k, v in FAULTS[fault].items()}
    server.inject(ENDPOINT[op], **spec)
    start = clock.now
    async with client:
        result = await run(op, client, sid)
    waited = clock.now - start
    if "delay" in spec:
        await asyncio.sleep(SERVER_DELAY + 0.05)  # let the server finish the request it sat on

    tokens = token_counts(server)
    assert all(n == 1 for n in tokens.values()), f"duplicate sessions: {tokens}"
    if want.error is None:
        assert not isinstance(result, DevinError), repr(result)
        check_success(op, result, sid, server)
    else:
        assert isinstance(result, DevinError), result
        check_error(result, want, server)

    seen = Counter(r.endpoint for r in server.requests if r.endpoint is not None)
    for endpoint in want.loose:
        seen.pop(endpoint, None)
    assert dict(seen) == want.requests
    assert not server.faults  # every injected fault was used up
    if want.sessions is not None:
        assert sum(tokens.values()) == want.sessions
        assert server.session_count == 1 + want.sessions
    if want.waited is not None:
        low, high = want.waited
        assert low - 1e-6 <= waited <= high + 1e-6, waited
