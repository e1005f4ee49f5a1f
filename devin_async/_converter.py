"""The one cattrs converter: every hook registered in one visible block.

Why strict primitive hooks: cattrs' defaults coerce (`str(5)`, `list("abc")`), which would turn a
wrong-typed response into plausible nonsense. Here a wrong type is an error, which the protocol
layer turns into MalformedResponseError. Structuring functions are generated once per class, when
the converter is built, not per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from ._enums import OpenStrEnum, SessionStatus, StatusDetail
from ._models import (
    RESERVED_TAG_PREFIX,
    TOKEN_TAG_PREFIX,
    Attachment,
    Message,
    Page,
    PullRequest,
    Session,
)

__all__ = ["CONVERTER", "make_converter", "strict_float", "strict_int"]

# The strict number hooks, shared by every converter of the SDK (also `_activity`'s).


def _str(value: Any, _type: Any) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def strict_int(value: Any, _type: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def strict_float(value: Any, _type: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _bool(value: Any, _type: Any) -> bool:
    if type(value) is bool:
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _str_list(value: Any, _type: Any) -> list[str]:
    if type(value) is not list:
        raise TypeError(f"expected a list, got {type(value).__name__}")
    for item in value:
        if type(item) is not str:
            raise TypeError(f"expected a list of strings, found {type(item).__name__}")
    return list(value)


def _json_object(value: Any, _type: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _open_enum(value: Any, type_: type[OpenStrEnum]) -> OpenStrEnum:
    if type(value) is not str:
        raise TypeError(f"expected a string for {type_.__name__}, got {type(value).__name__}")
    return type_(value)


def _list_of(hook: Callable[[Any, Any], Any], item_type: type[Any]) -> Any:
    def structure(value: Any, _type: Any) -> list[Any]:
        if type(value) is not list:
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [hook(v, item_type) for v in value]

    return structure


def _is_list_of(item_type: type[Any]) -> Callable[[Any], bool]:
    list_type: Any = list[item_type]  # type: ignore[valid-type]
    return lambda t: bool(t == list_type)


_MODELS: tuple[type[Any], ...] = (PullRequest, Session, Message, Attachment)
def split_reserved(tags: list[str]) -> tuple[list[str], str | None, tuple[str, ...]]:
    """Return the user's tags, the client token (None if absent) and the SDK's other tags."""
    kept: list[str] = []
    token = None
    sdk: list[str] = []
    for tag in tags:
        if not tag.startswith(RESERVED_TAG_PREFIX):
            kept.append(tag)
        elif tag.startswith(TOKEN_TAG_PREFIX):
            token = tag[len(TOKEN_TAG_PREFIX):]
        else:
            sdk.append(tag)
    return kept, token, tuple(sdk)


def split_token(tags: list[str]) -> tuple[list[str], str | None]:
    """Return the tags without the SDK's tags, and the client token (None if absent)."""
    kept, token, _ = split_reserved(tags)
    return kept, token


_REQUIRED_STRS = ("session_id", "status", "url", "org_id")
_OPTIONAL_STRS = ("status_detail", "title", "user_id", "service_user_id", "playbook_id",
                  "parent_session_id", "origin", "category", "subcategory")


def _wrong_str(data: dict[str, Any], names: tuple[str, ...], optional: bool) -> TypeError:
    """Name the first of `names` whose value is not a string (the error path of the hook)."""
    for name in names:
        value = data.get(name)
        if type(value) is not str and not (optional and value is None):
            return TypeError(f"expected a string for {name}, got {type(value).__name__}")
    return TypeError("expected strings")  # unreachable: the caller saw a wrong value


