"""Duplicate-safe creates.

The v3 API has no idempotency key, so a create whose answer was lost (a reset after sending, a
500/502/504, a garbled 2xx, a timeout) may or may not have made a session, and a blind resend
can make a second one. So each create carries a client token as a tag,
`devin-async-token:<token>`. The engine's decision table says when the fate of a create is
unknown; then this module's look-up asks the server (`list` with `tags=[tag]`) and the engine
resends only if no session carries the token.

Why the look-up keeps looking, and why a second check: a real API's list is often served from an
index that lags writes by a second or more, so "not found" right after a lost answer means little.
The look-up keeps looking for `RetryPolicy.settle` seconds before it concludes "not created".
And after a create that was resent, once the index has settled, the SDK lists the token again;
if two sessions carry it, it keeps the oldest and terminates the others. Every wait is bounded
by the call's deadline; a deadline that cuts the settle window short means "not known", never
"not created": the create is not resent (CreateUnconfirmedError).

`idempotency_key`: the token is derived from the key (a stable hash), so the same key finds the
same session across calls, processes and restarts; it is looked up before the first send, and
concurrent calls with one key on one client share one create.

The token tag is the SDK's bookkeeping: the server keeps it (it shows in the web app), but the
SDK strips it from `Session.tags` everywhere and exposes it as `Session.client_token`. A request
that already has 50 tags has no room for it and is sent without the guard.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from ._decisions import Kind
from ._engine import Engine, Reply
from ._errors import APITimeoutError, CreateUnconfirmedError, DevinError
from ._instrument import logger
from ._models import MAX_TAGS, TOKEN_TAG_PREFIX, CreateSessionRequest, Session
from ._protocol import Request, parse_session, parse_session_page

__all__ = ["TOKEN_TAG_PREFIX", "Creator", "new_token", "token_for_key"]

#: Keys remembered per client (key -> session), so a repeat finds its session even before the
#: list index shows it.
MEMO_SIZE = 10_000
#: The first pause between two look-ups of a settling window (it doubles).
FIRST_LOOK_PAUSE = 0.25


def new_token() -> str:
    """Return a fresh random client token (never shared between two requests)."""
    return uuid.uuid4().hex


def token_for_key(key: str) -> str:
    """Return the client token an idempotency key stands for (a stable 32-hex-digit hash)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _secret_values(request: CreateSessionRequest) -> tuple[str, ...]:
    secrets = request.session_secrets
    return () if not secrets else tuple(s.value for s in secrets)


def _oldest(sessions: list[Session]) -> Session:
    return min(sessions, key=lambda s: (s.created_at, s.session_id))


