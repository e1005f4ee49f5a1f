"""Every answer of the fake server (success and error) fits the reconstructed OpenAPI description.

Schemas come from the operation's documented response for the status (its `$ref`s resolved into
`components`). Non-422 errors: with error_style="problem" the body must fit the documented Problem
schema (RFC 9457); with the default FastAPI style it must be exactly `{"detail": "<text>"}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from openapi_schema_validator import OAS31Validator

from devin_async.testing import ALL_PERMISSIONS, FakeDevinServer, Permission

from .fake_helpers import Api, ManualClock, Reply
from .openapi import SPEC_PATH, spec

pytestmark = pytest.mark.skipif(not SPEC_PATH.exists(),
                                reason=f"OpenAPI description not found at {SPEC_PATH}")

SPEC_PREFIX = "/v3beta1/organizations/{org_id}"
HTTP_METHODS = ("get", "post", "put", "delete", "patch")
UNMODELLED = {
    "400": "only sent for an unknown `platform`, which the fake does not model",
    "422": "documented on every operation; nothing in a path-only request can fail validation",
}
UNMODELLED_OPS = {
    ("getSelf", "403"): "any valid credential may call it (sources disagree; the fake says yes)",
}


def operations() -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path after /v3beta1/organizations/{org_id}, or the root path)."""
    ops = {}
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                ops[operation["operationId"]] = (method.upper(), path.removeprefix(SPEC_PREFIX))
    return ops


def spec_path(path: str) -> str:
    return path if path.startswith("/v3/") else SPEC_PREFIX + path


def deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def documented(operation_id: str, status: int) -> tuple[str, dict[str, Any]] | None:
    """(content type, schema) the description gives for this answer, if any."""
    method, path = operations()[operation_id]
    responses = spec()["paths"][spec_path(path)][method.lower()]["responses"]
    if str(status) not in responses or "content" not in deref(responses[str(status)]):
        return None
    ((ctype, media),) = deref(responses[str(status)])["content"].items()
    return ctype, media["schema"]


def check_request(operation_id: str, kwargs: dict[str, Any]) -> None:
    """Assert a JSON request body of a case fits the operation's documented request body."""
    method, path = operations()[operation_id]
    body = spec()["paths"][spec_path(path)][method.lower()].get("requestBody")
    content = deref(body)["content"] if body is not None else {}
    if "json_body" in kwargs:
        validate(content["application/json"]["schema"], kwargs["json_body"])
    elif "data" in kwargs and "multipart/form-data" in content:
        assert kwargs["headers"]["Content-Type"].startswith("multipart/form-data")


def validate(schema: dict[str, Any], instance: Any) -> None:
    OAS31Validator({**schema, "components": spec()["components"]}).validate(instance)


def check_answer(operation_id: str, reply: Reply, style: str) -> None:
    """Assert `reply` fits what the description documents for it."""
    doc = documented(operation_id, reply.status)
    ctype = reply.headers.get("Content-Type", "")
    if reply.status == 307:
        method, path = operations()[operation_id]
        documented_307 = spec()["paths"][spec_path(path)][method.lower()]["responses"]["307"]
        assert set(documented_307["headers"]) <= set(reply.headers)
        assert reply.headers["Location"].startswith("http")
    elif reply.status == 200 and not ctype.startswith("application/json"):
        assert doc is None or doc[0] != "application/json", f"{operation_id}: {ctype}"
    elif reply.status == 200 or reply.status == 422:
        assert doc is not None, f"{operation_id} does not document {reply.status}"
        assert ctype.startswith("application/json")
        validate(doc[1], reply.body)
    elif style == "problem":
        problem = deref({"$ref": "#/components/responses/Problem"})["content"]
        ctype_doc, schema = doc or next(iter((k, v["schema"]) for k, v in problem.items()))
        assert ctype.startswith(ctype_doc)
        validate(schema, reply.body)
        assert reply.body["status"] == reply.status
    else:
        assert ctype.startswith("application/json")
        assert set(reply.body) == {"detail"} and isinstance(reply.body["detail"], str)


