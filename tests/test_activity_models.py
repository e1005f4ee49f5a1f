"""Models of the newer endpoints (devin_async._activity): parsing tables, open enums, secrets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devin_async import MalformedResponseError
from devin_async._activity import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    EventCategory,
    Principal,
    SessionInsights,
    SessionSecret,
    UploadedAttachment,
    parse_event_details,
    parse_event_match_page,
    parse_event_page,
    parse_insights,
    parse_insights_page,
    parse_principal,
    parse_uploaded_attachment,
)
from devin_async._enums import SessionStatus, StatusDetail

EVENT = {"event_id": "evt-1", "event_type": "shell_process_started", "category": "shell",
         "direction": "outgoing", "created_at": 1764288005, "summary": "Ran: pytest -q"}
DETAIL = {**{k: v for k, v in EVENT.items() if k != "summary"},
          "contents": {"command": "pytest -q", "output": "ok"}, "truncated_fields": ["output"]}
MATCH = {**EVENT, "match_context": "…pytest -q…"}
SESSION = {"session_id": "devin-1", "url": "https://app.devin.ai/sessions/1", "status": "running",
           "status_detail": "working", "tags": ["a"], "org_id": "org-1", "created_at": 1,
           "updated_at": 2, "acus_consumed": 1, "pull_requests": [
               {"pr_url": "https://github.com/o/r/pull/1", "pr_state": "open"}]}
INSIGHTS = {**SESSION, "num_devin_messages": 2, "num_user_messages": 1, "session_size": "xs",
            "analysis": {"classification": {"category": "bug_fixing", "confidence": 0.9}}}
SERVICE_USER = {"principal_type": "service_user", "service_user_id": "su-1",
                "service_user_name": "ci-bot", "org_id": "org-1"}
PAT_USER = {"principal_type": "pat_user", "user_id": "u-1", "user_name": "Ada",
            "api_key_id": "k-1", "api_key_name": "laptop", "org_id": None}
UPLOAD = {"attachment_id": "3f2c", "name": "data.csv", "url": "https://api.devin.ai/x/data.csv"}


def page(*items: Any, **extra: Any) -> dict[str, Any]:
    return {"items": list(items), "end_cursor": None, "has_next_page": False, **extra}


Parser = Callable[[Any], Any]
VALID: list[tuple[Parser, Any, Callable[[Any], bool]]] = [
    (parse_event_page, page(EVENT, end_cursor="c", has_next_page=True, total=1),
     lambda p: p.items == [ActivityEvent(**{**EVENT, "category": EventCategory.SHELL})]
     and p.end_cursor == "c" and p.has_next_page and p.total == 1),
    (parse_event_page, {"items": []}, lambda p: p.items == [] and p.has_next_page is False),
    (parse_event_match_page, page(MATCH),
     lambda p: isinstance(p.items[0], ActivityEventMatch)
     and p.items[0].match_context == "…pytest -q…"),
    (parse_event_details, {"items": [DETAIL]},
     lambda d: d == [ActivityEventDetail(**{**DETAIL, "category": EventCategory.SHELL})]
     and d[0].summary is None),
    (parse_event_details, {"items": [{**DETAIL, "truncated_fields": None}]},
     lambda d: d[0].truncated_fields is None),
    (parse_insights, INSIGHTS,
     lambda i: isinstance(i, SessionInsights) and i.status is SessionStatus.RUNNING
     and i.status_detail is StatusDetail.WORKING and i.pull_requests[0].pr_state == "open"
     and i.acus_consumed == 1.0 and i.analysis == INSIGHTS["analysis"]),
    (parse_insights, {**INSIGHTS, "analysis": None}, lambda i: i.analysis is None),
    (parse_insights_page, page(INSIGHTS, total=None),
     lambda p: p.items[0].num_devin_messages == 2 and p.total is None),
    (parse_principal, SERVICE_USER,
     lambda p: p == Principal("service_user", org_id="org-1", service_user_id="su-1",
                              service_user_name="ci-bot")),
    (parse_principal, PAT_USER,
     lambda p: p.user_name == "Ada" and p.api_key_name == "laptop" and p.org_id is None),
    (parse_principal, {"principal_type": "devin_brain", "devin_id": "devin-1",
                       "org_id": "org-1", "user_id": "u-1"},
     lambda p: p.principal_type == "devin_brain" and p.devin_id == "devin-1"),
    (parse_uploaded_attachment, UPLOAD, lambda a: a == UploadedAttachment(**UPLOAD)),
]


@pytest.mark.parametrize(("parse", "data", "check"), VALID)
def test_valid_payloads_parse(parse: Parser, data: Any, check: Callable[[Any], bool]) -> None:
    assert check(parse(data))


@pytest.mark.parametrize(("parse", "data"), [
    (parse_event_page, []),
    (parse_event_page, {"items": {}}),
    (parse_event_page, page({**EVENT, "created_at": "yesterday"})),
    (parse_event_page, page({k: v for k, v in EVENT.items() if k != "summary"})),
    (parse_event_page, page(EVENT, end_cursor=3)),
    (parse_event_page, page(EVENT, has_next_page="yes")),
    (parse_event_page, page(EVENT, total=1.5)),
    (parse_event_page, page("evt-1")),
    (parse_event_page, page({**EVENT, "category": 7})),
    (parse_event_match_page, page(EVENT)),
    (parse_event_details, None),
    (parse_event_details, {"items": [{**DETAIL, "contents": "text"}]}),
    (parse_event_details, {"items": [{**DETAIL, "truncated_fields": [1]}]}),
    (parse_insights, {**INSIGHTS, "analysis": "pending"}),
    (parse_insights, {k: v for k, v in INSIGHTS.items() if k != "session_size"}),
    (parse_insights, {**INSIGHTS, "pull_requests": ["https://github.com/o/r/pull/1"]}),
    (parse_insights, {**INSIGHTS, "is_archived": "no"}),
    (parse_insights_page, page({**INSIGHTS, "num_user_messages": None})),
    (parse_principal, {"service_user_id": "su-1"}),
    (parse_principal, {**SERVICE_USER, "org_id": 5}),
    (parse_principal, "service_user"),
    (parse_uploaded_attachment, {"attachment_id": "a", "name": "n"}),
    (parse_uploaded_attachment, {**UPLOAD, "url": None}),
])
def test_wrong_shapes_are_malformed_response_errors(parse: Parser, data: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse(data)


def test_unknown_fields_are_ignored_and_unknown_enum_values_kept() -> None:
    event = parse_event_page(page({**EVENT, "category": "telepathy", "new_field": {"x": 1}}))
    category = event.items[0].category
    assert isinstance(category, EventCategory) and category == "telepathy"
    assert category.value == "telepathy" and not category.is_known
    assert EventCategory("shell").is_known
    insights = parse_insights({**INSIGHTS, "status": "hibernating", "future": [1, 2]})
    assert insights.status.value == "hibernating"
    principal = parse_principal({"principal_type": "robot", "org_id": "org-1", "extra": 1})
    assert principal.principal_type == "robot" and principal.org_id == "org-1"
    assert parse_uploaded_attachment({**UPLOAD, "size": 3}) == UploadedAttachment(**UPLOAD)


def test_event_category_lists_every_documented_category() -> None:
    assert [c.value for c in EventCategory] == [
        "shell", "file", "search", "browser", "mcp", "git", "message", "status", "secret",
        "todo", "recording", "knowledge", "playbook", "webhook", "lifecycle", "other"]


SECRET_VALUE = "s3cr3t-Value-9f2b"


@pytest.mark.parametrize("secret", [
    SessionSecret("API_TOKEN", SECRET_VALUE),
    SessionSecret("API_TOKEN", SECRET_VALUE, sensitive=False),
    SessionSecret(key="API_TOKEN", value=SECRET_VALUE),
])
def test_a_session_secret_never_shows_its_value(secret: SessionSecret) -> None:
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"s": secret})):
        assert SECRET_VALUE not in text
        assert "API_TOKEN" in text and "<redacted>" in text
    assert secret.to_json() == {"key": "API_TOKEN", "value": SECRET_VALUE,
                                "sensitive": secret.sensitive}


@pytest.mark.parametrize(("key", "value", "sensitive"), [
    ("", "v", True), ("k" * 257, "v", True), (3, "v", True), ("K", 3, True),
    ("K", "v" * 65537, True), ("K", "v", "yes"),
])
def test_a_session_secret_out_of_bounds_is_a_value_error(key: Any, value: Any,
                                                          sensitive: Any) -> None:
    with pytest.raises(ValueError) as info:
        SessionSecret(key, value, sensitive=sensitive)
    assert "v" * 20 not in str(info.value)


def test_models_are_frozen_and_slotted() -> None:
    secret = SessionSecret("K", "v")
    with pytest.raises(AttributeError):
        secret.value = "w"  # type: ignore[misc]
    for cls in (ActivityEvent, ActivityEventDetail, ActivityEventMatch, SessionInsights,
                Principal, UploadedAttachment, SessionSecret):
        assert "__slots__" in cls.__dict__
