"""The fake server's stale replica (`stale_fraction`/`stale_by`) and idle-closing front
(`close_idle_after`): validation, what a stale get and list show, and when a connection closes.

Stale answers are checked in process on a manual clock (exact server times); the idle close on
a real loopback socket with a raw HTTP/1.1 client, since only a socket has connections.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from devin_async import DevinClient, RetryPolicy
from devin_async.testing import FakeDevinServer

from .fake_helpers import ManualClock, TransportApi

SCRIPT = [("running", "working", 10.0), ("running", "finished", 20.0), ("exit", None, 30.0)]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"stale_fraction": -0.1}, "stale_fraction"),
        ({"stale_fraction": 1.5}, "stale_fraction"),
        ({"stale_fraction": math.nan}, "stale_fraction"),
        ({"stale_fraction": True}, "stale_fraction"),
        ({"stale_fraction": "half"}, "stale_fraction"),
        ({"stale_by": -1.0}, "stale_by"),
        ({"stale_by": math.inf}, "stale_by"),
        ({"close_idle_after": -0.5}, "close_idle_after"),
        ({"close_idle_after": math.nan}, "close_idle_after"),
        ({"close_idle_after": True}, "close_idle_after"),
    ],
)
def test_bad_settings_are_a_value_error_naming_them(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        FakeDevinServer(**kwargs)
    server = FakeDevinServer()
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=named):
        setattr(server, name, value)
    assert (server.stale_fraction, server.stale_by, server.close_idle_after) == (0.0, 0.0, None)


def test_settings_are_kept_and_settable() -> None:
    server = FakeDevinServer(stale_fraction=0.25, stale_by=3, close_idle_after=0.01)
    assert (server.stale_fraction, server.stale_by, server.close_idle_after) == (0.25, 3.0, 0.01)
    server.stale_fraction, server.stale_by, server.close_idle_after = 1, 0.5, None
    assert (server.stale_fraction, server.stale_by, server.close_idle_after) == (1.0, 0.5, None)


def scripted(clock: ManualClock, **kwargs: Any) -> tuple[FakeDevinServer, str, TransportApi]:
    server = FakeDevinServer(clock=clock, seed=5, **kwargs)
    (sid,) = server.add_sessions(1, status="new")
    server.script(SCRIPT, session_id=sid)
    return server, sid, TransportApi(server)


@pytest.mark.parametrize(
    ("at", "stale_by", "state", "stamp"),
    [
        (25.0, 10.0, ("running", "working"), 10),  # as it was at 15
        (25.0, 3.0, ("running", "finished"), 20),  # as it was at 22
        (35.0, 10.0, ("running", "finished"), 20),  # the exit (at 30) not replicated yet
        (35.0, 4.0, ("exit", None), 30),
        (25.0, 100.0, ("new", None), 0),  # younger than stale_by: as it was when created
    ],
)
async def test_a_stale_get_shows_the_session_as_it_was(
    at: float, stale_by: float, state: tuple[str, str | None], stamp: int
) -> None:
    clock = ManualClock()
    server, sid, api = scripted(clock, stale_fraction=1.0, stale_by=stale_by)
    created = server.session(sid)["created_at"]
    clock.advance(at)
    stale = await api.get(sid)
    assert (stale["status"], stale["status_detail"]) == state
    assert stale["updated_at"] - created == stamp
    server.stale_fraction = 0.0
    fresh = await api.get(sid)
    assert fresh["updated_at"] >= stale["updated_at"]
    assert server.stale_answers == 1
    assert server.stale_behind == int(state != (fresh["status"], fresh["status_detail"]))


async def test_a_stale_list_lags_further_than_the_index() -> None:
    clock = ManualClock()
    server, sid, api = scripted(clock, index_lag=2.0, stale_fraction=1.0, stale_by=8.0)
    clock.advance(25.0)
    (late,) = server.add_sessions(1, status="new")  # created at 25: too young for the replica
    page = await api.call("GET", "/sessions", params={"session_ids": f"{sid},{late}"})
    assert [i["session_id"] for i in page.body["items"]] == [sid]
    (item,) = page.body["items"]
    assert (item["status"], item["status_detail"]) == ("running", "working")  # as of 15
    # `updated_after` applies to the stale view: the change at 20 is not there yet.
    since = server.session(sid)["created_at"] + 15
    filtered = await api.call("GET", "/sessions", params={"updated_after": str(since)})
    assert filtered.body["items"] == []
    server.stale_fraction = 0.0  # fresh again: only the index lag of 2 s
    page = await api.call("GET", "/sessions", params={"session_ids": f"{sid},{late}"})
    assert [(i["status"], i["status_detail"]) for i in page.body["items"]] == [
        ("running", "finished")]
    assert (server.stale_answers, server.stale_behind) == (2, 1)


async def test_a_fraction_of_answers_is_stale_and_the_draw_is_seeded() -> None:
    counts = []
    for _ in range(2):
        clock = ManualClock()
        server, sid, api = scripted(clock, stale_fraction=0.3, stale_by=10.0)
        clock.advance(25.0)
        states = [(await api.get(sid))["status_detail"] for _ in range(200)]
        counts.append(states.count("working"))
        assert states.count("working") == server.stale_answers
        assert set(states) == {"working", "finished"}
    assert counts[0] == counts[1]
    assert 40 <= counts[0] <= 80  # 30 % of 200, give or take


async def test_the_sdk_reads_through_a_stale_replica() -> None:
    clock = ManualClock()
    server, sid, _ = scripted(clock, stale_fraction=1.0, stale_by=10.0)
    clock.advance(25.0)
    async with DevinClient(server.api_key, org_id=server.org_id, base_url="https://fake.invalid",
                           transport=server.transport()) as client:
        session = await client.sessions.get(sid)
        listed = await client.sessions.list(session_ids=[sid]).to_list()
    assert session.state == ("running", "working")
    assert [s.state for s in listed] == [("running", "working")]


# -- idle-closing connections (a real socket) -------------------------------------------------

async def raw_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  server: FakeDevinServer) -> bytes:
    """Send one keep-alive GET /v3/self; return the answer's head."""
    writer.write(f"GET /v3/self HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                 f"{server.api_key}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return head


@pytest.mark.parametrize("after", [0.02, None])
async def test_an_idle_connection_is_closed_without_notice(after: float | None) -> None:
    async with FakeDevinServer(close_idle_after=after) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            head = await raw_get(reader, writer, server)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"connection: close" not in head.lower()
            # A request sent at once is answered on the same connection (it was not idle).
            assert (await raw_get(reader, writer, server)).startswith(b"HTTP/1.1 200")
            try:
                eof = await asyncio.wait_for(reader.read(1), 0.2)
            except TimeoutError:
                eof = None  # still open
            assert eof == (b"" if after is not None else None)
        finally:
            writer.close()
        assert server.stats.get("idle_closes", 0) == (1 if after is not None else 0)


async def test_the_sdk_survives_a_server_closing_idle_connections() -> None:
    retry = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, settle=0.2)
    async with FakeDevinServer(close_idle_after=0.001) as server, DevinClient(
            server.api_key, org_id=server.org_id, base_url=server.url, retry=retry) as client:
        made = []
        for i in range(15):
            made.append(await client.sessions.create(f"idle {i}"))
            await asyncio.sleep(0.003)  # the pooled connection is dead by now
            assert (await client.sessions.get(made[-1].session_id)).session_id == \
                made[-1].session_id
        # One create met a connection closed under it (then the SDK goes on fresh connections).
        assert server.stats["idle_closes"] >= 1
        assert server.session_count == server.stats["creates"] == 15  # none made twice


@pytest.mark.parametrize("step", ["running", ("running", "working"), ("running", "working", "x"),
                                  (1, None, 2.0), ("running", 3, 2.0)])
def test_a_malformed_script_step_is_a_clear_value_error(step: object) -> None:
    server = FakeDevinServer()
    with pytest.raises(ValueError, match="script step 1"):
        server.script([("running", "working", 1.0), step])  # type: ignore[list-item]
