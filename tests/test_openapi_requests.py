"""Every request body the SDK builds validates against the OpenAPI description."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema
import pytest

from devin_async import DevinClient
from devin_async._transport import HTTPResponse

from .helpers import KEY, mock, reply, session_json
from .helpers import Call as Sent
from .openapi import validate

Call = Callable[[DevinClient], Awaitable[Any]]

CASES: list[tuple[str, str, Call]] = [
    ("SessionCreateRequest", "POST /sessions",
     lambda c: c.sessions.create("minimal")),
    ("SessionCreateRequest", "POST /sessions",
     lambda c: c.sessions.create(
         "everything", advanced_mode="batch", bypass_approval=True, child_playbook_id="pb-c",
         create_as_user_id="user-1", knowledge_ids=["k1"], max_acu_limit=10,
         playbook_id="pb-1", repos=["o/r"], secret_ids=["s1"], session_links=["https://x"],
         tags=["t"], title="title", devin_mode="fast", structured_output_required=False,
         session_secrets=[{"key": "K", "value": "V", "sensitive": True}])),
    ("SessionCreateRequest", "POST /sessions",
     lambda c: c.sessions.create("analyze", advanced_mode="analyze", session_links=["l"],
                                 extra_body={"newer_field": True})),
    ("SessionMessageCreateRequest", "POST /sessions/devin-1/messages",
     lambda c: c.sessions.send_message("devin-1", "hello", message_as_user_id="user-2")),
    ("SessionTagsUpdateRequest", "POST /sessions/devin-1/tags",
     lambda c: c.sessions.add_tags("devin-1", ["a", "b"])),
    ("SessionTagsUpdateRequest", "PUT /sessions/devin-1/tags",
     lambda c: c.sessions.replace_tags("devin-1", [f"t{i}" for i in range(50)])),
]


@pytest.mark.parametrize("tokens", [True, False], ids=["guarded", "unguarded"])
@pytest.mark.parametrize(("schema", "route", "call"), CASES)
async def test_request_bodies_fit_the_description(schema: str, route: str, call: Call,
                                                  tokens: bool) -> None:
    method, path = route.split(" ")

    def answer(sent: Sent) -> HTTPResponse:
        if sent.path.endswith("/tags"):
            return reply(200, {"tags": ["a"]})
        if sent.path == "/sessions" and sent.method == "GET":  # a create's token look-up
            return reply(200, {"items": [], "has_next_page": False})
        return reply(200, session_json())

    transport = mock(answer)
    async with DevinClient(KEY, org_id="org-test", transport=transport,
                           client_tokens=tokens) as client:
        await call(client)
    (sent,) = [r for r in transport.requests
               if r.method == method and r.url.split("?")[0].endswith(f"/org-test{path}")]
    assert sent.body is not None
    body = json.loads(sent.body)
    validate(schema, body)
    assert None not in body.values()


def test_validator_rejects_a_bad_body() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("SessionCreateRequest", {"prompt": 5})


def test_samples_fit_the_response_schema() -> None:
    validate("SessionResponse", session_json())
    assert re.fullmatch(r"devin-\w+", session_json()["session_id"])
