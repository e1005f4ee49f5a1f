"""`watcher.checkpoint()` and `client.watch(resume=...)`: go on in a new client, repeat nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devin_async import SessionEvent

from .watch_support import ORG, Clock, Org, by_session, make_client, state

WORKING = ("running", "working")
WAITING = ("running", "waiting_for_user")
FINISHED = ("running", "finished")


def no_repeats(events: list[SessionEvent]) -> None:
    """Each session's events: first previous=None or reconstructed, then one per change."""
    last: dict[str, tuple[str, str | None]] = {}
    for e in events:
        sid = e.session.session_id
        if sid in last:
            assert state(e) != last[sid], f"{sid} repeated {state(e)}"
            assert e.previous is not None and (
                e.previous.status, e.previous.status_detail) == last[sid]
        last[sid] = state(e)


async def test_resume_in_a_new_client_reports_downtime_changes_once() -> None:
    clock = Clock()
    org = Org(clock)
    tagged = [org.add(f"devin-t{i:03d}", (0, "running", "working"), tags=("nightly",))
              for i in range(250)]
    org.add("devin-x", (0, "running", "working"))  # watched by id, no tag
    for i, sid in enumerate(tagged):
        if i % 3 == 0:
            org.then(sid, *WAITING, at=5)  # 84 of them, before the checkpoint
        if i % 5 == 0:
            org.then(sid, *FINISHED, at=200)  # while nothing runs
        if i % 7 == 0:
            org.then(sid, *WAITING, at=210)
            org.then(sid, *WORKING, at=220)  # flapped while down
    org.then("devin-x", *FINISHED, at=450)  # after the resume: ends the test's loop
    org.add("devin-new", (250, "new", None), (260, "running", "working"), tags=("nightly",))

    before: list[SessionEvent] = []
    async with make_client(clock, org) as client, \
            client.watch(["devin-x"], tags=["nightly"], forever=True) as watcher:
        async for event in watcher:
            before.append(event)
            if sum(state(e) == WAITING for e in before) == 64:
                break  # 20 WAITING events still queued: not "reported"
        saved = json.loads(json.dumps(watcher.checkpoint()))
    queued = {f"devin-t{i:03d}" for i in range(0, 250, 3)} - {
        e.session.session_id for e in before if state(e) == WAITING}
    assert len(queued) == 20
    assert saved["version"] == 1 and saved["org_id"] == ORG and saved["tags"] == ["nightly"]
    assert saved["follow_children"] is False and len(saved["sessions"]) == 251
    assert isinstance(saved["watermark"], int)
    assert all(saved["sessions"][sid][:2] == list(WORKING) for sid in queued)

    clock.now += 400  # nothing runs for a while; the org keeps changing
    after: list[SessionEvent] = []
    async with make_client(clock, org) as client:
        watcher = client.watch(resume=saved, forever=True)
        async for event in watcher:
            after.append(event)
            if event.session.session_id == "devin-x":
                break
        final = {sid: s.state for sid, s in watcher.sessions.items()}
    no_repeats(before + after)
    for i, sid in enumerate(tagged):
        want = WORKING if i % 7 == 0 else FINISHED if i % 5 == 0 else (
            WAITING if i % 3 == 0 else WORKING)
        assert final[sid] == want, sid
    per = by_session(after)
    for sid in tagged:  # one event per session whose state differs from saved
        assert len(per.get(sid, [])) == (final[sid] != tuple(saved["sessions"][sid][:2])), sid
    assert per["devin-new"] == [WORKING]  # created while down: reported from first sighting
    assert next(e for e in after if e.session.session_id == "devin-new").previous is None
    for e in after:  # previous is the checkpoint's state, rebuilt on today's session
        saved_state = saved["sessions"].get(e.session.session_id)
        if saved_state is not None and e.session.session_id != "devin-x":
            assert e.previous is not None
            assert [e.previous.status, e.previous.status_detail] == saved_state[:2]
            assert e.previous.updated_at == saved_state[2]
    assert per["devin-x"] == [FINISHED]


