"""Typed models of the sessions API: frozen, slotted attrs classes.

Field names are the API's own. Responses are turned into these by the one converter of
`_converter.make_converter()`; unknown response fields are ignored there, unknown enum values kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

import attrs

from . import _lifecycle
from ._enums import SessionStatus, StatusDetail

__all__ = [
    "ADVANCED_MODES",
    "MAX_TAGS",
    "TOKEN_TAG_PREFIX",
    "Attachment",
    "BatchResult",
    "CreateSessionRequest",
    "Message",
    "Page",
    "PullRequest",
    "Session",
    "SessionEvent",
]

T = TypeVar("T")

MAX_TAGS = 50
#: The tag prefix of the client token that guards a create against duplicates (see _create).
TOKEN_TAG_PREFIX = "devin-async-token:"
ADVANCED_MODES = frozenset({"analyze", "create", "improve", "batch", "manage"})


@attrs.frozen
class PullRequest:
    """A pull request Devin opened."""

    pr_url: str
    pr_state: str | None = None


class _Predicate:
    """A session test usable both ways: `session.is_settled` is a bool, and
    `Session.is_settled` is a plain `Session -> bool` callable to pass as `until=`."""

    def __init__(self, fn: Callable[[Session], bool]) -> None:
        self._fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Callable[[Session], bool]:
        ...

    @overload
    def __get__(self, obj: Session, objtype: type[Any] | None = None) -> bool:
        ...

    def __get__(
        self, obj: Session | None, objtype: type[Any] | None = None
    ) -> bool | Callable[[Session], bool]:
        if obj is None:
            return self._fn
        return self._fn(obj)


def _is_terminal(session: Session) -> bool:
    """Return whether the session ended: status `exit` or `error`."""
    return _lifecycle.is_terminal(session.status)


def _is_settled(session: Session) -> bool:
    """Return whether nothing more happens without the user.

    Terminal, `suspended`, or `running` with `status_detail` finished / waiting_for_user /
    waiting_for_approval.
    """
    return _lifecycle.is_settled(session.status, session.status_detail)


@attrs.frozen
class Session:
    """A Devin session as the API returns it. Timestamps are Unix seconds, as sent."""

    session_id: str
    status: SessionStatus
    url: str
    org_id: str
    created_at: int
    updated_at: int
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
    #: The duplicate guard's token, taken out of `tags` (see `sessions.create`).
    client_token: str | None = None

    #: Whether the session ended (`exit` or `error`). `Session.is_terminal` is the predicate
    #: to pass as `until=`.
    is_terminal = _Predicate(_is_terminal)
    #: Whether nothing more happens without the user. `Session.is_settled` is the predicate.
    is_settled = _Predicate(_is_settled)

    @property
    def phase(self) -> _lifecycle.Phase:
        """Return the lifecycle phase (starting, active, settled, terminal)."""
        return _lifecycle.phase_of(self.status, self.status_detail)

    @property
    def state(self) -> tuple[str, str | None]:
        """Return `(status, status_detail)`, the pair whose changes polling reports."""
        return (self.status, self.status_detail)


@attrs.frozen
class Message:
    """One message of a session's conversation (`source` is `devin` or `user`)."""

    event_id: str
    created_at: int
    message: str
    source: str


@attrs.frozen
class Attachment:
    """A file attached to a session."""

    attachment_id: str
    name: str
    source: str
    url: str
    content_type: str | None = None


@attrs.frozen
class Page(Generic[T]):
    """One page of a cursor-paginated listing."""

    items: list[T]
    end_cursor: str | None = None
    has_next_page: bool = False
    total: int | None = None


def _check_str_list(name: str, value: object) -> list[str]:
    if type(value) is list:  # the common case, without the ABC checks below
        for item in value:
            if type(item) is not str:
                break
        else:
            return list(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"{name} must be a list of strings, got {type(value).__name__}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings, found {type(item).__name__}")
    return items


#: How deep `extra` may nest (a body deeper than this is a mistake, not a session option).
MAX_JSON_DEPTH = 128


