"""Class 9: stale or wrong answers never move what the SDK reports backwards.

- The watcher, fed alternately fresh and stale answers (an older `updated_at`, an earlier
  status), reports no event older than one already reported and no final state twice.
- One session stamped in the year 2100 must not freeze the `updated_after` watermark: the other
  sessions' changes are still reported.
- `get(id)` answered with another session, and a list page holding one session twice in two
  states, are MalformedResponseError.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from devin_async import MalformedResponseError, PollPolicy, Session

from .servers import EPOCH, PREFIX, Answer, RawServer, Seen, client_for, page_json, session_json

FAST = PollPolicy(initial=0.02, max=0.05, multiplier=2.0, jitter=0.0)
#: (status, status_detail) per version; each version is stamped 3 s after the one before.
STEPS = [("new", None), ("running", "working"), ("running", "finished"), ("exit", None)]
YEAR_2100 = 4_102_444_800


def version(sid: str, index: int) -> dict[str, object]:
    status, detail = STEPS[index]
    return session_json(sid, status, detail, updated_at=EPOCH + 3 * index)


class Flapping:
    """Sessions that step forward on each fresh answer; every other answer is 3 s stale."""

    def __init__(self, sids: list[str]) -> None:
        self.sids = sids
        self.fresh = 0
        self.answers = 0

    def __call__(self, seen: Seen) -> Answer:
        if seen.path != f"{PREFIX}/sessions":
            sid = seen.path.rsplit("/", 1)[-1]
            return Answer(200, version(sid, min(self.fresh, len(STEPS) - 1)))
        self.answers += 1
        stale = self.answers % 2 == 0
        if not stale:
            self.fresh += 1
        now = min(self.fresh, len(STEPS) - 1)
        index = max(0, now - 1) if stale else now
        items = [version(sid, index) for sid in self.sids if sid in seen.array("session_ids")]
        after = seen.param("updated_after")
        if after is not None and not stale:  # a stale replica ignores the filter
            items = [i for i in items if int(i["updated_at"]) > int(after)]  # type: ignore[call-overload]
        return Answer(200, page_json(items))


async def test_the_watcher_never_reports_going_back_in_time() -> None:
    sids = ["devin-s1", "devin-s2", "devin-s3"]
    events = []
    async with (RawServer(Flapping(sids)) as server, client_for(server, poll=FAST) as client,
                asyncio.timeout(2.0), client.watch(sids, until=Session.is_terminal) as w):
        async for event in w:
            events.append(event)
    per: dict[str, list[Session]] = defaultdict(list)
    for event in events:
        per[event.session.session_id].append(event.session)
    assert set(per) == set(sids)
    for sid, seen in per.items():
        stamps = [s.updated_at for s in seen]
        states = [f"{s.status.value}/{s.status_detail and s.status_detail.value}" for s in seen]
        assert stamps == sorted(stamps), f"{sid} went back in time: {states}"
        assert sum(s.is_terminal for s in seen) == 1, f"{sid} reported final twice: {states}"
        assert seen[-1].is_terminal


class FarFuture:
    """One session stamped in 2100 (never changes); another that changes over time."""

    def __init__(self, future: bool) -> None:
        self.start: float | None = None
        self.future = future

    def __call__(self, seen: Seen) -> Answer:
        now = asyncio.get_running_loop().time()
        if self.start is None:
            self.start = now
        index = min(int((now - self.start) / 0.1), len(STEPS) - 1)  # a step every 0.1 s
        stamp = YEAR_2100 if self.future else EPOCH
        items = [session_json("devin-future", updated_at=stamp), version("devin-now", index)]
        if seen.path != f"{PREFIX}/sessions":
            sid = seen.path.rsplit("/", 1)[-1]
            return Answer(200, next(i for i in items if i["session_id"] == sid))
        after = seen.param("updated_after")
        if after is not None:
            items = [i for i in items if int(i["updated_at"]) > int(after)]
        return Answer(200, page_json(items))


@pytest.mark.parametrize("future", [True, False], ids=["stamped-2100", "control"])
async def test_a_session_stamped_in_2100_does_not_freeze_the_watermark(future: bool) -> None:
    seen_states: list[str] = []
    async with (RawServer(FarFuture(future)) as server, client_for(server, poll=FAST) as client,
                asyncio.timeout(1.5), client.watch(["devin-future", "devin-now"]) as w):
        async for event in w:
            if event.session.session_id == "devin-now":
                seen_states.append(event.session.status.value)
                if event.session.is_terminal:
                    break
    assert seen_states[-1] == "exit", f"devin-now was last reported as {seen_states}"


async def test_get_answered_with_another_session_is_malformed() -> None:
    answer = Answer(200, session_json("devin-other"))
    async with RawServer(lambda _s: answer) as server, client_for(server) as client:
        async with asyncio.timeout(1.0):
            with pytest.raises(MalformedResponseError):
                await client.sessions.get("devin-asked")


@pytest.mark.parametrize("how", ["iterate", "to_list"])
async def test_a_page_holding_one_session_twice_in_two_states_is_malformed(how: str) -> None:
    page = page_json([session_json("devin-twice", "running", "working"),
                      session_json("devin-other"),
                      session_json("devin-twice", "exit", None, updated_at=EPOCH + 60)])
    async with RawServer(lambda _s: Answer(200, page)) as server, client_for(server) as client:
        async with asyncio.timeout(1.0):
            with pytest.raises(MalformedResponseError):
                if how == "to_list":
                    await client.sessions.list().to_list()
                else:
                    async for _ in client.sessions.list():
                        pass
