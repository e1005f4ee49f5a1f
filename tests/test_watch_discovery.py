"""`client.watch(tags=..., follow_children=..., forever=...)` over a stub transport, fake clock."""

from __future__ import annotations

import asyncio

import pytest

from devin_async import SessionEvent, Watcher

from .watch_support import Clock, Org, by_session, make_client

WORKING = ("running", "working")
FINISHED = ("running", "finished")


async def collect(watcher: Watcher, stop: int) -> list[SessionEvent]:
    """Consume events until `stop` of them came (or the iteration ended)."""
    out: list[SessionEvent] = []
    async for event in watcher:
        out.append(event)
        if len(out) >= stop:
            break
    return out


async def test_tag_watch_finds_sessions_created_later() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "working"), (5, "running", "finished"), tags=("ci", "x"))
    org.add("devin-b", (0, "running", "working"), tags=("ci",))  # lacks "x": not watched
    org.add("devin-c", (20, "new", None), (25, "running", "working"), (40, "running", "finished"),
            tags=("x", "ci", "more"))
    async with make_client(clock, org) as client, \
            client.watch(tags=["ci", "x"], forever=True) as watcher:
        org.cycle = lambda: watcher.stats.cycles
        events = await collect(watcher, 5)
    assert by_session(events) == {"devin-a": [WORKING, FINISHED],
                                  "devin-c": [("new", None), WORKING, FINISHED]}
    first_c = next(e for e in events if e.session.session_id == "devin-c")
    assert first_c.previous is None  # reported from its first sighting
    assert watcher.watched == ["devin-a", "devin-c"] and watcher.stats.discovered == 2
    tag_reads = [q for q in org.listings() if "tags" in q]
    assert tag_reads and all(q["tags"] == "ci,x" for q in tag_reads)
    assert sum("updated_after" in q for q in tag_reads) >= len(tag_reads) - 2
    # Every watched session carries the tags: the tag listing alone covers them.
    assert all("session_ids" not in q for c, q in enumerate(org.listings()) if c > 1)


async def test_tag_watch_without_forever_ends_after_one_cycle_when_all_settled() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "working"), (3, "suspended", "inactivity"), tags=("t",))
    org.add("devin-late", (50, "new", None), tags=("t",))  # after the end: not waited for
    async with make_client(clock, org) as client:
        events = [e async for e in client.watch(tags=["t"])]
        empty = [e async for e in client.watch(tags=["nobody-has-this"])]
    assert by_session(events) == {"devin-a": [WORKING, ("suspended", "inactivity")]}
    assert clock.now < 50
    assert empty == []
    assert org.listings()[-1]["tags"] == "nobody-has-this"  # one cycle ran, then it ended


async def test_children_are_watched_as_they_appear_and_until_applies_to_each() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-p", (0, "running", "working"), (50, "exit", None))
    org.add("devin-k1", (10, "new", None), (20, "exit", None), parent="devin-p")
    org.add("devin-k2", (30, "new", None), (35, "running", "working"), (70, "exit", None),
            parent="devin-p")
    org.add("devin-g", (36, "running", "working"), (80, "exit", None), parent="devin-k2")
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-p"], follow_children=True, until=lambda s: s.is_terminal)
        events = [e async for e in watcher]
    assert by_session(events) == {
        "devin-p": [WORKING, ("exit", None)],
        "devin-k1": [("new", None), ("exit", None)],
        "devin-k2": [("new", None), WORKING, ("exit", None)],
        "devin-g": [WORKING, ("exit", None)],  # a grandchild: followed too
    }
    assert clock.now >= 80  # the parent ended at 50; the watch waited for every child
    assert watcher.stats.discovered == 3
    assert all(e.previous is None for e in events if e.session.status == "new")


async def test_a_removed_child_is_not_found_again() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-p", (0, "running", "working"), (30, "exit", None))
    org.add("devin-k", (5, "running", "working"), parent="devin-p")  # never ends
    async with make_client(clock, org) as client:
        seen: list[SessionEvent] = []
        async with client.watch(["devin-p"], follow_children=True,
                                until=lambda s: s.is_terminal) as watcher:
            async for event in watcher:
                seen.append(event)
                if event.session.session_id == "devin-k":
                    watcher.remove("devin-k")
    assert [e.session.session_id for e in seen] == ["devin-p", "devin-k", "devin-p"]
    assert watcher.watched == ["devin-p"]


