"""Audit against the OpenAPI description: every request the SDK sends, every response field parsed.

Requests: a user-like flow runs against the in-process fake server; each recorded request is
matched to its operation and checked: path, query parameter names, query values read the way
the spec declares them (`style: form, explode: true`: one key per array item), and the JSON body
against the operation's request schema. Responses: every property a response schema defines has
a field on the model the SDK parses it into.
"""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from openapi_schema_validator import OAS31Validator

from devin_async import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    Attachment,
    DevinClient,
    HTTPResponse,
    Message,
    Page,
    PollPolicy,
    Principal,
    PullRequest,
    RetryPolicy,
    Session,
    SessionInsights,
    UploadedAttachment,
)
from devin_async.testing import FakeDevinServer, MockTransport, RecordedRequest

SPEC = Path(__file__).parent / "data" / "devin-v3beta1-sessions.openapi.yaml"  # the shared spec


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validate(schema: dict[str, Any], instance: Any) -> None:
    OAS31Validator({**schema, "components": spec()["components"]}).validate(instance)


def operation(method: str, path: str) -> dict[str, Any]:
    """Return {params: {name: param}, body: schema | None} of the operation `path` matches."""
    path = re.sub(r"^/v3/organizations/", "/v3beta1/organizations/", path)
    for template, item in spec()["paths"].items():
        pattern = re.sub(r"\{[^/]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and method.lower() in item:
            # /sessions/insights before /sessions/{devin_id}: the first match in file order.
            op = item[method.lower()]
            params = [resolve(p) for p in item.get("parameters", []) + op.get("parameters", [])]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            return {"params": {p["name"]: p for p in params if p["in"] == "query"},
                    "body": body.get("schema"), "id": op["operationId"]}
    raise AssertionError(f"no operation for {method} {path}")


def coerce(schema: dict[str, Any], raw: str) -> Any:
    kind = resolve(schema).get("type")
    if kind == "integer":
        return int(raw) if re.fullmatch(r"-?\d+", raw) else raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    return raw


def check_request(request: RecordedRequest) -> list[str]:
    """Return what in `request` does not fit the spec (empty: it fits)."""
    op = operation(request.method, request.path)
    problems: list[str] = []
    values: dict[str, list[str]] = {}
    for key, value in request.query:
        values.setdefault(key, []).append(value)
    for key, raw in values.items():
        param = op["params"].get(key)
        if param is None:
            problems.append(f"{op['id']}: undeclared query parameter {key!r}")
            continue
        schema = resolve(param["schema"])
        if schema.get("type") == "array":  # form + explode: one key per item
            instance: Any = [coerce(schema["items"], v) for v in raw]
        elif len(raw) == 1:
            instance = coerce(schema, raw[0])
        else:
            problems.append(f"{op['id']}: {key!r} repeated but not an array")
            continue
        try:
            validate(schema, instance)
        except Exception as exc:  # jsonschema.ValidationError
            problems.append(f"{op['id']}: {key}={raw!r}: {str(exc).splitlines()[0]}")
    if op["body"] is not None and request.json is not None:
        try:
            validate(op["body"], request.json)
        except Exception as exc:
            problems.append(f"{op['id']}: body: {str(exc).splitlines()[0]}")
    return problems


@pytest.fixture
async def flow() -> list[RecordedRequest]:
    """Run what a user does (every endpoint, single-value filters) and return the requests."""
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id, poll=PollPolicy(
            initial=0.005, max=0.01, jitter=0.0), transport=server.transport(),
            retry=RetryPolicy(settle=0.01)) as client:
        await client.whoami()
        s = await client.sessions.create("Hi", tags=["ci"], repos=["o/r"], max_acu_limit=3,
                                         idempotency_key="k-1", title="t")
        sid = s.session_id
        await client.sessions.wait(sid)
        await client.sessions.get(sid)
        await client.sessions.list(tags=["ci"], session_ids=[sid], created_after=1,
                                   updated_before=4_000_000_000, origins=["api"],
                                   is_archived=False, page_size=50).to_list()
        await client.sessions.send_message(sid, "more", attachment_urls=["https://a.invalid/x"])
        [m async for m in client.sessions.messages(sid, page_size=10)]
        await client.sessions.add_tags(sid, ["b"])
        await client.sessions.replace_tags(sid, ["c"])
        await client.sessions.get_tags(sid)
        await client.sessions.attachments(sid)
        ids = [e.event_id async for e in client.sessions.events(
            sid, categories=["lifecycle"], direction="incoming", created_after=1)]
        await client.sessions.event_details(sid, ids[:3], max_content_length=100)
        [m async for m in client.sessions.search_events(sid, "Hi", categories=["message"])]
        await client.sessions.insights(sid)
        await client.sessions.generate_insights(sid, timeout=600)
        await client.sessions.list_insights(tags=["ci"]).to_list()
        uploaded = await client.attachments.upload(b"data", name="f.txt")
        assert await client.attachments.download(uploaded.url, io.BytesIO()) == 4
        async with client.watch([sid], tags=["ci"], follow_children=True) as watcher:
            [e async for e in watcher]
        [r async for r in client.sessions.create_many(
            [{"prompt": "a"}, {"prompt": "b", "tags": ["ci"]}], batch_key="audit")]
        await client.sessions.archive(sid)
        await client.sessions.terminate(sid, archive=True)
    return [r for r in server.requests if r.endpoint is not None]