MANAGE = Permission.MANAGE_ORG_SESSIONS
VIEW = Permission.VIEW_ORG_SESSIONS
MISSING = "devin-00000000000000000000000000000000"
TAGS = {"json_body": {"tags": ["x", "y"]}}
MULTIPART = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
             b"Content-Type: text/csv\r\n\r\nx,y\r\n--B--\r\n")
MULTIPART_TYPE = {"Content-Type": "multipart/form-data; boundary=B"}
# (operationId, expected status, token: "all" | None | a permission to leave out, target, kwargs)
CASES: list[tuple[str, int, str | None, str, dict[str, Any]]] = [
    ("createSession", 200, "all", "", {"json_body": {"prompt": "p"}}),
    ("createSession", 200, "all", "", {"json_body": {
        "prompt": "p", "advanced_mode": "batch", "child_playbook_id": "pb", "tags": ["t"],
        "title": "t", "repos": ["o/r"], "max_acu_limit": 5, "brand_new_field": True}}),
    ("createSession", 401, None, "", {"json_body": {"prompt": "p"}}),
    ("createSession", 403, MANAGE, "", {"json_body": {"prompt": "p"}}),
    ("createSession", 422, "all", "", {"json_body": {"prompt": ""}}),
    ("createSession", 422, "all", "", {"json_body": {"prompt": "p", "advanced_mode": "analyze"}}),
    ("createSession", 422, "all", "", {"data": b'{"prompt": '}),
    ("listSessions", 200, "all", "", {"params": {"first": "1"}}),
    ("listSessions", 200, "all", "", {"params": [("tags", "t"), ("is_archived", "false")]}),
    ("listSessions", 401, None, "", {}),
    ("listSessions", 403, VIEW, "", {}),
    ("listSessions", 422, "all", "", {"params": {"first": "500"}}),
    ("getSession", 200, "all", "live", {}),
    ("getSession", 200, "all", "ended", {}),
    ("getSession", 401, None, "live", {}),
    ("getSession", 403, VIEW, "live", {}),
    ("getSession", 404, "all", "missing", {}),
    ("terminateSession", 200, "all", "live", {"params": {"archive": "true"}}),
    ("terminateSession", 401, None, "live", {}),
    ("terminateSession", 403, MANAGE, "live", {}),
    ("terminateSession", 404, "all", "missing", {}),
    ("terminateSession", 422, "all", "live", {"params": {"archive": "sometimes"}}),
    ("archiveSession", 200, "all", "live", {}),
    ("archiveSession", 401, None, "live", {}),
    ("archiveSession", 403, MANAGE, "live", {}),
    ("archiveSession", 404, "all", "missing", {}),
    ("listSessionMessages", 200, "all", "live", {"params": {"first": "1"}}),
    ("listSessionMessages", 401, None, "live", {}),
    ("listSessionMessages", 403, VIEW, "live", {}),
    ("listSessionMessages", 404, "all", "missing", {}),
    ("listSessionMessages", 422, "all", "live", {"params": {"first": "x"}}),
    ("sendSessionMessage", 200, "all", "live", {"json_body": {"message": "m"}}),
    ("sendSessionMessage", 401, None, "live", {"json_body": {"message": "m"}}),
    ("sendSessionMessage", 403, MANAGE, "live", {"json_body": {"message": "m"}}),
    ("sendSessionMessage", 404, "all", "missing", {"json_body": {"message": "m"}}),
    ("sendSessionMessage", 409, "all", "ended", {"json_body": {"message": "m"}}),
    ("sendSessionMessage", 422, "all", "live", {"json_body": {"text": "m"}}),
    ("getSessionTags", 200, "all", "live", {}),
    ("getSessionTags", 401, None, "live", {}),
    ("getSessionTags", 403, VIEW, "live", {}),
    ("getSessionTags", 404, "all", "missing", {}),
    ("appendSessionTags", 200, "all", "live", TAGS),
    ("appendSessionTags", 401, None, "live", TAGS),
    ("appendSessionTags", 404, "all", "missing", TAGS),
    ("appendSessionTags", 422, "all", "live", {"json_body": {"tags": [1]}}),
    ("replaceSessionTags", 200, "all", "live", TAGS),
    ("replaceSessionTags", 401, None, "live", TAGS),
    ("replaceSessionTags", 404, "all", "missing", TAGS),
    ("replaceSessionTags", 422, "all", "live", {"json_body": {"tags": ["t"] * 51}}),
    ("listSessionAttachments", 200, "all", "live", {}),
    ("listSessionAttachments", 401, None, "live", {}),
    ("listSessionAttachments", 403, VIEW, "live", {}),
    ("listSessionAttachments", 404, "all", "missing", {}),
    ("createSession", 200, "all", "", {"json_body": {
        "prompt": "p", "attachment_urls": ["https://files.example/a.png"],
        "session_secrets": [{"key": "K", "value": "v"},
                            {"key": "L", "value": "", "sensitive": False}],
        "structured_output_schema": {"type": "object"}, "structured_output_required": False,
        "devin_mode": "lite", "max_acu_limit": 1697.0, "knowledge_ids": ["k"], "platform": "x"}}),
    ("createSession", 200, "all", "", {"json_body": {"prompt": "p", "devin_mode": "brand-new"}}),
    ("createSession", 422, "all", "", {"json_body": {
        "prompt": "p", "session_secrets": [{"key": "K" * 257, "value": "v"}]}}),
    ("createSession", 422, "all", "", {"json_body": {"prompt": "p", "attachment_urls": [""]}}),
    ("sendSessionMessage", 200, "all", "live", {"json_body": {
        "message": "m", "attachment_urls": ["https://files.example/b.png"]}}),
    ("listSessions", 200, "all", "", {"params": [("category", "bug_fixing"), ("repo_names", "o/r"),
                                                ("after", "")]}),
    ("listSessionMessages", 200, "all", "live", {"params": {"after": ""}}),
    ("listSessionInsights", 200, "all", "", {"params": {"first": "1", "tags": "t"}}),
    ("listSessionInsights", 401, None, "", {}),
    ("listSessionInsights", 403, VIEW, "", {}),
    ("listSessionInsights", 422, "all", "", {"params": {"first": "0"}}),
    ("getSessionInsights", 200, "all", "live", {}),
    ("getSessionInsights", 200, "all", "analysed", {}),
    ("getSessionInsights", 401, None, "live", {}),
    ("getSessionInsights", 403, VIEW, "live", {}),
    ("getSessionInsights", 404, "all", "missing", {}),
    ("generateSessionInsights", 200, "all", "live", {}),
    ("generateSessionInsights", 200, "all", "analysed", {}),
    ("generateSessionInsights", 401, None, "live", {}),
    ("generateSessionInsights", 403, MANAGE, "live", {}),
    ("generateSessionInsights", 404, "all", "missing", {}),
    ("listSessionEvents", 200, "all", "live", {"params": {"first": "2"}}),
    ("listSessionEvents", 200, "all", "live", {"params": [("categories", "message"),
                                                          ("direction", "incoming")]}),
    ("listSessionEvents", 401, None, "live", {}),
    ("listSessionEvents", 403, VIEW, "live", {}),
    ("listSessionEvents", 404, "all", "missing", {}),
    ("listSessionEvents", 422, "all", "live", {"params": [("categories", "shell"),
                                                          ("event_types", "x")]}),
    ("getSessionEventDetails", 200, "all", "live", {"params": {"limit": "50",
                                                               "max_content_length": "5"}}),
    ("getSessionEventDetails", 401, None, "live", {}),
    ("getSessionEventDetails", 403, VIEW, "live", {}),
    ("getSessionEventDetails", 404, "all", "missing", {}),
    ("getSessionEventDetails", 422, "all", "live", {"params": {"limit": "51"}}),
    ("searchSessionEvents", 200, "all", "live", {"params": {"query": "readme"}}),
    ("searchSessionEvents", 401, None, "live", {"params": {"query": "readme"}}),
    ("searchSessionEvents", 403, VIEW, "live", {"params": {"query": "readme"}}),
    ("searchSessionEvents", 404, "all", "missing", {"params": {"query": "readme"}}),
    ("searchSessionEvents", 422, "all", "live", {}),
    ("uploadAttachment", 200, "all", "", {"data": MULTIPART, "headers": MULTIPART_TYPE}),
    ("uploadAttachment", 401, None, "", {"data": MULTIPART, "headers": MULTIPART_TYPE}),
    ("uploadAttachment", 403, "UseDevinSessions", "", {"data": MULTIPART,
                                                      "headers": MULTIPART_TYPE}),
    ("uploadAttachment", 422, "all", "", {"json_body": {"file": "x"}}),
    ("downloadAttachment", 307, "all", "file", {}),
    ("downloadAttachment", 401, None, "file", {}),
    ("downloadAttachment", 403, VIEW, "file", {}),
    ("downloadAttachment", 404, "all", "nofile", {}),
    ("getSelf", 200, "all", "", {}),
    ("getSelf", 401, None, "", {}),
]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def case_id(case: tuple[str, int, str | None, str, dict[str, Any]]) -> str:
    return f"{case[0]}-{case[1]}"


