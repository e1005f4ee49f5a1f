"""Typed results through the client: `result()`, `run()` and `ask()`, on a MockTransport and
against FakeDevinServer."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import attrs
import pydantic
import pytest

from devin_async import (
    DevinClient,
    DevinError,
    HTTPRequest,
    Message,
    RunResult,
    SessionFailedError,
    SessionStatus,
    StructuredOutputError,
    WaitTimeoutError,
)
from devin_async.testing import FakeDevinServer

from .surface_support import (
    POLL,
    SID,
    FakeClock,
    Router,
    Timeline,
    body_of,
    make_client,
    message_json,
    path_of,
    session_json,
)


@attrs.frozen
class AttrsVerdict:
    ok: bool
    count: int


@dataclasses.dataclass(frozen=True)
class DataVerdict:
    ok: bool
    count: int


class PydanticVerdict(pydantic.BaseModel):
    ok: bool
    count: int


VERDICTS = [AttrsVerdict, DataVerdict, PydanticVerdict]
OUTPUT = {"ok": True, "count": 3}


def settling(states: list[dict[str, Any]]) -> Router:
    """GET session answers each of `states` in turn, then the last one forever."""
    answers = list(states)

    def get(_r: HTTPRequest, _m: re.Match[str]) -> Any:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return Router().add("GET", rf"/sessions/({SID})", get)


def done(output: Any = OUTPUT, status: str = "exit", detail: str | None = None,
         ) -> dict[str, Any]:
    return session_json(SID, status, detail, structured_output=output)


# --- result --------------------------------------------------------------------------------------
@pytest.mark.parametrize("output_type", VERDICTS)
async def test_result_structures_the_output(output_type: type[Any]) -> None:
    clock = FakeClock()
    client, transport = make_client(settling([session_json(), session_json(),
                                              done(status="running", detail="finished")]),
                                    clock)
    async with client:
        value = await client.sessions.result(SID, output_type)
    assert type(value) is output_type
    assert (value.ok, value.count) == (True, 3)
    assert len(transport.requests) == 3 and clock.sleeps  # it waited for the session to settle
    assert all(r.method == "GET" and path_of(r) == f"/sessions/{SID}"
               for r in transport.requests)


async def test_result_without_type_is_the_raw_dict() -> None:
    raw = {"ok": True, "count": 3, "extra": ["anything"]}
    client, _ = make_client(settling([done(raw)]))
    async with client:
        assert await client.sessions.result(SID) == raw


@pytest.mark.parametrize("output_type", VERDICTS)
@pytest.mark.parametrize(("raw", "caused"), [
    (None, False),
    ({"ok": "yes", "count": 3}, True),
    ({"ok": True}, True),
    ({"ok": True, "count": "3"}, True),
    ({"ok": True, "count": 3, "surprise": 1}, True),
])
async def test_result_refuses_missing_or_misfit_output(output_type: type[Any], raw: Any,
                                                       caused: bool) -> None:
    client, _ = make_client(settling([done(raw)]))
    async with client:
        with pytest.raises(StructuredOutputError) as info:
            await client.sessions.result(SID, output_type)
    error = info.value
    assert isinstance(error, DevinError)
    assert error.session.session_id == SID and error.session.status is SessionStatus.EXIT
    assert error.raw == raw
    assert (error.__cause__ is not None) is caused
    assert SID in str(error)


async def test_result_times_out_with_the_last_session() -> None:
    clock = FakeClock()
    client, _ = make_client(settling([session_json()]), clock)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.result(SID, AttrsVerdict, timeout=10)
    assert isinstance(info.value, TimeoutError)
    assert info.value.last_session is not None
    assert info.value.last_session.status is SessionStatus.RUNNING
    assert clock.elapsed <= 10


class NotAModel:
    pass


@pytest.mark.parametrize(("output_type", "kwargs"), [
    (NotAModel, {}), (int, {}), (AttrsVerdict, {"timeout": 0}), (AttrsVerdict, {"timeout": -1}),
    (AttrsVerdict, {"timeout": True}), (None, {"timeout": float("nan")}),
])
async def test_result_bad_arguments_raise_before_any_request(output_type: Any,
                                                             kwargs: dict[str, Any]) -> None:
    client, transport = make_client(settling([done()]))
    async with client:
        with pytest.raises(ValueError):
            await client.sessions.result(SID, output_type, **kwargs)
    assert transport.requests == []


# --- run -----------------------------------------------------------------------------------------
def run_router(states: list[dict[str, Any]]) -> Router:
    router = settling(states)
    router.add("POST", "/sessions", lambda r, m: session_json(
        SID, "new", None, tags=body_of(r).get("tags", [])))
    router.add("GET", "/sessions", lambda r, m: {"items": [], "end_cursor": None,
                                                 "has_next_page": False})
    return router


def creates(transport: Any) -> list[dict[str, Any]]:
    return [body_of(r) for r in transport.requests
            if r.method == "POST" and path_of(r) == "/sessions"]


@pytest.mark.parametrize("output_type", VERDICTS)
async def test_run_sends_the_derived_schema_and_returns_a_run_result(output_type: type[Any],
                                                                     ) -> None:
    client, transport = make_client(run_router([session_json(), done()]))
    async with client:
        got = await client.sessions.run("Count the tests", output_type=output_type, tags=["t"])
    assert isinstance(got, RunResult)
    assert got.session.session_id == SID and got.session.status is SessionStatus.EXIT
    assert type(got.output) is output_type and got.output.count == 3
    (body,) = creates(transport)
    assert body["prompt"] == "Count the tests"
    assert "t" in body["tags"]
    schema = body["structured_output_schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"ok", "count"}
    assert set(schema.get("required", [])) == {"ok", "count"}


async def test_run_keeps_an_explicit_schema() -> None:
    explicit = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                  "count": {"type": "integer"}}}
    client, transport = make_client(run_router([done()]))
    async with client:
        got = await client.sessions.run("p", output_type=DataVerdict,
                                        structured_output_schema=explicit)
    assert got.output == DataVerdict(ok=True, count=3)
    assert creates(transport)[0]["structured_output_schema"] == explicit


async def test_run_without_output_type_returns_the_raw_output() -> None:
    client, transport = make_client(run_router([session_json(), done({"any": 1})]))
    async with client:
        got = await client.sessions.run("p")
    assert got.output == {"any": 1}
    assert "structured_output_schema" not in creates(transport)[0]


async def test_run_until_is_honoured() -> None:
    states = [session_json(), session_json(status="running", detail="waiting_for_user"),
              done(status="running", detail="finished")]
    client, transport = make_client(run_router(states))
    async with client:
        got = await client.sessions.run(
            "p", until=lambda s: s.status_detail is not None
            and s.status_detail.value == "finished", output_type=AttrsVerdict)
    assert got.output == AttrsVerdict(True, 3)
    assert sum(r.method == "GET" and path_of(r) == f"/sessions/{SID}"
               for r in transport.requests) == 3


async def test_run_ending_in_error_names_the_session() -> None:
    client, _ = make_client(run_router([session_json(), done(None, "error", "error")]))
    async with client:
        with pytest.raises(SessionFailedError) as info:
            await client.sessions.run("p", output_type=AttrsVerdict)
    assert isinstance(info.value, DevinError)
    assert info.value.session_id == SID
    assert info.value.session.status is SessionStatus.ERROR
    assert SID in str(info.value)


async def test_run_settled_without_output_is_a_structured_output_error() -> None:
    client, _ = make_client(run_router([done(None, "running", "finished")]))
    async with client:
        with pytest.raises(StructuredOutputError) as info:
            await client.sessions.run("p", output_type=AttrsVerdict)
    assert info.value.raw is None and info.value.session.session_id == SID


@pytest.mark.parametrize(("kwargs"), [
    {"output_type": NotAModel}, {"output_type": int}, {"output_type": AttrsVerdict, "timeout": 0},
    {"output_type": AttrsVerdict, "nonsense_field": 1},
])
async def test_run_bad_arguments_raise_before_any_request(kwargs: dict[str, Any]) -> None:
    client, transport = make_client(run_router([done()]))
    async with client:
        with pytest.raises((ValueError, TypeError)) as info:
            await client.sessions.run("p", **kwargs)
    assert transport.requests == []
    if "nonsense_field" not in kwargs:
        assert info.type is ValueError


async def test_cancelling_run_mid_wait_leaves_nothing_running() -> None:
    clock = FakeClock()
    client, transport = make_client(run_router([session_json()]), clock)
    async with client:
        task = asyncio.create_task(client.sessions.run("p", output_type=AttrsVerdict))
        await transport.handler.after(5).wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sent = len(transport.requests)
        for _ in range(3):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert len(transport.requests) == sent


# --- ask -----------------------------------------------------------------------------------------
def conversation(clock: FakeClock, *, reply_after: float | None, end: float = 10_000,
                 ) -> tuple[Router, Timeline]:
    """A session with an old exchange; a user message gets Devin's reply `reply_after` s later."""
    timeline = Timeline(clock, [(0, message_json(1, source="user", text="hello")),
                                (0, message_json(2, text="old reply"))], end=end)
    counter = {"n": 10}

    def send(request: HTTPRequest, _m: re.Match[str]) -> Any:
        now = clock.elapsed
        counter["n"] += 1
        timeline.items.append((now, message_json(counter["n"], source="user",
                                                 text=body_of(request)["message"], at=int(now))))
        if reply_after is not None:
            timeline.items.append((now + reply_after, message_json(
                counter["n"] + 100, text="new reply", at=int(now + reply_after))))
        return session_json()

    router = Router().add("GET", rf"/sessions/({SID})/messages", timeline.list_page)
    router.add("POST", rf"/sessions/({SID})/messages", send)
    router.add("GET", rf"/sessions/({SID})", timeline.session)
    return router, timeline


