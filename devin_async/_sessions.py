"""`client.sessions`: one method per session endpoint, plus polling and fan-out entry points.

Each method checks its arguments (ValueError before any request), builds a `Request`, sends it
through the client's retry loop and structures the answer. Listing endpoints return a `Paginator`
that follows every page lazily.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._errors import MalformedResponseError
from ._models import Attachment, CreateSessionRequest, Message, Page, Session
from ._protocol import (
    Kind,
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
    from ._client import DevinClient
    from ._config import PollPolicy
    from ._fanout import CreateMany
    from ._polling import Poller

__all__ = ["Paginator", "Sessions"]

T = TypeVar("T")
MAX_PAGE_SIZE = 200


class _PageIterator(Generic[T]):
    """Async iterator over pages, following end_cursor while has_next_page."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]]) -> None:
        self._fetch = fetch
        self._cursor: str | None = None
        self._done = False

    def __aiter__(self) -> _PageIterator[T]:
        return self

    async def __anext__(self) -> Page[T]:
        if self._done:
            raise StopAsyncIteration
        page = await self._fetch(self._cursor)
        if not page.has_next_page or not page.end_cursor:
            self._done = True
        elif page.end_cursor == self._cursor:
            self._done = True
            raise MalformedResponseError(
                "the server returned the same cursor twice; stopping to avoid a loop"
            )
        else:
            self._cursor = page.end_cursor
        return page


class _ItemIterator(Generic[T]):
    def __init__(self, pages: _PageIterator[T]) -> None:
        self._pages = pages
        self._items: list[T] = []
        self._pos = 0

    def __aiter__(self) -> _ItemIterator[T]:
        return self

    async def __anext__(self) -> T:
        while self._pos >= len(self._items):
            page = await self._pages.__anext__()
            self._items, self._pos = page.items, 0
        item = self._items[self._pos]
        self._pos += 1
        return item


