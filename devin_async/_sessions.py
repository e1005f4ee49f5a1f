"""`client.sessions`: one method per session endpoint, plus polling and fan-out entry points.

Each method checks its arguments (ValueError before any request), builds a `Request`, sends it
through the engine (one deadline per call) and structures the answer. Listings return a
`Paginator` that follows every page lazily.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._config import PollPolicy
from ._create import Creator
from ._create_request import check_user_tags as _check_user_tags
from ._decisions import Kind
from ._engine import Engine, Reply
from ._errors import MalformedResponseError
from ._models import (
    TOKEN_TAG_PREFIX,
    Attachment,
    CreateSessionRequest,
    Message,
    Page,
    Session,
    SessionSecret,
)
from ._pagination import Paginator
from ._protocol import (
    Request,
    check_id,
    check_tags,
    encode_array,
    parse_attachments,
    parse_message_page,
    parse_session,
    parse_session_page,
    parse_tags,
)

if TYPE_CHECKING:
    from ._fanout import CreateMany
    from ._polling import Poller

__all__ = ["Paginator", "Sessions"]

T = TypeVar("T")
MAX_PAGE_SIZE = 200


def _timestamp(name: str, value: int | float | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (or Unix seconds)")
        return str(int(value.timestamp()))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e11:
        raise ValueError(f"{name} must be Unix seconds (a non-negative int) or a datetime")
    return str(int(value))


def page_size_of(value: object) -> int:
    """Return `value` if it is a valid page size (1..200), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, got {value!r}")
    return value


def _str_list(name: str, values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a list of strings, not a single string")
    items = list(values)
    for item in items:
        if not isinstance(item, str) or not item or "," in item:
            raise ValueError(f"{name} must hold non-empty strings without commas, found {item!r}")
    return items


def session_filters(**filters: Any) -> builtins.list[tuple[str, str]] | None:
    """Return the query pairs of the session list's filters (None: `session_ids=[]`, no match).

    Raises:
        ValueError: a filter is malformed.
    """
    params: builtins.list[tuple[str, str]] = []
    for name in ("session_ids", "tags", "origins", "user_ids", "service_user_ids", "repo_names"):
        items = _str_list(name, filters.get(name))
        if items:
            params += encode_array(name, items)
        elif items is not None and name == "session_ids":
            return None  # no ids: nothing can match
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        value = _timestamp(name, filters.get(name))
        if value is not None:
            params.append((name, value))
    for name in ("playbook_id", "schedule_id", "category"):
        text = filters.get(name)
        if text is not None:
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name} must be a non-empty string")
            params.append((name, text))
    archived = filters.get("is_archived")
    if archived is not None:
        if not isinstance(archived, bool):
            raise ValueError("is_archived must be a bool")
        params.append(("is_archived", "true" if archived else "false"))
    return params


def _unique(page: Page[Session]) -> Page[Session]:
    """Raise MalformedResponseError if a page lists one session twice in different states."""
    seen: dict[str, tuple[str, str | None, int]] = {}
    for s in page.items:
        state = (s.status.value, None if s.status_detail is None else s.status_detail.value,
                 s.updated_at)
        if seen.setdefault(s.session_id, state) != state:
            raise MalformedResponseError(
                f"a list page holds session {s.session_id} twice, in different states")
    return page


async def _empty_page(cursor: str | None, first: int) -> Page[Any]:
    return Page(items=[])