async def test_ask_returns_the_first_devin_message_after_ours() -> None:
    clock = FakeClock()
    router, _ = conversation(clock, reply_after=3)
    client, transport = make_client(router, clock)
    async with client:
        clock.t += 5
        answer = await client.sessions.ask(SID, "How many tests?", timeout=60)
    assert isinstance(answer, Message)
    assert (answer.message, answer.source) == ("new reply", "devin")  # not the old reply
    posts = [r for r in transport.requests if r.method == "POST"]
    assert [body_of(r)["message"] for r in posts] == ["How many tests?"]
    assert clock.elapsed <= 5 + 3 + POLL.max + 1


async def test_ask_times_out_with_the_last_session() -> None:
    clock = FakeClock()
    router, _ = conversation(clock, reply_after=None)
    client, _ = make_client(router, clock)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.ask(SID, "Anyone?", timeout=7)
    assert isinstance(info.value, TimeoutError)
    assert info.value.last_session is not None
    assert info.value.last_session.session_id == SID
    assert 7 <= clock.elapsed <= 7.5


async def test_ask_on_a_session_that_ends_without_reply() -> None:
    clock = FakeClock()
    router, _ = conversation(clock, reply_after=None, end=6)
    client, _ = make_client(router, clock)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.ask(SID, "Anyone?")
    assert info.value.last_session is not None
    assert info.value.last_session.status is SessionStatus.EXIT


