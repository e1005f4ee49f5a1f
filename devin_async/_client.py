"""DevinClient: configuration checked once, then an engine and the resources that use it.

The client holds no request logic: it validates its settings (every bad value is a ValueError
before anything is sent), builds the transport (aiohttp's unless one is given) and one `Engine`,
and hands that engine to the resources (`sessions`, `attachments`, watchers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import _json
from ._aiohttp import DEFAULT_CONNECTION_LIMIT, DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport
from ._config import PollPolicy, RetryPolicy, Timeouts
from ._engine import Engine
from ._errors import ClientClosedError
from ._instrument import Hook, Hooks, as_hooks, configure_from_env
from ._protocol import check_id
from ._redact import Redactor, mask_key
from ._tracing import make_tracer
from ._transport import Transport
from ._version import __version__

if TYPE_CHECKING:
    import aiohttp

    from ._activity import Principal
    from ._attachments import Attachments
    from ._models import Session
    from ._sessions import Sessions
    from ._watcher import Watcher

__all__ = ["DEFAULT_BASE_URL", "ClientClosedError", "DevinClient", "mask_key"]

DEFAULT_BASE_URL = "https://api.devin.ai"
API_VERSIONS = ("v3beta1", "v3")


def is_loopback(host: str) -> bool:
    """Return whether `host` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # Python 3.13 calls ::ffff:127.0.0.1 loopback, 3.11 and 3.12 do not: refuse it on all.
    return ip.is_loopback and not (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped)