# Each case runs once per error style; the problem style also speaks the /v3 prefix.
@pytest.mark.parametrize(("style", "version"), [("fastapi", "v3beta1"), ("problem", "v3")])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
async def test_answers_fit_the_description(
    http: aiohttp.ClientSession, case: tuple[str, int, str | None, str, dict[str, Any]],
    style: Any, version: str,
) -> None:
    operation_id, status, token_kind, target, kwargs = case
    async with FakeDevinServer(clock=ManualClock(), error_style=style) as server:
        api = Api(http, server, version=version)
        live = (await api.create("Tidy the README", tags=["t"],
                                 attachment_urls=["https://files.example/a.png"]))["session_id"]
        server.add_attachment(live, name="out.csv", url="https://files.example/out.csv",
                              content_type="text/csv")
        ended = server.add_sessions(1, status="exit")[0]
        analysed = server.add_sessions(1, status="exit")[0]
        await api.call("POST", f"/sessions/{analysed}/insights/generate")
        server.advance(3600)
        file = server.add_file(b"x,y", name="a.csv", content_type="text/csv")
        sid = {"live": live, "ended": ended, "missing": MISSING, "": "", "analysed": analysed,
               "file": "", "nofile": ""}[target]
        token: str | None = server.api_key
        if token_kind is None:
            token = None
        elif token_kind != "all":
            token = server.add_token(permissions=ALL_PERMISSIONS - {token_kind})
        method, path = operations()[operation_id]
        path = path.replace("{devin_id}", sid)
        if target in ("file", "nofile"):
            path = path.replace("{uuid}", file["attachment_id"] if target == "file" else "nope")
            path = path.replace("{name}", "a.csv")
        base = server.url if path.startswith("/v3/") else None
        if status == 200:
            check_request(operation_id, kwargs)
        reply = await api.call(method, path, token=token, base=base, **kwargs)
        assert reply.status == status, reply
        check_answer(operation_id, reply, style)


