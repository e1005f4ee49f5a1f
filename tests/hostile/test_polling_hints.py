"""Class 4: a Retry-After on every 2xx poll answer is honoured only up to `max_retry_after`.

The server sends `Retry-After: 86400` (or `1e308`, or `retry-after-ms: 1e12`) with every
successful get and list; the session finishes at the third poll. With `max_retry_after=0.2`,
`poll()`, `wait()` and the watcher must reach it within a second (each sleep capped),
and say once in the log that the hint was capped.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from devin_async import PollPolicy, RetryPolicy

from .servers import PREFIX, Answer, RawServer, Seen, client_for, page_json, session_json

HINTS = {
    "retry-after-86400": ("Retry-After", "86400"),
    "retry-after-1e308": ("Retry-After", "1e308"),
    "retry-after-ms-1e12": ("retry-after-ms", "1e12"),
    "retry-after-0.05": ("Retry-After", "0.05"),  # control: under the cap, honoured as is
}
FAST = PollPolicy(initial=0.02, max=0.05, multiplier=2.0, jitter=0.0)
RETRY = RetryPolicy(max_retry_after=0.2)
SID = "devin-hint"


class Hinting:
    """A session that finishes at the third poll; every 2xx answer carries `hint`."""

    def __init__(self, hint: tuple[str, str]) -> None:
        self.hint = hint
        self.polls = 0

    def __call__(self, seen: Seen) -> Answer:
        self.polls += 1
        detail = "finished" if self.polls >= 3 else "working"
        session = session_json(SID, "running", detail, updated_at=1_764_288_000 + self.polls)
        if seen.path == f"{PREFIX}/sessions":
            return Answer(200, page_json([session]), headers=(self.hint,))
        if seen.path == f"{PREFIX}/sessions/{SID}":
            return Answer(200, session, headers=(self.hint,))
        return Answer(404, {"detail": "not found"})


def capped_notes(records: list[logging.LogRecord]) -> list[str]:
    """Return the SDK's log messages that say a server hint was capped."""
    out = []
    for record in records:
        text = record.getMessage().lower()
        if record.name.startswith("devin_async") and (
                "retry-after" in text or "hint" in text) and (
                "cap" in text or "max_retry_after" in text):
            out.append(record.getMessage())
    return out


async def follow(client: object, how: str) -> object:
    sessions = client.sessions  # type: ignore[attr-defined]
    if how == "poll":
        last = None
        async for session in sessions.poll(SID, policy=FAST):
            last = session
        return last
    if how == "wait":
        return await sessions.wait(SID, policy=FAST)
    events = []
    async with client.watch([SID], policy=FAST) as watcher:  # type: ignore[attr-defined]
        async for event in watcher:
            events.append(event)
    return events[-1].session


@pytest.mark.parametrize("how", ["poll", "wait", "watch"])
@pytest.mark.parametrize("hint", list(HINTS))
async def test_a_huge_hint_on_every_2xx_is_capped(
    hint: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="devin_async")
    loop = asyncio.get_running_loop()
    server_state = Hinting(HINTS[hint])
    async with RawServer(server_state) as server, client_for(server, retry=RETRY) as client:
        start = loop.time()
        async with asyncio.timeout(1.0):
            last = await follow(client, how)
        took = loop.time() - start
    assert last is not None and last.is_settled  # type: ignore[attr-defined]
    assert server_state.polls >= 3
    assert took < 0.9, f"reached the finished session after {took:.2f} s"
    notes = capped_notes(caplog.records)
    expected = 0 if hint == "retry-after-0.05" else 1
    assert len(notes) == expected, f"expected {expected} record(s) saying the hint was capped, " \
        f"got {notes}"
