"""`client.sessions`: one method per session endpoint, plus polling and fan-out entry points.

Each method checks its arguments (ValueError before any request), builds a `Request`, sends it
through the engine (one deadline per call) and structures the answer. Listings return a
`Paginator` that follows every page lazily.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _results
from ._config import PollPolicy
from ._create import Creator
from ._decisions import Kind
from ._engine import Engine, Reply
from ._filters import empty_page, page_size_of, schema_of, session_filters, session_page
from ._follow import Follower
from ._models import (
    Attachment,
    CreateSessionRequest,
    Message,
    Page,
    Session,
    SessionSecret,
)
from ._output import RunResult
from ._pagination import Paginator
from ._protocol import (
    Request,
    check_id,
    parse_attachments,
    parse_message_page,
    parse_session,
)
from ._session_actions import SessionActions
from ._session_activity import SessionActivity
from ._tracing import internal

if TYPE_CHECKING:
    from ._fanout import CreateMany
    from ._polling import Poller

__all__ = ["Paginator", "Sessions"]

T = TypeVar("T")


class Sessions(SessionActions, SessionActivity):
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
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(Request("GET", f"/sessions/{sid}", Kind.READ))
        return parse_session(reply.data, sid)

    async def fetch_session(self, session_id: str, *, deadline: float | None = None,
                            ) -> tuple[Session, Reply]:
        """Return one session (id already checked) and the reply it came in (pollers' read).

        Raises:
            MalformedResponseError: the server answered with another session.
        """
        reply = await self.engine.request(
            Request("GET", f"/sessions/{session_id}", Kind.READ), deadline=deadline)
        return parse_session(reply.data, session_id), reply

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
            return Paginator(empty_page, page_size=size)
        return Paginator(self.fetcher("/sessions", params, session_page), page_size=size)

    @overload
    def messages(self, session_id: str, *, page_size: int = 100,
                 follow: Literal[False] = False) -> Paginator[Message]: ...

    @overload
    def messages(self, session_id: str, *, page_size: int = 100,
                 follow: Literal[True]) -> Follower[Message]: ...

    def messages(self, session_id: str, *, page_size: int = 100,
                 follow: bool = False) -> Paginator[Message] | Follower[Message]:
        """List a session's messages, oldest first, following every page.

        With `follow=True`, keep yielding new messages as they come, until the session is
        terminal (or the iterator is closed).
        """
        sid = check_id("session_id", session_id)
        size = page_size_of(page_size)
        if follow:
            return self.follow_messages(sid, page_size=size)
        return Paginator(self.fetcher(f"/sessions/{sid}/messages", [], parse_message_page),
                         page_size=size)

    def follow_messages(self, session_id: str, *, page_size: int = 100,
                        deadline: float | None = None) -> Follower[Message]:
        """Tail a session's messages until it is terminal (or `deadline`, engine clock)."""
        sid = check_id("session_id", session_id)
        reader = self.page_reader(f"/sessions/{sid}/messages", [], parse_message_page)
        return Follower(self, sid, reader, _message_key, page_size=page_size, deadline=deadline)

    def fetcher(
        self, path: str, params: builtins.list[tuple[str, str]], parse: Callable[[Any], Page[T]],
        *, on_reply: Callable[[Reply], None] | None = None,
    ) -> Callable[[str | None, int], Awaitable[Page[T]]]:
        """Return a page fetcher for `path` (`on_reply` sees each page's `Reply`)."""
        fetch = self.page_reader(path, params, parse)

        async def pages(cursor: str | None, first: int) -> Page[T]:
            page, reply = await fetch(cursor, first)
            if on_reply is not None:
                on_reply(reply)
            return page

        return pages

    def page_reader(
        self, path: str, params: builtins.list[tuple[str, str]], parse: Callable[[Any], Page[T]],
    ) -> Callable[[str | None, int], Awaitable[tuple[Page[T], Reply]]]:
        """Return `(cursor, first) -> (page, reply)` for `path` (one engine call per page)."""
        engine = self.engine
        base: tuple[tuple[str, str], ...] = tuple(params)

        async def fetch(cursor: str | None, first: int) -> tuple[Page[T], Reply]:
            query = (("first", str(first)), *base)
            if cursor is not None:
                query = (*query, ("after", cursor))
            reply = await engine.request(Request("GET", path, Kind.READ, params=query))
            return parse(reply.data), reply

        return fetch

    async def attachments(self, session_id: str) -> builtins.list[Attachment]:
        """Return a session's attachments."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(
            Request("GET", f"/sessions/{sid}/attachments", Kind.READ))
        return parse_attachments(reply.data)

    # -- typed results -----------------------------------------------------------------------

    async def result(self, session_id: str, output_type: type[Any] | None = None, *,
                     timeout: float | None = None) -> Any:
        """Wait until the session settles; return its structured output as `output_type`.

        Args:
            output_type: an attrs class, dataclass or pydantic model (None: the raw dict).
            timeout: seconds to wait, as `wait()`.

        Raises:
            StructuredOutputError: it settled without output, or the output does not fit.
            WaitTimeoutError: `timeout` passed first.
        """
        return await _results.result(self, session_id, output_type, timeout=timeout)

    async def run(self, prompt: str, *, output_type: type[Any] | None = None,
                  timeout: float | None = None, until: Callable[[Session], bool] | None = None,
                  **fields: Any) -> RunResult[Any]:
        """Create a session, wait until `until` (default settled), return `RunResult`.

        `fields` are `create()`'s keywords; the schema comes from `output_type` unless
        `structured_output_schema` is given.

        Raises:
            SessionFailedError: the session ended in `error` (it names the session).
            StructuredOutputError, WaitTimeoutError: as `result()`.
        """
        with internal(self.engine.tracer, "devin.run"):
            return await _results.run(self, prompt, output_type=output_type, timeout=timeout,
                                      until=until, **fields)

    async def ask(self, session_id: str, message: str, *,
                  timeout: float | None = None) -> Message:
        """Send a message (waking a suspended session); return Devin's first reply after it.

        Raises:
            WaitTimeoutError: no reply within `timeout` (`.last_session` is the session).
        """
        return await _results.ask(self, session_id, message, timeout=timeout)

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
        with internal(self.engine.tracer, "devin.wait", {"devin.session_id": session_id}):
            async for session in self.poll(session_id, until=until, policy=policy,
                                           timeout=timeout):
                last = session
        assert last is not None
        return last


def _message_key(message: Message) -> str:
    return message.event_id

