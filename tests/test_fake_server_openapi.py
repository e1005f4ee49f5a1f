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


def operations() -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path after /v3beta1/organizations/{org_id})."""
    ops = {}
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                ops[operation["operationId"]] = (method.upper(), path.removeprefix(SPEC_PREFIX))
    return ops


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
    responses = spec()["paths"][SPEC_PREFIX + path][method.lower()]["responses"]
    if str(status) not in responses:
        return None
    ((ctype, media),) = deref(responses[str(status)])["content"].items()
    return ctype, media["schema"]


def validate(schema: dict[str, Any], instance: Any) -> None:
    OAS31Validator({**schema, "components": spec()["components"]}).validate(instance)


def check_answer(operation_id: str, reply: Reply, style: str) -> None:
    """Assert `reply` fits what the description documents for it."""
    doc = documented(operation_id, reply.status)
    ctype = reply.headers["Content-Type"]
    if reply.status == 200 or reply.status == 422:
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
        sid = {"live": live, "ended": ended, "missing": MISSING, "": ""}[target]
        token: str | None = server.api_key
        if token_kind is None:
            token = None
        elif token_kind != "all":
            token = server.add_token(permissions=ALL_PERMISSIONS - {token_kind})
        method, path = operations()[operation_id]
        reply = await api.call(method, path.replace("{devin_id}", sid), token=token, **kwargs)
        assert reply.status == status, reply
        check_answer(operation_id, reply, style)


def test_every_operation_and_documented_status_is_exercised() -> None:
    covered = {(op, str(status)) for op, status, *_ in CASES}
    assert {op for op, _ in covered} == set(operations())
    for operation_id, (method, path) in operations().items():
        responses = spec()["paths"][SPEC_PREFIX + path][method.lower()]["responses"]
        for code in responses:
            if (operation_id, code) in covered:
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