async def test_checkpoint_of_a_fresh_watcher_and_resume_round_trip() -> None:
    clock = Clock()
    org = Org(clock)
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a", "devin-b"], tags=["t"], follow_children=True)
        fresh = watcher.checkpoint()
        assert fresh == {"version": 1, "org_id": ORG, "watermark": None, "tags": ["t"],
                         "follow_children": True, "sessions": {"devin-a": None, "devin-b": None}}
        again = client.watch(resume=fresh).checkpoint()
    assert again == fresh
    assert org.log == []


def big_checkpoint(n: int) -> dict[str, Any]:
    details = ["working", "waiting_for_user", "finished", None]
    return {"version": 1, "org_id": ORG, "watermark": 1_764_288_000, "tags": ["nightly"],
            "follow_children": True,
            "sessions": {f"devin-{i:032x}": ["running" if i % 4 < 3 else "exit",
                                             details[i % 4], 1_764_288_000 + i]
                         for i in range(n)}}


async def test_ten_thousand_sessions_checkpoint_under_a_megabyte() -> None:
    clock = Clock()
    org = Org(clock)
    async with make_client(clock, org) as client:
        watcher = client.watch(resume=big_checkpoint(10_000))
        saved = watcher.checkpoint()
    size = len(json.dumps(saved).encode())
    assert saved == big_checkpoint(10_000) and len(watcher.watched) == 10_000
    assert size < 1_000_000, size
    assert org.log == []


def broken(**changes: Any) -> dict[str, Any]:
    data = big_checkpoint(2)
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(("checkpoint", "message"), [
    (broken(org_id="org-other"), "organization"),
    (broken(version=2), "version"),
    (broken(version=True), "version"),
    (broken(version=KeyError), "version"),
    (broken(watermark=-5), "watermark"),
    (broken(watermark="1764288000"), "watermark"),
    (broken(tags="nightly"), "tags"),
    (broken(follow_children="no"), "follow_children"),
    (broken(sessions=[]), "sessions"),
    (broken(sessions={"devin-a": ["running", "working"]}), "devin-a"),
    (broken(sessions={"devin-a": ["running", "working", "soon"]}), "devin-a"),
    (broken(sessions={"../etc": None}), "session id"),
    (broken(extra=1), "unknown"),
    ([1, 2], "checkpoint dict"),
    ("{}", "checkpoint dict"),
])
async def test_a_bad_checkpoint_is_a_value_error_before_any_request(
        checkpoint: Any, message: str) -> None:
    clock = Clock()
    org = Org(clock)
    async with make_client(clock, org) as client:
        with pytest.raises(ValueError, match=message):
            client.watch(resume=checkpoint)
    assert org.log == []


async def test_resume_with_other_tags_is_refused_the_same_tags_are_fine() -> None:
    clock = Clock()
    org = Org(clock)
    async with make_client(clock, org) as client:
        with pytest.raises(ValueError, match="same tags"):
            client.watch(resume=big_checkpoint(2), tags=["other"])
        watcher = client.watch(resume=big_checkpoint(2), tags=["nightly"])
        assert watcher.checkpoint()["tags"] == ["nightly"]
    assert org.log == []


async def test_a_session_gone_while_down_is_dropped_without_an_event() -> None:
    clock = Clock()
    org = Org(clock)
    org.add("devin-a", (0, "running", "working"))
    org.add("devin-b", (0, "running", "working"))
    async with make_client(clock, org) as client:
        watcher = client.watch(["devin-a", "devin-b"], forever=True)
        first = [await anext(watcher), await anext(watcher)]
        saved = watcher.checkpoint()
        await watcher.aclose()
    del org.stubs["devin-b"]
    org.then("devin-a", *FINISHED)
    async with make_client(clock, org) as client:
        watcher = client.watch(resume=saved)
        after = [e async for e in watcher]
    assert by_session(first) == {"devin-a": [WORKING], "devin-b": [WORKING]}
    assert by_session(after) == {"devin-a": [FINISHED]}
    assert after[0].previous is not None and after[0].previous.state == WORKING
    assert watcher.not_found == {"devin-b"}