def check_base_url(base_url: object, allow_insecure_http: bool) -> str:
    """Return the API origin if `base_url` is a usable one, else raise ValueError saying why."""
    if not isinstance(base_url, str) or not base_url:
        raise ValueError(f"base_url must be a non-empty string, got {base_url!r}")
    if any(c.isspace() or not c.isprintable() for c in base_url):
        raise ValueError(f"base_url must not contain spaces or control characters: {base_url!r}")
    parts = urlsplit(base_url)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise ValueError(f"base_url is not a valid URL ({exc}): {base_url!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    if parts.path.strip("/"):
        raise ValueError(
            f"base_url must be the API origin only (like {DEFAULT_BASE_URL}), without a path: "
            f"got {base_url!r}; the SDK adds /{{api_version}}/organizations/{{org_id}} itself "
            "(set api_version= for the version)"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(host):
        raise ValueError(
            f"base_url uses plain http:// to a non-loopback host ({host}); the API key "
            "would travel unencrypted. Use https:// or pass allow_insecure_http=True"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _check_key(api_key: str | None) -> str:
    key = api_key
    if key is None:
        key = os.environ.get("DEVIN_API_KEY")
        key = key.strip() if key else key  # a key read from a file ends with a newline
    if not key or not isinstance(key, str):
        raise ValueError("an API key is required: pass api_key= or set DEVIN_API_KEY")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError("api_key contains whitespace or control characters")
    return key


class DevinClient:
    """An asyncio client for the Devin sessions API.

    Use it as `async with DevinClient() as client:`; the key comes from `api_key` or
    `DEVIN_API_KEY`, the organization from `org_id` or `DEVIN_ORG_ID`.

    Args:
        api_key: a service-user credential or personal access token (`cog_...`).
        org_id: the organization (`org-...`).
        base_url: the API origin; default `DEVIN_BASE_URL`, then https://api.devin.ai.
        api_version: `v3beta1` (default) or `v3`.
        timeouts: per-attempt timeouts.
        retry: how failed requests are retried, and the deadline of one call.
        session: an aiohttp.ClientSession to borrow for the default transport; never closed.
        transport: a `Transport` to send requests with instead of aiohttp's (e.g.
            `devin_async.testing.MockTransport`); closed by `aclose()`.
        poll: the default cadence of `poll`, `wait` and `watch`.
        allow_insecure_http: permit plain http:// to a non-loopback host.
        clock: a monotonic clock in seconds (inject a fake one in tests).
        sleep: an async sleep on that clock.
        on_request: hook(s) called with a `RequestEvent` before each attempt.
        on_response: hook(s) called with a `ResponseEvent` after each attempt.
        on_retry: hook(s) called with a `RetryEvent` before each retry's wait.
        client_tokens: tag each create with a client token so an ambiguous failure is
            resolved by looking it up instead of risking a duplicate (default True).
        connection_limit: the most connections the default transport keeps open.
        max_response_bytes: the largest response body read (after decompression).
        tracing: OpenTelemetry spans when `opentelemetry-api` is installed (the `otel`
            extra): True (the global tracer provider), False, or a TracerProvider.
        json_codec: "json" (the stdlib's) or "orjson"; default orjson when installed, unless
            `DEVIN_ASYNC_JSON=json`.

    Raises:
        ValueError: a missing key or org id, a bad base URL or version, or a bad setting.
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
        transport: Transport | None = None,
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
        tracing: bool | Any = True,
        json_codec: str | None = None,
    ) -> None:
        key = _check_key(api_key)
        org = org_id if org_id is not None else os.environ.get("DEVIN_ORG_ID", "").strip()
        if not org:
            raise ValueError("an organization id is required: pass org_id= or set DEVIN_ORG_ID "
                             "(`devin-async whoami` shows the key's organization)")
        check_id("org_id", org)
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
        url = base_url or os.environ.get("DEVIN_BASE_URL", "").strip() or DEFAULT_BASE_URL
        for name, value in (("connection_limit", connection_limit),
                            ("max_response_bytes", max_response_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name, given, cls in (("timeouts", timeouts, Timeouts), ("retry", retry, RetryPolicy),
                                 ("poll", poll, PollPolicy)):
            if given is not None and not isinstance(given, cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {type(given).__name__}")
        if transport is not None and session is not None:
            raise ValueError("pass either session= (for the aiohttp transport) or transport=")
        if transport is not None and not isinstance(transport, Transport):
            raise ValueError("transport must have `async send(request, *, timeout)` and "
                             "`async aclose()` (see devin_async.Transport)")
        if not isinstance(client_tokens, bool):
            raise ValueError("client_tokens must be a bool")
        self.org_id = org
        self.api_version = api_version
        self.base_url = check_base_url(url, allow_insecure_http)
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.retry = retry if retry is not None else RetryPolicy()
        self.poll_policy = poll if poll is not None else PollPolicy()
        self.client_tokens = client_tokens
        self._redactor = Redactor(key)
        if transport is None:
            transport = AiohttpTransport(
                session=session, connection_limit=connection_limit,
                max_response_bytes=max_response_bytes, connect=self.timeouts.connect,
                read=self.timeouts.read)
        self.transport: Transport = transport
        self._engine = Engine(
            transport=transport,
            base_url=self.base_url,
            version=api_version,
            org_path=f"/organizations/{org}",
            headers={
                "Authorization": f"Bearer {key}",
                "User-Agent": f"devin-async/{__version__}",
                "Accept": "application/json",
            },
            redactor=self._redactor,
            retry=self.retry,
            timeouts=self.timeouts,
            clock=clock or time.monotonic,
            sleep=sleep or asyncio.sleep,
            hooks=Hooks(as_hooks(on_request), as_hooks(on_response), as_hooks(on_retry)),
            tracer=make_tracer(tracing, f"{self.base_url}/"),
            codec=_json.get(json_codec),
        )
        self._closed = False
        self._sessions: Sessions | None = None
        self._attachments: Attachments | None = None
        configure_from_env()

    # -- public surface -------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The request engine every resource of this client sends through."""
        return self._engine

    @property
    def limiter(self) -> Any:
        """The client-wide rate limiter (shared by every request of this client)."""
        return self._engine.limiter

    @property
    def sessions(self) -> Sessions:
        """The session endpoints."""
        if self._sessions is None:
            from ._sessions import Sessions

            self._sessions = Sessions(self._engine, poll=self.poll_policy,
                                      client_tokens=self.client_tokens)
        return self._sessions

    @property
    def attachments(self) -> Attachments:
        """The attachment endpoints (upload, download)."""
        if self._attachments is None:
            from ._attachments import Attachments

            self._attachments = Attachments(self._engine)
        return self._attachments

    async def whoami(self) -> Principal:
        """Return who this client's key is (`GET /v3/self`): principal type, org, user."""
        from ._activity import parse_principal
        from ._decisions import Kind
        from ._protocol import Request

        reply = await self._engine.request(Request("GET", "/v3/self", Kind.READ), root=True)
        return parse_principal(reply.data)

    def watch(
        self,
        session_ids: Iterable[str] = (),
        *,
        until: Callable[[Session], bool] | None = None,
        policy: PollPolicy | None = None,
        tags: Iterable[str] | None = None,
        follow_children: bool = False,
        forever: bool = False,
        resume: dict[str, Any] | None = None,
    ) -> Watcher:
        """Return a Watcher that reports every change across many sessions.

        Args:
            session_ids: the sessions to watch at first (`add()` and `remove()` while it runs).
            until: a session is done once this is true (default: settled); without `forever`,
                iteration ends once every watched session is done.
            policy: the cadence (default: the client's `poll`).
            tags: also watch every session carrying all these tags, new ones included.
            follow_children: also watch the sessions in a watched one's `child_session_ids`.
            forever: never end by itself (a daemon); only `aclose()` ends it.
            resume: a `Watcher.checkpoint()` to go on from (reports only what changed since).

        Raises:
            ValueError: a malformed id, tag or argument, or a checkpoint that is malformed, of
                another organization or of a newer version (before any request).
        """
        from ._watcher import Watcher

        return Watcher(self.sessions, session_ids, until=until, policy=policy, tags=tags,
                       follow_children=follow_children, forever=forever, resume=resume)

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
        """Close the client's transport (a borrowed aiohttp session is left open)."""
        if self._closed:
            return
        self._closed = True
        self._engine.closed = True
        await self._engine.aclose()

    def __repr__(self) -> str:
        return (
            f"DevinClient(base_url={self.base_url!r}, org_id={self.org_id!r}, "
            f"api_version={self.api_version!r}, api_key={self._redactor.mask!r})"
        )

    def __del__(self) -> None:
        transport = getattr(self, "transport", None)
        unclosed = getattr(transport, "unclosed", None)
        if not getattr(self, "_closed", True) and unclosed is not None and unclosed():
            warnings.warn(
                "DevinClient was never closed; use `async with DevinClient()` or "
                "`await client.aclose()`",
                ResourceWarning,
                stacklevel=2,
            )