class _NotJSONData(Exception):
    """What `_check_json_data` found wrong, and where (the path is built only on this path)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _check_json_data(value: object, depth: int = 0) -> None:
    """Raise _NotJSONData unless `value` is plain JSON data.

    Plain: dicts with string keys, lists and tuples, strings, ints, finite floats, bools and
    None; exactly what both JSON codecs encode alike. So a NaN, a datetime or a mapping proxy is
    a clear error before anything is sent rather than a 422 (or a silent null) after.
    """
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSONData(f"is {value!r}, which JSON cannot carry")
        return
    if depth >= MAX_JSON_DEPTH:
        raise _NotJSONData(f"nests deeper than {MAX_JSON_DEPTH} levels")
    pairs: Iterable[tuple[object, object]]
    if isinstance(value, dict):
        pairs, keyed = value.items(), True  # a dict's keys must be strings
    elif isinstance(value, list | tuple):
        pairs, keyed = enumerate(value), False
    else:
        raise _NotJSONData(f"is a {type(value).__name__}, which is not JSON data")
    for key, item in pairs:
        if keyed and not isinstance(key, str):
            raise _NotJSONData(f"has a key that is not a string: {key!r}")
        try:
            _check_json_data(item, depth + 1)
        except _NotJSONData as exc:
            exc.path.append(f"[{key!r}]")  # an index's repr is the index
            raise


_LIST_FIELDS = ("knowledge_ids", "repos", "secret_ids", "session_links", "tags")
_STR_FIELDS = ("child_playbook_id", "create_as_user_id", "playbook_id", "title")


@attrs.frozen(kw_only=True)
class CreateSessionRequest:
    """The body of a create; only the fields given are sent.

    `extra` passes newer body fields (e.g. `devin_mode`, `structured_output_schema`) through
    unchanged. Call `validate()` (create does) to check the documented rules before sending.
    """

    prompt: str = attrs.field(kw_only=False)
    advanced_mode: str | None = None
    bypass_approval: bool | None = None
    child_playbook_id: str | None = None
    create_as_user_id: str | None = None
    knowledge_ids: list[str] | None = None
    max_acu_limit: int | None = None
    playbook_id: str | None = None
    repos: list[str] | None = None
    secret_ids: list[str] | None = None
    session_links: list[str] | None = None
    tags: list[str] | None = None
    title: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreateSessionRequest:
        """Build a request from a dict of body fields; unknown keys go to `extra`."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a create request must be a mapping, got {type(data).__name__}")
        known = {f.name for f in attrs.fields(cls)} - {"extra"}
        fields = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        extra.update(data.get("extra") or {})
        if "prompt" not in fields:
            raise ValueError("prompt is required")
        return cls(**fields, extra=extra)

    def validate(self) -> None:
        """Check the documented rules; raise ValueError naming the field at fault."""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        mode = self.advanced_mode
        if mode is not None:
            if mode not in ADVANCED_MODES:
                raise ValueError(
                    f"advanced_mode must be one of {sorted(ADVANCED_MODES)}, got {mode!r}"
                )
            if mode == "analyze" and not self.session_links:
                raise ValueError("session_links is required when advanced_mode is 'analyze'")
            if mode in ("improve", "batch") and not self.child_playbook_id:
                raise ValueError(f"child_playbook_id is required when advanced_mode is {mode!r}")
        limit = self.max_acu_limit
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0
        ):
            raise ValueError(f"max_acu_limit must be a positive int, got {limit!r}")
        if self.bypass_approval is not None and not isinstance(self.bypass_approval, bool):
            raise ValueError("bypass_approval must be a bool")
        for name in _STR_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if value is not None:
                _check_str_list(name, value)
        if self.tags is not None and len(self.tags) > MAX_TAGS:
            raise ValueError(f"tags must hold at most {MAX_TAGS} tags, got {len(self.tags)}")
        extra = self.extra
        if type(extra) is not dict and not isinstance(extra, Mapping):
            raise ValueError("extra must be a mapping of body fields")
        if extra:
            clash = sorted(k for k in extra if k in _BODY_FIELDS)
            if clash:
                raise ValueError(f"extra repeats named fields: {', '.join(clash)}")
            try:
                # `extra` itself may be any mapping (to_body copies it into a dict).
                _check_json_data(dict(extra))
            except _NotJSONData as exc:
                where = "".join(reversed(exc.path))
                raise ValueError(f"extra{where} {exc.reason}") from None

    def to_body(self, *, tags: list[str] | None = None) -> dict[str, Any]:
        """Return the JSON body: given fields only, never a null, then `extra`.

        `tags`, when given, replaces the request's tags in the body (the request is unchanged).
        """
        body: dict[str, Any] = {}
        for name, is_list in _BODY_LAYOUT:
            value = getattr(self, name)
            if value is not None:
                body[name] = list(value) if is_list else value
        if tags is not None:
            body["tags"] = tags
        for key, value in self.extra.items():
            if value is not None:
                body[key] = value
        return body


_BODY_FIELDS = tuple(f.name for f in attrs.fields(CreateSessionRequest) if f.name != "extra")
_BODY_LAYOUT = tuple((name, name in _LIST_FIELDS) for name in _BODY_FIELDS)


@attrs.frozen
class BatchResult:
    """The outcome of one request of `create_many`: `session` or `error` is set, never both."""

    index: int
    request: CreateSessionRequest | Mapping[str, Any]
    session: Session | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Return whether the session was created."""
        return self.error is None and self.session is not None


@attrs.frozen
class SessionEvent:
    """A change seen by a watcher; `previous` is None the first time a session is seen.

    `gone` is True when the session vanished (404, or absent from the listing); `session` then is
    the last state seen.
    """

    session: Session
    previous: Session | None = None
    gone: bool = False
