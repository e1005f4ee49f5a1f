"""Pure tests of the sans-I/O layer: ids, retry hints, error decoding, response shapes."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Session,
    SessionStatus,
    StatusDetail,
    UnprocessableEntityError,
)
from devin_async._converter import CONVERTER, make_converter
from devin_async._decisions import Action, Kind, Outcome, classify, decide, rides_out
from devin_async._protocol import (
    check_id,
    decode_error,
    decode_json,
    encode_array,
    parse_attachments,
    parse_message_page,
    parse_retry_after,
    parse_session,
    parse_session_page,
    parse_tags,
)

from .properties import examples

# A recorded sample: the OpenAPI description's SessionNew example plus get-only fields.
SESSION: dict[str, Any] = {
    "session_id": "devin-abc123",
    "url": "https://app.devin.ai/sessions/abc123",
    "status": "running",
    "status_detail": "working",
    "tags": ["alpha"],
    "org_id": "org-abc123def456",
    "created_at": 1764288000,
    "updated_at": 1764288060,
    "acus_consumed": 1.5,
    "pull_requests": [{"pr_url": "https://github.com/o/r/pull/1", "pr_state": "open"}],
    "title": None,
    "user_id": None,
    "is_archived": False,
}


@pytest.mark.parametrize(
    "value",
    ["devin-abc123", "org-abc123def456", "a", "A.b_c:d-e", "x" * 200],
)
def test_check_id_accepts_safe_ids(value: str) -> None:
    assert check_id("session_id", value) == value


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "../x", "a/b", "a?b", "a#b", "%2e%2e", "a%2fb", " a", "a b", "a\nb",
     "\uff41", "devin-\u0430bc", "x" * 201, "-lead", ".hidden", "a\\b"],
)
def test_check_id_rejects_path_escapes(value: str) -> None:
    with pytest.raises(ValueError, match="session_id"):
        check_id("session_id", value)


@pytest.mark.parametrize("value", [None, 5, b"devin-1", ["devin-1"]])
def test_check_id_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="session_id must be a string"):
        check_id("session_id", value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "bad", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "Thu, 01 Jan 2026 00:00:10 GMT"}, 10.0),
        ({"Retry-After": "Wed, 31 Dec 2025 23:59:00 GMT"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    assert parse_retry_after(headers, now) == expected


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_decode_error_maps_status_to_class(status: int, cls: type[APIStatusError]) -> None:
    err = decode_error(status, {}, _body({"detail": "nope"}), method="GET", path="/x")
    assert type(err) is cls
    assert err.status == status
    assert err.detail == "nope"
    assert err.body == {"detail": "nope"}
    assert "GET /x" in str(err)


def test_decode_error_422_list_detail() -> None:
    detail = [
        {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"},
        {"loc": ["body", "tags"], "msg": "too many", "type": "too_long"},
    ]
    err = decode_error(422, {}, _body({"detail": detail}))
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == detail
    assert err.detail == "body.prompt: Field required; body.tags: too many"


def test_decode_error_problem_json() -> None:
    body = {"type": "about:blank", "title": "Forbidden", "status": 403,
            "detail": "Missing permission ManageOrgSessions"}
    err = decode_error(403, {"content-type": "application/problem+json"}, _body(body))
    assert err.detail == "Missing permission ManageOrgSessions"


def test_decode_error_problem_json_with_errors_and_no_detail() -> None:
    body = {"title": "Unprocessable", "status": 422, "errors": [{"msg": "bad", "loc": ["x"]}]}
    err = decode_error(422, {}, _body(body))
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == [{"msg": "bad", "loc": ["x"]}]
    assert err.detail == "x: bad"


def test_decode_error_title_only() -> None:
    assert decode_error(401, {}, _body({"title": "Unauthorized"})).detail == "Unauthorized"


def test_decode_error_html_page() -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    err = decode_error(502, {"x-request-id": "req-9"}, html)
    assert isinstance(err, InternalServerError)
    assert err.detail == "502 Bad Gateway"
    assert err.body == html.decode()
    assert err.request_id == "req-9"
    assert "req-9" in str(err)


@pytest.mark.parametrize("body", [b"", b"   ", b"upstream connect error", b"\xff\xfe"])
def test_decode_error_never_raises_on_odd_bodies(body: bytes) -> None:
    err = decode_error(503, {"Retry-After": "2"}, body)
    assert isinstance(err, InternalServerError)
    assert isinstance(err.detail, str) and err.detail
    assert err.retry_after == 2.0


@pytest.mark.parametrize("detail", [{"a": 1}, 5, None])
def test_decode_error_detail_is_always_a_string(detail: object) -> None:
    assert isinstance(decode_error(400, {}, _body({"detail": detail})).detail, str)


def test_decode_error_retry_after_ms() -> None:
    err = decode_error(429, {"retry-after-ms": "1500"}, _body({"detail": "slow down"}))
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 1.5


@pytest.mark.parametrize("body", [b"", b"not json", b"{\"a\": ", b"[" * 100_000])
def test_decode_json_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        decode_json(200, body)


def test_parse_session_sample() -> None:
    s = parse_session(SESSION)
    assert s.session_id == "devin-abc123"
    assert s.status is SessionStatus.RUNNING
    assert s.status_detail is StatusDetail.WORKING
    assert s.created_at == 1764288000 and isinstance(s.created_at, int)
    assert s.pull_requests[0].pr_url.endswith("/pull/1")
    assert s.tags == ["alpha"]
    assert not s.is_settled and not s.is_terminal


def test_parse_session_ignores_unknown_fields_and_keeps_unknown_enums() -> None:
    s = parse_session({**SESSION, "status": "creating", "status_detail": "thinking",
                       "brand_new_field": {"x": 1}})
    assert s.status == "creating"
    assert s.status.value == "creating"
    assert isinstance(s.status, SessionStatus)
    assert not s.status.is_known
    assert s.status_detail is not None and s.status_detail.value == "thinking"


@pytest.mark.parametrize(
    "patch",
    [
        {"status": 5},
        {"created_at": "yesterday"},
        {"created_at": None},
        {"tags": "alpha"},
        {"tags": [1]},
        {"pull_requests": [1]},
        {"pull_requests": "x"},
        {"acus_consumed": "1"},
        {"is_archived": "no"},
        {"structured_output": [1]},
        {"session_id": None},
    ],
)
def test_parse_session_wrong_types_are_malformed(patch: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        parse_session({**SESSION, **patch})


@pytest.mark.parametrize("data", [None, [], "x", 1, {}, {"session_id": "devin-1"}])
def test_parse_session_not_a_session(data: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_session(data)


def test_client_token_tag_is_split_out() -> None:
    s = parse_session({**SESSION, "tags": ["a", "devin-async-token:0123456789abcdef"]})
    assert s.tags == ["a"]
    assert s.client_token == "0123456789abcdef"
    page = parse_session_page({"items": [{**SESSION, "tags": ["devin-async-token:abcdefgh"]}]})
    assert page.items[0].tags == [] and page.items[0].client_token == "abcdefgh"


def test_parse_pages() -> None:
    page = parse_session_page(
        {"items": [SESSION], "end_cursor": "c1", "has_next_page": True, "total": 3}
    )
    assert (len(page.items), page.end_cursor, page.has_next_page, page.total) == (1, "c1", True, 3)
    minimal = parse_session_page({"items": []})
    assert (minimal.end_cursor, minimal.has_next_page, minimal.total) == (None, False, None)
    messages = parse_message_page(
        {"items": [{"event_id": "e1", "created_at": 1, "message": "hi", "source": "user"}]}
    )
    assert messages.items[0].message == "hi"


@pytest.mark.parametrize(
    "data",
    [{"items": "x"}, {"items": [], "end_cursor": 5}, {"items": [], "has_next_page": "yes"},
     {"items": [1]}, [], {"items": [], "total": "many"}],
)
def test_parse_page_malformed(data: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_session_page(data)


def test_parse_tags_and_attachments() -> None:
    assert parse_tags({"tags": ["a", "devin-async-token:abcdefgh"]}) == ["a"]
    with pytest.raises(MalformedResponseError):
        parse_tags({"tag": []})
    att = {"attachment_id": "a1", "name": "f.txt", "source": "user", "url": "https://x/f"}
    assert parse_attachments([att])[0].content_type is None
    assert parse_attachments({"items": [att]})[0].name == "f.txt"
    with pytest.raises(MalformedResponseError):
        parse_attachments({"nope": 1})


def test_encode_array_is_comma_joined() -> None:
    assert encode_array("session_ids", ["a", "b"]) == [("session_ids", "a,b")]


def _status(status: int, retry_after: float | None = None) -> APIStatusError:
    return decode_error(status, {"Retry-After": str(retry_after)} if retry_after else {}, b"")


#: One failure of each Outcome, as the engine sees it.
EXAMPLES: dict[Outcome, BaseException] = {
    Outcome.UNSENT: APIConnectionError("refused", sent=False),
    Outcome.LOST: APIConnectionError("reset", sent=True),
    Outcome.TIMEOUT: APITimeoutError("read timeout", sent=True),
    Outcome.REQUEST_TIMEOUT: _status(408),
    Outcome.THROTTLED: _status(429),
    Outcome.UNAVAILABLE: _status(503),
    Outcome.INTERNAL: _status(500),
    Outcome.GATEWAY: _status(502),
    Outcome.OTHER_5XX: _status(501),
    Outcome.CLIENT_ERROR: _status(404),
    Outcome.MALFORMED: MalformedResponseError("bad"),
}
#: More failures that must sort into the same Outcome.
ALSO: list[tuple[BaseException, Outcome]] = [
    (APITimeoutError("connect timeout", sent=False), Outcome.UNSENT),
    (_status(504), Outcome.GATEWAY),
    (_status(505), Outcome.OTHER_5XX),
    (_status(400), Outcome.CLIENT_ERROR),
    (_status(401), Outcome.CLIENT_ERROR),
    (_status(403), Outcome.CLIENT_ERROR),
    (_status(409), Outcome.CLIENT_ERROR),
    (_status(422), Outcome.CLIENT_ERROR),
]

R, L, W, X = "retry", "look up", "look up only", "raise"
#: The contract, written out by hand: what each kind of request does after each outcome, and
#: whether a poller rides it out. (READ, IDEMPOTENT, CREATE, UNSAFE), polling.
CONTRACT: dict[Outcome, tuple[tuple[str, str, str, str], bool]] = {
    Outcome.UNSENT: ((R, R, R, R), True),  # never left: anything may be sent again
    Outcome.LOST: ((R, R, L, X), True),  # may have acted: a create is looked up
    Outcome.TIMEOUT: ((R, R, W, X), True),  # may still be acting: looked up, never resent
    Outcome.REQUEST_TIMEOUT: ((R, R, R, R), True),
    Outcome.THROTTLED: ((R, R, R, R), True),
    Outcome.UNAVAILABLE: ((R, R, R, R), True),
    Outcome.INTERNAL: ((R, X, L, X), True),
    Outcome.GATEWAY: ((R, R, L, X), True),
    Outcome.OTHER_5XX: ((X, X, X, X), True),
    Outcome.CLIENT_ERROR: ((X, X, X, X), False),  # the request is wrong: polling ends
    Outcome.MALFORMED: ((X, X, L, X), True),
}
KINDS = (Kind.READ, Kind.IDEMPOTENT, Kind.CREATE, Kind.UNSAFE)
CELLS = [(o, k, CONTRACT[o][0][i]) for o in Outcome for i, k in enumerate(KINDS)]


def test_the_contract_covers_every_outcome() -> None:
    assert set(CONTRACT) == set(Outcome) == set(EXAMPLES)


@pytest.mark.parametrize(("outcome", "kind", "action"), CELLS,
                         ids=[f"{o.name}-{k.name}" for o, k, _ in CELLS])
def test_decide_every_cell(outcome: Outcome, kind: Kind, action: str) -> None:
    error = EXAMPLES[outcome]
    assert classify(error) is outcome
    assert decide(kind, error, 60.0) is Action(action)


@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: o.name)
def test_rides_out_every_outcome(outcome: Outcome) -> None:
    assert rides_out(EXAMPLES[outcome]) is CONTRACT[outcome][1]


@pytest.mark.parametrize(("error", "outcome"), ALSO, ids=[repr(e)[:40] for e, _ in ALSO])
def test_classify_sorts_alike_failures_alike(error: BaseException, outcome: Outcome) -> None:
    assert classify(error) is outcome
    for kind in KINDS:
        assert decide(kind, error, 60.0) is decide(kind, EXAMPLES[outcome], 60.0)


@pytest.mark.parametrize("error", [ValueError("x"), RuntimeError("y"), KeyError("z")])
def test_unknown_failures_are_raised_and_end_polling(error: BaseException) -> None:
    assert classify(error) is None
    assert all(decide(kind, error, 60.0) is Action.RAISE for kind in KINDS)
    assert rides_out(error) is False


HINTED = [(429, Outcome.THROTTLED), (503, Outcome.UNAVAILABLE), (408, Outcome.REQUEST_TIMEOUT),
          (500, Outcome.INTERNAL), (502, Outcome.GATEWAY)]


@pytest.mark.parametrize(("status", "outcome"), HINTED, ids=[str(s) for s, _ in HINTED])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize(("hint", "over"), [(30, False), (60, False), (60.5, True), (3600, True)])
def test_a_hint_over_the_cap_turns_retry_into_raise(status: int, outcome: Outcome, kind: Kind,
                                                    hint: float, over: bool) -> None:
    error = _status(status, hint)
    assert error.retry_after == hint
    planned = Action(CONTRACT[outcome][0][KINDS.index(kind)])
    expected = Action.RAISE if over and planned is Action.RETRY else planned
    assert decide(kind, error, 60.0) is expected  # look-ups and raises are left as they are
    assert rides_out(error) is CONTRACT[outcome][1]  # a poller waits it out (capped) either way


# -- the hand-written Session structurer agrees with cattrs' generated one -------------------

_REFERENCE = make_converter(inline_session=False)
_OPTIONAL_KEYS = ("status_detail", "title", "user_id", "service_user_id", "playbook_id",
                  "parent_session_id", "origin", "category", "subcategory")
_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2),
                          st.text(max_size=3))
_wrong = st.one_of(_json_scalars, st.lists(_json_scalars, max_size=2),
                   st.dictionaries(st.text(max_size=2), _json_scalars, max_size=2))


@st.composite
def _session_dicts(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": "devin-1", "status": draw(st.sampled_from(["running", "exit", "later"])),
        "url": "u", "org_id": "o", "created_at": draw(st.sampled_from([1, 2.0])),
        "updated_at": 3, "tags": draw(st.lists(st.text(max_size=3), max_size=3)),
    }
    for key in _OPTIONAL_KEYS:
        if draw(st.booleans()):
            data[key] = draw(st.one_of(st.none(), st.sampled_from(["working", "x"])))
    for key, values in (("acus_consumed", st.one_of(st.integers(0, 9), st.floats(0, 9))),
                        ("is_archived", st.booleans()), ("is_advanced", st.booleans()),
                        ("child_session_ids", st.one_of(st.none(), st.lists(st.text(max_size=2),
                                                                            max_size=2))),
                        ("structured_output", st.one_of(st.none(), st.just({"k": [1]}))),
                        ("pull_requests", st.lists(st.fixed_dictionaries(
                            {"pr_url": st.just("p")},
                            optional={"pr_state": st.one_of(st.none(), st.just("open"))}),
                            max_size=2))):
        if draw(st.booleans()):
            data[key] = draw(values)
    # At most one defect (with two, which one is reported first is nobody's contract).
    defect = draw(st.sampled_from(["none", "wrong", "missing"]))
    key = draw(st.sampled_from(sorted(data)))
    if defect == "wrong":
        data[key] = draw(_wrong)
    elif defect == "missing":
        del data[key]
    return data


def _outcome(structure: Any, data: dict[str, Any]) -> Any:
    try:
        return structure(data)
    except KeyError:  # a missing required key
        return "missing"
    except (TypeError, ValueError):  # a wrong type: which exception class is cattrs' business
        return "invalid"


@settings(max_examples=int(os.environ.get("DEVIN_ASYNC_EXAMPLES", examples(400))), deadline=None,
          derandomize="DEVIN_ASYNC_EXAMPLES" not in os.environ)
@given(_session_dicts())
def test_inline_session_structurer_agrees_with_cattrs(data: dict[str, Any]) -> None:
    fast = _outcome(lambda d: CONVERTER.structure(d, Session), data)
    if "pull_requests" in data and data["pull_requests"] is None:
        data = {k: v for k, v in data.items() if k != "pull_requests"}  # null reads as []
    reference = _outcome(lambda d: _REFERENCE.structure(d, Session), data)
    assert fast == reference
    if not isinstance(fast, str):
        assert isinstance(fast, Session) and fast.client_token is None


def test_inline_session_structurer_names_the_wrong_field() -> None:
    for key, value in (("url", 1), ("title", 2), ("subcategory", []), ("status_detail", 3)):
        with pytest.raises(MalformedResponseError, match=key):
            parse_session({**SESSION, key: value})
    with pytest.raises(MalformedResponseError, match="tags"):
        parse_session({**SESSION, "tags": ["a", None]})
    with pytest.raises(MalformedResponseError):
        parse_session({**SESSION, "pull_requests": [{"pr_url": "p", "pr_state": 1}]})
    with pytest.raises(MalformedResponseError):
        parse_session({**SESSION, "pull_requests": [{"pr_state": "open"}]})


def test_inline_session_structurer_details() -> None:
    missing_tags = {k: v for k, v in SESSION.items() if k != "tags"}
    assert parse_session(missing_tags).tags == []
    s = parse_session({**SESSION, "tags": ["devin-async-token:0123456789", "a", "b"],
                       "created_at": 5.0, "acus_consumed": 2})
    assert (s.tags, s.client_token) == (["a", "b"], "0123456789")
    assert type(s.created_at) is int and type(s.acus_consumed) is float
    tags = ["x"]
    assert parse_session({**SESSION, "tags": tags}).tags is not tags  # never the caller's list
