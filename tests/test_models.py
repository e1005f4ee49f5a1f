"""Models, the lifecycle table, create-request rules and config values."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from devin_async import (
    CreateSessionRequest,
    PollPolicy,
    RetryPolicy,
    Session,
    SessionStatus,
    StatusDetail,
    Timeouts,
)
from devin_async._lifecycle import Phase, phase_of


def make_session(status: str, detail: str | None = None) -> Session:
    return Session(
        session_id="devin-1", status=SessionStatus(status),
        status_detail=StatusDetail(detail) if detail else None,
        url="u", org_id="org-1", created_at=1, updated_at=1,
    )


@pytest.mark.parametrize(
    ("status", "detail", "terminal", "settled", "phase"),
    [
        ("new", None, False, False, Phase.STARTING),
        ("claimed", None, False, False, Phase.STARTING),
        ("resuming", None, False, False, Phase.STARTING),
        ("running", None, False, False, Phase.ACTIVE),
        ("running", "working", False, False, Phase.ACTIVE),
        ("running", "finished", False, True, Phase.SETTLED),
        ("running", "waiting_for_user", False, True, Phase.SETTLED),
        ("running", "waiting_for_approval", False, True, Phase.SETTLED),
        ("suspended", "inactivity", False, True, Phase.SETTLED),
        ("suspended", None, False, True, Phase.SETTLED),
        ("exit", None, True, True, Phase.TERMINAL),
        ("error", None, True, True, Phase.TERMINAL),
        ("creating", None, False, False, Phase.ACTIVE),  # unknown: keep polling
        ("running", "pondering", False, False, Phase.ACTIVE),
    ],
)
def test_lifecycle_table(status: str, detail: str | None, terminal: bool, settled: bool,
                         phase: Phase) -> None:
    s = make_session(status, detail)
    assert s.is_terminal is terminal
    assert s.is_settled is settled
    assert s.phase is phase is phase_of(status, detail)


def test_models_are_frozen_and_slotted() -> None:
    s = make_session("new")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.status = SessionStatus.EXIT  # type: ignore[misc]
    assert not hasattr(s, "__dict__")
    assert s.state == ("new", None)


def test_open_enum_members() -> None:
    assert SessionStatus("running") is SessionStatus.RUNNING
    unknown = SessionStatus("hibernating")
    assert unknown.value == "hibernating" and unknown == "hibernating"
    assert not unknown.is_known and SessionStatus.RUNNING.is_known
    assert [m.value for m in SessionStatus] == [
        "new", "claimed", "running", "exit", "error", "suspended", "resuming"]
    with pytest.raises(ValueError):
        SessionStatus(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x", "advanced_mode": "turbo"}, "advanced_mode"),
        ({"prompt": "x", "advanced_mode": "analyze"}, "session_links"),
        ({"prompt": "x", "advanced_mode": "analyze", "session_links": []}, "session_links"),
        ({"prompt": "x", "advanced_mode": "improve"}, "child_playbook_id"),
        ({"prompt": "x", "advanced_mode": "batch"}, "child_playbook_id"),
        ({"prompt": "x", "max_acu_limit": 0}, "max_acu_limit"),
        ({"prompt": "x", "max_acu_limit": -3}, "max_acu_limit"),
        ({"prompt": "x", "max_acu_limit": 2.5}, "max_acu_limit"),
        ({"prompt": "x", "max_acu_limit": True}, "max_acu_limit"),
        ({"prompt": "x", "max_acu_limit": "10"}, "max_acu_limit"),
        ({"prompt": "x", "tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"prompt": "x", "tags": "one"}, "tags"),
        ({"prompt": "x", "repos": "owner/repo"}, "repos"),
        ({"prompt": "x", "knowledge_ids": [1]}, "knowledge_ids"),
        ({"prompt": "x", "title": 5}, "title"),
        ({"prompt": "x", "bypass_approval": "yes"}, "bypass_approval"),
        ({"prompt": "x", "extra": {"tags": ["a"]}}, "tags"),
    ],
)
def test_create_request_rules(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CreateSessionRequest(**fields).validate()


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "x"},
        {"prompt": "x", "advanced_mode": "analyze", "session_links": ["https://a/s/1"]},
        {"prompt": "x", "advanced_mode": "improve", "child_playbook_id": "pb-1"},
        {"prompt": "x", "advanced_mode": "batch", "child_playbook_id": "pb-1"},
        {"prompt": "x", "advanced_mode": "create"},
        {"prompt": "x", "advanced_mode": "manage"},
        {"prompt": "x", "max_acu_limit": 1, "tags": [f"t{i}" for i in range(50)]},
    ],
)
def test_create_request_valid(fields: dict[str, Any]) -> None:
    CreateSessionRequest(**fields).validate()


def test_to_body_sends_only_given_fields() -> None:
    req = CreateSessionRequest("fix it", title="t", repos=("o/r",), tags=None,
                               extra={"devin_mode": "fast", "platform": None})
    assert req.to_body() == {"prompt": "fix it", "title": "t", "repos": ["o/r"],
                             "devin_mode": "fast"}


def test_to_body_with_tags_replaces_them_in_the_body_only() -> None:
    req = CreateSessionRequest("p", tags=["a"], extra={"x": 1})
    assert req.to_body(tags=["a", "b"]) == {"prompt": "p", "tags": ["a", "b"], "x": 1}
    assert req.tags == ["a"] and req.to_body()["tags"] == ["a"]
    assert CreateSessionRequest("p").to_body(tags=["t"]) == {"prompt": "p", "tags": ["t"]}
    body = req.to_body()
    body["tags"].append("z")  # the body holds copies: the request is not changed through it
    assert req.tags == ["a"]


@pytest.mark.parametrize("value", [["a", 1], ("a", None), "abc", b"ab", {"a": 1}, 5])
def test_list_fields_refuse_non_strings_whatever_the_container(value: Any) -> None:
    with pytest.raises(ValueError, match="repos"):
        CreateSessionRequest("p", repos=value).validate()


def test_list_fields_accept_any_sequence_of_strings() -> None:
    for value in (["a"], ("a", "b"), {"a"}, frozenset({"b"}), []):
        CreateSessionRequest("p", repos=value).validate()  # type: ignore[arg-type]


def test_all_seed_fields_round_trip() -> None:
    fields = dict(
        prompt="p", advanced_mode="batch", bypass_approval=True, child_playbook_id="c",
        create_as_user_id="u", knowledge_ids=["k"], max_acu_limit=5, playbook_id="pb",
        repos=["o/r"], secret_ids=["s"], session_links=["l"], tags=["t"], title="ti",
    )
    assert CreateSessionRequest(**fields).to_body() == fields  # type: ignore[arg-type]


def test_from_dict_takes_named_fields_and_extra_body_and_refuses_unknown_keys() -> None:
    req = CreateSessionRequest.from_dict({"prompt": "p", "title": "t", "devin_mode": "fast"})
    assert req.title == "t" and req.devin_mode == "fast" and req.extra == {}
    newer = CreateSessionRequest.from_dict({"prompt": "p", "extra_body": {"brand_new": 1}})
    assert newer.extra == {"brand_new": 1} and newer.to_body() == {"prompt": "p", "brand_new": 1}
    with pytest.raises(ValueError, match="brand_new"):  # a typo is not sent silently
        CreateSessionRequest.from_dict({"prompt": "p", "brand_new": 1})
    with pytest.raises(ValueError, match="prompt"):
        CreateSessionRequest.from_dict({"title": "t"})


def test_config_defaults_are_finite_and_frozen() -> None:
    t, r, p = Timeouts(), RetryPolicy(), PollPolicy()
    assert 0 < t.connect <= t.total < float("inf")
    assert r.max_attempts >= 2 and r.deadline < float("inf") and r.max_retry_after < r.deadline
    assert 0 < p.initial <= p.max < float("inf")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.max_attempts = 9  # type: ignore[misc]
    assert RetryPolicy.disabled().max_attempts == 1
    assert r.backoff(1) == 0.5 and r.backoff(10) == r.max_backoff
    assert p.next_interval(p.initial) == p.initial * p.multiplier
    assert p.next_interval(p.max) == p.max


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (Timeouts, {"connect": 0}),
        (Timeouts, {"total": -1}),
        (RetryPolicy, {"max_attempts": 0}),
        (RetryPolicy, {"max_attempts": 2.5}),
        (RetryPolicy, {"deadline": 0}),
        (PollPolicy, {"initial": 0}),
        (PollPolicy, {"jitter": 2}),
    ],
)
def test_config_rejects_nonsense(cls: type[Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        cls(**kwargs)


def test_predicates_work_as_attributes_and_as_until_callables() -> None:
    done, busy = make_session("exit"), make_session("running", "working")
    assert done.is_terminal is True and busy.is_terminal is False
    assert Session.is_terminal(done) is True and Session.is_settled(busy) is False
    assert list(filter(Session.is_settled, [done, busy])) == [done]