@pytest.mark.parametrize("timeout", [0, -3, True, "5"])
async def test_ask_bad_timeout_raises_before_any_request(timeout: Any) -> None:
    clock = FakeClock()
    router, _ = conversation(clock, reply_after=1)
    client, transport = make_client(router, clock)
    async with client:
        with pytest.raises(ValueError):
            await client.sessions.ask(SID, "q", timeout=timeout)
    assert transport.requests == []


# --- against FakeDevinServer ---------------------------------------------------------------------
def in_process(server: FakeDevinServer, clock: FakeClock) -> DevinClient:
    return DevinClient(api_key=server.api_key, org_id=server.org_id,
                       base_url="http://fake.invalid", allow_insecure_http=True,
                       transport=server.transport(), clock=clock, sleep=clock.sleep,
                       poll=POLL, tracing=False)


@pytest.mark.parametrize("output_type", VERDICTS)
async def test_fake_server_run_and_result_in_process(output_type: type[Any]) -> None:
    clock = FakeClock()
    schemas: list[dict[str, Any]] = []

    def generate(schema: dict[str, Any]) -> Any:
        schemas.append(schema)
        return {"ok": True, "count": 41}

    server = FakeDevinServer(clock=clock, seed=4, output_generator=generate)
    server.script([("running", "working", 0), ("running", "finished", 6)])
    async with in_process(server, clock) as client:
        got = await client.sessions.run("Count", output_type=output_type)
        again = await client.sessions.result(got.session.session_id, output_type)
    assert type(got.output) is output_type and got.output.count == 41
    assert again == got.output
    sent = server.create_request(got.session.session_id)["structured_output_schema"]
    assert schemas == [sent] and set(sent["properties"]) == {"ok", "count"}