async def test_every_request_fits_the_spec(flow: list[RecordedRequest]) -> None:
    assert len({operation(r.method, r.path)["id"] for r in flow}) >= 18
    problems = [p for r in flow for p in check_request(r)]
    assert problems == []


@pytest.mark.parametrize(("call", "param", "values"), [
    ("list_sessions", "session_ids", None),
    ("list_sessions", "origins", ["api", "webapp"]),
    ("events", "categories", ["shell", "file"]),
    ("details", "event_ids", ["evt-1", "evt-2"]),
])
async def test_multi_value_array_filters_are_one_comma_joined_key(
        call: str, param: str, values: list[str] | None) -> None:
    # A documented deviation from the spec's `style: form, explode: true` (one key per item):
    # API-FACTS.md "Query arrays" says send one comma-joined value, as the owner's SDK does
    # (devin_sdk 0.1.0), with the format in one constant (`_protocol.ARRAY_FORMAT`). A
    # spec-driven mock reads "shell,file" as one item; single values fit either reading.
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport()) as client:
        a, b = server.add_sessions(2)
        if call == "list_sessions":
            kw: dict[str, Any] = ({"session_ids": [a, b]} if param == "session_ids"
                                  else {"origins": values})
            got = await client.sessions.list(**kw).to_list()
            if param == "session_ids":
                assert {s.session_id for s in got} == {a, b}  # the fake splits it again
        elif call == "events":
            [e async for e in client.sessions.events(a, categories=values)]
        else:
            await client.sessions.event_details(a, values or [])
    sent = [r for r in server.requests if any(k == param for k, _ in r.query)]
    assert sent
    want = ",".join(values or [a, b])
    assert all([v for k, v in r.query if k == param] == [want] for r in sent)


def fields_of(cls: type) -> set[str]:
    return {f.name for f in attrs.fields(cls)}


def props(name: str) -> set[str]:
    schema = spec()["components"]["schemas"][name]
    out = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        out |= set(resolve(part).get("properties", {}))
    return out


@pytest.mark.parametrize(("schema", "model"), [
    ("SessionResponse", Session), ("SessionPullRequest", PullRequest),
    ("SessionMessage", Message), ("SessionAttachment", Attachment),
    ("SessionEventSummary", ActivityEvent), ("SessionEventDetail", ActivityEventDetail),
    ("SessionEventSearchItem", ActivityEventMatch), ("SessionInsights", SessionInsights),
    ("AttachmentUploadResponse", UploadedAttachment), ("SessionListPage", Page),
    ("ServiceUserSelf", Principal), ("PatUserSelf", Principal),
    ("DevinBrainUserSelf", Principal), ("WindsurfSessionUserSelf", Principal),
])
def test_every_response_field_is_parsed(schema: str, model: type) -> None:
    assert props(schema) - fields_of(model) == set()


async def test_insights_keep_sdk_tags_out_like_sessions() -> None:
    server = FakeDevinServer(time_scale=2000)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport()) as client:
        s = await client.sessions.create("x", tags=["mine"])
        insights = await client.sessions.insights(s.session_id)
    assert s.tags == ["mine"]
    assert insights.tags == s.tags
    evolved = attrs.evolve(insights, analysis={"issues": []})
    assert (evolved.tags, evolved.client_token) == (["mine"], s.client_token)
    assert s.client_token and insights.client_token == s.client_token


async def test_upload_is_multipart_with_one_file_part() -> None:
    body = json.dumps({"attachment_id": "a-1", "name": "f.txt", "url": "https://x/a"}).encode()
    transport = MockTransport(lambda r: HTTPResponse(200, {"content-type": "application/json"},
                                                     body))
    async with DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a",
                           transport=transport) as client:
        await client.attachments.upload(b"hello", name="f.txt")
    (sent,) = transport.requests
    assert sent.method == "POST" and sent.url.endswith("/organizations/org-a/attachments")
    kind = {k.lower(): v for k, v in sent.headers.items()}["content-type"]
    assert kind.startswith("multipart/form-data; boundary=")
    assert b'name="file"' in sent.body and b"hello" in sent.body
