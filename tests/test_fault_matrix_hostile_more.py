"""The hostile fault matrix, part 2: the key echoed back, configuration, keep-alive connections
the server closed, and stale or wrong answers (issue 12, classes 6-9).

Same harness as part 1 (tests/hostile_matrix.py: one fake clock, in process), except the
keep-alive rows, which need real connections: a FakeDevinServer on loopback whose front closes
every idle connection a millisecond after answering (`close_idle_after`), without saying so.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devin_async import (
    AuthenticationError,
    DevinClient,
    MalformedResponseError,
    PollPolicy,
    RetryPolicy,
    Session,
    Timeouts,
    UnprocessableEntityError,
)
from devin_async._transport import HTTPRequest, HTTPResponse
from devin_async.testing import FakeDevinServer

from .hostile_matrix import (
    OPS,
    Answer,
    Op,
    Rig,
    Scenario,
    Want,
    answer,
    check_monotonic,
    run,
    run_cell,
)

WORKING, FINISHED, EXIT = ("running", "working"), ("running", "finished"), ("exit", None)
YEAR_2100 = 4_102_444_800


# -- 6. the key echoed back in other forms ---------------------------------------------------

def escaped(key: str) -> str:
    """The key as a JSON string may spell it: its first letters \\u-escaped."""
    return "".join(f"\\u{ord(c):04x}" for c in key[:3]) + key[3:]


def echo(form: str) -> Any:
    def hostile(rig: Rig, request: HTTPRequest, ep: str, n: int) -> Answer:
        key = rig.server.api_key
        if form == "JSON-escaped in the body":
            body = ('{"detail": "invalid key ' + escaped(key) + '"}').encode()
            return HTTPResponse(401, {"content-type": "application/json"}, body)
        if form == "in x-request-id":
            return answer(401, {"detail": "invalid key"}, {"x-request-id": f"req-{key}"})
        body = ('{"detail": [{"loc": ["header", "authorization"], "msg": "bad token", "type": '
                '"value_error", "input": "Bearer ' + escaped(key) + '"}]}').encode()
        return HTTPResponse(422, {"content-type": "application/json"}, body)

    return hostile


ECHOES = {"JSON-escaped in the body": AuthenticationError, "in x-request-id": AuthenticationError,
          "escaped in a 422's input": UnprocessableEntityError}
#: One request, never retried; create_many sends its three creates, each refused.
ECHO_COUNTS: dict[str, dict[str, int]] = {
    "get": {"get": 1}, "list": {"list": 1}, "create": {"create": 1}, "poll": {"get": 1},
    "create_many": {"create": 3}, "watch": {"list": 1}}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def sdk_log() -> Iterator[Records]:
    logger = logging.getLogger("devin_async")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("form", list(ECHOES))
async def test_an_echoed_key_never_leaks(form: str, op: Op, sdk_log: Records) -> None:
    rig, error = await run_cell(Scenario(echo(form)), op,
                                Want(ECHOES[form], counts=ECHO_COUNTS[op]))
    key = rig.server.api_key
    texts = [str(error), repr(error), str(error.detail), str(error.body),
             str(getattr(error, "errors", "")), str(error.request_id), repr(rig.events),
             *sdk_log.lines]
    for form_of_key in (key, key[4:], escaped(key), escaped(key)[12:]):
        assert not [t for t in texts if form_of_key in t], form_of_key
    assert rig.events, "the hooks saw the failed attempts"
    if form == "in x-request-id":
        assert error.request_id is not None and error.request_id.startswith("req-")


# -- 7. configuration ------------------------------------------------------------------------

def client(**kw: Any) -> DevinClient:
    return DevinClient("cog_x", org_id="org-1", **kw)


CONFIG: list[tuple[str, Callable[[], Any], str]] = [
    ("Timeouts(total=inf)", lambda: Timeouts(total=math.inf), "total"),
    ("Timeouts(read=nan)", lambda: Timeouts(read=math.nan), "read"),
    ("Timeouts(connect=True)", lambda: Timeouts(connect=True), "connect"),
    ("RetryPolicy(max_retry_after=inf)", lambda: RetryPolicy(max_retry_after=math.inf),
     "max_retry_after"),
    ("RetryPolicy(deadline=-1)", lambda: RetryPolicy(deadline=-1), "deadline"),
    ("RetryPolicy(settle=nan)", lambda: RetryPolicy(settle=math.nan), "settle"),
    ("RetryPolicy(max_attempts=True)", lambda: RetryPolicy(max_attempts=True), "max_attempts"),
    ("RetryPolicy(multiplier=0.5)", lambda: RetryPolicy(multiplier=0.5), "multiplier"),
    ("PollPolicy(initial=inf)", lambda: PollPolicy(initial=math.inf), "initial"),
    ("PollPolicy(jitter=2)", lambda: PollPolicy(jitter=2), "jitter"),
    ("base_url with a space", lambda: client(base_url="https://api.devin .ai"), "base_url"),
    ("base_url with a NUL", lambda: client(base_url="https://api.devin.ai\x00"), "base_url"),
    ("base_url with a newline", lambda: client(base_url="https://api.devin.ai\n"), "base_url"),
]
#: Per operation: a bad argument, refused before any request.
BAD_CALLS: dict[Op, tuple[Callable[[DevinClient], Any], str]] = {
    "get": (lambda c: c.sessions.get("a/b"), "session_id"),
    "list": (lambda c: c.sessions.list(page_size=0), "page_size"),
    "create": (lambda c: c.sessions.create(""), "prompt"),
    "poll": (lambda c: c.sessions.poll("devin-1", timeout=math.nan), "timeout"),
    "create_many": (lambda c: c.sessions.create_many([{"prompt": "x"}], concurrency=0),
                    "concurrency"),
    "watch": (lambda c: c.watch(["devin-1"], policy="fast"), "policy"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize(("build", "field"), [pytest.param(b, f, id=n) for n, b, f in CONFIG])
def test_bad_configuration_is_a_value_error_naming_the_field(build: Callable[[], Any],
                                                             field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()


@pytest.mark.parametrize("op", OPS)
async def test_a_bad_argument_is_refused_before_any_request(op: Op) -> None:
    rig = Rig()
    call, field = BAD_CALLS[op]
    async with rig.client:
        with pytest.raises(ValueError, match=field):
            result = call(rig.client)
            if asyncio.iscoroutine(result):
                await result
    assert sum(rig.counts.values()) == 0


# -- 8. keep-alive connections the server closed ---------------------------------------------

FAST = PollPolicy(initial=0.02, max=0.05, multiplier=2.0, jitter=0.0)
QUICK = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, settle=0.2)
#: A session that ends 0.05 s (real) after the call starts.
ENDS = [("running", "working", 0.0), ("exit", None, 0.05)]


async def one(op: Op, client: DevinClient, server: FakeDevinServer, i: int) -> int:
    """Run `op` once on a fresh session; return the sessions it created."""
    (sid,) = server.add_sessions(1, status="new")
    server.script(ENDS, session_id=sid)
    sessions = client.sessions
    if op == "get":
        assert (await sessions.get(sid)).session_id == sid
    elif op == "list":
        assert [s.session_id for s in await sessions.list(session_ids=[sid]).to_list()] == [sid]
    elif op == "create":
        assert (await sessions.create(f"keep-alive {i}")).client_token is not None
        return 1
    elif op == "poll":
        seen = [s async for s in sessions.poll(sid, until=Session.is_terminal)]
        assert seen[-1].state == EXIT
    elif op == "create_many":
        results = [r async for r in sessions.create_many(
            [{"prompt": f"keep-alive {i}.{j}"} for j in range(3)], concurrency=3)]
        assert all(r.ok for r in results), [r.error for r in results]
        return 3
    else:
        async with client.watch([sid], until=Session.is_terminal) as watcher:
            seen = [e.session async for e in watcher]
        assert seen[-1].state == EXIT
    return 0


@pytest.mark.parametrize("op", OPS)
async def test_connections_closed_after_answering_cost_no_call_and_no_duplicate(op: Op) -> None:
    async with FakeDevinServer(close_idle_after=0.001) as server, DevinClient(
            server.api_key, org_id=server.org_id, base_url=server.url, retry=QUICK,
            poll=FAST) as client:
        made = 0
        async with asyncio.timeout(10):
            for i in range(4):
                made += await one(op, client, server, i)
                await asyncio.sleep(0.002)  # long enough for the server to close the idle one
        assert server.stats.get("idle_closes", 0) >= 1
        assert server.stats.get("creates", 0) == made  # no create was made twice
        tokens = [t for s in server.sessions.values() for t in s["tags"]
                  if t.startswith("devin-async-token:")]
        assert len(tokens) == len(set(tokens)) == made


# -- 9. stale or wrong answers ---------------------------------------------------------------

def another_session(rig: Rig, request: HTTPRequest, ep: str, n: int) -> Answer:
    """The first two gets answer with another session."""
    if ep == "get" and n <= 2:
        return answer(200, {**rig.server.session(rig.sid), "session_id": "devin-other"})
    return None


def twice_in_two_states(rig: Rig, request: HTTPRequest, ep: str, n: int) -> Answer:
    """The first two list pages hold the session twice: working, and already ended."""
    if ep == "list" and n <= 2:
        now = rig.server.session(rig.sid)
        items = [{**now, "status": "running", "status_detail": "working"},
                 {**now, "status": "exit", "status_detail": None,
                  "updated_at": now["updated_at"] + 60}]
        return answer(200, {"items": items, "end_cursor": None, "has_next_page": False})
    return None


def every_other_stale(rig: Rig, request: HTTPRequest, ep: str, n: int) -> Answer:
    """Every second get/list answer comes from a replica 3 s behind."""
    rig.server.stale_fraction = 1.0 if n % 2 == 0 else 0.0
    return None


STALE = Scenario(every_other_stale, server={"stale_by": 3.0})
#: A stale answer matters where a session is read again: poll and watch (one get or list cannot
#: tell a stale answer from a fresh one; a wrong one it can: another id, one id twice).
STALE_ROWS: list[Any] = [
    ("get answered with another session", "get", Scenario(another_session),
     Want(MalformedResponseError, counts={"get": 1})),
    ("get answered with another session", "poll", Scenario(another_session),
     Want(counts={"get": 3}, waited=(4.0, 4.0), states=[EXIT])),  # rode out, then read
    ("a page holds a session twice", "list", Scenario(twice_in_two_states),
     Want(MalformedResponseError, counts={"list": 1})),
    ("a page holds a session twice", "watch", Scenario(twice_in_two_states),
     Want(counts={"list": 3}, waited=(4.0, 4.0), states=[EXIT])),  # two failed cycles
    ("every other answer 3 s stale", "watch", STALE,
     Want(loose=frozenset({"list", "get"}), states=[WORKING, FINISHED, EXIT])),
    ("every other answer 3 s stale", "poll", STALE,
     Want(loose=frozenset({"get"}), states=[WORKING, FINISHED, EXIT])),
]


@pytest.mark.parametrize(("klass", "op", "scenario", "want"), [
    row if hasattr(row, "marks") else pytest.param(*row, id=f"{row[0]} | {row[1]}")
    for row in STALE_ROWS])
async def test_stale_or_wrong(klass: str, op: Op, scenario: Scenario, want: Want) -> None:
    rig, result = await run_cell(scenario, op, want)
    if isinstance(result, list):
        check_monotonic(result)
    assert rig.server.stale_answers or "stale" not in klass


@pytest.mark.parametrize("seed", range(6))
async def test_a_stale_replica_never_moves_a_watched_session_back(seed: int) -> None:
    rig = Rig(server={"stale_fraction": 0.5, "stale_by": 3.0, "seed": seed})
    async with rig.client:
        seen = await run("watch", rig)
    assert seen[-1].state == EXIT
    check_monotonic(seen)


async def test_a_session_stamped_in_2100_does_not_freeze_the_others() -> None:
    rig = Rig()
    (future,) = rig.server.add_sessions(1, status="running", status_detail="working",
                                        updated_at=YEAR_2100)
    states = []
    async with rig.client, rig.client.watch(
            [future, rig.sid], until=lambda s: s.is_terminal or s.session_id == future) as w:
        async for event in w:
            if event.session.session_id == rig.sid:
                states.append(event.session.state)
    assert states == [WORKING, FINISHED, EXIT]