class Creator:
    """The create path of one client: token tags, look-ups, single flight, duplicate clean-up."""

    def __init__(self, engine: Engine, *, client_tokens: bool) -> None:
        self.engine = engine
        self.client_tokens = client_tokens
        self._inflight: dict[str, asyncio.Future[Session]] = {}
        self._memo: OrderedDict[str, Session] = OrderedDict()

    async def create(self, request: CreateSessionRequest, *, guard: bool | None = None,
                     deadline: float | None = None, token: str | None = None,
                     extra_tags: Sequence[str] = ()) -> Session:
        """Create one session; with a token, resolve ambiguous failures without a duplicate.

        Args:
            request: the validated request (its `idempotency_key`, if any, gives the token).
            guard: tag the create with a client token (default: the client's setting).
            deadline: the call's deadline (default: the retry policy's from now).
            token: the client token to use when the request has no idempotency key (a caller
                that must know it before the create ends, e.g. to report a cancelled create).
            extra_tags: more SDK tags for the body (reserved prefix allowed, e.g. a batch's).

        Raises:
            ValueError: the user's tags, the token tag and `extra_tags` exceed 50 tags.
        """
        engine = self.engine
        if deadline is None:
            deadline = engine.deadline()
        key = request.idempotency_key
        use_guard = self.client_tokens if guard is None else guard
        user_tags = list(request.tags or ())
        sdk_tags = len(extra_tags) + (1 if use_guard or key is not None else 0)
        if extra_tags and len(user_tags) + sdk_tags > MAX_TAGS:
            raise ValueError(f"tags: {len(user_tags)} tags leave no room for the SDK's "
                             f"{sdk_tags} own tags (at most {MAX_TAGS} in all)")
        if key is None and (not use_guard or len(user_tags) >= MAX_TAGS):
            if use_guard:
                logger.debug("create has %d tags: no room for the client token, sent unguarded",
                             MAX_TAGS)
            body = (request.to_body(tags=[*user_tags, *extra_tags]) if extra_tags
                    else request.to_body())
            reply = await engine.request(
                Request("POST", "/sessions", Kind.CREATE, json=body,
                        secrets=_secret_values(request)), deadline=deadline)
            return parse_session(reply.data)
        if key is None:
            return await self._guarded(request, token or new_token(), deadline, known=False,
                                       extra_tags=extra_tags)
        token = token_for_key(key)
        remembered = self._memo.get(token)
        if remembered is not None:
            return remembered
        shared = self._inflight.get(token)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self._inflight[token] = future
        try:
            session = await self._guarded(request, token, deadline, known=True,
                                          extra_tags=extra_tags)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning without sharers
            raise
        else:
            future.set_result(session)
            self._remember(token, session)
            return session
        finally:
            del self._inflight[token]

    def _remember(self, token: str, session: Session) -> None:
        self._memo[token] = session
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    async def _guarded(self, request: CreateSessionRequest, token: str, deadline: float, *,
                       known: bool, extra_tags: Sequence[str] = ()) -> Session:
        tag = TOKEN_TAG_PREFIX + token
        if known:  # an idempotency key: an earlier call (anywhere) may have created it
            existing = await self.find(tag, deadline)
            if existing:
                return await self._keep_oldest(existing)
        body = request.to_body(tags=[*(request.tags or ()), tag, *extra_tags])
        send = Request("POST", "/sessions", Kind.CREATE, json=body,
                       secrets=_secret_values(request))
        misses = 0

        async def look_up(call_deadline: float) -> Reply | None:
            nonlocal misses
            found = await self._settled_look_up(tag, token, call_deadline)
            if found is None:
                misses += 1
                return None
            return Reply(found, 200, {}, None)

        try:
            reply = await self.engine.request(send, deadline=deadline, look_up=look_up)
        except APITimeoutError as exc:
            if misses == 0 and not exc.sent:
                raise
            raise CreateUnconfirmedError(
                f"the create timed out ({exc}) and no session with its client token {token} "
                f"has appeared yet; it may still be created: reconcile with "
                f"sessions.list(tags=[{tag!r}])",
                client_token=token, tag=tag, original=exc) from None
        data = reply.data
        session = data if isinstance(data, Session) else parse_session(data)
        if misses or known:
            # A resend (or a key another process may be using): once the index has settled,
            # a second session with this token is a duplicate; keep the oldest.
            session = await self._deduplicate(tag, token, session, deadline, wait=misses > 0)
        return session

    async def find(self, tag: str, deadline: float) -> list[Session]:
        """Return the sessions carrying the token tag (one list request)."""
        request = Request("GET", "/sessions", Kind.READ, params=(("first", "10"), ("tags", tag)))
        reply = await self.engine.request(request, deadline=deadline)
        token = tag[len(TOKEN_TAG_PREFIX):]
        return [s for s in parse_session_page(reply.data).items if s.client_token == token]

    async def _settled_look_up(self, tag: str, token: str, deadline: float) -> Session | None:
        """Look the token up until found, or until `settle` seconds said nothing.

        A look-up that fails (after its own retries) is not an answer: it is tried once more,
        after a pause within the window; a second failure in a row means the create is
        unconfirmed. "Not created" needs the last look-up to have answered.
        """
        engine = self.engine
        start = engine.clock()
        pause = FIRST_LOOK_PAUSE
        failure: DevinError | None = None
        while True:
            try:
                found = await self.find(tag, deadline)
            except DevinError as lookup_error:
                if failure is not None:
                    break  # twice in a row: no answer is coming
                failure = lookup_error
            else:
                failure = None
                if found:
                    session = _oldest(found)
                    logger.info("create %s had happened: found %s", token, session.session_id)
                    return session
            now = engine.clock()
            left = engine.retry.settle - (now - start)
            wait = min(pause, left) if left > 0 else FIRST_LOOK_PAUSE
            if left <= 0 and failure is None:
                break  # the window said nothing: not created
            if now + wait >= deadline:
                if failure is None:  # cut short: "not created" is not known, so no resend
                    raise CreateUnconfirmedError(
                        f"the create may have happened: its answer was lost and the call's "
                        f"deadline came before its client token {token} could be looked up "
                        f"for the whole settle window; reconcile with "
                        f"sessions.list(tags=[{tag!r}])",
                        client_token=token, tag=tag, original=APITimeoutError(
                            "the call's deadline passed while the token was looked up",
                            method="POST", path="/sessions", sent=True))
                break
            await engine.sleep(wait)
            pause *= 2
        if failure is not None:
            raise CreateUnconfirmedError(
                f"the create may have happened: its answer was lost and looking up its "
                f"client token {token} failed ({failure}); reconcile with "
                f"sessions.list(tags=[{tag!r}])",
                client_token=token, tag=tag, original=failure) from None
        return None

    async def _deduplicate(self, tag: str, token: str, session: Session, deadline: float, *,
                           wait: bool) -> Session:
        engine = self.engine
        if wait:
            pause = min(engine.retry.settle, max(0.0, deadline - engine.clock() - 1.0))
            if pause > 0:
                await engine.sleep(pause)
        try:
            found = await self.find(tag, deadline)
        except DevinError as exc:
            logger.warning("create %s: could not check for a duplicate (%s)", token, str(exc))
            return session
        if all(s.session_id != session.session_id for s in found):
            found.append(session)
        return await self._keep_oldest(found, deadline)

    async def keep_oldest(self, found: list[Session], deadline: float | None = None) -> Session:
        """Return the oldest of sessions sharing one token; terminate the others still live."""
        return await self._keep_oldest(found, deadline)

    async def _keep_oldest(self, found: list[Session], deadline: float | None = None) -> Session:
        keep = _oldest(found)
        for extra in found:
            if extra.session_id == keep.session_id or extra.is_terminal:
                continue
            logger.warning("session %s duplicates %s (same client token): terminating it",
                           extra.session_id, keep.session_id)
            try:
                await self.engine.request(
                    Request("DELETE", f"/sessions/{extra.session_id}", Kind.IDEMPOTENT,
                            params=(("archive", "false"),)), deadline=deadline)
            except DevinError as exc:
                logger.warning("could not terminate duplicate %s: %s", extra.session_id, str(exc))
        return keep
