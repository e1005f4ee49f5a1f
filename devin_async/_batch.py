"""Resumable batches: what `create_many(batch_key=...)` knows about the sessions of its batch.

Why it is built this way:
- The index is the identity. Request *i* of batch K stands for the client token
  `token_for_key(f"{K}/{i}")` (its own `idempotency_key`, if it has one, wins), so the same
  session is found again from any process, after any crash, and `create(idempotency_key=
  f"{K}/{i}")` finds it too.
- One listing, not one look-up per request, to resume. Every session of the batch also carries
  one shared batch tag (`devin-async-batch:<hash of K>`), so a rerun lists the batch once
  (page size 200: ceil(existing / 200) requests) and knows which indices exist before it sends
  anything; an index the listing does not show is created without a look-up of its own (a
  look-up per index would double a fresh batch's requests, and under index lag it would see no
  more than the listing did). Only a request with its own `idempotency_key` is looked up by its
  token first: its session may come from outside the batch, without the batch tag.
- A rerun must not silently reuse a session made from another request: each session carries a
  prompt tag (`devin-async-p:<8 hex of the prompt's SHA-256>`); the tag cannot be the token's
  (a key alone must find its token tag) nor the batch's (shared by every index). A session whose
  prompt tag or title disagrees with request *i* is that index's error (`BatchMismatchError`).
  So a batch request carries three SDK tags and at most 47 of its own.
- No surviving duplicate. Two processes running one batch at once, or a rerun whose listing
  lagged behind the crashed run's last creates, can both create index *i*. When the batch ends
  (source exhausted, every create done) the batch is listed once more, after waiting
  `RetryPolicy.settle` seconds past this run's last create so a lagging index shows it; two
  sessions with one token: the oldest is kept, the others are terminated (each process applies
  the same rule, so two processes agree). A result already reported whose session was
  terminated that way is listed in `CreateMany.superseded` (index -> the session kept).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._create import token_for_key
from ._errors import DevinError
from ._instrument import logger
from ._models import MAX_TAGS, TOKEN_TAG_PREFIX, CreateSessionRequest, Session, request_repr

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["BATCH_TAG_PREFIX", "PROMPT_TAG_PREFIX", "BatchBook", "BatchMismatchError",
           "CancelledCreate", "batch_tag", "check_batch_key", "prompt_tag"]

BATCH_TAG_PREFIX = "devin-async-batch:"
PROMPT_TAG_PREFIX = "devin-async-p:"
#: The SDK's tags on every session of a keyed batch: token, batch, prompt.
SDK_TAGS = 3
MAX_BATCH_KEY = 200
LIST_PAGE = 200


def check_batch_key(batch_key: object) -> str | None:
    """Return `batch_key` if it is None or a usable key, else raise ValueError."""
    if batch_key is None:
        return None
    if not isinstance(batch_key, str) or not batch_key.strip() or len(batch_key) > MAX_BATCH_KEY:
        raise ValueError(f"batch_key must be a non-empty string of at most {MAX_BATCH_KEY} "
                         f"characters, got {type(batch_key).__name__}")
    return batch_key


def batch_tag(batch_key: str) -> str:
    """Return the tag every session of batch `batch_key` carries (a stable hash of the key)."""
    return BATCH_TAG_PREFIX + hashlib.sha256(b"batch\0" + batch_key.encode()).hexdigest()[:32]


def prompt_tag(prompt: str) -> str:
    """Return the tag that records a short hash of a request's prompt."""
    return PROMPT_TAG_PREFIX + hashlib.sha256(prompt.encode()).hexdigest()[:8]


class BatchMismatchError(ValueError):
    """A rerun's request *i* differs from the one the batch's session *i* was created from."""

    def __init__(self, message: str, *, index: int, session: Session) -> None:
        super().__init__(message)
        self.index = index
        self.session = session


@attrs.frozen(slots=True)
class CancelledCreate:
    """A create that was in flight when its batch was closed: it may have reached the server.

    `client_token` is the token its session carries if it was created (None: sent unguarded);
    `sessions.list(tags=["devin-async-token:" + client_token])` finds it.
    """

    index: int
    request: CreateSessionRequest | Mapping[str, Any] = attrs.field(repr=request_repr)
    client_token: str | None


