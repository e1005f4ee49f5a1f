"""Class 1: a server whose cursors go round in a circle while saying `has_next_page: true`.

`list()` and `to_list()` must end with MalformedResponseError after a few pages, not spin; the
watcher must fail that cycle (few requests in all), go on, and end normally once the server
behaves again.
"""

from __future__ import annotations

import asyncio

import pytest

from devin_async import MalformedResponseError, PollPolicy

from .servers import PREFIX, Answer, RawServer, Seen, client_for, page_json, session_json

#: name -> the cursors the pages point to, in order, then round again.
LOOPS = {
    "A-B-A": ["A", "B"],
    "A-B-C-A": ["A", "B", "C"],
    "A-A": ["A"],  # the next page carries the same cursor
}
FAST = PollPolicy(initial=0.02, max=0.05, multiplier=2.0, jitter=0.0)


class Loop:
    """Serve cursor loops on `GET /sessions` for the first `bad_cycles` listings, then behave."""

    def __init__(self, cursors: list[str], bad_cycles: int = 10**9) -> None:
        self.cursors = cursors
        self.bad_cycles = bad_cycles
        self.listings = 0  # requests without `after`: a new listing from the start

    def __call__(self, seen: Seen) -> Answer:
        if seen.path != f"{PREFIX}/sessions":
            return Answer(404, {"detail": "not found"})
        after = seen.param("after")
        if after is None:
            self.listings += 1
        if self.listings > self.bad_cycles:
            return Answer(200, page_json([session_json("devin-loop", "running", "finished",
                                                       updated_at=1_764_288_100)]))
        index = -1 if after is None else self.cursors.index(after)
        nxt = self.cursors[(index + 1) % len(self.cursors)]
        return Answer(200, page_json([session_json("devin-loop")], nxt, has_next_page=True))


@pytest.mark.parametrize("how", ["iterate", "to_list"])
@pytest.mark.parametrize("loop", list(LOOPS))
async def test_list_ends_with_malformed_response_on_a_cursor_loop(loop: str, how: str) -> None:
    cursors = LOOPS[loop]
    async with RawServer(Loop(cursors)) as server, client_for(server) as client:
        async with asyncio.timeout(0.5):
            with pytest.raises(MalformedResponseError):
                if how == "to_list":
                    await client.sessions.list().to_list()
                else:
                    async for _ in client.sessions.list():
                        pass
    assert len(server.seen) <= len(cursors) + 2, f"{len(server.seen)} pages read"


@pytest.mark.parametrize("loop", list(LOOPS))
async def test_the_watcher_survives_a_cursor_loop(loop: str) -> None:
    server_loop = Loop(LOOPS[loop], bad_cycles=2)
    async with RawServer(server_loop) as server, client_for(server, poll=FAST) as client:
        events = []
        async with asyncio.timeout(1.0), client.watch(["devin-loop"]) as watcher:
            async for event in watcher:
                events.append(event)
    assert len(server.seen) < 20, f"{len(server.seen)} requests: the watcher spun"
    assert server_loop.listings >= 3, "the watcher went on after the failed cycles"
    assert events, "the watcher reported the session"
    assert events[-1].session.is_settled
