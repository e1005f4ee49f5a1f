"""DevinClient: configuration, the aiohttp transport, and the retry loop.

Why the retry loop looks the way it does: the first attempt runs without any retry machinery (it
is the common case and the hot path); only when it fails retryably is a tenacity controller built,
which is handed that first failure so its stop/wait arithmetic counts it. Every attempt first
passes the client-wide rate limiter, so a 429 seen by one request pauses them all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from . import _json
from ._config import PollPolicy, RetryPolicy, Timeouts
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DevinError,
    MalformedResponseError,
    RateLimitError,
)
from ._instrument import (
    Hook,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    as_hooks,
    configure_from_env,
    fire,
    logger,
)
from ._protocol import (
    Request,
    check_id,
    decode_error,
    decode_json,
    is_retryable,
    parse_retry_after,
)
from ._ratelimit import RateLimiter
from ._version import __version__

if TYPE_CHECKING:
    import tenacity

    from ._models import Session
    from ._sessions import Sessions
    from ._watcher import Watcher

__all__ = ["DEFAULT_BASE_URL", "ClientClosedError", "DevinClient", "mask_key"]

DEFAULT_BASE_URL = "https://api.devin.ai"
API_VERSIONS = ("v3beta1", "v3")
#: Connection pool: enough sockets for a fan-out of hundreds without opening thousands.
DEFAULT_CONNECTION_LIMIT = 64
#: The largest body the client reads; a bigger one is an error, never an unbounded buffer.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_ConnectionTimeout: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


class ClientClosedError(DevinError, RuntimeError):
    """The client was used after `aclose()`."""


def mask_key(key: str) -> str:
    """Return a printable stand-in for an API key: at most `cog_…last4`."""
    prefix = "cog_" if key.startswith("cog_") else ""
    if len(key) < 12:
        return f"{prefix}…"
    return f"{prefix}…{key[-4:]}"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str, allow_insecure_http: bool) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(
            f"base_url uses plain http:// to a non-loopback host ({parts.hostname}); the API key "
            "would travel unencrypted. Use https:// or pass allow_insecure_http=True"
        )
    return base_url.rstrip("/")


class DevinClient:
    """An asyncio client for the Devin sessions API.

    Use it as `async with DevinClient() as client:`; the key comes from `api_key` or
    `DEVIN_API_KEY`, the organization from `org_id` or `DEVIN_ORG_ID`.

    Args:
        api_key: a service-user credential (`cog_...`).
        org_id: the organization (`org-...`).
        base_url: the API origin; default `DEVIN_BASE_URL`, then https://api.devin.ai.
        api_version: `v3beta1` (default) or `v3`.
        timeouts: per-attempt timeouts.
        retry: how failed requests are retried.
        session: an aiohttp.ClientSession to borrow; the client never closes it.
        poll: the default cadence of `poll`, `wait` and `watch`.
        allow_insecure_http: permit plain http:// to a non-loopback host.
        clock, sleep: a monotonic clock and an async sleep (inject them in tests).
        on_request, on_response, on_retry: event hooks for metrics.
        client_tokens: tag each create with a client token so ambiguous failures can be
            resolved without a duplicate (see `sessions.create`).

    Raises:
        ValueError: a missing key or org id, or a bad base URL or version.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        org_id: str | None = None,
        base_url: str | None = None,
        api_version: str = "v3beta1",
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        poll: PollPolicy | None = None,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        on_request: Hook | Iterable[Hook] | None = None,
        on_response: Hook | Iterable[Hook] | None = None,
        on_retry: Hook | Iterable[Hook] | None = None,
        client_tokens: bool = True,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("DEVIN_API_KEY")
        if not key or not isinstance(key, str):
            raise ValueError("an API key is required: pass api_key= or set DEVIN_API_KEY")
        if any(c.isspace() for c in key) or not key.isprintable():
            raise ValueError("api_key contains whitespace or control characters")
        org = org_id if org_id is not None else os.environ.get("DEVIN_ORG_ID")
        if not org:
            raise ValueError("an organization id is required: pass org_id= or set DEVIN_ORG_ID")
        check_id("org_id", org)
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
        url = base_url or os.environ.get("DEVIN_BASE_URL") or DEFAULT_BASE_URL
        if not isinstance(connection_limit, int) or connection_limit < 1:
            raise ValueError("connection_limit must be an int >= 1")
        self._key = key
        self._key_bytes = key.encode()
        self.org_id = org
        self.api_version = api_version
        self.base_url = _check_base_url(url, allow_insecure_http)
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.retry = retry if retry is not None else RetryPolicy()
        self.poll_policy = poll if poll is not None else PollPolicy()
        self.client_tokens = client_tokens
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._on_request = as_hooks(on_request)
        self._on_response = as_hooks(on_response)
        self._on_retry = as_hooks(on_retry)
        self._connection_limit = connection_limit
        self._max_body = max_response_bytes
        self._borrowed = session
        self._session: aiohttp.ClientSession | None = session
        self._closed = False
        self._prefix = f"{self.base_url}/{api_version}/organizations/{org}"
        self._path_prefix = f"/{api_version}/organizations/{org}"
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": f"devin-async/{__version__}",
            "Accept": "application/json",
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = _client_timeout(self.timeouts, self.timeouts.total)
        self.limiter = RateLimiter(self._clock, self._sleep,
                                   max_pause=self.retry.max_retry_after)
        self._sessions: Sessions | None = None
        configure_from_env()

    # -- public surface -------------------------------------------------------------------

    @property
    def sessions(self) -> Sessions:
        """The session endpoints."""
        if self._sessions is None:
            from ._sessions import Sessions

            self._sessions = Sessions(self)
        return self._sessions

    def watch(
        self,
        session_ids: Iterable[str] = (),
        *,
        until: Callable[[Session], bool] | None = None,
        policy: PollPolicy | None = None,
    ) -> Watcher:
        """Return a Watcher that reports every change across many sessions."""
        from ._watcher import Watcher

        return Watcher(self, session_ids, until=until, policy=policy)

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called."""
        return self._closed

    async def __aenter__(self) -> DevinClient:
        if self._closed:
            raise ClientClosedError("this DevinClient is closed; create a new one")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's own HTTP session (a borrowed one is left open)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and session is not self._borrowed and not session.closed:
            await session.close()

    def __repr__(self) -> str:
        return (
            f"DevinClient(base_url={self.base_url!r}, org_id={self.org_id!r}, "
            f"api_version={self.api_version!r}, api_key={mask_key(self._key)!r})"
        )

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        session = getattr(self, "_session", None)
        if session is not None and session is not self._borrowed and not session.closed:
            _warn(
                "DevinClient was never closed; use `async with DevinClient()` or "
                "`await client.aclose()`",
                ResourceWarning,
                stacklevel=2,
            )

    # -- transport ------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this DevinClient is closed; create a new one")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, limit_per_host=self._connection_limit
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, raise_for_status=False
            )
            self._session = session
        return session

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._max_body
        # Content-Length counts the bytes on the wire: for a compressed body (which aiohttp
        # inflates as it reads) it says nothing of the size we would hold, so stream and count.
        length = None if _encoded(resp) else resp.content_length
        if length is not None and length > limit:
            raise MalformedResponseError(
                f"the response body ({length} bytes) exceeds the client's limit of {limit} bytes",
                status=resp.status,
            )
        if length is not None:
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise MalformedResponseError(
                    f"the response body exceeds the client's limit of {limit} bytes",
                    status=resp.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _send(
        self, req: Request, timeout: aiohttp.ClientTimeout | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one attempt; return (status, headers, body) or raise APIConnectionError."""
        http = self._http()
        url = URL(self._prefix + req.path, encoded=True)
        if req.json is not None:
            data: bytes | None = _json.dumps(req.json)
            headers = self._json_headers
        else:
            data = None
            headers = self._headers
        error: APIConnectionError
        try:
            async with http.request(
                req.method,
                url,
                params=req.params or None,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=timeout or self._timeout,
            ) as resp:
                length = resp.content_length
                if length is not None and length <= self._max_body and not _encoded(resp):
                    body = await resp.read()  # the common case, without another coroutine
                else:
                    body = await self._read_body(resp)
                return resp.status, resp.headers, body
        except aiohttp.ClientConnectorError as exc:
            error = APIConnectionError(
                f"could not connect to {self.base_url}: {exc.os_error or exc}",
                method=req.method,
                path=req.path,
                sent=False,
            )
        except _ConnectionTimeout:
            error = APITimeoutError(
                f"timed out connecting to {self.base_url} ({req.method} {req.path})",
                method=req.method,
                path=req.path,
                sent=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            error = APITimeoutError(
                f"timed out waiting for the answer to {req.method} {req.path}",
                method=req.method,
                path=req.path,
                sent=True,
            )
        except aiohttp.ClientError as exc:
            error = APIConnectionError(
                f"the connection failed during {req.method} {req.path}: "
                f"{type(exc).__name__}: {exc}",
                method=req.method,
                path=req.path,
                sent=True,
            )
        # Raised here, outside the handlers, so it has no __context__: aiohttp's exception
        # carries the request headers (the API key) in its request_info.
        raise error

    async def _attempt(
        self,
        req: Request,
        attempt: int,
        timeout: aiohttp.ClientTimeout | None,
        hints: list[float] | None = None,
    ) -> Any:
        await self.limiter.acquire()
        path = self._path_prefix + req.path
        if self._on_request:
            fire(self._on_request, RequestEvent(req.method, path, attempt))
        start = self._clock()
        try:
            status, headers, body = await self._send(req, timeout)
        except DevinError as exc:
            elapsed = self._clock() - start
            if self._on_response:
                fire(self._on_response, ResponseEvent(req.method, path, attempt, None, elapsed,
                                                      None, exc))
            # str(exc), not exc: a handler that keeps records must not keep the traceback.
            logger.debug("%s %s failed after %.1f ms (attempt %d): %s",
                         req.method, path, elapsed * 1e3, attempt, str(exc))
            raise
        elapsed = self._clock() - start
        if self._key_bytes in body:  # a server that echoes the key must not leak it into errors
            body = body.replace(self._key_bytes, mask_key(self._key).encode())
        if self._on_response:
            rid = headers.get("x-request-id")
            fire(self._on_response,
                 ResponseEvent(req.method, path, attempt, status, elapsed, rid))
        if logger.isEnabledFor(10):
            logger.debug("%s %s -> %d in %.1f ms (attempt %d)",
                         req.method, path, status, elapsed * 1e3, attempt)
        if 200 <= status < 300:
            self.limiter.on_success()
            if hints is not None and (hint := parse_retry_after(headers)) is not None:
                hints.append(hint)
            return decode_json(status, body)
        error = decode_error(status, headers, body, method=req.method, path=path)
        if isinstance(error, RateLimitError):
            self.limiter.on_throttle(error.retry_after)
        else:
            if status == 503 and error.retry_after:  # down for a while: nobody knocks before
                self.limiter.pause(error.retry_after)
            self.limiter.on_success()
        raise error

    async def _request(
        self, req: Request, *, retry: RetryPolicy | None = None, hints: list[float] | None = None
    ) -> Any:
        """Send `req` under the retry policy; return the decoded JSON of the 2xx answer.

        `hints`, when given, receives the Retry-After of a successful answer (pollers use it).
        """
        policy = retry or self.retry
        try:
            return await self._attempt(req, 1, None, hints)
        except DevinError as exc:
            if policy.max_attempts < 2 or not self._may_retry(exc, req, policy):
                raise
            first: BaseException | None = exc
        import tenacity  # the slow path only: a first attempt that succeeds never needs it

        deadline = self._clock() + policy.deadline
        attempt = 1

        async def again() -> Any:
            nonlocal first, attempt
            if first is not None:
                error, first = first, None
                raise error
            attempt += 1
            remaining = deadline - self._clock()
            timeout = None
            if remaining < self.timeouts.total:
                timeout = _client_timeout(self.timeouts, max(remaining, 0.001))
            return await self._attempt(req, attempt, timeout, hints)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= policy.max_attempts:
                return True
            return self._clock() + state.upcoming_sleep >= deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            assert error is not None
            path = self._path_prefix + req.path
            logger.info("retrying %s %s in %.2f s (attempt %d failed: %s)", req.method, path,
                        state.upcoming_sleep, state.attempt_number, _summary(error))
            if self._on_retry:
                fire(self._on_retry, RetryEvent(req.method, path, state.attempt_number,
                                                state.upcoming_sleep, error))

        retrying = tenacity.AsyncRetrying(
            stop=stop,
            wait=_Wait(policy),
            retry=tenacity.retry_if_exception(lambda e: self._may_retry(e, req, policy)),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(again)

    def _may_retry(self, error: BaseException, req: Request, policy: RetryPolicy) -> bool:
        # The one place that says yes to a retry: the predicate, then the shared retry budget.
        return (is_retryable(error, req.kind, policy.max_retry_after)
                and self.limiter.allow_retry(error))


def _client_timeout(timeouts: Timeouts, total: float) -> aiohttp.ClientTimeout:
    """Return aiohttp's timeouts for one attempt of at most `total` seconds.

    - `sock_connect` is `Timeouts.connect`: opening a connection (TCP and TLS).
    - `connect` (aiohttp's: waiting for a pooled connection, resolving, connecting) may take all
      but the end of the attempt. Queueing for the pool under fan-out is not a failure to
      connect, so it does not count against `Timeouts.connect`; but an attempt that never got a
      connection still fails as a connect timeout, before `total` fires, so it is known unsent
      (safe to retry, even a create). aiohttp rounds timers over 5 s up to whole seconds, so the
      margin is a second there.
    - `sock_read` only when `read` is shorter than the attempt: otherwise `total` fires first
      anyway, and aiohttp would re-arm an unneeded timer on every chunk (see `Timeouts`).
    """
    queue = max(total - 1.0, total * 0.9)
    return aiohttp.ClientTimeout(
        total=total,
        connect=queue,
        sock_connect=min(timeouts.connect, queue),
        sock_read=timeouts.read if timeouts.read < total else None,
    )


def _encoded(resp: aiohttp.ClientResponse) -> bool:
    """Whether the body is sent compressed (Content-Length is then not the size read)."""
    return resp.headers.get("Content-Encoding", "identity").strip().lower() not in (
        "", "identity")


def _summary(error: BaseException) -> str:
    if isinstance(error, APIStatusError):
        return f"{error.status} {error.detail}"[:200]
    return f"{type(error).__name__}: {error}"[:200]


class _Wait:
    """The server's Retry-After when it gave one, else full-jitter exponential backoff.

    A plain callable (tenacity takes any `RetryCallState -> float`), so that defining it does
    not import tenacity.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return float(hint)
        ceiling = self.policy.backoff(retry_state.attempt_number)
        return random.uniform(0, ceiling) if self.policy.jitter else ceiling
