"""The fake Devin server, driven over a real socket with a plain aiohttp client (no SDK client)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devin_async.testing import ALL_PERMISSIONS, FakeDevinServer, Permission, Step
from devin_async.testing._query import ListQuery

from .fake_helpers import Api, ManualClock

MANAGE = Permission.MANAGE_ORG_SESSIONS
VIEW = Permission.VIEW_ORG_SESSIONS
EXPERT = Permission.USE_DEVIN_EXPERT
IMPERSONATE = Permission.IMPERSONATE_ORG_SESSIONS


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(clock=clock, seed=1) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession, server: FakeDevinServer) -> Api:
    return Api(http, server)


# (endpoint, method, path with {sid}, json body or None, permission it needs)
ENDPOINTS: list[tuple[str, str, str, Any, Permission]] = [
    ("create", "POST", "/sessions", {"prompt": "hi"}, MANAGE),
    ("list", "GET", "/sessions", None, VIEW),
    ("get", "GET", "/sessions/{sid}", None, VIEW),
    ("terminate", "DELETE", "/sessions/{sid}", None, MANAGE),
    ("archive", "POST", "/sessions/{sid}/archive", None, MANAGE),
    ("send_message", "POST", "/sessions/{sid}/messages", {"message": "hi"}, MANAGE),
    ("messages", "GET", "/sessions/{sid}/messages", None, VIEW),
    ("get_tags", "GET", "/sessions/{sid}/tags", None, VIEW),
    ("add_tags", "POST", "/sessions/{sid}/tags", {"tags": ["a"]}, MANAGE),
    ("replace_tags", "PUT", "/sessions/{sid}/tags", {"tags": ["a"]}, MANAGE),
    ("attachments", "GET", "/sessions/{sid}/attachments", None, VIEW),
]
SESSION_ENDPOINTS = [e for e in ENDPOINTS if "{sid}" in e[2]]


async def call_endpoint(api: Api, case: tuple[str, str, str, Any, Permission], sid: str,
                        **kwargs: Any) -> Any:
    _, method, path, body, _ = case
    if body is not None:
        kwargs.setdefault("json_body", body)
    return await api.call(method, path.format(sid=sid), **kwargs)


# --- every endpoint, both versions ---------------------------------------------------------------
@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_every_endpoint_answers_under_both_versions(
    api: Api, server: FakeDevinServer, version: str,
) -> None:
    api = api.with_(version=version)
    created = await api.create("Fix the flaky test", tags=["ci"],
                               attachment_urls=["https://files.example/log.txt"])
    sid = created["session_id"]
    assert sid.startswith("devin-")
    assert created["url"] == f"https://app.devin.ai/sessions/{sid.removeprefix('devin-')}"
    assert created["status"] == "new" and created["status_detail"] is None
    assert created["org_id"] == server.org_id and created["tags"] == ["ci"]
    assert isinstance(created["created_at"], int) and created["created_at"] == created["updated_at"]
    assert created["pull_requests"] == [] and created["acus_consumed"] == 0

    got = await api.get(sid)
    assert got["session_id"] == sid and got["status"] == "new"
    page = (await api.call("GET", "/sessions")).body
    assert [s["session_id"] for s in page["items"]] == [sid] and page["total"] == 1
    messages = (await api.call("GET", f"/sessions/{sid}/messages")).body
    assert [(m["source"], m["message"]) for m in messages["items"]] == [
        ("user", "Fix the flaky test")]
    sent = await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "more"})
    assert sent.status == 200 and sent.body["session_id"] == sid
    assert (await api.call("GET", f"/sessions/{sid}/tags")).body == {"tags": ["ci"]}
    assert (await api.call("POST", f"/sessions/{sid}/tags", json_body={"tags": ["x"]})).body == {
        "tags": ["ci", "x"]}
    assert (await api.call("PUT", f"/sessions/{sid}/tags", json_body={"tags": ["y"]})).body == {
        "tags": ["y"]}
    attachments = (await api.call("GET", f"/sessions/{sid}/attachments")).body
    assert isinstance(attachments, list)
    assert [(a["name"], a["source"], a["url"]) for a in attachments] == [
        ("log.txt", "user", "https://files.example/log.txt")]
    archived = await api.call("POST", f"/sessions/{sid}/archive")
    assert archived.body["is_archived"] is True
    terminated = await api.call("DELETE", f"/sessions/{sid}")
    assert terminated.body["status"] == "exit"
    assert {r.endpoint for r in server.requests} == {e[0] for e in ENDPOINTS}


async def test_status_detail_and_structured_output_only_on_get_and_list(
    api: Api, server: FakeDevinServer,
) -> None:
    sid = (await api.create())["session_id"]
    server.update(sid, structured_output={"answer": 42})
    server.set_status(sid, "running", "working")
    get = await api.get(sid)
    assert get["status_detail"] == "working" and get["structured_output"] == {"answer": 42}
    listed = (await api.call("GET", "/sessions")).body["items"][0]
    assert listed["status_detail"] == "working" and listed["structured_output"] == {"answer": 42}
    for reply in (await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "m"}),
                  await api.call("DELETE", f"/sessions/{sid}")):
        assert reply.body["status_detail"] is None and reply.body["structured_output"] is None


# --- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
@pytest.mark.parametrize(("authorization", "detail"), [
    (None, "Not authenticated"),
    ("Bearer cog_not_a_known_token", "Invalid API key"),
    ("Basic dXNlcjpwYXNz", "Not authenticated"),
])
async def test_missing_or_unknown_token_is_401(
    api: Api, server: FakeDevinServer, case: Any, authorization: str | None, detail: str,
) -> None:
    sid = server.add_sessions(1)[0]
    headers = {} if authorization is None else {"Authorization": authorization}
    _, method, path, body, _ = case
    async with api.http.request(method, api.base + path.format(sid=sid), json=body,
                                headers=headers) as response:
        assert response.status == 401
        assert await response.json() == {"detail": detail}
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("case", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
async def test_token_without_the_permission_is_403_naming_it(
    api: Api, server: FakeDevinServer, case: Any,
) -> None:
    sid = server.add_sessions(1)[0]
    needed = case[4]
    token = server.add_token(permissions=ALL_PERMISSIONS - {needed})
    reply = await call_endpoint(api, case, sid, token=token)
    assert reply.status == 403
    assert needed.value in reply.detail
    allowed = await call_endpoint(api, case, sid, token=server.add_token(permissions=[needed]))
    assert allowed.status == 200


@pytest.mark.parametrize(("path", "body", "permission"), [
    ("/sessions", {"prompt": "p", "advanced_mode": "create"}, EXPERT),
    ("/sessions", {"prompt": "p", "create_as_user_id": "user-1"}, IMPERSONATE),
    ("/sessions/{sid}/messages", {"message": "m", "message_as_user_id": "user-1"}, IMPERSONATE),
])
async def test_body_dependent_permissions(
    api: Api, server: FakeDevinServer, path: str, body: dict[str, Any], permission: Permission,
) -> None:
    sid = server.add_sessions(1)[0]
    count = server.session_count
    denied = await api.call("POST", path.format(sid=sid), json_body=body,
                            token=server.add_token(permissions=[MANAGE, VIEW]))
    assert denied.status == 403 and permission.value in denied.detail
    assert server.session_count == count
    allowed = await api.call("POST", path.format(sid=sid), json_body=body,
                             token=server.add_token(permissions=[MANAGE, permission]))
    assert allowed.status == 200


async def test_impersonated_create_sets_user_id_and_service_user(api: Api) -> None:
    session = await api.create(create_as_user_id="user-42")
    assert session["user_id"] == "user-42"
    assert session["service_user_id"].startswith("service-user-")
    assert (await api.create())["user_id"] is None


async def test_revoked_token_is_401(api: Api, server: FakeDevinServer) -> None:
    token = server.add_token("cog_temporary_token_1234")
    assert (await api.call("GET", "/sessions", token=token)).status == 200
    server.revoke_token(token)
    assert (await api.call("GET", "/sessions", token=token)).status == 401


def test_add_token_rejects_unknown_permissions() -> None:
    with pytest.raises(ValueError, match="unknown permissions"):
        FakeDevinServer().add_token(permissions=["FlyOrgSessions"])


# --- 404 / 405 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
async def test_unknown_org_is_404(api: Api, server: FakeDevinServer, case: Any) -> None:
    sid = server.add_sessions(1)[0]
    base = f"{server.url}/v3beta1/organizations/org-someone-else"
    reply = await call_endpoint(api, case, sid, base=base)
    assert reply.status == 404 and "org-someone-else" in reply.detail


@pytest.mark.parametrize("case", SESSION_ENDPOINTS, ids=[e[0] for e in SESSION_ENDPOINTS])
async def test_unknown_session_is_404(api: Api, case: Any) -> None:
    reply = await call_endpoint(api, case, "devin-0000")
    assert reply.status == 404 and reply.body == {"detail": "Session devin-0000 not found"}


async def test_unknown_route_is_404_and_wrong_method_405(api: Api) -> None:
    nowhere = await api.call("GET", "/nowhere", base=api.server.url)
    assert nowhere.status == 404 and nowhere.body == {"detail": "Not Found"}
    wrong = await api.call("PATCH", "/sessions")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, POST"


# --- 422 -----------------------------------------------------------------------------------------
TOO_MANY_TAGS = [f"t{i}" for i in range(51)]
CREATE_422: list[tuple[Any, list[Any], str]] = [
    ({}, ["body", "prompt"], "missing"),
    ({"prompt": 5}, ["body", "prompt"], "string_type"),
    ({"prompt": ""}, ["body", "prompt"], "string_too_short"),
    ({"prompt": "p", "tags": "a"}, ["body", "tags"], "list_type"),
    ({"prompt": "p", "tags": ["a", 1]}, ["body", "tags", 1], "string_type"),
    ({"prompt": "p", "repos": [None]}, ["body", "repos", 0], "string_type"),
    ({"prompt": "p", "bypass_approval": "yes"}, ["body", "bypass_approval"], "bool_type"),
    ({"prompt": "p", "max_acu_limit": "10"}, ["body", "max_acu_limit"], "int_type"),
    ({"prompt": "p", "max_acu_limit": True}, ["body", "max_acu_limit"], "int_type"),
    ({"prompt": "p", "max_acu_limit": 0}, ["body", "max_acu_limit"], "greater_than"),
    ({"prompt": "p", "title": 7}, ["body", "title"], "string_type"),
    ({"prompt": "p", "advanced_mode": "turbo"}, ["body", "advanced_mode"], "enum"),
    ({"prompt": "p", "devin_mode": 3}, ["body", "devin_mode"], "string_type"),
    ({"prompt": "p", "max_acu_limit": 1.5}, ["body", "max_acu_limit"], "int_from_float"),
    ({"prompt": "p", "attachment_urls": "https://x.example/a"}, ["body", "attachment_urls"],
     "list_type"),
    ({"prompt": "p", "attachment_urls": [""]}, ["body", "attachment_urls", 0],
     "string_too_short"),
    ({"prompt": "p", "attachment_urls": ["https://x.example/" + "a" * 2066]},
     ["body", "attachment_urls", 0], "string_too_long"),
    ({"prompt": "p", "attachment_urls": ["not a url"]}, ["body", "attachment_urls", 0],
     "url_parsing"),
    ({"prompt": "p", "session_secrets": [{"key": "", "value": "v"}]},
     ["body", "session_secrets", 0, "key"], "string_too_short"),
    ({"prompt": "p", "session_secrets": [{"key": "k" * 257, "value": "v"}]},
     ["body", "session_secrets", 0, "key"], "string_too_long"),
    ({"prompt": "p", "session_secrets": [{"key": "K", "value": "v" * 65537}]},
     ["body", "session_secrets", 0, "value"], "string_too_long"),
    ({"prompt": "p", "session_secrets": [{"key": "K", "value": "v", "sensitive": "no"}]},
     ["body", "session_secrets", 0, "sensitive"], "bool_type"),
    ({"prompt": "p", "session_secrets": {"K": "v"}}, ["body", "session_secrets"], "list_type"),
    ({"prompt": "p", "structured_output_schema": {"$ref": "https://x.example/s.json"}},
     ["body", "structured_output_schema"], "value_error"),
    ({"prompt": "p", "structured_output_schema": {"description": "x" * 65536}},
     ["body", "structured_output_schema"], "value_error"),
    ({"prompt": "p", "advanced_mode": "analyze"}, ["body", "session_links"], "value_error"),
    ({"prompt": "p", "advanced_mode": "analyze", "session_links": []},
     ["body", "session_links"], "value_error"),
    ({"prompt": "p", "advanced_mode": "improve"}, ["body", "child_playbook_id"], "value_error"),
    ({"prompt": "p", "advanced_mode": "batch"}, ["body", "child_playbook_id"], "value_error"),
    ({"prompt": "p", "tags": TOO_MANY_TAGS}, ["body", "tags"], "too_long"),
    ({"prompt": "p", "structured_output_schema": []}, ["body", "structured_output_schema"],
     "dict_type"),
    ({"prompt": "p", "session_secrets": [{"key": "K"}]}, ["body", "session_secrets", 0, "value"],
     "missing"),
    (["prompt"], ["body"], "model_attributes_type"),
]


@pytest.mark.parametrize(("body", "loc", "type_"), CREATE_422)
async def test_create_validation_is_422_like_fastapi(
    api: Api, server: FakeDevinServer, body: Any, loc: list[Any], type_: str,
) -> None:
    reply = await api.call("POST", "/sessions", json_body=body)
    assert reply.status == 422
    assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]
    assert all(isinstance(e["msg"], str) and e["msg"] for e in reply.detail)
    assert server.session_count == 0


@pytest.mark.parametrize(("raw", "loc", "type_"), [
    (b'{"prompt": ', ["body", 11], "json_invalid"),
    (b"not json", ["body", 0], "json_invalid"),
    (b"", ["body"], "missing"),
])
async def test_broken_json_body_is_422(api: Api, raw: bytes, loc: list[Any], type_: str) -> None:
    reply = await api.call("POST", "/sessions", data=raw)
    assert reply.status == 422
    assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]


async def test_every_error_is_reported_at_once(api: Api) -> None:
    reply = await api.call("POST", "/sessions", json_body={"prompt": 1, "tags": "x", "title": 2})
    assert {tuple(e["loc"]) for e in reply.detail} == {
        ("body", "prompt"), ("body", "tags"), ("body", "title")}


async def test_nulls_and_unknown_fields_are_accepted_and_recorded(
    api: Api, server: FakeDevinServer,
) -> None:
    body: dict[str, Any] = {"prompt": "p", "tags": None, "title": None, "advanced_mode": None,
            "brand_new_field": {"nested": [1, 2]}, "devin_mode": "fast"}
    session = await api.create(**{k: v for k, v in body.items() if k != "prompt"})
    assert server.create_request(session["session_id"]) == {**body, "prompt": "Do the thing"}
    assert server.requests[-1].json["brand_new_field"] == {"nested": [1, 2]}


@pytest.mark.parametrize(("method", "path", "body", "loc", "type_"), [
    ("POST", "/messages", {}, ["body", "message"], "missing"),
    ("POST", "/messages", {"message": 3}, ["body", "message"], "string_type"),
    ("POST", "/messages", {"message": "m", "message_as_user_id": 1},
     ["body", "message_as_user_id"], "string_type"),
    ("POST", "/tags", {}, ["body", "tags"], "missing"),
    ("POST", "/tags", {"tags": "a"}, ["body", "tags"], "list_type"),
    ("PUT", "/tags", {"tags": [1]}, ["body", "tags", 0], "string_type"),
    ("PUT", "/tags", {"tags": TOO_MANY_TAGS}, ["body", "tags"], "too_long"),
    ("POST", "/tags", {"tags": TOO_MANY_TAGS}, ["body", "tags"], "too_long"),
])
async def test_message_and_tag_bodies_are_validated(
    api: Api, server: FakeDevinServer, method: str, path: str, body: Any, loc: list[Any],
    type_: str,
) -> None:
    sid = server.add_sessions(1)[0]
    reply = await api.call(method, f"/sessions/{sid}{path}", json_body=body)
    assert reply.status == 422
    assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]


@pytest.mark.parametrize(("path", "params", "loc", "type_"), [
    ("/sessions", {"first": "0"}, ["query", "first"], "greater_than_equal"),
    ("/sessions", {"first": "201"}, ["query", "first"], "less_than_equal"),
    ("/sessions", {"first": "ten"}, ["query", "first"], "int_parsing"),
    ("/sessions", {"created_after": "yesterday"}, ["query", "created_after"], "int_parsing"),
    ("/sessions", {"updated_before": "1.5"}, ["query", "updated_before"], "int_parsing"),
    ("/sessions", {"is_archived": "maybe"}, ["query", "is_archived"], "bool_parsing"),
    ("/sessions", {"origins": "api,carrier_pigeon"}, ["query", "origins", 1], "enum"),
    ("/sessions", {"category": "vibes"}, ["query", "category"], "enum"),
    ("/sessions", {"after": "%%%"}, ["query", "after"], "value_error"),
    ("/sessions", {"after": "bm90IGEgY3Vyc29y"}, ["query", "after"], "value_error"),
    ("/sessions/{sid}/messages", {"first": "0"}, ["query", "first"], "greater_than_equal"),
    ("/sessions/{sid}/messages", {"after": "W10"}, ["query", "after"], "value_error"),
])
async def test_query_parameters_are_validated(
    api: Api, server: FakeDevinServer, path: str, params: dict[str, str], loc: list[Any],
    type_: str,
) -> None:
    sid = server.add_sessions(1)[0]
    reply = await api.call("GET", path.format(sid=sid), params=params)
    assert reply.status == 422
    assert [(e["loc"], e["type"]) for e in reply.detail] == [(loc, type_)]


async def test_terminate_archive_flag_is_validated(api: Api, server: FakeDevinServer) -> None:
    sid = server.add_sessions(1)[0]
    reply = await api.call("DELETE", f"/sessions/{sid}", params={"archive": "perhaps"})
    assert reply.status == 422 and reply.detail[0]["loc"] == ["query", "archive"]
    assert server.session(sid)["status"] != "exit"


# --- pagination ----------------------------------------------------------------------------------
async def test_list_follows_cursors_in_created_then_id_order(
    api: Api, server: FakeDevinServer,
) -> None:
    early = server.add_sessions(120, created_at=server.now - 100)
    late = server.add_sessions(130)
    pages = []
    after = None
    while True:
        params = {"first": "100", **({"after": after} if after else {})}
        page = (await api.call("GET", "/sessions", params=params)).body
        pages.append(page)
        if not page["has_next_page"]:
            break
        after = page["end_cursor"]
    assert [len(p["items"]) for p in pages] == [100, 100, 50]
    assert {p["total"] for p in pages} == {250}
    assert pages[-1]["end_cursor"] is None and all(p["end_cursor"] for p in pages[:-1])
    ids = [s["session_id"] for p in pages for s in p["items"]]
    assert ids == sorted(early) + sorted(late)


async def test_default_and_maximum_page_sizes(api: Api, server: FakeDevinServer) -> None:
    server.add_sessions(230)
    assert len((await api.call("GET", "/sessions")).body["items"]) == 100
    assert len((await api.call("GET", "/sessions", params={"first": "200"})).body["items"]) == 200


async def test_pagination_is_stable_under_concurrent_inserts(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    existing = server.add_sessions(30)
    first = (await api.call("GET", "/sessions", params={"first": "10"})).body
    clock.advance(2)
    added = [(await api.create(f"new {i}"))["session_id"] for i in range(5)]
    rest = await api.list_ids({"first": "10", "after": first["end_cursor"]})
    seen = [s["session_id"] for s in first["items"]] + rest
    assert seen == sorted(existing) + sorted(added)


async def test_messages_are_paginated_oldest_first(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create("first"))["session_id"]
    for i in range(4):
        clock.advance(1)
        server.script_reply(sid, f"r{i}", after=0.5)
        await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": f"m{i}"})
    texts, after, pages = [], None, 0
    while True:
        params = {"first": "2", **({"after": after} if after else {})}
        page = (await api.call("GET", f"/sessions/{sid}/messages", params=params)).body
        pages += 1
        texts += [m["message"] for m in page["items"]]
        assert page["total"] == 8  # the last reply is half a second in the future
        if not page["has_next_page"]:
            break
        after = page["end_cursor"]
    assert pages == 4 and texts == ["first", "m0", "r0", "m1", "r1", "m2", "r2", "m3"]


# --- filters -------------------------------------------------------------------------------------
T0 = 1_700_000_000
SEED_FIELDS: dict[str, Any] = {
    "created_at": lambda i: T0 + 10 * i,
    "updated_at": lambda i: T0 + 10 * i + 5,
    "tags": lambda i: [["red"], ["red", "blue"], ["blue"], [], ["red", "blue", "green"], ["x"]][i],
    "playbook_id": lambda i: "pb-1" if i < 2 else None,
    "origin": lambda i: ["api", "slack", "webapp", "api", "cli", "api"][i],
    "user_id": lambda i: f"user-{i % 3}",
    "service_user_id": lambda i: f"svc-{i % 2}",
    "schedule_id": lambda i: "sched-9" if i == 4 else None,
    "repos": lambda i: ["acme/api"] if i in (1, 5) else ["acme/web"],
    "is_archived": lambda i: i == 3,
    "category": lambda i: "bug_fixing" if i % 2 else None,
    "status": "running",
    "status_detail": "finished",
}
FILTER_CASES: list[tuple[list[tuple[str, str]], list[int]]] = [
    ([], [0, 1, 2, 3, 4, 5]),
    ([("tags", "red")], [0, 1, 4]),
    ([("tags", "red"), ("tags", "blue")], [1, 4]),  # ALL given tags
    ([("tags", "red,blue")], [1, 4]),
    ([("tags", "red,blue,green")], [4]),
    ([("tags", "nope")], []),
    ([("created_after", str(T0 + 20))], [2, 3, 4, 5]),  # after <= t < before
    ([("created_before", str(T0 + 20))], [0, 1]),
    ([("created_after", str(T0 + 10)), ("created_before", str(T0 + 31))], [1, 2, 3]),
    ([("updated_after", str(T0 + 25))], [2, 3, 4, 5]),
    ([("updated_before", str(T0 + 25))], [0, 1]),
    ([("playbook_id", "pb-1")], [0, 1]),
    ([("origins", "api")], [0, 3, 5]),
    ([("origins", "api"), ("origins", "cli")], [0, 3, 4, 5]),
    ([("origins", "slack,cli")], [1, 4]),
    ([("user_ids", "user-0"), ("user_ids", "user-2")], [0, 2, 3, 5]),
    ([("user_ids", "user-0,user-2")], [0, 2, 3, 5]),
    ([("service_user_ids", "svc-1")], [1, 3, 5]),
    ([("service_user_ids", "svc-0,svc-1")], [0, 1, 2, 3, 4, 5]),
    ([("schedule_id", "sched-9")], [4]),
    ([("repo_names", "acme/api")], [1, 5]),
    ([("is_archived", "true")], [3]),
    ([("is_archived", "false")], [0, 1, 2, 4, 5]),
    ([("category", "bug_fixing")], [1, 3, 5]),
    ([("tags", "red"), ("user_ids", "user-1")], [1, 4]),
    ([("tags", "blue"), ("is_archived", "false"), ("created_after", str(T0 + 15))], [2, 4]),
]


@pytest.mark.parametrize(("params", "expected"), FILTER_CASES)
async def test_list_filters(
    api: Api, server: FakeDevinServer, params: list[tuple[str, str]], expected: list[int],
) -> None:
    ids = server.add_sessions(6, **SEED_FIELDS)
    assert await api.list_ids([*params, ("first", "2")]) == [ids[i] for i in expected]


@pytest.mark.parametrize("form", ["repeated", "comma"])
async def test_session_ids_filter_in_both_forms(
    api: Api, server: FakeDevinServer, form: str,
) -> None:
    ids = server.add_sessions(10)
    wanted = [ids[7], ids[2], ids[5], "devin-unknown"]
    params = ([("session_ids", i) for i in wanted] if form == "repeated"
              else [("session_ids", ",".join(wanted))])
    page = (await api.call("GET", "/sessions", params=params)).body
    assert [s["session_id"] for s in page["items"]] == sorted(wanted[:3])
    assert page["total"] == 3


async def test_session_ids_are_sent_percent_encoded_and_comma_joined(
    api: Api, server: FakeDevinServer,
) -> None:
    ids = server.add_sessions(3)
    url = f"{api.base}/sessions?session_ids={ids[0]}%2C{ids[2]}"
    async with api.http.get(url, headers={"Authorization": f"Bearer {server.api_key}"}) as resp:
        body = await resp.json()
    assert {s["session_id"] for s in body["items"]} == {ids[0], ids[2]}
    assert server.requests[-1].query_values("session_ids") == [f"{ids[0]},{ids[2]}"]


async def test_updated_after_sees_lifecycle_changes(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create())["session_id"]
    mark = int(server.now) + 1
    assert await api.list_ids({"updated_after": str(mark)}) == []
    clock.advance(1.5)  # new -> claimed
    assert await api.list_ids({"updated_after": str(mark)}) == [sid]


async def test_filters_use_indexes_not_a_store_scan(
    api: Api, server: FakeDevinServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = server.add_sessions(10_000, tags=lambda i: ["rare"] if i % 1000 == 0 else ["common"])
    checked = 0
    original = ListQuery.keeps

    def counting(self: ListQuery, record: Any, now: float) -> bool:
        nonlocal checked
        checked += 1
        return original(self, record, now)

    monkeypatch.setattr(ListQuery, "keeps", counting)
    wanted = ids[::50]
    params = [("session_ids", ",".join(wanted)), ("first", "200"), ("is_archived", "false")]
    page = (await api.call("GET", "/sessions", params=params)).body
    assert len(page["items"]) == 200 and checked == 200
    checked = 0
    page = (await api.call("GET", "/sessions", params={"tags": "rare"})).body
    assert page["total"] == 10 and checked == 10


# --- tags ----------------------------------------------------------------------------------------
async def test_tags_append_dedupes_replace_replaces_and_index_follows(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    session = await api.create(tags=["a", "a", "b"])
    sid = session["session_id"]
    assert session["tags"] == ["a", "b"]
    clock.advance(5)
    added = await api.call("POST", f"/sessions/{sid}/tags", json_body={"tags": ["c", "a", "c"]})
    assert added.body == {"tags": ["a", "b", "c"]}
    assert (await api.get(sid))["updated_at"] >= session["updated_at"] + 5
    replaced = await api.call("PUT", f"/sessions/{sid}/tags", json_body={"tags": ["z", "z"]})
    assert replaced.body == {"tags": ["z"]}
    assert (await api.call("GET", f"/sessions/{sid}/tags")).body == {"tags": ["z"]}
    assert await api.list_ids({"tags": "a"}) == []
    assert await api.list_ids({"tags": "z"}) == [sid]


async def test_appending_past_50_tags_is_422_and_changes_nothing(
    api: Api, server: FakeDevinServer,
) -> None:
    sid = (await api.create(tags=TOO_MANY_TAGS[:45]))["session_id"]
    reply = await api.call("POST", f"/sessions/{sid}/tags", json_body={"tags": TOO_MANY_TAGS[40:]})
    assert reply.status == 422 and reply.detail[0]["loc"] == ["body", "tags"]
    assert server.session(sid)["tags"] == TOO_MANY_TAGS[:45]
    ok = await api.call("POST", f"/sessions/{sid}/tags", json_body={"tags": TOO_MANY_TAGS[40:50]})
    assert len(ok.body["tags"]) == 50


# --- lifecycle -----------------------------------------------------------------------------------
async def status_of(api: Api, sid: str) -> tuple[str, str | None]:
    session = await api.get(sid)
    return session["status"], session["status_detail"]


async def test_default_lifecycle_runs_by_itself(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    created = await api.create()
    sid = created["session_id"]
    seen = [(await api.get(sid))["updated_at"]]
    for dt, expected in [(0.5, ("new", None)), (0.6, ("claimed", None)),
                         (2.0, ("running", "working")), (9.8, ("running", "working"))]:
        clock.advance(dt)
        assert await status_of(api, sid) == expected
        seen.append((await api.get(sid))["updated_at"])
    assert seen[2] == created["created_at"] + 1 and seen[3] == created["created_at"] + 3
    clock.advance(20.2)  # working began at +3; it settles 10-30 s later
    status, detail = await status_of(api, sid)
    assert status == "running" and detail in ("finished", "waiting_for_user")
    devin_said = [m for m in server.messages(sid) if m["source"] == "devin"]
    assert len(devin_said) == 1
    clock.advance(60)
    assert await status_of(api, sid) == ("suspended", "inactivity")
    assert (await api.get(sid))["acus_consumed"] > 0


async def test_time_scale_speeds_the_lifecycle(clock: ManualClock) -> None:
    async with FakeDevinServer(time_scale=100.0, clock=clock) as server, \
            aiohttp.ClientSession() as http:
        api = Api(http, server)
        sid = (await api.create())["session_id"]
        clock.advance(0.035)  # 3.5 server seconds
        assert await status_of(api, sid) == ("running", "working")
        server.time_scale = 1.0
        clock.advance(5)
        assert await status_of(api, sid) == ("running", "working")
        server.advance(100)
        assert (await status_of(api, sid))[0] == "suspended"


async def test_real_clock_with_high_time_scale() -> None:
    async with FakeDevinServer(time_scale=1000.0) as server, aiohttp.ClientSession() as http:
        api = Api(http, server)
        sid = (await api.create())["session_id"]
        await asyncio.sleep(0.01)  # >= 10 server seconds
        assert (await status_of(api, sid))[0] in ("running", "suspended")


async def test_message_wakes_a_suspended_session(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = server.add_sessions(1, status="suspended", status_detail="inactivity")[0]
    sent = await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "wake up"})
    assert sent.body["status"] == "resuming"
    clock.advance(1.5)
    assert await status_of(api, sid) == ("running", "working")
    clock.advance(31)
    assert (await status_of(api, sid))[1] in ("finished", "waiting_for_user")
    clock.advance(60)
    assert await status_of(api, sid) == ("suspended", "inactivity")
    assert "wake up" in [m["message"] for m in server.messages(sid)]


async def test_message_sets_a_settled_session_working_again(
    api: Api, server: FakeDevinServer,
) -> None:
    sid = server.add_sessions(1, status="running", status_detail="waiting_for_user")[0]
    sent = await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "yes"})
    assert sent.body["status"] == "running"
    assert await status_of(api, sid) == ("running", "working")


@pytest.mark.parametrize(("status", "archived", "fragment"), [
    ("exit", False, "has ended"), ("error", False, "has ended"), ("running", True, "archived"),
])
async def test_message_to_an_ended_or_archived_session_is_409(
    api: Api, server: FakeDevinServer, status: str, archived: bool, fragment: str,
) -> None:
    sid = server.add_sessions(1, status=status, is_archived=archived)[0]
    reply = await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "hello?"})
    assert reply.status == 409 and fragment in reply.detail
    assert server.messages(sid)[-1]["message"] != "hello?"


@pytest.mark.parametrize("archive", [None, "false", "true"])
async def test_terminate_ends_the_session_for_good(
    api: Api, server: FakeDevinServer, clock: ManualClock, archive: str | None,
) -> None:
    sid = (await api.create())["session_id"]
    clock.advance(4)
    params = {} if archive is None else {"archive": archive}
    reply = await api.call("DELETE", f"/sessions/{sid}", params=params)
    assert reply.body["status"] == "exit" and reply.body["is_archived"] is (archive == "true")
    clock.advance(1000)
    assert await status_of(api, sid) == ("exit", None)
    again = await api.call("DELETE", f"/sessions/{sid}")
    assert again.status == 200 and again.body["status"] == "exit"


@pytest.mark.parametrize(("status", "detail", "after"), [
    ("running", "working", ("suspended", "user_request")),
    ("new", None, ("suspended", "user_request")),
    ("suspended", "inactivity", ("suspended", "inactivity")),
    ("exit", None, ("exit", None)),
])
async def test_archive_puts_an_awake_session_to_sleep(
    api: Api, server: FakeDevinServer, status: str, detail: str | None,
    after: tuple[str, str | None],
) -> None:
    sid = server.add_sessions(1, status=status, status_detail=detail)[0]
    reply = await api.call("POST", f"/sessions/{sid}/archive")
    assert reply.status == 200 and reply.body["is_archived"] is True
    assert await status_of(api, sid) == after


async def test_script_for_the_next_created_session(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    server.script([("claimed", None, 0.5), Step("running", "working", 1.0),
                   ("error", "error", 4.0)])
    scripted = (await api.create())["session_id"]
    plain = (await api.create())["session_id"]
    timeline = []
    for dt in (0.1, 0.5, 0.5, 3.0, 1000.0):
        clock.advance(dt)
        timeline.append(await status_of(api, scripted))
    assert timeline == [("new", None), ("claimed", None), ("running", "working"),
                        ("error", "error"), ("error", "error")]
    assert await status_of(api, plain) == ("suspended", "inactivity")


async def test_script_for_an_existing_session_starts_now(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = (await api.create())["session_id"]
    clock.advance(50)
    server.script([("running", "waiting_for_approval", 0), ("running", "finished", 2)],
                  session_id=sid)
    assert await status_of(api, sid) == ("running", "waiting_for_approval")
    clock.advance(2)
    assert await status_of(api, sid) == ("running", "finished")
    clock.advance(500)  # a script's last step stays
    assert await status_of(api, sid) == ("running", "finished")
    await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "again"})
    assert await status_of(api, sid) == ("running", "working")


async def test_messages_do_not_disturb_a_running_script(
    api: Api, server: FakeDevinServer, clock: ManualClock,
) -> None:
    sid = server.add_sessions(1)[0]
    server.script([("suspended", "inactivity", 0), ("exit", None, 10)], session_id=sid)
    sent = await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "m"})
    assert sent.body["status"] == "suspended"
    clock.advance(10)
    assert await status_of(api, sid) == ("exit", None)


async def test_set_status_accepts_unknown_values(api: Api, server: FakeDevinServer) -> None:
    sid = server.add_sessions(1)[0]
    server.set_status(sid, "creating", "brand_new_detail")
    assert await status_of(api, sid) == ("creating", "brand_new_detail")


def test_script_and_set_status_reject_bad_input() -> None:
    server = FakeDevinServer()
    with pytest.raises(ValueError, match="at >= 0"):
        server.script([("running", "working", -1)])
    with pytest.raises(KeyError, match="devin-nope"):
        server.set_status("devin-nope", "exit")
    with pytest.raises(TypeError, match="unknown session fields"):
        server.add_sessions(1, colour="blue")
    with pytest.raises(ValueError, match="time_scale"):
        FakeDevinServer(time_scale=0)


async def test_same_seed_same_ids_and_timings() -> None:
    async def run() -> list[Any]:
        clock = ManualClock()
        async with FakeDevinServer(seed=7, clock=clock, epoch=T0) as server, \
                aiohttp.ClientSession() as http:
            api = Api(http, server)
            ids = [(await api.create())["session_id"] for _ in range(3)]
            clock.advance(25)
            return [server.api_key, server.org_id, ids,
                    [server.session(i)["status_detail"] for i in ids]]

    assert await run() == await run()


async def test_batch_creates_children(api: Api, server: FakeDevinServer) -> None:
    parent = await api.create("Migrate every service", advanced_mode="batch",
                              child_playbook_id="pb-child", tags=["migration"])
    children = parent["child_session_ids"]
    assert parent["is_advanced"] is True and len(children) == 3
    for child_id in children:
        child = await api.get(child_id)
        assert child["parent_session_id"] == parent["session_id"]
        assert child["playbook_id"] == "pb-child" and child["tags"] == ["migration"]
    assert sorted(await api.list_ids({"tags": "migration"})) == sorted(
        [parent["session_id"], *children])
    assert server.stats["creates"] == 1 and server.session_count == 4


@pytest.mark.parametrize(("mode", "extra"), [
    ("create", {}), ("manage", {}), ("analyze", {"session_links": ["https://x/1"]}),
    ("improve", {"child_playbook_id": "pb"}),
])
async def test_other_advanced_modes_make_one_session(
    api: Api, server: FakeDevinServer, mode: str, extra: dict[str, Any],
) -> None:
    session = await api.create(advanced_mode=mode, **extra)
    assert session["is_advanced"] is True and session["child_session_ids"] is None
    assert server.session_count == 1


# --- faults --------------------------------------------------------------------------------------
async def test_status_fault_answers_without_acting(api: Api, server: FakeDevinServer) -> None:
    server.inject("create", status=503, retry_after=2, retry_after_ms=1500)
    reply = await api.call("POST", "/sessions", json_body={"prompt": "p"})
    assert reply.status == 503 and reply.body == {"detail": "Service Unavailable"}
    assert reply.headers["Retry-After"] == "2" and reply.headers["retry-after-ms"] == "1500"
    assert server.session_count == 0
    assert (await api.call("POST", "/sessions", json_body={"prompt": "p"})).status == 200


@pytest.mark.parametrize(("body", "text", "ctype"), [
    ({"detail": "custom"}, '{"detail": "custom"}', "application/json"),
    ("gateway timeout", "gateway timeout", "text/plain"),
    (b'{"error": "x"}', '{"error": "x"}', "application/json"),
])
async def test_status_fault_with_a_literal_body(
    api: Api, server: FakeDevinServer, body: Any, text: str, ctype: str,
) -> None:
    server.inject("list", status=504, body=body)
    reply = await api.call("GET", "/sessions")
    assert reply.status == 504 and reply.text == text
    assert reply.headers["Content-Type"].startswith(ctype)


async def test_fault_counts_and_endpoint_matching(api: Api, server: FakeDevinServer) -> None:
    sid = server.add_sessions(1)[0]
    fault = server.inject("get", times=2, status=500)
    assert (await api.call("GET", "/sessions")).status == 200
    assert [(await api.call("GET", f"/sessions/{sid}")).status for _ in range(3)] == [500, 500, 200]
    assert fault.hits == 2 and fault.remaining == 0 and server.faults == []
    server.inject(["get", "list"], times=None, status=429)
    for _ in range(3):
        reply = await api.call("GET", "/sessions")
        assert reply.status == 429 and reply.detail == "Rate limit exceeded"
    server.clear_faults()
    assert (await api.call("GET", "/sessions")).status == 200


async def test_faults_are_first_in_first_out(api: Api, server: FakeDevinServer) -> None:
    server.inject(status=500)
    server.inject(status=502)
    assert [(await api.call("GET", "/sessions")).status for _ in range(3)] == [500, 502, 200]


async def test_drop_before_acts_on_nothing(api: Api, server: FakeDevinServer) -> None:
    server.inject("create", drop="before")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.call("POST", "/sessions", json_body={"prompt": "p"})
    assert server.session_count == 0
    assert server.requests[-1].status is None and server.requests[-1].fault == "drop_before"
    assert server.stats["drops"] == 1
    assert (await api.call("POST", "/sessions", json_body={"prompt": "p"})).status == 200


async def test_drop_after_acts_then_loses_the_answer(api: Api, server: FakeDevinServer) -> None:
    server.inject("create", drop="after")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.call("POST", "/sessions", json_body={"prompt": "lost answer"})
    assert server.session_count == 1 and server.stats["creates"] == 1
    sid = next(iter(server.sessions))
    server.inject("send_message", drop="after")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "sent anyway"})
    assert server.messages(sid)[-1]["message"] == "sent anyway"


async def test_delay_slows_the_answer(api: Api, server: FakeDevinServer) -> None:
    server.inject("list", delay=0.05)
    started = time.perf_counter()
    assert (await api.call("GET", "/sessions")).status == 200
    assert time.perf_counter() - started >= 0.05


@pytest.mark.parametrize(("kind", "ctype"), [
    ("truncated", "application/json"), ("non_json", "application/json"),
    ("html", "text/html"), ("empty", "application/json"),
])
async def test_malformed_body_after_the_action(
    api: Api, server: FakeDevinServer, kind: Any, ctype: str,
) -> None:
    server.inject("create", malformed=kind)
    reply = await api.call("POST", "/sessions", json_body={"prompt": "p"})
    assert reply.status == 200 and reply.headers["Content-Type"].startswith(ctype)
    with pytest.raises(ValueError):
        json.loads(reply.text)
    assert server.session_count == 1


async def test_hint_headers_on_a_successful_answer(api: Api, server: FakeDevinServer) -> None:
    server.inject("list", retry_after=3, headers={"x-should-retry": "false"})
    reply = await api.call("GET", "/sessions")
    assert reply.status == 200 and reply.headers["Retry-After"] == "3"
    assert reply.headers["x-should-retry"] == "false"


async def test_random_faults_are_seeded(clock: ManualClock) -> None:
    async def run() -> list[int]:
        async with FakeDevinServer(clock=clock) as server, aiohttp.ClientSession() as http:
            api = Api(http, server)
            server.inject_random(0.5, kinds=("status_500", "status_429"), seed=3)
            return [(await api.call("GET", "/sessions")).status for _ in range(20)]

    first = await run()
    assert first == await run()
    assert {200, 500, 429} <= set(first)


async def test_random_faults_every_kind(api: Api, server: FakeDevinServer) -> None:
    chaos = server.inject_random(1.0, kinds=("drop_before", "status_503"), seed=1)
    outcomes: set[int | str] = set()
    for _ in range(12):
        try:
            reply = await api.call("GET", "/sessions")
            assert reply.headers["retry-after-ms"] == "20"
            outcomes.add(reply.status)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            outcomes.add("dropped")
    # aiohttp retries an idempotent request once when a reused connection drops, so the
    # server can see more requests than the client made.
    assert outcomes == {503, "dropped"} and chaos.hits >= 12
    server.clear_faults()
    assert (await api.call("GET", "/sessions")).status == 200


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"endpoint": "launch"}, "unknown endpoint"), ({"drop": "sideways"}, "drop must"),
    ({"malformed": "xml"}, "malformed must"), ({"times": 0}, "times must"),
    ({"status": 42}, "status must"),
])
def test_inject_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeDevinServer().inject(**kwargs)


# --- rate limit ----------------------------------------------------------------------------------
async def test_rate_limit_per_token_with_retry_headers(clock: ManualClock) -> None:
    async with FakeDevinServer(rate_limit=2.0, clock=clock) as server, \
            aiohttp.ClientSession() as http:
        api = Api(http, server)
        assert [(await api.call("GET", "/sessions")).status for _ in range(2)] == [200, 200]
        limited = await api.call("GET", "/sessions")
        assert limited.status == 429 and limited.body == {"detail": "Rate limit exceeded"}
        assert limited.headers["Retry-After"] == "1" and limited.headers["retry-after-ms"] == "500"
        other = server.add_token()
        assert (await api.call("GET", "/sessions", token=other)).status == 200
        clock.advance(0.5)
        assert (await api.call("GET", "/sessions")).status == 200
        assert server.stats["rate_limited"] == 1 and server.stats["status_429"] == 1


@pytest.mark.parametrize(("rate", "burst", "passes", "retry_after", "retry_ms"), [
    (1.0, 3, 3, "1", "1000"), (0.5, None, 1, "2", "2000"), (10.0, None, 10, "1", "100"),
])
async def test_rate_limit_burst_and_waits(
    clock: ManualClock, rate: float, burst: int | None, passes: int, retry_after: str,
    retry_ms: str,
) -> None:
    async with FakeDevinServer(rate_limit=rate, rate_limit_burst=burst, clock=clock) as server, \
            aiohttp.ClientSession() as http:
        api = Api(http, server)
        statuses = [(await api.call("GET", "/sessions")).status for _ in range(passes + 1)]
        assert statuses == [200] * passes + [429]
        limited = await api.call("GET", "/sessions")
        assert (limited.headers["Retry-After"], limited.headers["retry-after-ms"]) == (
            retry_after, retry_ms)
        server.set_rate_limit(None)
        assert (await api.call("GET", "/sessions")).status == 200


# --- request log, request ids --------------------------------------------------------------------
async def test_request_log_masks_the_token(api: Api, server: FakeDevinServer) -> None:
    sid = server.add_sessions(1)[0]
    await api.call("GET", "/sessions", params=[("tags", "a"), ("tags", "b"), ("first", "5")])
    await api.call("POST", f"/sessions/{sid}/tags", json_body={"tags": ["t"]})
    listed, tagged = server.requests
    assert listed.method == "GET" and listed.endpoint == "list" and listed.status == 200
    assert listed.query == (("tags", "a"), ("tags", "b"), ("first", "5"))
    assert listed.headers["authorization"] == f"Bearer cog_…{server.api_key[-4:]}"
    assert tagged.json == {"tags": ["t"]} and tagged.endpoint == "add_tags"
    assert tagged.path == f"/v3beta1/organizations/{server.org_id}/sessions/{sid}/tags"
    assert server.api_key not in repr(server.requests)
    server.clear_requests()
    assert server.requests == []


async def test_request_log_is_bounded(http: aiohttp.ClientSession) -> None:
    async with FakeDevinServer(max_log=3) as server:
        api = Api(http, server)
        for first in range(1, 6):
            await api.call("GET", "/sessions", params={"first": str(first)})
        assert [r.query for r in server.requests] == [
            (("first", "3"),), (("first", "4"),), (("first", "5"),)]
        assert server.stats["requests"] == 5


async def test_every_answer_has_a_request_id(api: Api, server: FakeDevinServer) -> None:
    server.inject("get", status=500)
    replies = [
        await api.call("GET", "/sessions"),
        await api.call("GET", "/sessions", token=None),
        await api.call("GET", "/sessions/devin-x"),
        await api.call("POST", "/sessions", json_body={}),
        await api.call("GET", "/nowhere", base=server.url),
    ]
    ids = [r.headers["x-request-id"] for r in replies]
    assert [r.status for r in replies] == [200, 401, 500, 422, 404]
    assert len(set(ids)) == 5 and all(i.startswith("req_") for i in ids)
    assert [r.request_id for r in server.requests] == ids


# --- restart, serve_forever ----------------------------------------------------------------------
async def test_restart_keeps_state_and_port(server: FakeDevinServer) -> None:
    port = server.port
    async with aiohttp.ClientSession() as http:
        sid = (await Api(http, server).create())["session_id"]
    await server.stop_listening()
    assert not server.listening
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await Api(http, server).call("GET", "/sessions")
    await server.start()
    await server.restart()
    assert server.port == port and server.listening
    async with aiohttp.ClientSession() as http:
        assert (await Api(http, server).get(sid))["session_id"] == sid


async def test_restart_closes_open_connections(server: FakeDevinServer) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(http, server)
        await api.call("GET", "/sessions")  # leaves a keep-alive connection in the pool
        await server.restart()
        outcomes: list[int | str] = []
        for _ in range(2):
            try:
                outcomes.append((await api.call("GET", "/sessions")).status)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                outcomes.append("disconnected")
        assert outcomes[-1] == 200


def test_url_needs_a_started_server() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeDevinServer().url


async def test_sessions_view_and_seeding(server: FakeDevinServer) -> None:
    ids = server.add_sessions(3, title=lambda i: f"task {i}", pull_requests=[
        {"pr_url": "https://github.com/acme/api/pull/1", "pr_state": "open"}])
    assert server.session_count == 3 and list(server.sessions) == ids
    assert server.session(ids[1])["title"] == "task 1"
    assert server.sessions[ids[0]]["pull_requests"][0]["pr_state"] == "open"
    server.update(ids[0], title="renamed", tags=["late"])
    assert server.session(ids[0])["title"] == "renamed"
    attachment = server.add_attachment(ids[0], name="out.csv", url="https://files.example/out.csv")
    assert attachment["source"] == "devin"
    with pytest.raises(TypeError, match="set_status"):
        server.update(ids[0], status="exit")


async def test_problem_error_style(http: aiohttp.ClientSession) -> None:
    async with FakeDevinServer(error_style="problem") as server:
        api = Api(http, server)
        reply = await api.call("GET", "/sessions/devin-x")
        assert reply.status == 404
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body == {"type": "about:blank", "title": "Not Found", "status": 404,
                              "detail": "Session devin-x not found"}
        invalid = await api.call("POST", "/sessions", json_body={})
        assert isinstance(invalid.detail, list)


async def test_serve_forever_prints_where_and_stops_on_sigterm() -> None:
    code = ("from devin_async.testing import serve_forever; "
            "serve_forever('127.0.0.1', 0, time_scale=10.0, api_key='cog_cli_key_abcd1234')")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        assert fields["DEVIN_API_KEY"] == "cog_cli_key_abcd1234"
        assert fields["DEVIN_ORG_ID"].startswith("org-")
        url = f"{fields['DEVIN_BASE_URL']}/v3/organizations/{fields['DEVIN_ORG_ID']}/sessions"
        async with aiohttp.ClientSession() as http, http.get(
                url, headers={"Authorization": "Bearer cog_cli_key_abcd1234"}) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("raw_path", [
    "/sessions/devin-x%0A", "/sessions/devin-x%0Ay/tags", "/sessions/%0A/messages",
    "/sessions/devin-%FF%FE",
])
async def test_an_odd_session_id_in_the_path_is_a_json_404(
    http: aiohttp.ClientSession, server: FakeDevinServer, raw_path: str,
) -> None:
    url = f"{server.url}/v3beta1/organizations/{server.org_id}{raw_path}"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with http.get(url, headers=headers) as response:
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("application/json")
        assert (await response.json())["detail"].startswith("Session ")


@pytest.mark.parametrize("path", ["/sessions", "/sessions/{sid}/messages"])
async def test_an_empty_after_is_the_first_page_everywhere(api: Api, path: str) -> None:
    sid = (await api.create())["session_id"]
    first = await api.call("GET", path.format(sid=sid))
    empty = await api.call("GET", path.format(sid=sid), params={"after": ""})
    assert empty.status == 200 and empty.body["items"] == first.body["items"]