def test_every_operation_and_documented_status_is_exercised() -> None:
    covered = {(op, str(status)) for op, status, *_ in CASES}
    assert {op for op, _ in covered} == set(operations())
    for operation_id, (method, path) in operations().items():
        responses = spec()["paths"][spec_path(path)][method.lower()]["responses"]
        for code in responses:
            if (operation_id, code) in covered or (operation_id, code) in UNMODELLED_OPS:
                continue
            assert code in UNMODELLED, f"{operation_id} {code} is never exercised"


@pytest.mark.parametrize(("operation_id", "status", "body"), [
    ("getSession", 200, {"session_id": "devin-x"}),
    ("listSessions", 200, {"items": [{"status": "sleeping"}]}),
    ("createSession", 422, {"detail": [{"loc": ["body"]}]}),
    ("getSession", 404, {"detail": 404}),
])
def test_the_check_rejects_answers_off_the_description(
    operation_id: str, status: int, body: Any,
) -> None:
    reply = Reply(status, body, {"Content-Type": "application/json"}, "")
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        check_answer(operation_id, reply, "fastapi")


STATES: list[tuple[str, str | None]] = [
    ("new", None), ("claimed", None), ("running", "working"), ("running", "waiting_for_user"),
    ("running", "waiting_for_approval"), ("running", "finished"), ("resuming", None),
    ("suspended", "inactivity"), ("suspended", "user_request"),
    ("suspended", "usage_limit_exceeded"), ("exit", None), ("error", "error"),
]


