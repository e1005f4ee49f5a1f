"""`FakeDevinServer`: the Devin sessions API on a real loopback socket (or in process), for tests.

The server owns the state (store, tokens, faults, limits, log, attachments); the aiohttp apps in
front of it (the API and the attachment bucket, each on its own port) are rebuilt on every
`start`, so `restart` can drop every connection and listen again on the same ports while
sessions, tokens and counters survive. `transport()` serves the same dispatcher with no socket.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from ._activity_api import ActivityApi, DownloadMode
from ._api import SessionsApi
from ._attachments import AttachmentStore
from ._auth import ALL_PERMISSIONS, PrincipalType, TokenRegistry
from ._dispatch import Dispatcher, ErrorStyle
from ._faults import DEFAULT_RANDOM_KINDS, DropKind, Fault, FaultBook, MalformedKind, RandomFaults
from ._hostile import HostileControls, IdleClose, StaleReplica
from ._http import ApiFrontend, BucketFrontend
from ._inprocess import InProcessTransport
from ._instances import instance_for
from ._lifecycle import ServerClock, StepLike, as_steps
from ._log import RecordedRequest, RequestLog
from ._ratelimit import RateLimiter
from ._records import SessionRecord
from ._render import OutputGenerator
from ._server_activity import ActivityControls
from ._state import SessionStore

_SHUTDOWN_TIMEOUT = 0.5


class SessionsView(Mapping[str, dict[str, Any]]):
    """Read-only `session_id -> SessionResponse JSON` as GET returns it now (rendered on access)."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def __getitem__(self, session_id: str) -> dict[str, Any]:
        record = self._store.records[session_id]
        return self._store.render(record, self._store.clock.now(), full=True)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._store.records))

    def __len__(self) -> int:
        return len(self._store.records)