def _session_hook(pull_request: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Session]:
    """Return a strict Session structurer with the checks inline.

    Session is decoded on every poll, list item and create, so it gets one function instead of
    cattrs' call per field: same rules (a wrong type is a TypeError, a missing required key a
    KeyError, unknown keys ignored). The common case runs straight through: one type test per
    field, no call per field, a positional constructor call (attrs' `__init__` binds keywords
    slower), the pull requests inline; every error path is out of line. 83k (cattrs) -> 60k ->
    49k instructions per session, 22k of them attrs' frozen constructor (perf stat, 100,000
    decodes of the benchmarks' seeded session).
    """
    statuses = SessionStatus._value2member_map_
    details = StatusDetail._value2member_map_
    prefix = RESERVED_TAG_PREFIX
    fields = tuple(a.name for a in attrs.fields(Session))
    # The call below passes every field by position, in this order; a new field fails here.
    if fields != ("session_id", "status", "url", "org_id", "created_at", "updated_at",
                  "tags", "acus_consumed", "pull_requests", "status_detail", "title",
                  "user_id", "service_user_id", "playbook_id", "parent_session_id",
                  "child_session_ids", "is_archived", "is_advanced", "structured_output",
                  "origin", "category", "subcategory", "client_token", "sdk_tags"):
        raise RuntimeError(f"Session's fields changed; update the structurer: {fields}")

    def pull_requests(value: Any) -> list[PullRequest]:
        if type(value) is not list:
            raise TypeError(f"expected a list for pull_requests, got {type(value).__name__}")
        out = []
        for item in value:
            url = item["pr_url"] if type(item) is dict else None
            state = item.get("pr_state") if type(item) is dict else None
            if type(url) is str and (state is None or type(state) is str):
                out.append(PullRequest(url, state))
            else:
                out.append(pull_request(item, PullRequest))  # raises the precise error
        return out

    def structure(data: Any, _type: Any) -> Session:
        get = data.get
        sid = data["session_id"]
        status = data["status"]
        url = data["url"]
        org = data["org_id"]
        if (type(sid) is not str or type(status) is not str or type(url) is not str
                or type(org) is not str):
            raise _wrong_str(data, _REQUIRED_STRS, False)
        created = data["created_at"]
        if type(created) is not int:
            created = strict_int(created, int)
        updated = data["updated_at"]
        if type(updated) is not int:
            updated = strict_int(updated, int)
        tags = get("tags", ())
        token = None
        if type(tags) is not list and tags != ():
            raise TypeError(f"expected a list for tags, got {type(tags).__name__}")
        for tag in tags:
            if type(tag) is not str:
                raise TypeError(f"expected a list of strings for tags, found {type(tag).__name__}")
            if tag.startswith(prefix):
                token = tag  # the SDK's tags: out of `tags`, into `client_token`, `sdk_tags`
        sdk: tuple[str, ...] = ()
        if token is None:
            tags = list(tags)
        else:
            tags, token, sdk = split_reserved(tags)
        acus = get("acus_consumed", 0.0)
        if type(acus) is not float:
            acus = strict_float(acus, float)
        prs = get("pull_requests")
        detail = get("status_detail")
        title = get("title")
        user = get("user_id")
        service = get("service_user_id")
        playbook = get("playbook_id")
        parent = get("parent_session_id")
        origin = get("origin")
        category = get("category")
        subcategory = get("subcategory")
        for value in (detail, title, user, service, playbook, parent, origin, category,
                      subcategory):
            if value is not None and type(value) is not str:
                raise _wrong_str(data, _OPTIONAL_STRS, True)
        children = get("child_session_ids")
        archived = get("is_archived", False)
        advanced = get("is_advanced", False)
        if type(archived) is not bool or type(advanced) is not bool:
            _bool(archived, bool)
            _bool(advanced, bool)
        output = get("structured_output")
        return Session(
            sid,
            statuses.get(status) or SessionStatus(status),  # type: ignore[arg-type]
            url,
            org,
            created,
            updated,
            tags,
            acus,
            [] if prs is None else pull_requests(prs),
            None if detail is None else (details.get(detail)  # type: ignore[arg-type]
                                         or StatusDetail(detail)),
            title,
            user,
            service,
            playbook,
            parent,
            None if children is None else _str_list(children, list),
            archived,
            advanced,
            None if output is None else _json_object(output, dict),
            origin,
            category,
            subcategory,
            token,
            sdk,
        )

    return structure


def make_converter(*, inline_session: bool = True) -> cattrs.Converter:
    """Build the SDK's converter (no global state is changed).

    `inline_session=False` keeps cattrs' generated Session structurer instead of the hand-written
    one: the reference the tests hold the fast one to (the client-token split aside).
    """
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(float, strict_float)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook_func(lambda t: t == list[str], _str_list)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _json_object)
    conv.register_structure_hook(SessionStatus, _open_enum)
    conv.register_structure_hook(StatusDetail, _open_enum)
    if inline_session:
        conv.register_structure_hook(Session,
                                     _session_hook(conv.get_structure_hook(PullRequest)))
    for cls in _MODELS:
        conv.register_structure_hook_func(_is_list_of(cls),
                                          _list_of(conv.get_structure_hook(cls), cls))
    return conv


CONVERTER = make_converter()
#: The generated structuring function of each model, looked up once (the hot path calls these).
CONVERTER_HOOKS: dict[type[Any], Callable[[Any, Any], Any]] = {
    cls: CONVERTER.get_structure_hook(cls) for cls in _MODELS
}


def structure_page(data: Any, item_type: type[Any]) -> Page[Any]:
    """Structure a `{items, end_cursor, has_next_page, total}` page."""
    if type(data) is not dict:
        raise TypeError(f"expected a page object, got {type(data).__name__}")
    items = data.get("items")
    hook = CONVERTER_HOOKS[item_type]
    if type(items) is not list:
        raise TypeError("expected `items` to be a list")
    cursor = data.get("end_cursor")
    if cursor is not None and type(cursor) is not str:
        raise TypeError("expected `end_cursor` to be a string or null")
    has_next = data.get("has_next_page", False)
    if type(has_next) is not bool:
        raise TypeError("expected `has_next_page` to be a boolean")
    total = data.get("total")
    if total is not None and type(total) is not int:
        raise TypeError("expected `total` to be an integer or null")
    return Page(
        items=[hook(item, item_type) for item in items],
        end_cursor=cursor,
        has_next_page=has_next,
        total=total,
    )
