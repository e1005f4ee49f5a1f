"""Cursor pagination: one lazy `Paginator` for every listing endpoint.

Rules of this file:
- a cursor seen before anywhere in one listing (A -> B -> A, not only A -> A) ends the listing
  with MalformedResponseError: a server that cycles its cursors would otherwise be followed forever;
- a `limit` is honoured exactly: the last page asks for `first=min(page_size, remaining)` and no
  page is fetched once the limit is reached;
- each page is one engine call with its own deadline (a listing has no end the caller promised).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from ._errors import MalformedResponseError
from ._models import Page

__all__ = ["Fetch", "Paginator"]

T = TypeVar("T")

#: Fetch one page: (cursor or None for the first page, how many items at most) -> the page.
Fetch = Callable[[str | None, int], Awaitable[Page[T]]]


class _Pages(Generic[T]):
    """Async iterator over pages, following end_cursor while has_next_page."""

    def __init__(self, fetch: Fetch[T], page_size: int, limit: int | None) -> None:
        self._fetch = fetch
        self._page_size = page_size
        self._left = limit
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._done = limit is not None and limit <= 0

    def __aiter__(self) -> _Pages[T]:
        return self

    async def __anext__(self) -> Page[T]:
        if self._done:
            raise StopAsyncIteration
        first = self._page_size if self._left is None else min(self._page_size, self._left)
        page = await self._fetch(self._cursor, first)
        if self._left is not None:
            if len(page.items) > self._left:
                page = Page(page.items[: self._left], page.end_cursor, page.has_next_page,
                            page.total)
            self._left -= len(page.items)
        cursor = page.end_cursor
        if not page.has_next_page or not cursor or self._left == 0:
            self._done = True
        elif cursor in self._seen or cursor == self._cursor:
            self._done = True
            raise MalformedResponseError(
                f"the server returned cursor {cursor[:40]!r} a second time in one listing; "
                "stopping rather than looping"
            )
        else:
            if self._cursor is not None:
                self._seen.add(self._cursor)
            self._cursor = cursor
        return page


class _Items(Generic[T]):
    def __init__(self, pages: _Pages[T]) -> None:
        self._pages = pages
        self._items: list[T] = []
        self._pos = 0

    def __aiter__(self) -> _Items[T]:
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

    def __init__(self, fetch: Fetch[T], *, page_size: int = 100) -> None:
        self._fetch = fetch
        self._page_size = page_size

    def __aiter__(self) -> AsyncIterator[T]:
        return _Items(_Pages(self._fetch, self._page_size, None))

    def pages(self, *, limit: int | None = None) -> AsyncIterator[Page[T]]:
        """Iterate page by page (at most `limit` items in all)."""
        return _Pages(self._fetch, self._page_size, limit)

    async def to_list(self, limit: int | None = None) -> list[T]:
        """Collect the items (at most `limit`, fetching no page beyond it) into a list.

        Raises:
            ValueError: `limit` is not a non-negative int.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        out: list[T] = []
        async for page in _Pages(self._fetch, self._page_size, limit):
            out.extend(page.items)
        return out