async def test_fake_server_run_ending_in_error() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=4)
    server.script([("running", "working", 0), ("error", "error", 4)])
    async with in_process(server, clock) as client:
        with pytest.raises(SessionFailedError) as info:
            await client.sessions.run("Break", output_type=AttrsVerdict)
    assert info.value.session_id in server.sessions


async def test_fake_server_ask_in_process() -> None:
    clock = FakeClock()
    server = FakeDevinServer(clock=clock, seed=6)
    async with in_process(server, clock) as client:
        sid = (await client.sessions.create("Start")).session_id
        server.script_reply(sid, "the old answer", after=1)
        await client.sessions.send_message(sid, "first question")
        server.advance(30)
        assert "the old answer" in [m["message"] for m in server.messages(sid)]
        server.script_reply(sid, "the new answer", after=4)
        answer = await client.sessions.ask(sid, "second question", timeout=120)
    assert (answer.source, answer.message) == ("devin", "the new answer")


async def test_fake_server_run_over_a_loopback_socket() -> None:
    server = FakeDevinServer(seed=9, time_scale=200.0,
                             output_generator=lambda schema: {"ok": False, "count": 0})
    server.script([("running", "working", 0), ("running", "finished", 2)])
    async with server, DevinClient(api_key=server.api_key, org_id=server.org_id,
                                   base_url=server.url, tracing=False,
                                   poll=POLL.__class__(initial=0.01, max=0.05,
                                                       jitter=0.0)) as client:
        got = await client.sessions.run("Count", output_type=PydanticVerdict, timeout=5)
    assert got.output == PydanticVerdict(ok=False, count=0)


async def test_run_times_out_with_the_last_session() -> None:
    clock = FakeClock()
    client, transport = make_client(run_router([session_json()]), clock)
    async with client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.sessions.run("p", output_type=AttrsVerdict, timeout=9)
    assert isinstance(info.value, TimeoutError)
    assert info.value.last_session is not None and info.value.last_session.session_id == SID
    assert clock.elapsed <= 9 and len(creates(transport)) == 1


async def test_ask_skips_a_devin_message_sent_just_before_ours() -> None:
    # Devin posted a progress note after ask() listed the conversation but before our message
    # reached the server: it is not a reply to us.
    clock = FakeClock()
    timeline = Timeline(clock, [(0, message_json(1, text="old reply"))], end=10_000)

    def send(request: HTTPRequest, _m: re.Match[str]) -> Any:
        now = clock.elapsed
        timeline.items.append((now, message_json(50, text="progress note", at=int(now) - 1)))
        timeline.items.append((now, message_json(51, source="user", at=int(now),
                                                 text=body_of(request)["message"])))
        timeline.items.append((now + 2, message_json(52, text="the reply", at=int(now) + 2)))
        return session_json()

    router = Router().add("GET", rf"/sessions/({SID})/messages", timeline.list_page)
    router.add("POST", rf"/sessions/({SID})/messages", send)
    router.add("GET", rf"/sessions/({SID})", timeline.session)
    client, _ = make_client(router, clock)
    async with client:
        clock.t += 10
        answer = await client.sessions.ask(SID, "Status?", timeout=30)
    assert answer.message == "the reply"
