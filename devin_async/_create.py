"""Duplicate-safe creates.

The v3 API has no idempotency key, so a create whose answer was lost (a timeout or reset after
sending, a 500/502/504, a garbled 2xx) may or may not have made a session. Retrying blindly makes
a second one. So each create carries a client token as a tag, `devin-async-token:<uuid4 hex>`;
after an ambiguous failure the client waits its backoff, looks the token up (`list` with
`tags=[tag]`), and only if no session carries it sends the create again, with the same token.
If that lookup fails too, CreateUnconfirmedError says the create may have happened and carries the
token so the caller can reconcile.

The token tag is the SDK's bookkeeping: the server keeps it (it shows in the web app), but the
SDK strips it from `Session.tags` everywhere and exposes it as `Session.client_token`. A request
that already has 50 tags has no room for it and is sent without the guard.
"""

from __future__ import annotations

import random
import re
import uuid
from typing import TYPE_CHECKING

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CreateUnconfirmedError,
    DevinError,
    MalformedResponseError,
)
from ._instrument import RetryEvent, fire, logger
from ._models import MAX_TAGS, TOKEN_TAG_PREFIX, CreateSessionRequest, Session
from ._protocol import Kind, Request, parse_session, parse_session_page

if TYPE_CHECKING:
    from ._client import DevinClient

__all__ = ["TOKEN_TAG_PREFIX", "create_session", "is_ambiguous", "new_client_token"]

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


def new_client_token() -> str:
    """Return a fresh client token (never shared between two requests)."""
    return uuid.uuid4().hex


def is_ambiguous(error: BaseException) -> bool:
    """Return whether a failed create may have made a session anyway."""
    if isinstance(error, APIStatusError):
        return error.status in AMBIGUOUS_STATUSES
    if isinstance(error, APIConnectionError):
        return error.sent
    return isinstance(error, MalformedResponseError)


def _token_for(client: DevinClient, request: CreateSessionRequest,
               client_token: str | bool | None) -> str | None:
    if client_token is False or (client_token is None and not client.client_tokens):
        return None
    if len(request.tags or ()) >= MAX_TAGS:
        logger.debug("create has %d tags: no room for the client token, sent unguarded",
                     MAX_TAGS)
        return None
    if isinstance(client_token, str):
        if _TOKEN_RE.fullmatch(client_token) is None:
            raise ValueError("client_token must be 8-64 of A-Z a-z 0-9 _ -")
        return client_token
    if client_token not in (None, True):
        raise ValueError("client_token must be a string, True, False or None")
    return new_client_token()


async def find_by_token(client: DevinClient, tag: str) -> Session | None:
    """Return the session carrying the token tag, if the server has one."""
    request = Request("GET", "/sessions", Kind.READ,
                      params=(("first", "10"), ("tags", tag)))
    page = parse_session_page(await client._request(request))
    for session in page.items:
        if session.client_token == tag[len(TOKEN_TAG_PREFIX):]:
            return session
    return None


async def create_session(client: DevinClient, request: CreateSessionRequest, *,
                         client_token: str | bool | None = None) -> Session:
    """Create one session; with a token, resolve ambiguous failures without a duplicate."""
    token = _token_for(client, request, client_token)
    if token is None:
        body = request.to_body()
        return parse_session(await client._request(Request("POST", "/sessions", Kind.UNSAFE,
                                                           json=body)))
    tag = TOKEN_TAG_PREFIX + token
    body = request.to_body(tags=[*(request.tags or ()), tag])
    send = Request("POST", "/sessions", Kind.UNSAFE, json=body)
    policy = client.retry
    deadline = client._clock() + policy.deadline
    attempt = 0
    # A create that timed out after sending may still be running on the server: from then on
    # it is only looked up, never sent again (a resend could race it into a duplicate).
    pending: APITimeoutError | None = None
    while True:
        attempt += 1
        if pending is None:
            try:
                return parse_session(await client._request(send))
            except DevinError as error:
                if not is_ambiguous(error):
                    raise
                last: DevinError = error
                if isinstance(error, APITimeoutError):
                    pending = error
        # The create may have happened: wait, then ask the server before sending again.
        delay = random.uniform(0, policy.backoff(attempt)) if policy.jitter \
            else policy.backoff(attempt)
        path = client._path_prefix + "/sessions"
        logger.info("create %s failed ambiguously (%s); looking the token up in %.2f s",
                    token, str(last), delay)
        if client._on_retry:
            fire(client._on_retry, RetryEvent("POST", path, attempt, delay, last))
        await client._sleep(delay)
        try:
            found = await find_by_token(client, tag)
        except DevinError as lookup_error:
            raise CreateUnconfirmedError(
                f"the create may have happened: it failed ambiguously ({last}) and looking up "
                f"its client token {token} failed too ({lookup_error}); reconcile with "
                f"sessions.list(tags=[{tag!r}])",
                client_token=token,
                tag=tag,
                original=last,
            ) from lookup_error
        if found is not None:
            logger.info("create %s had happened: found %s", token, found.session_id)
            return found
        if pending is not None:
            if attempt >= policy.max_attempts or client._clock() >= deadline:
                raise CreateUnconfirmedError(
                    f"the create timed out ({pending}) and no session with its client token "
                    f"{token} has appeared yet; it may still be created: reconcile with "
                    f"sessions.list(tags=[{tag!r}])",
                    client_token=token,
                    tag=tag,
                    original=pending,
                )
            continue  # look again after the next backoff; never resend
        # Not found: the create did not happen, so sending it again cannot duplicate it.
        # The resend spends from the shared retry budget, so an outage is not multiplied.
        if (attempt >= policy.max_attempts or client._clock() >= deadline
                or not client.limiter.allow_retry(last)):
            raise last