async def test_sessions_in_every_state_fit_session_response(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeDevinServer(clock=clock) as server:
        api = Api(http, server)
        for status, detail in STATES:
            server.add_sessions(1, status=status, status_detail=detail)
        parent = await api.create("batch", advanced_mode="batch", child_playbook_id="pb")
        server.update(parent["session_id"], category="bug_fixing", subcategory="Other",
                      structured_output={"ok": True}, pull_requests=[
                          {"pr_url": "https://github.com/o/r/pull/1", "pr_state": "open"},
                          {"pr_url": "https://github.com/o/r/pull/2", "pr_state": None}])
        live = (await api.create("live"))["session_id"]
        await api.call("POST", f"/sessions/{live}/archive")
        seen = set()
        for dt in (0.0, 1.5, 2.0, 30.0, 61.0):
            clock.advance(dt)
            page = (await api.call("GET", "/sessions", params={"first": "200"}))
            check_answer("listSessions", page, "fastapi")
            for item in page.body["items"]:
                reply = await api.call("GET", f"/sessions/{item['session_id']}")
                check_answer("getSession", reply, "fastapi")
                seen.add((reply.body["status"], reply.body["status_detail"]))
        assert set(STATES) <= seen
        messages = await api.call("GET", f"/sessions/{parent['session_id']}/messages")
        check_answer("listSessionMessages", messages, "fastapi")
        assert {m["source"] for m in messages.body["items"]} == {"user", "devin"}


async def test_activity_answers_fit_along_the_lifecycle(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeDevinServer(clock=clock, output_generator=lambda schema: {"ok": True}) as server:
        api = Api(http, server)
        sid = (await api.create("Fix the docs", structured_output_schema={"type": "object"},
                                session_secrets=[{"key": "K", "value": "v"}]))["session_id"]
        server.add_event(sid, event_type="mcp_tool_called", category="mcp", summary="Called",
                         contents={"tool": "search", "args": {"q": "x" * 20}, "n": [1, None]})
        await api.call("POST", f"/sessions/{sid}/insights/generate")
        for dt in (0.0, 2.0, 5.0, 30.0, 61.0):
            clock.advance(dt)
            await api.call("POST", f"/sessions/{sid}/messages", json_body={"message": "go on"})
            checks = [
                ("listSessionEvents", f"/sessions/{sid}/events", {"first": "3"}),
                ("getSessionEventDetails", f"/sessions/{sid}/events/details",
                 {"limit": "50", "max_content_length": "8"}),
                ("searchSessionEvents", f"/sessions/{sid}/events/search", {"query": "o"}),
                ("getSessionInsights", f"/sessions/{sid}/insights", {}),
                ("listSessionInsights", "/sessions/insights", {}),
                ("getSession", f"/sessions/{sid}", {}),
            ]
            for operation_id, path, params in checks:
                reply = await api.call("GET", path, params=params)
                check_answer(operation_id, reply, "fastapi")
        insights = (await api.call("GET", f"/sessions/{sid}/insights")).body
        assert insights["analysis"] is not None
        me = await api.call("GET", "/v3/self", base=server.url)
        check_answer("getSelf", me, "fastapi")