class Paginator(Generic[T]):
    """A lazy listing: `async for item in ...` follows every page; `.pages()` gives pages."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]]) -> None:
        self._fetch = fetch

    def __aiter__(self) -> AsyncIterator[T]:
        return _ItemIterator(_PageIterator(self._fetch))

    def pages(self) -> AsyncIterator[Page[T]]:
        """Iterate page by page."""
        return _PageIterator(self._fetch)

    async def to_list(self, limit: int | None = None) -> list[T]:
        """Collect the items (at most `limit`) into a list."""
        out: list[T] = []
        async for item in self:
            if limit is not None and len(out) >= limit:
                break
            out.append(item)
        return out


def _timestamp(name: str, value: int | float | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (or Unix seconds)")
        return str(int(value.timestamp()))
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be Unix seconds (a non-negative int) or a datetime")
    return str(int(value))


def _page_size(value: object) -> int:
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


class Sessions:
    """The session endpoints of one client (`client.sessions`)."""

    def __init__(self, client: DevinClient) -> None:
        self._client = client

    # -- create -----------------------------------------------------------------------------

    async def create(
        self,
        prompt: str | CreateSessionRequest | Mapping[str, Any],
        *,
        advanced_mode: str | None = None,
        bypass_approval: bool | None = None,
        child_playbook_id: str | None = None,
        create_as_user_id: str | None = None,
        knowledge_ids: list[str] | None = None,
        max_acu_limit: int | None = None,
        playbook_id: str | None = None,
        repos: list[str] | None = None,
        secret_ids: list[str] | None = None,
        session_links: list[str] | None = None,
        tags: list[str] | None = None,
        title: str | None = None,
        client_token: str | bool | None = None,
        **more: Any,
    ) -> Session:
        """Create a session; only the fields given are sent.

        Args:
            prompt: the task, or a whole `CreateSessionRequest` (then no other field).
            client_token: the duplicate guard for this call: None follows the client's
                setting, False turns it off, a string is used as the token.
            **more: newer body fields, sent unchanged.

        Raises:
            ValueError: a documented rule is broken (the message names the field).
        """
        if isinstance(prompt, CreateSessionRequest | Mapping):
            given = (advanced_mode, bypass_approval, child_playbook_id, create_as_user_id,
                     knowledge_ids, max_acu_limit, playbook_id, repos, secret_ids,
                     session_links, tags, title)
            if more or any(v is not None for v in given):
                raise ValueError(
                    "pass either a CreateSessionRequest (or dict) or keyword fields, not both"
                )
            request = (
                prompt
                if isinstance(prompt, CreateSessionRequest)
                else CreateSessionRequest.from_dict(prompt)
            )
        else:
            # A field left None is a field not given: the request's defaults are None too.
            request = CreateSessionRequest(
                prompt,
                advanced_mode=advanced_mode,
                bypass_approval=bypass_approval,
                child_playbook_id=child_playbook_id,
                create_as_user_id=create_as_user_id,
                knowledge_ids=knowledge_ids,
                max_acu_limit=max_acu_limit,
                playbook_id=playbook_id,
                repos=repos,
                secret_ids=secret_ids,
                session_links=session_links,
                tags=tags,
                title=title,
                extra=more,
            )
        request.validate()
        from ._create import create_session

        return await create_session(self._client, request, client_token=client_token)

    def create_many(
        self,
        requests: Iterable[CreateSessionRequest | Mapping[str, Any]]
        | AsyncIterable[CreateSessionRequest | Mapping[str, Any]],
        *,
        concurrency: int = 8,
    ) -> CreateMany:
        """Create many sessions, at most `concurrency` at once; yield results as they finish.

        The iterator is also an async context manager; leaving it (or `aclose()`) cancels the
        creates in flight, `stop()` lets them finish and be reported. See `_fanout`.

        Raises:
            ValueError: `concurrency` is not an int >= 1, or `requests` is not an iterable.
        """
        from ._fanout import create_many

        return create_many(self._client, requests, concurrency=concurrency)

    # -- read -------------------------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        """Return one session."""
        sid = check_id("session_id", session_id)
        data = await self._client._request(Request("GET", f"/sessions/{sid}", Kind.READ))
        return parse_session(data)

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
        """List the organization's sessions, following every page.

        Raises:
            ValueError: a filter is malformed (checked here, before any request).
        """
        params: builtins.list[tuple[str, str]] = [("first", str(_page_size(page_size)))]
        for name, values in (
            ("session_ids", session_ids),
            ("tags", tags),
            ("origins", origins),
            ("user_ids", user_ids),
            ("service_user_ids", service_user_ids),
            ("repo_names", repo_names),
        ):
            items = _str_list(name, values)
            if items:
                params += encode_array(name, items)
            elif items is not None and name == "session_ids":
                return Paginator(_empty_page)  # no ids: nothing can match
        for name, stamp in (
            ("created_after", created_after),
            ("created_before", created_before),
            ("updated_after", updated_after),
            ("updated_before", updated_before),
        ):
            value = _timestamp(name, stamp)
            if value is not None:
                params.append((name, value))
        for name, text in (
            ("playbook_id", playbook_id),
            ("schedule_id", schedule_id),
            ("category", category),
        ):
            if text is not None:
                if not isinstance(text, str) or not text:
                    raise ValueError(f"{name} must be a non-empty string")
                params.append((name, text))
        if is_archived is not None:
            params.append(("is_archived", "true" if is_archived else "false"))
        return Paginator(self._fetcher("/sessions", params, parse_session_page))

    def messages(self, session_id: str, *, page_size: int = 100) -> Paginator[Message]:
        """List a session's messages, oldest first, following every page."""
        sid = check_id("session_id", session_id)
        params = [("first", str(_page_size(page_size)))]
        return Paginator(self._fetcher(f"/sessions/{sid}/messages", params, parse_message_page))

    def _fetcher(
        self, path: str, params: builtins.list[tuple[str, str]], parse: Callable[[Any], Page[T]],
        *, hints: builtins.list[float] | None = None,
    ) -> Callable[[str | None], Awaitable[Page[T]]]:
        """Return a page fetcher; `hints` receives the Retry-After of successful answers."""
        client = self._client
        base: tuple[tuple[str, str], ...] = tuple(params)

        async def fetch(cursor: str | None) -> Page[T]:
            query = base if cursor is None else (*base, ("after", cursor))
            request = Request("GET", path, Kind.READ, params=query)
            return parse(await client._request(request, hints=hints))

        return fetch

    async def attachments(self, session_id: str) -> builtins.list[Attachment]:
        """Return a session's attachments."""
        sid = check_id("session_id", session_id)
        data = await self._client._request(
            Request("GET", f"/sessions/{sid}/attachments", Kind.READ)
        )
        return parse_attachments(data)

    # -- act --------------------------------------------------------------------------------

    async def send_message(
        self, session_id: str, message: str, *, message_as_user_id: str | None = None
    ) -> Session:
        """Send a message to a session (a suspended one wakes up); return the session."""
        sid = check_id("session_id", session_id)
        if not isinstance(message, str) or not message.strip():
            raise ValueError("message must be a non-empty string")
        body: dict[str, Any] = {"message": message}
        if message_as_user_id is not None:
            body["message_as_user_id"] = check_id("message_as_user_id", message_as_user_id)
        data = await self._client._request(
            Request("POST", f"/sessions/{sid}/messages", Kind.UNSAFE, json=body)
        )
        return parse_session(data)

    async def terminate(self, session_id: str, *, archive: bool = False) -> Session:
        """End a session for good (it cannot be resumed); optionally archive it."""
        sid = check_id("session_id", session_id)
        if not isinstance(archive, bool):
            raise ValueError("archive must be a bool")
        params = (("archive", "true" if archive else "false"),)
        data = await self._client._request(
            Request("DELETE", f"/sessions/{sid}", Kind.IDEMPOTENT, params=params)
        )
        return parse_session(data)

    async def archive(self, session_id: str) -> Session:
        """Archive a session (and put it to sleep if it runs)."""
        sid = check_id("session_id", session_id)
        data = await self._client._request(
            Request("POST", f"/sessions/{sid}/archive", Kind.IDEMPOTENT)
        )
        return parse_session(data)

    async def get_tags(self, session_id: str) -> builtins.list[str]:
        """Return a session's tags."""
        sid = check_id("session_id", session_id)
        data = await self._client._request(Request("GET", f"/sessions/{sid}/tags", Kind.READ))
        return parse_tags(data)

    async def add_tags(self, session_id: str, tags: Iterable[str]) -> builtins.list[str]:
        """Append tags (the server drops duplicates); return all tags."""
        sid = check_id("session_id", session_id)
        body = {"tags": check_tags("tags", tags)}
        data = await self._client._request(
            Request("POST", f"/sessions/{sid}/tags", Kind.IDEMPOTENT, json=body)
        )
        return parse_tags(data)

    async def replace_tags(self, session_id: str, tags: Iterable[str]) -> builtins.list[str]:
        """Replace all of a session's tags; return them."""
        sid = check_id("session_id", session_id)
        body = {"tags": check_tags("tags", tags)}
        data = await self._client._request(
            Request("PUT", f"/sessions/{sid}/tags", Kind.IDEMPOTENT, json=body)
        )
        return parse_tags(data)

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
        return Poller(self._client, sid, until=until, policy=policy, timeout=timeout)

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


async def _empty_page(cursor: str | None) -> Page[Any]:
    return Page(items=[])
