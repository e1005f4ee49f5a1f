"""Typed models of the sessions API: frozen, slotted attrs classes.

Field names are the API's own. Responses are turned into these by the one converter of
`_converter.make_converter()`; unknown response fields are ignored there, unknown enum values kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs

from . import _lifecycle
from ._create_request import (
    ADVANCED_MODES,
    MAX_TAGS,
    RESERVED_TAG_PREFIX,
    CreateSessionRequest,
    SessionSecret,
)
from ._enums import SessionStatus, StatusDetail

__all__ = [
    "ADVANCED_MODES",
    "MAX_TAGS",
    "RESERVED_TAG_PREFIX",
    "TOKEN_TAG_PREFIX",
    "Attachment",
    "BatchResult",
    "CreateSessionRequest",
    "Message",
    "Page",
    "PullRequest",
    "Session",
    "SessionEvent",
    "SessionSecret",
    "request_repr",
]

T = TypeVar("T")

#: The tag prefix of the client token that guards a create against duplicates (see _create).
TOKEN_TAG_PREFIX = "devin-async-token:"


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
    #: The SDK's other bookkeeping tags (a batch's `devin-async-batch:`/`devin-async-p:`), also
    #: out of `tags`: every tag with the reserved `devin-async-` prefix is the SDK's.
    sdk_tags: tuple[str, ...] = ()

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


def request_repr(request: object) -> str:
    """Repr a batch request with its session secrets' values hidden (a dict's are plain)."""
    if isinstance(request, Mapping) and "session_secrets" in request:
        secrets = request["session_secrets"]
        hidden: Any = secrets
        if isinstance(secrets, list | tuple):
            hidden = [{**s, "value": "<redacted>"} if isinstance(s, Mapping) and "value" in s
                      else s for s in secrets]
        elif secrets is not None:
            hidden = "<redacted>"
        return repr({**request, "session_secrets": hidden})
    return repr(request)


@attrs.frozen
class BatchResult:
    """The outcome of one request of `create_many`: `session` or `error` is set, never both.

    `existing` is True when a `batch_key` run found the session already created by an earlier
    run (nothing was sent for it).
    """

    index: int
    request: CreateSessionRequest | Mapping[str, Any] = attrs.field(repr=request_repr)
    session: Session | None = None
    error: BaseException | None = None
    existing: bool = False

    @property
    def ok(self) -> bool:
        """Return whether the session was created (or already existed)."""
        return self.error is None and self.session is not None

    def unwrap(self) -> Session:
        """Return the session, or raise the request's error (a typed way past `Session | None`).

        Raises:
            BaseException: the error this request ended with.
        """
        if self.session is not None and self.error is None:
            return self.session
        if self.error is not None:
            raise self.error
        raise RuntimeError(f"request {self.index} has neither a session nor an error")


@attrs.frozen
class SessionEvent:
    """A change seen by a watcher; `previous` is None the first time a session is seen.

    `gone` is True when the session vanished (404, or absent from the listing); `session` then is
    the last state seen.
    """

    session: Session
    previous: Session | None = None
    gone: bool = False
