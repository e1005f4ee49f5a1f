"""The first fault matrix's outcome types and runner (tests/test_fault_matrix.py).

`Outcome` is what a cell must show; `ok(...)`/`fails(...)` build one; `run` performs one
operation through a real DevinClient; `check_success`/`check_error` assert the result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import attrs

from devin_async import (
    APIStatusError,
    BatchResult,
    CreateUnconfirmedError,
    DevinClient,
    DevinError,
    MalformedResponseError,
    RetryPolicy,
    Session,
    UnprocessableEntityError,
)
from devin_async._create import FIRST_LOOK_PAUSE
from devin_async._models import TOKEN_TAG_PREFIX
from devin_async.testing import FakeDevinServer

Op = Literal["get", "list", "create", "poll", "create_many"]
OPS: tuple[Op, ...] = ("get", "list", "create", "poll", "create_many")


@attrs.frozen
class Outcome:
    """What a cell must show.

    error: None for success, else the exact error class (for create_many: of result 0).
    status, detail, retry_after, errors: the error's data (checked when `error` is an
        APIStatusError; `retry_after` also for RateLimitError).
    requests: endpoint -> how many requests the server saw (endpoints not named: none, except
        the ones in `loose`).
    sessions: sessions created by this cell that exist afterwards (creates only).
    waited: fake seconds the client waited, at least / exactly (see `waited_exact`).
    """

    error: type[DevinError] | None = None
    status: int | None = None
    detail: str | None = None
    retry_after: float | None = None
    errors: list[dict[str, Any]] | None = None
    requests: dict[str, int] = attrs.field(factory=dict)
    sessions: int | None = None
    waited: tuple[float, float] | None = None
    loose: frozenset[str] = frozenset()


def ok(*, sessions: int | None = None, waited: tuple[float, float] | None = None,
       **requests: int) -> Outcome:
    """Retried (or resolved) then succeeded."""
    return Outcome(requests=requests, sessions=sessions, waited=waited)


def fails(error: type[DevinError], status: int | None = None, detail: str | None = None, *,
          retry_after: float | None = None, errors: list[dict[str, Any]] | None = None,
          sessions: int | None = None, waited: tuple[float, float] | None = None,
          loose: frozenset[str] = frozenset(), **requests: int) -> Outcome:
    """Failed with exactly this error and data."""
    return Outcome(error, status, detail, retry_after, errors, requests, sessions, waited, loose)


def looks_in_window(settle: float = RetryPolicy().settle, pause: float = FIRST_LOOK_PAUSE) -> int:
    """The look-ups of one settling window that finds nothing: at 0, then after pauses doubling
    from `pause`, the last one cut to end the window."""
    looks, elapsed = 1, 0.0
    while elapsed < settle:
        elapsed += min(pause, settle - elapsed)
        pause *= 2
        looks += 1
    return looks


#: A lost create not found: one settling window of look-ups, the resend, then one check for a
#: duplicate once the index has settled.

def token_counts(server: FakeDevinServer) -> Counter[str]:
    """Client tokens carried by the server's sessions (a count of 2 is a duplicate)."""
    return Counter(t for s in server.sessions.values() for t in s["tags"]
                   if t.startswith(TOKEN_TAG_PREFIX))


#: The operations that are one SDK call each, run alike by both fault matrices.
ONE_CALL = ("get", "list", "create")


async def one_call(op: str, client: DevinClient, sid: str) -> Session | list[Session]:
    """Run get, list (of `sid`) or create (prompt "matrix 0")."""
    if op == "get":
        return await client.sessions.get(sid)
    if op == "list":
        return await client.sessions.list(session_ids=[sid]).to_list()
    assert op == "create", op
    return await client.sessions.create("matrix 0")


async def run(op: Op, client: DevinClient, sid: str) -> Session | list[Session] | DevinError:
    """Run one operation; return its result or the DevinError it raised."""
    try:
        if op in ONE_CALL:
            return await one_call(op, client, sid)
        if op == "poll":
            return [s async for s in client.sessions.poll(sid, timeout=3600)]
        results = await batch_of_three(client)
        assert [r.index for r in results] == [0, 1, 2]
        assert all(r.ok for r in results[1:]), [r.error for r in results]
        first = results[0]
        if first.error is not None:
            assert isinstance(first.error, DevinError), first.error
            return first.error
        assert first.session is not None
        return first.session
    except DevinError as exc:
        return exc


def check_success(op: Op, result: Session | list[Session], sid: str,
                  server: FakeDevinServer) -> None:
    if op in ("get", "list", "poll"):
        sessions = result if isinstance(result, list) else [result]
        assert [s.session_id for s in sessions] == [sid]
        assert sessions[-1].state == ("running", "finished")
        return
    assert isinstance(result, Session)
    assert result.session_id in server.sessions
    assert server.create_request(result.session_id)["prompt"] == "matrix 0"
    assert result.client_token is not None
    assert TOKEN_TAG_PREFIX + result.client_token in server.session(result.session_id)["tags"]
    assert not any(t.startswith(TOKEN_TAG_PREFIX) for t in result.tags)


def check_error(error: DevinError, want: Outcome, server: FakeDevinServer) -> None:
    assert type(error) is want.error, repr(error)
    if isinstance(error, APIStatusError):
        assert error.status == want.status
        assert error.detail == want.detail
        assert error.retry_after == want.retry_after
        assert error.request_id is not None
        assert error.request_id in {r.request_id for r in server.requests}
        assert error.method in ("GET", "POST")
        assert error.path.startswith(f"/v3beta1/organizations/{server.org_id}/sessions")
        assert str(error).startswith(f"{want.status} ")
    if isinstance(error, UnprocessableEntityError):
        assert error.errors == want.errors
    if isinstance(error, MalformedResponseError):
        assert error.status == want.status
        assert "JSON" in str(error)
    if isinstance(error, CreateUnconfirmedError):
        assert TOKEN_TAG_PREFIX + error.client_token == error.tag
        assert token_counts(server)[error.tag] == 1  # the late session carries its token


async def batch_of_three(client: DevinClient) -> list[BatchResult]:
    """Run the matrix's create_many (three prompts, one at a time); its results by index."""
    batch = client.sessions.create_many([{"prompt": f"matrix {i}"} for i in range(3)],
                                        concurrency=1)
    return sorted([r async for r in batch], key=lambda r: r.index)
