"""Models of the newer endpoints: session events, insights, attachments, identity, secrets.

Pure: `parse_*` turn decoded JSON into frozen models and raise MalformedResponseError on a wrong
shape (never KeyError/TypeError). Unknown fields are ignored; an unknown enum value is kept.
Field names are the API's own (see the OpenAPI description); `summary` is absent from an event
detail there, so it is optional on `ActivityEventDetail`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

from ._converter import split_reserved, strict_float, strict_int
from ._create_request import SessionSecret
from ._enums import OpenStrEnum, SessionStatus, StatusDetail
from ._errors import MalformedResponseError
from ._models import Page, PullRequest

__all__ = [
    "ActivityEvent",
    "ActivityEventDetail",
    "ActivityEventMatch",
    "EventCategory",
    "Principal",
    "SessionInsights",
    "SessionSecret",
    "UploadedAttachment",
    "parse_event_details",
    "parse_event_match_page",
    "parse_event_page",
    "parse_insights",
    "parse_insights_page",
    "parse_principal",
    "parse_uploaded_attachment",
]

T = TypeVar("T")


class EventCategory(OpenStrEnum):
    """An event's `category` (open: an unknown one is kept)."""

    SHELL = "shell"
    FILE = "file"
    SEARCH = "search"
    BROWSER = "browser"
    MCP = "mcp"
    GIT = "git"
    MESSAGE = "message"
    STATUS = "status"
    SECRET = "secret"
    TODO = "todo"
    RECORDING = "recording"
    KNOWLEDGE = "knowledge"
    PLAYBOOK = "playbook"
    WEBHOOK = "webhook"
    LIFECYCLE = "lifecycle"
    OTHER = "other"


@attrs.frozen
class ActivityEvent:
    """One event of a session's timeline, summarised."""

    event_id: str
    event_type: str
    category: EventCategory
    direction: str
    created_at: int
    summary: str


@attrs.frozen
class ActivityEventDetail:
    """One event with its full `contents`; `truncated_fields` lists what was cut."""

    event_id: str
    event_type: str
    category: EventCategory
    direction: str
    created_at: int
    contents: dict[str, Any]
    truncated_fields: list[str] | None = None
    summary: str | None = None


@attrs.frozen
class ActivityEventMatch:
    """A search hit: the event's summary plus where the query matched."""

    event_id: str
    event_type: str
    category: EventCategory
    direction: str
    created_at: int
    summary: str
    match_context: str


@attrs.frozen
class SessionInsights:
    """A session's fields plus message counts, size class and the analysis (None until done)."""

    session_id: str
    status: SessionStatus
    url: str
    org_id: str
    created_at: int
    updated_at: int
    num_devin_messages: int
    num_user_messages: int
    session_size: str
    tags: list[str] = attrs.field(factory=list)
    acus_consumed: float = 0.0
    pull_requests: list[PullRequest] = attrs.field(factory=list)
    status_detail: StatusDetail | None = None
    title: str | None = None
    user_id: str | None = None
    service_user_id: str | None = None
    playbook_id: str | None = None
    parent_session_id: str | None = None
    child_session_ids: list[str] | None = None
    is_archived: bool = False
    is_advanced: bool = False
    structured_output: dict[str, Any] | None = None
    origin: str | None = None
    category: str | None = None
    subcategory: str | None = None
    analysis: dict[str, Any] | None = None
    #: The SDK's own tags (`devin-async-`) are kept out of `tags`, as on `Session`.
    client_token: str | None = attrs.field(default=None, kw_only=True)
    sdk_tags: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    def __attrs_post_init__(self) -> None:
        kept, token, sdk = split_reserved(self.tags)
        if len(kept) != len(self.tags):  # `attrs.evolve` passes tags already split
            object.__setattr__(self, "tags", kept)
            object.__setattr__(self, "client_token", token)
            object.__setattr__(self, "sdk_tags", sdk)


@attrs.frozen
class Principal:
    """Who the credential is (GET /v3/self); fields a principal type lacks are None."""

    principal_type: str
    org_id: str | None = None
    service_user_id: str | None = None
    service_user_name: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    devin_id: str | None = None
    creator_service_user_id: str | None = None


