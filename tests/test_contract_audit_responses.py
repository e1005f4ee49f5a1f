"""Audit: every response the spec allows is parsed (hypothesis draws them from the schemas).

A small generator turns the OpenAPI schemas into strategies (types, nulls, enums plus unknown
values, optional properties, unknown extra properties); each drawn body is served through
MockTransport to the public call that reads it, which must parse it without error and keep
every value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devin_async import DevinClient, HTTPRequest, HTTPResponse, RetryPolicy
from devin_async.testing import MockTransport

SPEC = Path(__file__).parent / "data" / "devin-v3beta1-sessions.openapi.yaml"
TEXT = st.text("abcdefghij-_0123456789", min_size=1, max_size=12)


@cache
def schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    return loaded


def strategy(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for instances of a (subset of) JSON Schema node of the spec."""
    if "$ref" in node:
        return st.deferred(lambda: strategy(schemas()[node["$ref"].rsplit("/", 1)[-1]]))
    if "enum" in node:  # open enums: an unknown value must be kept too
        known = [v for v in node["enum"] if v is not None]
        return st.sampled_from(known) | TEXT | (st.none() if None in node["enum"] else st.nothing())
    for key in ("oneOf", "anyOf"):
        if key in node:
            return st.one_of([strategy(n) for n in node[key]])
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = schemas()[part["$ref"].rsplit("/", 1)[-1]] if "$ref" in part else part
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return strategy(merged)
    kinds = node.get("type", "object")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return st.one_of([_typed(kind, node) for kind in kinds])


def _typed(kind: str, node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "string":
        return TEXT
    if kind == "integer":
        return st.integers(0, 2_000_000_000)
    if kind == "number":
        return st.integers(0, 1000) | st.floats(0, 1000, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(strategy(node.get("items", {"type": "string"})), max_size=3)
    props = node.get("properties")
    if not props:
        return st.dictionaries(TEXT, st.integers() | TEXT, max_size=3)
    required = set(node.get("required", []))
    return st.fixed_dictionaries(
        {k: strategy(v) for k, v in props.items() if k in required},
        optional={**{k: strategy(v) for k, v in props.items() if k not in required},
                  "zz_unknown_field": st.integers()})


def serve(body: Any, call: Callable[[DevinClient], Awaitable[Any]]) -> Any:
    raw = json.dumps(body).encode()

    def handler(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(200, {"content-type": "application/json"}, raw)

    async def run() -> Any:
        async with DevinClient(api_key="cog_test_key_abcdef123456", org_id="org-a",
                               transport=MockTransport(handler),
                               retry=RetryPolicy(max_attempts=1)) as client:
            return await call(client)

    return asyncio.run(run())


CASES: list[tuple[str, Callable[[Any], st.SearchStrategy[Any]], Any]] = [
    ("SessionResponse", lambda s: s, lambda b: lambda c: c.sessions.get(b["session_id"])),
    ("SessionInsights", lambda s: s, lambda b: lambda c: c.sessions.insights("devin-1")),
    ("SelfResponse", lambda s: s, lambda b: lambda c: c.whoami()),
    ("AttachmentUploadResponse", lambda s: s,
     lambda b: lambda c: c.attachments.upload(b"x", name="f.txt")),
]


@pytest.mark.parametrize(("name", "wrap", "make_call"), CASES)
def test_any_spec_valid_body_parses(name: str, wrap: Any, make_call: Any) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=wrap(strategy(schemas()[name])))
    def check(body: dict[str, Any]) -> None:
        if name == "SessionResponse":
            body = {**body, "session_id": "devin-1"}
        got = serve(body, make_call(body))
        for key, value in body.items():
            if key == "zz_unknown_field" or key == "tags" or not hasattr(got, key):
                continue
            kept = getattr(got, key)
            kept = getattr(kept, "value", kept)  # an open enum keeps the string sent
            if key == "pull_requests":
                kept = [(p.pr_url, p.pr_state) for p in kept]
                value = [(p["pr_url"], p.get("pr_state")) for p in value]
            assert kept == value, key

    check()


@pytest.mark.parametrize(("name", "call"), [
    ("SessionMessage", lambda c: c.sessions.messages("devin-1").to_list()),
    ("SessionEventSummary", lambda c: c.sessions.events("devin-1").to_list()),
    ("SessionEventSearchItem", lambda c: c.sessions.search_events("devin-1", "q").to_list()),
    ("SessionEventDetail", lambda c: c.sessions.event_details("devin-1", ["e-1"])),
])
def test_any_spec_valid_page_parses(name: str, call: Any) -> None:
    async def collect(client: DevinClient) -> Any:
        return await call(client)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=st.fixed_dictionaries({
        "items": st.lists(strategy(schemas()[name]), max_size=3),
        "has_next_page": st.just(False)}))
    def check(body: dict[str, Any]) -> None:
        got = serve(body, collect)
        assert len(got) == len(body["items"])

    check()
