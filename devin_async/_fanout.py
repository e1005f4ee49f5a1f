"""`create_many`: many duplicate-safe creates, at most `concurrency` at once, as they finish.

Why it is built this way:
- Workers, not a driver inside `__anext__`. A worker pulls the next request only when it is free,
  creates it, and queues the result; the consumer reads the queue. So slots refill as soon as a
  create ends (not when the consumer next asks), and a request source that waits on the
  consumer cannot deadlock the batch. Workers are spawned one per pulled request up to
  `concurrency`, so a short batch never starts idle tasks.
- Lazy and bounded. Pulls happen under a lock (an async generator cannot be advanced twice at
  once), and a semaphore caps requests pulled but not yet consumed at 2 x `concurrency`: a
  100,000-request generator is never materialized, even behind a slow consumer.
- One result per request. Each request is parsed and validated alone, and every exception of
  its create (a `ValueError`, a `DevinError`, anything but a cancellation) becomes its
  `BatchResult.error`; nothing one request does can hide another's result.
- Stopping. `stop()` pulls nothing more and ends the iteration once the creates in flight are
  reported. `aclose()` (also `async with`, cancelling a pending `__anext__`, or dropping the
  iterator, e.g. `break`) pulls nothing more and *cancels* the creates in flight, then waits for
  them to unwind: leaving should be prompt, not hostage to a create's retries. A cancelled create
  may still have reached the server; its session then carries its client token tag, known up
  front (each create is given its token) and listed in `.cancelled`.
- `batch_key`: see `_batch` (one listing before the first create, the index as identity, one
  duplicate check when the batch ends).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._batch import BatchBook, CancelledCreate, check_batch_key
from ._create import new_token, token_for_key
from ._models import MAX_TAGS, BatchResult, CreateSessionRequest, Session

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["CreateMany"]

RequestLike = CreateSessionRequest | Mapping[str, Any]
Requests = Iterable[RequestLike] | AsyncIterable[RequestLike]


class _End:
    """The marker the last worker queues: no more results."""


_END = _End()


class _Batch:
    """The running state shared by the workers (the iterator only points at it)."""

    def __init__(self, sessions: Sessions, requests: Requests, concurrency: int,
                 batch_key: str | None) -> None:
        self.sessions = sessions
        self.concurrency = concurrency
        self.book = None if batch_key is None else BatchBook(sessions, batch_key)
        self.inflight: dict[int, CancelledCreate] = {}
        self.cancelled: list[CancelledCreate] = []
        self.sync_source: Iterator[RequestLike] | None = None
        self.async_source: AsyncIterator[RequestLike] | None = None
        if isinstance(requests, AsyncIterable):
            self.async_source = aiter(requests)
        else:
            self.sync_source = iter(requests)
        self.results: asyncio.Queue[BatchResult | _End] = asyncio.Queue()
        self.credits = asyncio.Semaphore(2 * concurrency)
        self.pull_lock = asyncio.Lock()
        self.workers: set[asyncio.Task[None]] = set()
        self.live = 0
        self.next_index = 0
        self.exhausted = False
        self.stopping = False
        self.source_error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.spawn()

    def spawn(self) -> None:
        self.live += 1
        assert self.loop is not None
        task = self.loop.create_task(self.work())
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    async def pull(self) -> tuple[int, RequestLike] | None:
        """Take the next request, or None when there is none (or we are stopping)."""
        async with self.pull_lock:
            if self.exhausted or self.stopping:
                return None
            try:
                if self.async_source is not None:
                    item = await anext(self.async_source)
                else:
                    assert self.sync_source is not None
                    item = next(self.sync_source)
            except (StopIteration, StopAsyncIteration):
                self.exhausted = True
                return None
            except Exception as exc:  # the caller's source broke: end after what is in flight
                self.exhausted = True
                self.source_error = exc
                return None
            index = self.next_index
            self.next_index += 1
            if self.live < self.concurrency and not self.stopping:
                self.spawn()
            return index, item

    async def work(self) -> None:
        try:
            while True:
                await self.credits.acquire()
                pulled = await self.pull()
                if pulled is None:
                    self.credits.release()
                    return
                index, item = pulled
                self.results.put_nowait(await self.run_one(index, item))
        finally:
            self.live -= 1
            if self.live == 0 and not self.stopping_hard():
                self.results.put_nowait(_END)

    def stopping_hard(self) -> bool:
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    async def run_one(self, index: int, item: Any) -> BatchResult:
        try:
            request = (item if isinstance(item, CreateSessionRequest)
                       else CreateSessionRequest.from_dict(item))
            request.validate()
            if self.book is None:
                session = await self.create(index, item, request)
            else:
                book = self.book
                token = book.token(index, request)
                deadline = self.sessions.engine.deadline()
                found = await book.resolve(index, request, token, deadline)
                if found is not None:
                    return BatchResult(index, item, session=found, existing=True)
                session = await self.tracked(index, item, token,
                                             book.create(index, request, token, deadline))
        except Exception as exc:
            return BatchResult(index, item, error=exc)
        return BatchResult(index, item, session=session)

    async def create(self, index: int, item: Any, request: CreateSessionRequest) -> Session:
        """Create one session: the client's duplicate-safe create, under its one deadline."""
        creator = self.sessions.creator
        key = request.idempotency_key
        token: str | None = None
        if key is not None:
            token = token_for_key(key)
        elif creator.client_tokens and len(request.tags or ()) < MAX_TAGS:
            token = new_token()
        return await self.tracked(index, item, token, creator.create(request, token=token))

    async def tracked(self, index: int, item: Any, token: str | None,
                      create: Coroutine[Any, Any, Session]) -> Session:
        """Await a create, listing it in `cancelled` if it is cancelled on the way."""
        self.inflight[index] = CancelledCreate(index, item, token)
        try:
            return await create
        except asyncio.CancelledError:
            self.cancelled.append(self.inflight[index])
            raise
        finally:
            del self.inflight[index]

    def cancel(self) -> None:
        self.stopping = True
        for task in list(self.workers):
            task.cancel()

    def abandon(self) -> None:
        """Cancel the workers of an iterator that was dropped without aclose() (e.g. `break`)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not self.workers:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.cancel()
        else:
            loop.call_soon_threadsafe(self.cancel)


class CreateMany:
    """The async iterator `create_many` returns: `BatchResult`s in completion order.

    Also an async context manager (`async with ... as results:`) that closes on exit.

    Two ways to stop early:
    - `stop()`: pull no more requests, let the creates in flight finish; each is still reported,
      then the iteration ends (with a `batch_key`, after the final duplicate check). Nothing is
      left in doubt.
    - `aclose()`, leaving the `async with`, or `break` and dropping the iterator: cancel the
      creates in flight and return promptly. A cancelled create may still have reached the
      server: `cancelled` lists each (index, request, client token). With a `batch_key`, a
      rerun of the batch picks them up (existing sessions are reported, the rest created).
    """

    def __init__(self, sessions: Sessions, requests: Requests, *, concurrency: int = 8,
                 batch_key: str | None = None) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if isinstance(requests, str | bytes | Mapping | CreateSessionRequest) or not isinstance(
            requests, Iterable | AsyncIterable
        ):
            raise ValueError(
                "requests must be an iterable or async iterable of CreateSessionRequest or "
                f"dicts, got {type(requests).__name__}"
            )
        self._batch = _Batch(sessions, requests, concurrency, check_batch_key(batch_key))
        self._started = False
        self._done = False
        self._finalizer = weakref.finalize(self, _Batch.abandon, self._batch)
        self._finalizer.atexit = False

    def __aiter__(self) -> CreateMany:
        return self

    async def __anext__(self) -> BatchResult:
        batch = self._batch
        if self._done:
            raise StopAsyncIteration
        if not self._started:
            self._started = True
            if batch.book is not None:
                try:
                    await batch.book.load()  # before anything is sent
                except BaseException:
                    self._done = True
                    self._finalizer.detach()
                    raise
            batch.start()
        try:
            result = await batch.results.get()
        except asyncio.CancelledError:
            await self._shutdown()
            raise
        if isinstance(result, _End):
            self._done = True
            self._finalizer.detach()
            if batch.book is not None:
                await batch.book.finish()
            error, batch.source_error = batch.source_error, None
            if error is not None:
                raise error
            raise StopAsyncIteration
        batch.credits.release()
        return result

    def stop(self) -> None:
        """Pull no more requests; the iteration ends once the creates in flight are reported."""
        self._batch.stopping = True

    async def aclose(self) -> None:
        """Pull no more requests, cancel the creates in flight, and wait for them to unwind."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._done = True
        self._finalizer.detach()
        batch = self._batch
        workers = list(batch.workers)
        batch.cancel()
        if workers:
            await asyncio.wait(workers)

    async def __aenter__(self) -> CreateMany:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pulled(self) -> int:
        """Return how many requests were taken from the source so far."""
        return self._batch.next_index

    @property
    def cancelled(self) -> list[CancelledCreate]:
        """Return the creates cancelled in flight by `aclose()` (they may have happened)."""
        return sorted(self._batch.cancelled, key=lambda c: c.index)

    @property
    def superseded(self) -> dict[int, Session]:
        """Return index -> kept session, for results whose session proved a duplicate."""
        book = self._batch.book
        return {} if book is None else dict(book.superseded)