class FakeDevinServer(ActivityControls, HostileControls):
    """A fake Devin organization serving the v3beta1 and v3 session endpoints on 127.0.0.1.

    Args:
        time_scale: server seconds per real second (the lifecycle runs this much faster).
        rate_limit: requests per second per token (None: unlimited); `rate_limit_burst` the bucket
            size (default max(1, int(rate_limit))).
        seed: seeds session ids, lifecycle durations and default credentials.
        api_key, org_id: the default token (every permission) and the organization id.
        clock: real-seconds clock (default time.monotonic); a test can pass a manual one.
        epoch: server time (Unix seconds) at construction; default now.
        max_log: how many requests `requests` keeps.
        batch_children: child sessions an `advanced_mode="batch"` create makes.
        error_style: "fastapi" (`{"detail": ...}`) or "problem" (RFC 9457 body for non-422 errors).
        index_lag: server seconds the list endpoints (sessions, insights) lag behind writes.
        output_generator: `schema -> value`, the structured output of a session created with a
            `structured_output_schema` once it finishes (such a session always ends its work
            `finished`); default `instance_for` (a minimal conforming instance); None: no
            output unless `set_structured_output` gives one.
        download_mode: "redirect" (307 to the bucket origin) or "direct" (200 with the bytes).
        attachment_url_ttl: real seconds a presigned bucket URL stays valid.
        stale_fraction, stale_by: a `stale_fraction` of session get/list answers come from a
            replica `stale_by` server seconds behind (a get shows the session as it was then, a
            list lags that much more than `index_lag`); both settable later.
        close_idle_after: real seconds after an answer that the socket front closes an idle
            keep-alive connection, without `Connection: close` (None: never); settable later.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, time_scale: float = 1.0,
        rate_limit: float | None = None, rate_limit_burst: int | None = None, seed: int | None = 0,
        api_key: str | None = None, org_id: str | None = None,
        clock: Callable[[], float] | None = None, epoch: float | None = None,
        max_log: int = 10_000, batch_children: int = 3, error_style: ErrorStyle = "fastapi",
        index_lag: float = 0.0, output_generator: OutputGenerator | None = instance_for,
        download_mode: DownloadMode = "redirect", attachment_url_ttl: float = 60.0,
        stale_fraction: float = 0.0, stale_by: float = 0.0, close_idle_after: float | None = None,
    ) -> None:
        if index_lag < 0:
            raise ValueError("index_lag must be >= 0 server seconds")
        self.host = host
        self._port = port
        self._bucket_port = 0
        rng = random.Random(seed)
        self.clock = ServerClock(time_scale=time_scale, clock=clock, epoch=epoch)
        self.org_id = org_id or f"org-{rng.getrandbits(64):016x}"
        self._store = SessionStore(
            org_id=self.org_id, clock=self.clock, rng=rng, batch_children=batch_children,
            event_rng=random.Random(f"events:{seed}"), event_seed=seed, index_lag=index_lag,
            output_generator=output_generator)
        self._tokens = TokenRegistry()
        self._rng = rng
        self.api_key = self.add_token(api_key)
        self._faults = FaultBook()
        self._limiter = RateLimiter(self.clock.real, rate_limit, rate_limit_burst)
        self._log = RequestLog(max_log)
        self._store.replica = StaleReplica(stale_fraction, stale_by, seed=seed)
        self._idle = IdleClose(close_idle_after, self._log)
        self._attachments = AttachmentStore(rng=random.Random(f"attachments:{seed}"),
                                            clock=self.clock.real, ttl=attachment_url_ttl)
        self._store.uploaded = self._attachments.by_url
        self._activity = ActivityApi(self._store, self._attachments, download_mode=download_mode)
        self._dispatcher = Dispatcher(
            org_id=self.org_id, tokens=self._tokens, faults=self._faults, limiter=self._limiter,
            log=self._log, error_style=error_style,
            endpoints={**SessionsApi(self._store, self._log).endpoints(),
                       **self._activity.endpoints()})
        self._runner: web.AppRunner | None = None
        self._bucket_runner: web.AppRunner | None = None

    # --- serving ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server has not started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def bucket_url(self) -> str:
        """The origin of the attachment bucket (another loopback port), once started."""
        if not self._bucket_port:
            raise RuntimeError("the server has not started yet")
        return f"http://{self.host}:{self._bucket_port}"

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on the same ports as before after a `stop_listening`)."""
        if self._runner is not None:
            return
        bucket = await _listen(BucketFrontend(self._attachments).app(), self.host,
                               self._bucket_port)
        try:
            self._bucket_port = _bound_port(bucket)
            api = ApiFrontend(self._dispatcher, self.bucket_url, self._idle).app()
            runner = await _listen(api, self.host, self._port)
        except BaseException:
            await bucket.cleanup()
            raise
        self._runner, self._bucket_runner = runner, bucket
        self._port = _bound_port(runner)

    async def stop_listening(self) -> None:
        """Close the sockets and every open connection; all state is kept."""
        runner, self._runner = self._runner, None
        bucket, self._bucket_runner = self._bucket_runner, None
        for each in (runner, bucket):
            if each is not None:
                await each.cleanup()

    def transport(self) -> InProcessTransport:
        """Return a `devin_async.Transport` serving this server in process (no socket needed).

        Any origin reaches the API (`http://fake.invalid` is a good base URL); downloads redirect
        to `https://bucket.fake.invalid`, which the same transport serves.
        """
        return InProcessTransport(self._dispatcher, self._attachments)

    async def restart(self) -> None:
        """Stop listening, then listen again on the same port, keeping every session."""
        await self.stop_listening()
        await self.start()

    async def close(self) -> None:
        await self.stop_listening()

    async def __aenter__(self) -> FakeDevinServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- credentials -----------------------------------------------------------------------------
    def add_token(self, token: str | None = None, *,
                  permissions: Iterable[str] = ALL_PERMISSIONS,
                  principal_type: PrincipalType = "service_user", name: str | None = None) -> str:
        """Register a bearer token with `permissions` (see `Permission`); return it.

        `principal_type` is what GET /v3/self reports: "service_user" (sessions it creates carry
        its `service_user_id`) or "pat_user" (they carry its `user_id`).
        """
        token = token or f"cog_{self._rng.getrandbits(160):040x}"
        kind = "user" if principal_type == "pat_user" else "service-user"
        principal_id = f"{kind}-{self._rng.getrandbits(64):016x}"
        self._tokens.add(token, principal_id, permissions, principal_type=principal_type,
                         name=name or f"fake-{kind}")
        return token

    def revoke_token(self, token: str) -> None:
        self._tokens.remove(token)

    # --- time and lifecycle ----------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Server time, Unix seconds."""
        return self.clock.now()

    @property
    def time_scale(self) -> float:
        return self.clock.time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self.clock.time_scale = value

    def advance(self, seconds: float) -> None:
        """Jump server time forward by `seconds` server seconds."""
        self.clock.advance(seconds)

    def script(self, steps: Sequence[StepLike], *, session_id: str | None = None) -> None:
        """Make a session go through `steps` ((status, status_detail, at_seconds) or `Step`s).

        With `session_id`, from now on for that session; otherwise for the next created session
        (queued, first in first out), `at` counting from its creation. A scripted session stays at
        its last step (no automatic suspension) until a message arrives after the script ended.
        """
        parsed = as_steps(steps)
        if session_id is None:
            self._store.scripts.append(parsed)
        else:
            self._store.script(self._record(session_id), parsed)

    def set_status(self, session_id: str, status: str, status_detail: str | None = None) -> None:
        """Put a session in `status` now; it stays there until a message arrives."""
        self._store.set_status(self._record(session_id), status, status_detail)

    # --- sessions --------------------------------------------------------------------------------
    def add_sessions(self, n: int = 1, **fields: Any) -> list[str]:
        """Seed `n` sessions directly (no HTTP); return their ids in creation order.

        `fields` are SessionResponse fields (tags, title, user_id, playbook_id, is_archived, origin,
        pull_requests, acus_consumed, ..., created_at, updated_at) plus `status`/`status_detail`
        (a fixed status instead of the default lifecycle), `prompt`, `schedule_id`, `repos`. A
        callable value is called with the index 0..n-1 and its result used.
        """
        return self._store.add_many(n, fields)

    def update(self, session_id: str, **fields: Any) -> None:
        """Overwrite stored fields (title, tags, pull_requests, structured_output, ...)."""
        self._store.update(self._record(session_id), fields)

    def add_attachment(self, session_id: str, *, name: str, url: str, source: str = "devin",
                       content_type: str | None = None) -> dict[str, Any]:
        attachment = {"attachment_id": f"att-{self._store.hex_id()[:16]}", "name": name,
                      "source": source, "url": url, "content_type": content_type}
        self._record(session_id).attachments.append(attachment)
        return dict(attachment)

    @property
    def sessions(self) -> Mapping[str, dict[str, Any]]:
        return SessionsView(self._store)

    def session(self, session_id: str) -> dict[str, Any]:
        """The session as GET would return it now (KeyError if unknown)."""
        return self.sessions[session_id]

    @property
    def session_count(self) -> int:
        return len(self._store.records)

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages visible now, oldest first."""
        record = self._record(session_id)
        return [m.to_json() for m in self._store.visible_messages(record, self.clock.now())]

    def create_request(self, session_id: str) -> dict[str, Any]:
        """The create body a session was made from (unknown extra fields included)."""
        return copy.deepcopy(self._record(session_id).create_body)

    def session_secrets(self, session_id: str) -> list[dict[str, Any]]:
        """The session_secrets a session was created with, values included (never served)."""
        return copy.deepcopy(self._record(session_id).secrets)

    def _record(self, session_id: str) -> SessionRecord:
        try:
            return self._store.records[session_id]
        except KeyError:
            raise KeyError(f"no session {session_id!r}") from None

    # --- faults and limits -----------------------------------------------------------------------
    def inject(
        self, endpoint: str | Collection[str] = "*", *, times: int | None = 1,
        status: int | None = None, retry_after: int | float | str | None = None,
        retry_after_ms: int | float | None = None,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        drop: DropKind | None = None, delay: float | None = None,
        malformed: MalformedKind | None = None, headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Fail the next `times` requests to `endpoint` (None: all of them until cleared).

        Endpoint names: create, list, get, terminate, archive, send_message, messages, get_tags,
        add_tags, replace_tags, attachments, list_insights, insights, generate_insights, events,
        event_details, search_events, upload_attachment, download_attachment, self, or "*".
        `drop="before"` closes the connection without acting; `drop="after"` acts, then closes
        without an answer; `status` answers with it (a FastAPI-style body unless `body`) without
        acting; `delay` (real seconds) comes first;
        `malformed` breaks the body; `retry_after`, `retry_after_ms` and `headers` are added to the
        answer.
        """
        return self._faults.add(Fault(
            endpoint=endpoint, times=times, status=status, retry_after=retry_after,
            retry_after_ms=retry_after_ms, body=body, drop=drop, delay=delay, malformed=malformed,
            headers=headers))

    def inject_random(self, rate: float = 0.1, *, kinds: Sequence[str] = DEFAULT_RANDOM_KINDS,
                      seed: int | None = None, endpoint: str | Collection[str] = "*",
                      delay: float = 0.05, retry_after_ms: int = 20) -> RandomFaults:
        """Fail a `rate` fraction of requests with a fault drawn from `kinds` (seeded)."""
        chaos = RandomFaults(rate=rate, kinds=tuple(kinds), seed=seed, endpoint=endpoint,
                             delay=delay, retry_after_ms=retry_after_ms)
        self._faults.random.append(chaos)
        return chaos

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Injected faults not used up yet."""
        return list(self._faults.pending)

    def set_rate_limit(self, rate: float | None, burst: int | None = None) -> None:
        """Change the per-token limit (None: unlimited); buckets start full again."""
        self._limiter.configure(rate, burst)

    # --- observation -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._log.entries)

    def clear_requests(self) -> None:
        self._log.entries.clear()

    @property
    def stats(self) -> dict[str, int]:
        """Counters: requests, status_NNN, creates, rate_limited, faults, fault_KIND, drops,
        idle_closes (connections `close_idle_after` closed)."""
        return dict(self._log.stats)

    def reset_stats(self) -> None:
        self._log.stats.clear()


async def _listen(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the server is not bound to a TCP port")