class AlarmClock(Clock):
    """A Clock that can wake a task once fake time reaches a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.alarms: list[tuple[float, asyncio.Event]] = []

    async def reached(self, at: float) -> None:
        event = asyncio.Event()
        self.alarms.append((at, event))
        await event.wait()

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        for at, event in self.alarms:
            if self.now >= at:
                event.set()
        await asyncio.sleep(0)


async def test_forever_keeps_going_after_every_session_settled_and_takes_late_adds() -> None:
    clock = AlarmClock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "working"), (2, "running", "finished"))
    org.add("devin-b", (0, "running", "working"), (100, "running", "finished"))
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a"], forever=True)
        seen = [await anext(watcher), await anext(watcher)]  # devin-a settled: not the end

        async def add_later() -> None:
            await clock.reached(60)
            watcher.add("devin-b")

        adder = asyncio.create_task(add_later())
        seen += [await anext(watcher), await anext(watcher)]
        await adder
        assert clock.now >= 60
        await watcher.aclose()
        assert [e async for e in watcher] == []  # only aclose ends it
    assert by_session(seen) == {"devin-a": [WORKING, FINISHED], "devin-b": [WORKING, FINISHED]}
    assert seen[2].session.session_id == "devin-b" and seen[2].previous is None
    with pytest.raises(RuntimeError):
        watcher.add("devin-c")


async def test_without_forever_it_ends_and_a_new_loop_goes_on_after_add() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "finished"))
    org.add("devin-b", (0, "running", "working"), (5, "running", "finished"))
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a"])
        first = [e async for e in watcher]
        watcher.add("devin-b")
        second = [e async for e in watcher]
    assert by_session(first) == {"devin-a": [FINISHED]}
    assert by_session(second) == {"devin-b": [WORKING, FINISHED]}


class StuckClock(Clock):
    """A clock whose sleep never ends by itself: only a wake-up gets the watcher going."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.Event().wait()


async def test_add_wakes_a_watcher_waiting_for_its_next_cycle() -> None:
    clock = StuckClock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "finished"))
    org.add("devin-b", (0, "running", "working"))
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a"], forever=True)
        assert (await anext(watcher)).session.session_id == "devin-a"
        waiting = asyncio.create_task(anext(watcher))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done() and clock.sleeps  # napping until the next cycle
        watcher.add("devin-b")
        event = await asyncio.wait_for(waiting, 1.0)
        assert event.session.session_id == "devin-b"
        closing = asyncio.create_task(anext(watcher))
        for _ in range(20):
            await asyncio.sleep(0)
        await watcher.aclose()  # wakes the consumer, which ends
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(closing, 1.0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tags": "ci"}, "not one string"),
    ({"tags": []}, "at least one tag"),
    ({"tags": ["a,b"]}, "without commas"),
    ({"tags": [""]}, "non-empty"),
    ({"forever": "yes"}, "forever"),
    ({"follow_children": 1}, "follow_children"),
])
async def test_bad_arguments_fail_before_any_request(kwargs: dict[str, object],
                                                     message: str) -> None:
    clock = Clock()
    org = Org(clock)
    async with make_client(clock, org) as client:
        with pytest.raises(ValueError, match=message):
            client.watch(**kwargs)  # type: ignore[arg-type]
    assert org.log == []


async def test_a_stale_answer_never_takes_a_session_back_in_time() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "working"), (5, "running", "waiting_for_user"),
            (30, "running", "finished"))
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a"], until=lambda s: s.status_detail == "finished")
        seen = [await anext(watcher), await anext(watcher)]
        old = org.render("devin-a")
        assert old is not None
        org.stale["devin-a"] = {**old, "status_detail": "working",
                                "updated_at": old["updated_at"] - 5}  # a lagging replica
        seen += [e async for e in watcher]
    assert by_session(seen) == {"devin-a": [WORKING, ("running", "waiting_for_user"), FINISHED]}
    assert not org.stale  # the stale answer was served, and ignored