class BatchBook:
    """One run of a keyed batch: what existed before it, what it made, the clean-up at the end."""

    def __init__(self, sessions: Sessions, batch_key: str) -> None:
        self.sessions = sessions
        self.creator = sessions.creator
        self.engine = sessions.engine
        self.batch_key = batch_key
        self.tag = batch_tag(batch_key)
        self.existing: dict[str, list[Session]] = {}
        self.reported: dict[str, tuple[int, str]] = {}
        self.superseded: dict[int, Session] = {}
        self.last_create: float | None = None
        self.listings = 0

    def token(self, index: int, request: CreateSessionRequest) -> str:
        """Return the client token request `index` stands for."""
        key = request.idempotency_key
        return token_for_key(key if key is not None else f"{self.batch_key}/{index}")

    async def _list(self) -> dict[str, list[Session]]:
        by_token: dict[str, list[Session]] = {}
        pages = self.sessions.list(tags=[self.tag], page_size=LIST_PAGE).pages()
        async for page in pages:
            self.listings += 1
            for session in page.items:
                if session.client_token is not None:
                    by_token.setdefault(session.client_token, []).append(session)
        return by_token

    async def load(self) -> None:
        """List the sessions the batch already has (one paged listing)."""
        self.existing = await self._list()

    async def resolve(self, index: int, request: CreateSessionRequest, token: str,
                      deadline: float) -> Session | None:
        """Return the session request `index` already has, or None if it must be created.

        Raises:
            BatchMismatchError: that session was made from another request.
            ValueError: the request has too many tags to carry the SDK's three.
        """
        if len(request.tags or ()) + SDK_TAGS > MAX_TAGS:
            raise ValueError(f"request {index}: {len(request.tags or ())} tags; a batch_key "
                             f"request takes at most {MAX_TAGS - SDK_TAGS} (the SDK adds its "
                             f"client token, batch and prompt tags)")
        found = self.existing.pop(token, None)
        if not found:
            if request.idempotency_key is None:
                return None
            found = await self.creator.find(TOKEN_TAG_PREFIX + token, deadline)
            if not found:
                return None
        session = await self.creator.keep_oldest(found, deadline)
        self._check(index, request, session)
        self.reported[token] = (index, session.session_id)
        return session

    def _check(self, index: int, request: CreateSessionRequest, session: Session) -> None:
        problems = []
        if request.title is not None and session.title is not None \
                and request.title != session.title:
            problems.append(f"title {session.title!r} != {request.title!r}")
        prompts = [t for t in session.sdk_tags if t.startswith(PROMPT_TAG_PREFIX)]
        if prompts and prompt_tag(request.prompt) not in prompts:
            problems.append("the prompt differs")
        if problems:
            raise BatchMismatchError(
                f"request {index} does not match session {session.session_id}, created for "
                f"index {index} of batch {self.batch_key!r} ({'; '.join(problems)}): the i-th "
                f"request must be the same on every run of a batch",
                index=index, session=session)

    async def create(self, index: int, request: CreateSessionRequest, token: str,
                     deadline: float) -> Session:
        """Create request `index` with its token, batch and prompt tags."""
        plain = attrs.evolve(request, idempotency_key=None)  # the token is given: no 2nd look-up
        try:
            session = await self.creator.create(
                plain, guard=True, token=token, deadline=deadline,
                extra_tags=(self.tag, prompt_tag(request.prompt)))
        finally:
            self.last_create = self.engine.clock()
        self.reported[token] = (index, session.session_id)
        return session

    async def finish(self) -> None:
        """List the batch once more and terminate duplicates (keeping the oldest of each token)."""
        engine = self.engine
        if self.last_create is not None:
            pause = self.last_create + engine.retry.settle - engine.clock()
            if pause > 0:
                await engine.sleep(pause)
        try:
            by_token = await self._list()
            for token, found in by_token.items():
                live = [s for s in found if not s.is_terminal]
                if len(found) < 2 or not live:
                    continue
                kept = await self.creator.keep_oldest(found)
                reported = self.reported.get(token)
                if reported is not None and reported[1] != kept.session_id:
                    self.superseded[reported[0]] = kept
        except DevinError as exc:
            logger.warning("batch %r: the final duplicate check failed (%s); a rerun repeats it",
                           self.batch_key, str(exc))