class Sessions:
    """The session endpoints of one client (`client.sessions`)."""

    def __init__(self, engine: Engine, *, poll: PollPolicy, client_tokens: bool = True) -> None:
        self.engine = engine
        self.poll_policy = poll
        self.creator = Creator(engine, client_tokens=client_tokens)

    # -- create -----------------------------------------------------------------------------

    async def create(
        self,
        prompt: str | CreateSessionRequest,
        *,
        advanced_mode: str | None = None,
        bypass_approval: bool | None = None,
        child_playbook_id: str | None = None,
        create_as_user_id: str | None = None,
        knowledge_ids: builtins.list[str] | None = None,
        max_acu_limit: int | None = None,
        playbook_id: str | None = None,
        repos: builtins.list[str] | None = None,
        secret_ids: builtins.list[str] | None = None,
        session_links: builtins.list[str] | None = None,
        tags: builtins.list[str] | None = None,
        title: str | None = None,
        attachment_urls: Iterable[Any] | None = None,
        session_secrets: Iterable[SessionSecret | Mapping[str, Any]] | None = None,
        structured_output_schema: Mapping[str, Any] | type | None = None,
        structured_output_required: bool | None = None,
        devin_mode: str | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Session:
        """Create a session; only the fields given are sent.

        Args:
            prompt: the task, or a whole `CreateSessionRequest` (then no other field).
            structured_output_schema: a JSON Schema dict, or an attrs class, dataclass or
                pydantic model to derive a self-contained draft-7 schema from.
            session_secrets: secrets for this session only; their values never show in
                logs, reprs, errors or hook events.
            idempotency_key: the same key gives the same session, across calls, processes
                and restarts (looked up before creating; concurrent calls share one create).
            extra_body: newer body fields, merged into the body unchanged.

        Raises:
            ValueError: a documented rule is broken (the message names the field).
            TypeError: an unknown keyword (as any Python function).
        """
        fields: dict[str, Any] = dict(
            advanced_mode=advanced_mode, bypass_approval=bypass_approval,
            child_playbook_id=child_playbook_id, create_as_user_id=create_as_user_id,
            knowledge_ids=knowledge_ids, max_acu_limit=max_acu_limit, playbook_id=playbook_id,
            repos=repos, secret_ids=secret_ids, session_links=session_links, tags=tags,
            title=title, attachment_urls=attachment_urls, session_secrets=session_secrets,
            structured_output_schema=schema_of(structured_output_schema),
            structured_output_required=structured_output_required, devin_mode=devin_mode,
            idempotency_key=idempotency_key)
        if isinstance(prompt, CreateSessionRequest):
            if extra_body is not None or any(v is not None for v in fields.values()):
                raise ValueError("pass either a CreateSessionRequest or keyword fields, not both")
            request = prompt
        else:
            if extra_body is not None and not isinstance(extra_body, Mapping):
                raise ValueError("extra_body must be a mapping of body fields")
            # A field left None is a field not given: the request's defaults are None too.
            request = CreateSessionRequest(prompt, **fields, extra=dict(extra_body or {}))
        request.validate()
        return await self.creator.create(request)

    def create_many(
        self,
        requests: Iterable[CreateSessionRequest | Mapping[str, Any]]
        | AsyncIterable[CreateSessionRequest | Mapping[str, Any]],
        *,
        concurrency: int = 8,
        batch_key: str | None = None,
    ) -> CreateMany:
        """Create many sessions, at most `concurrency` at once; yield results as they finish.

        The iterator is also an async context manager. `stop()` pulls no more requests and lets
        the creates in flight finish and be reported; leaving the `async with`, `aclose()` or
        `break` cancel the creates in flight (listed afterwards in `.cancelled`).

        Raises:
            ValueError: `concurrency` is not an int >= 1, or `requests` is not an iterable.
        """
        from ._fanout import CreateMany

        return CreateMany(self, requests, concurrency=concurrency, batch_key=batch_key)

    # -- read -------------------------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        """Return one session.

        Raises:
            MalformedResponseError: the server answered with another session.
        """
        return (await self.fetch_session(check_id("session_id", session_id)))[0]

    async def fetch_session(self, session_id: str, *, deadline: float | None = None,
                            ) -> tuple[Session, Reply]:
        """Return one session (id already checked) and the reply it came in (pollers' read).

        Raises:
            MalformedResponseError: the server answered with another session.
        """
        reply = await self.engine.request(
            Request("GET", f"/sessions/{session_id}", Kind.READ), deadline=deadline)
        session = parse_session(reply.data)
        if session.session_id != session_id:
            raise MalformedResponseError(
                f"asked for session {session_id}, the server answered with {session.session_id}")
        return session, reply

    def list(
        self,
        *,
        tags: Iterable[str] | None = None,
        session_ids: Iterable[str] | None = None,
        created_after: int | dt.datetime | None = None,
        created_before: int | dt.datetime | None = None,
        updated_after: int | dt.datetime | None = None,
        updated_before: int | dt.datetime | None = None,
        page_size: int = 100,
        playbook_id: str | None = None,
        origins: Iterable[str] | None = None,
        schedule_id: str | None = None,
        user_ids: Iterable[str] | None = None,
        service_user_ids: Iterable[str] | None = None,
        is_archived: bool | None = None,
        repo_names: Iterable[str] | None = None,
        category: str | None = None,
    ) -> Paginator[Session]:
        """List the organization's sessions (oldest first), following every page.

        Raises:
            ValueError: a filter is malformed (checked here, before any request).
        """
        size = page_size_of(page_size)
        params = session_filters(
            tags=tags, session_ids=session_ids, created_after=created_after,
            created_before=created_before, updated_after=updated_after,
            updated_before=updated_before, playbook_id=playbook_id, origins=origins,
            schedule_id=schedule_id, user_ids=user_ids, service_user_ids=service_user_ids,
            is_archived=is_archived, repo_names=repo_names, category=category)
        if params is None:
            return Paginator(_empty_page, page_size=size)
        return Paginator(self.fetcher("/sessions", params, session_page), page_size=size)

    def messages(self, session_id: str, *, page_size: int = 100) -> Paginator[Message]:
        """List a session's messages, oldest first, following every page."""
        sid = check_id("session_id", session_id)
        return Paginator(self.fetcher(f"/sessions/{sid}/messages", [], parse_message_page),
                         page_size=page_size_of(page_size))

    def fetcher(
        self, path: str, params: builtins.list[tuple[str, str]], parse: Callable[[Any], Page[T]],
        *, on_reply: Callable[[Any], None] | None = None,
    ) -> Callable[[str | None, int], Any]:
        """Return a page fetcher for `path` (`on_reply` sees each page's `Reply`)."""
        engine = self.engine
        base: tuple[tuple[str, str], ...] = tuple(params)

        async def fetch(cursor: str | None, first: int) -> Page[T]:
            query = (("first", str(first)), *base)
            if cursor is not None:
                query = (*query, ("after", cursor))
            reply = await engine.request(Request("GET", path, Kind.READ, params=query))
            if on_reply is not None:
                on_reply(reply)
            return parse(reply.data)

        return fetch

    async def attachments(self, session_id: str) -> builtins.list[Attachment]:
        """Return a session's attachments."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(
            Request("GET", f"/sessions/{sid}/attachments", Kind.READ))
        return parse_attachments(reply.data)

    # -- act --------------------------------------------------------------------------------

    async def send_message(
        self, session_id: str, message: str, *, message_as_user_id: str | None = None,
        attachment_urls: Iterable[Any] | None = None,
    ) -> Session:
        """Send a message to a session (a suspended one wakes up); return the session."""
        sid = check_id("session_id", session_id)
        if not isinstance(message, str) or not message.strip():
            raise ValueError("message must be a non-empty string")
        body: dict[str, Any] = {"message": message}
        if message_as_user_id is not None:
            body["message_as_user_id"] = check_id("message_as_user_id", message_as_user_id)
        if attachment_urls is not None:
            urls = CreateSessionRequest("x", attachment_urls=attachment_urls)
            urls.validate()
            body["attachment_urls"] = urls.attachment_urls
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/messages", Kind.UNSAFE, json=body))
        return parse_session(reply.data)

    async def terminate(self, session_id: str, *, archive: bool = False) -> Session:
        """End a session for good (it cannot be resumed); optionally archive it."""
        sid = check_id("session_id", session_id)
        if not isinstance(archive, bool):
            raise ValueError("archive must be a bool")
        params = (("archive", "true" if archive else "false"),)
        reply = await self.engine.request(
            Request("DELETE", f"/sessions/{sid}", Kind.IDEMPOTENT, params=params))
        return parse_session(reply.data)

    async def archive(self, session_id: str) -> Session:
        """Archive a session (and put it to sleep if it runs)."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/archive", Kind.IDEMPOTENT))
        return parse_session(reply.data)

    async def get_tags(self, session_id: str) -> builtins.list[str]:
        """Return a session's tags (the SDK's own client-token tag left out)."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(Request("GET", f"/sessions/{sid}/tags", Kind.READ))
        return parse_tags(reply.data)

    async def add_tags(self, session_id: str, tags: Iterable[str]) -> builtins.list[str]:
        """Append tags (the server drops duplicates); return all tags.

        Raises:
            ValueError: more than 50 tags, or a tag with the reserved `devin-async-` prefix.
        """
        sid = check_id("session_id", session_id)
        items = check_tags("tags", tags)
        _check_user_tags("tags", items)
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/tags", Kind.IDEMPOTENT, json={"tags": items}))
        return parse_tags(reply.data)

    async def replace_tags(self, session_id: str, tags: Iterable[str]) -> builtins.list[str]:
        """Replace a session's tags; return them. The SDK's client-token tag is kept.

        Raises:
            ValueError: more than 50 tags, or a tag with the reserved `devin-async-` prefix.
        """
        sid = check_id("session_id", session_id)
        items = check_tags("tags", tags)
        _check_user_tags("tags", items)
        deadline = self.engine.deadline()
        current = await self.engine.request(
            Request("GET", f"/sessions/{sid}/tags", Kind.READ), deadline=deadline)
        raw = current.data.get("tags") if isinstance(current.data, dict) else None
        kept = [t for t in raw or () if isinstance(t, str) and t.startswith(TOKEN_TAG_PREFIX)]
        reply = await self.engine.request(
            Request("PUT", f"/sessions/{sid}/tags", Kind.IDEMPOTENT,
                    json={"tags": [*items, *kept[:1]]}), deadline=deadline)
        return parse_tags(reply.data)

    # -- polling ----------------------------------------------------------------------------

    def poll(
        self,
        session_id: str,
        *,
        until: Callable[[Session], bool] | None = None,
        policy: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> Poller:
        """Yield the session now, then at every change of (status, status_detail).

        Stops after the first session for which `until` is true (default `is_settled`).
        """
        from ._polling import Poller

        sid = check_id("session_id", session_id)
        return Poller(self, sid, until=until, policy=policy, timeout=timeout)

    async def wait(
        self,
        session_id: str,
        *,
        until: Callable[[Session], bool] | None = None,
        policy: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> Session:
        """Return the session once `until` holds (default: settled).

        Raises:
            WaitTimeoutError: `timeout` passed first (`.last_session` is the last seen).
        """
        last: Session | None = None
        async for session in self.poll(session_id, until=until, policy=policy, timeout=timeout):
            last = session
        assert last is not None
        return last


def session_page(data: Any) -> Page[Session]:
    """Structure a page of the session list (one session twice in two states is malformed)."""
    return _unique(parse_session_page(data))


def schema_of(spec: Mapping[str, Any] | type | None) -> dict[str, Any] | None:
    """Return the JSON Schema dict a `structured_output_schema` argument stands for."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, type):
        from ._schema import schema_for

        schema: dict[str, Any] = schema_for(spec)
        return schema
    raise ValueError("structured_output_schema must be a JSON Schema dict or a class "
                     f"(attrs, dataclass or pydantic), got {type(spec).__name__}")
