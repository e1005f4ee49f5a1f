"""The fake server's session activity: events, details, search, insights, replies, structured
output and the lagging list index (driven in process through `server.transport()`)."""

from __future__ import annotations

from typing import Any

import pytest

from devin_async.testing import FakeDevinServer, Step

from .fake_helpers import ManualClock, TransportApi


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> FakeDevinServer:
    return FakeDevinServer(clock=clock, seed=3)


@pytest.fixture
def api(server: FakeDevinServer) -> TransportApi:
    return TransportApi(server)


async def events_of(api: TransportApi, sid: str, **params: str) -> list[dict[str, Any]]:
    """Follow every page of the event list."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        reply = await api.call("GET", f"/sessions/{sid}/events",
                               params={**params, **({"after": after} if after else {})})
        assert reply.status == 200, reply
        items += reply.body["items"]
        if not reply.body["has_next_page"]:
            return items
        after = reply.body["end_cursor"]


# --- events --------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_events_follow_the_lifecycle(api: TransportApi, server: FakeDevinServer,
                                           clock: ManualClock, version: str) -> None:
    api = api.with_(version=version)  # type: ignore[assignment]
    sid = (await api.create("Fix the flaky test"))["session_id"]
    first = await events_of(api, sid)
    assert [e["event_type"] for e in first] == ["session_created", "user_message"]
    clock.advance(40)  # past the settle step (10..30 s after working starts)
    events = await events_of(api, sid)
    assert events[:2] == first
    kinds = {e["category"] for e in events}
    assert {"lifecycle", "message", "status", "shell", "file"} <= kinds
    statuses = [e["summary"] for e in events if e["category"] == "status"]
    assert statuses[:2] == ["Status: claimed", "Status: running (working)"]
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert server.events(sid) == events
    message_ids = {m["event_id"] for m in server.messages(sid)}
    assert message_ids <= {e["event_id"] for e in events if e["category"] == "message"}


async def test_one_seed_gives_the_same_timeline(clock: ManualClock) -> None:
    timelines = []
    for _ in range(2):
        server = FakeDevinServer(clock=clock, seed=11, epoch=1_700_000_000)
        api = TransportApi(server)
        sid = (await api.create("p"))["session_id"]
        server.advance(60)
        timelines.append([(e["event_type"], e["summary"], e["created_at"])
                          for e in await events_of(api, sid)])
    assert timelines[0] == timelines[1] and len(timelines[0]) > 5


async def test_event_pages_and_filters(api: TransportApi, server: FakeDevinServer,
                                       clock: ManualClock) -> None:
    sid = (await api.create("p"))["session_id"]
    clock.advance(40)
    every = await events_of(api, sid)
    assert await events_of(api, sid, first="2") == every
    cases: list[tuple[dict[str, str], Any]] = [
        ({"categories": "status"}, lambda e: e["category"] == "status"),
        ({"categories": "status,message"}, lambda e: e["category"] in ("status", "message")),
        ({"event_types": "user_message"}, lambda e: e["event_type"] == "user_message"),
        ({"direction": "incoming"}, lambda e: e["direction"] == "incoming"),
        ({"created_after": str(every[3]["created_at"])},
         lambda e: e["created_at"] >= every[3]["created_at"]),
        ({"created_before": str(every[3]["created_at"])},
         lambda e: e["created_at"] < every[3]["created_at"]),
    ]
    for params, keep in cases:
        got = await events_of(api, sid, **params)
        assert got == [e for e in every if keep(e)] and got, params
    repeated = await api.call("GET", f"/sessions/{sid}/events",
                              params=[("categories", "status"), ("categories", "message")])
    assert repeated.body["items"] == [e for e in every if e["category"] in ("status", "message")]
    assert repeated.body["total"] == len(repeated.body["items"])


async def test_scripted_events_and_scripts_plan_events(api: TransportApi, server: FakeDevinServer,
                                                       clock: ManualClock) -> None:
    sid = (await api.create("p"))["session_id"]
    doomed = server.add_event(sid, event_type="todo_added", category="todo", summary="x",
                              after=1)
    server.script([("running", "working", 0), ("running", "finished", 10)], session_id=sid)
    added = server.add_event(sid, event_type="browser_page_opened", category="browser",
                             summary="Opened https://docs.example", after=5,
                             contents={"url": "https://docs.example"})
    assert added["event_id"] not in {e["event_id"] for e in await events_of(api, sid)}
    clock.advance(10)
    events = await events_of(api, sid)
    assert added in events and doomed not in events  # a script cuts the planned future
    assert [e["summary"] for e in events if e["category"] == "status"][-2:] == [
        "Status: running (working)", "Status: running (finished)"]
    with pytest.raises(ValueError):
        server.add_event(sid, event_type="x", category="telepathy", summary="s")


@pytest.mark.parametrize(("params", "loc", "type_"), [
    ({"categories": "shell", "event_types": "user_message"}, ["query", "event_types"],
     "value_error"),
    ({"categories": "telepathy"}, ["query", "categories", 0], "enum"),
    ({"direction": "sideways"}, ["query", "direction"], "enum"),
    ({"first": "0"}, ["query", "first"], "greater_than_equal"),
    ({"after": "bm90IGEgY3Vyc29y"}, ["query", "after"], "value_error"),
    ({"created_after": "soon"}, ["query", "created_after"], "int_parsing"),
])
async def test_event_list_validation(api: TransportApi, params: dict[str, str], loc: list[Any],
                                     type_: str) -> None:
    sid = (await api.create("p"))["session_id"]
    for path in ("/events", "/events/search"):
        reply = await api.call("GET", f"/sessions/{sid}{path}", params={"query": "x", **params})
        assert reply.status == 422
        assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]


async def test_event_details_by_ids_or_offset_with_truncation(
    api: TransportApi, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create("p"))["session_id"]
    server.add_event(sid, event_type="shell_process_started", category="shell", summary="Ran",
                     contents={"command": "make", "output": "x" * 50, "nested": {"log": "y" * 40}})
    clock.advance(40)
    every = await events_of(api, sid)
    ids = [every[-1]["event_id"], "evt-unknown", every[0]["event_id"]]
    by_ids = await api.call("GET", f"/sessions/{sid}/events/details",
                            params={"event_ids": ",".join(ids)})
    assert by_ids.status == 200
    assert [i["event_id"] for i in by_ids.body["items"]] == [ids[0], ids[2]]
    window = await api.call("GET", f"/sessions/{sid}/events/details",
                            params={"offset": "1", "limit": "3", "max_content_length": "10"})
    items = window.body["items"]
    assert [i["event_id"] for i in items] == [e["event_id"] for e in every[1:4]]
    shell = next(i for i in window.body["items"] if i["event_type"] == "shell_process_started")
    assert shell["contents"]["output"] == "x" * 10
    assert shell["truncated_fields"] == ["output", "nested.log"]
    assert "summary" not in shell
    default = await api.call("GET", f"/sessions/{sid}/events/details")
    assert len(default.body["items"]) == min(20, len(every))


@pytest.mark.parametrize(("params", "loc", "type_"), [
    ({"event_ids": ",".join(f"e{i}" for i in range(21))}, ["query", "event_ids"], "too_long"),
    ({"limit": "51"}, ["query", "limit"], "less_than_equal"),
    ({"limit": "0"}, ["query", "limit"], "greater_than_equal"),
    ({"offset": "-1"}, ["query", "offset"], "greater_than_equal"),
    ({"event_ids": "e1", "offset": "0"}, ["query", "offset"], "value_error"),
    ({"max_content_length": "lots"}, ["query", "max_content_length"], "int_parsing"),
])
async def test_event_details_validation(api: TransportApi, params: dict[str, str],
                                        loc: list[Any], type_: str) -> None:
    sid = (await api.create("p"))["session_id"]
    reply = await api.call("GET", f"/sessions/{sid}/events/details", params=params)
    assert reply.status == 422
    assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]


async def test_event_search(api: TransportApi, server: FakeDevinServer,
                            clock: ManualClock) -> None:
    sid = (await api.create("Please fix the Flaky test in CI"))["session_id"]
    server.add_event(sid, event_type="shell_process_started", category="shell",
                     summary="Ran a command", contents={"output": "a" * 100 + "NEEDLE" + "b" * 100})
    clock.advance(1)
    found = await api.call("GET", f"/sessions/{sid}/events/search", params={"query": "flaky"})
    assert found.status == 200
    assert [i["event_type"] for i in found.body["items"]] == ["user_message"]
    assert "Flaky" in found.body["items"][0]["match_context"]
    needle = (await api.call("GET", f"/sessions/{sid}/events/search",
                             params={"query": "needle", "categories": "shell"})).body["items"]
    assert len(needle) == 1 and needle[0]["match_context"] == (
        "…" + "a" * 40 + "NEEDLE" + "b" * 40 + "…")
    none = await api.call("GET", f"/sessions/{sid}/events/search",
                          params={"query": "needle", "categories": "message"})
    assert none.body["items"] == [] and none.body["has_next_page"] is False
    missing = await api.call("GET", f"/sessions/{sid}/events/search")
    assert missing.status == 422 and missing.detail[0]["loc"] == ["query", "query"]


# --- insights ------------------------------------------------------------------------------------
async def test_insights_analysis_is_null_until_generated_and_ready(
    api: TransportApi, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create("Fix the login bug"))["session_id"]
    clock.advance(40)
    before = await api.call("GET", f"/sessions/{sid}/insights")
    assert before.status == 200 and before.body["analysis"] is None
    assert before.body["session_id"] == sid and before.body["session_size"] in (
        "xs", "s", "m", "l", "xl")
    assert before.body["num_user_messages"] == 1 and before.body["num_devin_messages"] == 1
    started = await api.call("POST", f"/sessions/{sid}/insights/generate")
    assert started.body == {"session_id": sid, "status": "started"}
    again = await api.call("POST", f"/sessions/{sid}/insights/generate")
    assert again.body == {"session_id": sid, "status": "already_exists"}
    clock.advance(4)
    assert (await api.call("GET", f"/sessions/{sid}/insights")).body["analysis"] is None
    clock.advance(1)
    ready = (await api.call("GET", f"/sessions/{sid}/insights")).body
    assert ready["analysis"]["classification"]["category"] == "bug_fixing"
    assert ready["analysis"]["suggested_prompt"]["original_prompt"] == "Fix the login bug"
    assert (await api.call("POST", f"/sessions/{sid}/insights/generate")).body[
        "status"] == "already_exists"


async def test_insights_list_pages_and_filters(api: TransportApi, server: FakeDevinServer) -> None:
    seeded = server.add_sessions(5, tags=lambda i: ["even"] if i % 2 == 0 else ["odd"])
    ids = sorted(seeded)  # one created_at: listed by id
    page = (await api.call("GET", "/sessions/insights", params={"first": "2"})).body
    assert [i["session_id"] for i in page["items"]] == ids[:2] and page["has_next_page"]
    rest = (await api.call("GET", "/sessions/insights",
                           params={"after": page["end_cursor"]})).body
    assert [i["session_id"] for i in rest["items"]] == ids[2:]
    even = (await api.call("GET", "/sessions/insights", params={"tags": "even"})).body
    assert [i["session_id"] for i in even["items"]] == sorted(seeded[0::2])
    assert all("num_devin_messages" in i and "analysis" in i for i in even["items"])
    ignored = await api.call("GET", "/sessions/insights", params={"is_archived": "maybe"})
    assert ignored.status == 200  # not a parameter of this endpoint


# --- replies and structured output ---------------------------------------------------------------
async def test_devin_replies_after_a_delay_and_replies_can_be_scripted(
    api: TransportApi, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create("p"))["session_id"]
    clock.advance(40)
    await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "Status?"})
    assert server.messages(sid)[-1]["message"] == "Status?"
    clock.advance(2)
    assert server.messages(sid)[-1] == {**server.messages(sid)[-1], "source": "devin",
                                        "message": "Got it: Status?"}
    server.script_reply(sid, "All green.", after=7)
    await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "CI?"})
    clock.advance(6.5)
    assert "All green." not in [m["message"] for m in server.messages(sid)]
    clock.advance(0.5)
    replies = [m["message"] for m in server.messages(sid) if m["source"] == "devin"]
    assert replies[-1] == "All green."


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.mark.parametrize(("generator", "hook", "expected"), [
    (None, None, None),
    (lambda schema: {"ok": schema["required"] == ["ok"]}, None, {"ok": True}),
    (lambda schema: {"ok": False}, {"ok": "set"}, {"ok": "set"}),
])
async def test_structured_output_appears_when_the_session_finishes(
    clock: ManualClock, generator: Any, hook: Any, expected: Any,
) -> None:
    server = FakeDevinServer(clock=clock, output_generator=generator)
    api = TransportApi(server)
    server.script([("running", "working", 0), ("running", "finished", 10)])
    sid = (await api.create("p", structured_output_schema=SCHEMA))["session_id"]
    if hook is not None:
        server.set_structured_output(sid, hook)
    clock.advance(9)
    assert (await api.get(sid))["structured_output"] is None
    clock.advance(1)
    assert (await api.get(sid))["structured_output"] == expected
    listed = (await api.call("GET", "/sessions")).body["items"][0]
    assert listed["structured_output"] == expected


async def test_a_session_without_schema_gets_no_generated_output(clock: ManualClock) -> None:
    server = FakeDevinServer(clock=clock, output_generator=lambda schema: {"never": True})
    api = TransportApi(server)
    server.script([Step("running", "finished", 1)])
    sid = (await api.create("p"))["session_id"]
    clock.advance(2)
    assert (await api.get(sid))["structured_output"] is None


# --- index lag -----------------------------------------------------------------------------------
async def test_the_list_index_lags_behind_writes(clock: ManualClock) -> None:
    server = FakeDevinServer(clock=clock, index_lag=5)
    api = TransportApi(server)
    sid = (await api.create("p", tags=["blue"]))["session_id"]
    assert (await api.get(sid))["session_id"] == sid  # get by id is immediate
    for path in ("/sessions", "/sessions/insights"):
        assert (await api.call("GET", path)).body["items"] == []
    clock.advance(5)
    listed = (await api.call("GET", "/sessions", params={"tags": "blue"})).body
    assert [s["session_id"] for s in listed["items"]] == [sid] and listed["total"] == 1
    assert [s["session_id"] for s in (await api.call("GET", "/sessions/insights")).body[
        "items"]] == [sid]
    assert listed["items"][0]["status"] == "new"  # as the index saw it 5 s ago
    assert (await api.get(sid))["status"] == "running"
    await api.call("PUT", f"/sessions/{sid}/tags", json_body={"tags": ["red"]})
    clock.advance(1)
    assert await api.list_ids({"tags": "blue"}) == [sid]
    assert await api.list_ids({"tags": "red"}) == []
    assert (await api.call("GET", "/sessions")).body["items"][0]["tags"] == ["blue"]
    clock.advance(5)
    assert await api.list_ids({"tags": "red"}) == [sid]
    assert await api.list_ids({"tags": "blue"}) == []
    server.index_lag = 0
    assert (await api.call("GET", "/sessions")).body["items"][0]["status"] == "running"
    with pytest.raises(ValueError):
        FakeDevinServer(index_lag=-1)


async def test_event_pages_stay_stable_while_the_session_moves_on(
    api: TransportApi, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create("p"))["session_id"]
    clock.advance(8)
    first = (await api.call("GET", f"/sessions/{sid}/events", params={"first": "3"})).body
    assert first["has_next_page"]
    clock.advance(40)
    await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "more"})
    clock.advance(3)
    rest = await events_of(api, sid, after=first["end_cursor"])
    assert first["items"] + rest == await events_of(api, sid)