@attrs.frozen
class UploadedAttachment:
    """An uploaded file; pass `url` in `attachment_urls`."""

    attachment_id: str
    name: str
    url: str


# --- parsing -------------------------------------------------------------------------------------
def _strict(kind: type[Any], check: Callable[[Any], bool]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _type: Any) -> Any:
        if check(value):
            return value
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return structure


def _make_converter() -> cattrs.Converter:
    """The module's converter: strict primitives, open enums, lists and objects checked."""
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, lambda v: type(v) is str))
    conv.register_structure_hook(bool, _strict(bool, lambda v: type(v) is bool))
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(float, strict_float)
    for enum in (EventCategory, SessionStatus, StatusDetail):
        conv.register_structure_hook(enum, _open_enum)
    conv.register_structure_hook_func(
        lambda t: t == list[str],
        _strict(list, lambda v: type(v) is list and all(type(i) is str for i in v)))
    conv.register_structure_hook_func(lambda t: t == dict[str, Any],
                                      _strict(dict, lambda v: type(v) is dict))
    pull_request = conv.get_structure_hook(PullRequest)

    def pull_requests(value: Any, _type: Any) -> list[PullRequest]:
        if type(value) is not list:
            raise TypeError(f"expected a list of pull requests, got {type(value).__name__}")
        return [pull_request(_object(item), PullRequest) for item in value]

    conv.register_structure_hook_func(lambda t: t == list[PullRequest], pull_requests)
    return conv


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _open_enum(value: Any, type_: type[OpenStrEnum]) -> OpenStrEnum:
    if type(value) is not str:
        raise TypeError(f"expected a string for {type_.__name__}, got {type(value).__name__}")
    return type_(value)


_CONVERTER = _make_converter()


def _one(data: Any, cls: type[T]) -> T:
    if type(data) is not dict:
        raise MalformedResponseError(f"expected a {cls.__name__} object, got "
                                     f"{type(data).__name__}", body=data)
    try:
        return _CONVERTER.structure(data, cls)
    except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise MalformedResponseError(f"not a valid {cls.__name__}: {exc!r}", body=data) from None


def _items(data: Any, what: str) -> list[Any]:
    if type(data) is not dict or type(data.get("items")) is not list:
        raise MalformedResponseError(f"expected a {what} object with an `items` list", body=data)
    return list(data["items"])


def _page(data: Any, cls: type[T]) -> Page[T]:
    items = _items(data, "page")
    cursor, more = data.get("end_cursor"), data.get("has_next_page", False)
    total = data.get("total")
    if cursor is not None and type(cursor) is not str:
        raise MalformedResponseError("expected `end_cursor` to be a string or null", body=data)
    if type(more) is not bool:
        raise MalformedResponseError("expected `has_next_page` to be a boolean", body=data)
    if total is not None and type(total) is not int:
        raise MalformedResponseError("expected `total` to be an integer or null", body=data)
    return Page(items=[_one(item, cls) for item in items], end_cursor=cursor,
                has_next_page=more, total=total)


def parse_event_page(data: Any) -> Page[ActivityEvent]:
    """Parse a SessionEventListPage.

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _page(data, ActivityEvent)


def parse_event_match_page(data: Any) -> Page[ActivityEventMatch]:
    """Parse a SessionEventSearchPage.

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _page(data, ActivityEventMatch)


def parse_event_details(data: Any) -> list[ActivityEventDetail]:
    """Parse a SessionEventDetailsResponse (`{items: [...]}`).

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return [_one(item, ActivityEventDetail) for item in _items(data, "event details")]


def parse_insights(data: Any) -> SessionInsights:
    """Parse a SessionInsights object.

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _one(data, SessionInsights)


def parse_insights_page(data: Any) -> Page[SessionInsights]:
    """Parse a SessionInsightsListPage.

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _page(data, SessionInsights)


def parse_principal(data: Any) -> Principal:
    """Parse a GET /v3/self body (any principal type; unknown ones are kept by name).

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _one(data, Principal)


def parse_uploaded_attachment(data: Any) -> UploadedAttachment:
    """Parse an AttachmentUploadResponse.

    Raises:
        MalformedResponseError: `data` is not one.
    """
    return _one(data, UploadedAttachment)
