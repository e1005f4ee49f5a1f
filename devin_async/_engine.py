"""The request engine: one place takes a request from "about to send" to "decoded answer or error".

Every request of every resource goes resource -> `Engine.request` -> transport. Here, and only
here: the rate limiter, attempts, backoff, Retry-After, the retry budget, redaction, hooks and
logging. Whether a failure is retried, looked up or raised is read from `_decisions.TABLE`.

Rules of this file:
- one deadline per public call, an absolute time on the engine's clock, created by the resource
  when the public method is called (`Engine.deadline()`) and passed down: it bounds the limiter's
  queueing, every attempt's timeout, every backoff sleep and a create's look-ups;
- no sleep is longer than `RetryPolicy.max_retry_after` because of a server hint, on any answer:
  a longer hint on a failure fails the call at once (`.retry_after` set), and on a 2xx answer it
  is capped (and logged once);
- the first attempt is the hot path: no retry state is built until it fails;
- errors raised here are built outside `except` blocks, so no exception chain carries what a
  transport saw (aiohttp's request info holds the Authorization header);
- server-derived text (bodies, headers, transport messages) is redacted before it becomes an
  error, an event or a log record.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping

from . import _json
from ._config import RetryPolicy, Timeouts
from ._decisions import Action, decide
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    DeadlineBeforeSendError,
    DevinError,
    MalformedResponseError,
    RateLimitError,
)
from ._headers import parse_retry_after, request_id
from ._instrument import Hooks, RequestEvent, ResponseEvent, RetryEvent, fire, logger
from ._protocol import Request, decode_error, decode_json, encode_url
from ._ratelimit import RateLimiter
from ._redact import Redactor
from ._reply import LookUp, Reply, Sink
from ._tracing import Tracer
from ._transport import HTTPRequest, Transport, send_streaming, whole_body

__all__ = ["Engine", "LookUp", "Reply"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


_LOOK_UPS = (Action.LOOK_UP, Action.LOOK_UP_ONLY)
_new = tuple.__new__
_UNDECODED = object()


class Engine:
    """Send requests for one client: rate limited, retried per the table, within a deadline.

    Args:
        transport: what moves the bytes.
        base_url: the API origin, e.g. `https://api.devin.ai`.
        version: the API version path segment, e.g. `v3beta1`.
        org_path: the organization's path below the version, e.g. `/organizations/org-1`.
        headers: sent with every request (the Authorization header among them).
        redactor: masks the API key in server-derived text.
        retry, timeouts: the client's policies.
        clock, sleep: a monotonic clock and an async sleep (injected in tests).
        hooks: the client's event hooks.
        tracer: the client's OpenTelemetry spans, if tracing is on.
        codec: the JSON codec (default: the process's, see `_json`).
    """

    def __init__(
        self,
        *,
        transport: Transport,
        base_url: str,
        version: str,
        org_path: str,
        headers: Mapping[str, str],
        redactor: Redactor,
        retry: RetryPolicy,
        timeouts: Timeouts,
        clock: Clock,
        sleep: Sleep,
        hooks: Hooks,
        tracer: Tracer | None = None,
        codec: _json.Codec | None = None,
    ) -> None:
        self.transport = transport
        #: OpenTelemetry spans (None: tracing off, and no span object is ever made).
        self.tracer = tracer
        self.codec = codec or _json.default()
        self._loads = self.codec.loads
        self._dumps = self.codec.dumps
        #: Whether the transport takes an upload's body as re-iterable async chunks (the
        #: default one does); any other gets bytes, as `HTTPRequest.body` promises.
        self._streams_bodies = getattr(transport, "streams_request_bodies", False) is True
        self.retry = retry
        self.timeouts = timeouts
        self.clock = clock
        self.sleep = sleep
        self.hooks = hooks
        self.redactor = redactor
        #: The organization's path below the origin, e.g. `/v3beta1/organizations/org-1`: what
        #: errors, events and logs show.
        self.org_path = f"/{version}{org_path}"
        self.org_id = org_path.rstrip("/").rsplit("/", 1)[-1]
        self.limiter = RateLimiter(clock, sleep, max_pause=retry.max_retry_after)
        self.base_url = base_url
        self._prefix = base_url + self.org_path
        self._headers = dict(headers)
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        # What an absolute URL off the API origin gets: no Authorization.
        self._anon_headers = {k: v for k, v in self._headers.items() if k != "Authorization"}
        self._capped_logged = False
        #: Set by the client's `aclose()`: every later request raises ClientClosedError.
        self.closed = False

    # -- what resources call --------------------------------------------------------------

    def deadline(self, seconds: float | None = None) -> float:
        """Return the deadline of a call starting now: `seconds` (default the policy's) away."""
        budget = self.retry.deadline if seconds is None else min(seconds, self.retry.deadline)
        return self.clock() + budget

    def cap_hint(self, hint: float | None) -> float | None:
        """Return a server hint capped by `max_retry_after` (logged the first time it is cut)."""
        cap = self.retry.max_retry_after
        if hint is None or hint <= cap:
            return hint
        if not self._capped_logged:
            self._capped_logged = True
            logger.warning("a server's Retry-After hint of %.0f s was capped at "
                           "max_retry_after=%g s (logged once per client)", min(hint, 1e18), cap)
        return cap

    async def request(
        self,
        req: Request,
        *,
        deadline: float | None = None,
        root: bool = False,
        look_up: LookUp | None = None,
        sink: Sink | None = None,
    ) -> Reply:
        """Send `req` until it succeeds or the table says raise; return the decoded answer.

        Args:
            req: the request, its path below the organization (or the origin, with `root`).
            deadline: the call's deadline (default: the policy's deadline from now).
            root: the path is below the API origin, not the organization (`/v3/self`).
            look_up: for a create, how to look its token up after an ambiguous failure.
            sink: stream a 2xx body there instead of decoding it (the reply's data is None).
        """
        if self.closed:
            raise ClientClosedError("this DevinClient is closed; create a new one")
        if deadline is None:
            deadline = self.clock() + self.retry.deadline
        tracer = self.tracer  # `_attempt` written out: the first attempt is the hot path
        try:
            if tracer is None or tracer.idle():
                return await self._send_once(req, 1, deadline, root, sink)
            return await self._traced_attempt(tracer, req, 1, deadline, root, sink)
        except DevinError as exc:
            error: DevinError = exc
        return await self._retry(req, error, deadline, root, look_up, sink)

    # -- the retry loop ---------------------------------------------------------------------

    async def _retry(self, req: Request, error: DevinError, deadline: float, root: bool,
                     look_up: LookUp | None, sink: Sink | None) -> Reply:
        policy = self.retry
        attempt = 1
        pending = False  # a create that may still be under way: looked up, never sent again
        while True:
            action = Action.LOOK_UP_ONLY if pending else decide(
                req.kind, error, policy.max_retry_after)
            if action is Action.RAISE or (action in _LOOK_UPS and look_up is None):
                raise error
            pending = action is Action.LOOK_UP_ONLY
            delay = self._delay(error, attempt, policy)
            out_of_tries = attempt >= policy.max_attempts
            if out_of_tries or self.clock() + delay >= deadline:
                if action in _LOOK_UPS and look_up is not None:
                    # No time for another send; one last look decides what the caller hears.
                    found = await look_up(deadline)
                    if found is not None:
                        return found
                raise error
            if action is not Action.LOOK_UP_ONLY and not self.limiter.allow_retry(error):
                raise error  # the retry budget is spent: an outage is not multiplied
            if sink is not None and not sink.reset():
                raise error  # part of the body went where it cannot be taken back
            self._before_sleep(req, attempt, delay, error)
            if delay > 0:
                await self.sleep(delay)
            attempt += 1
            if action in _LOOK_UPS and look_up is not None:
                found = await look_up(deadline)
                if found is not None:
                    return found
                if pending:
                    continue  # not there yet: look again after the next backoff
            try:
                return await self._attempt(req, attempt, deadline, root, sink)
            except DeadlineBeforeSendError:
                raise error from None  # no time left to resend: the last real failure stands
            except DevinError as exc:
                error = exc
                pending = False

    def _delay(self, error: BaseException, attempt: int, policy: RetryPolicy) -> float:
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return float(min(hint, policy.max_retry_after))
        ceiling = policy.backoff(attempt)
        return random.uniform(0, ceiling) if policy.jitter else ceiling

    def _before_sleep(self, req: Request, attempt: int, delay: float, error: BaseException) -> None:
        path = self.org_path + req.path
        logger.info("retrying %s %s in %.2f s (attempt %d failed: %s)", req.method, path,
                    delay, attempt, _summary(error))
        if self.hooks.on_retry:
            fire(self.hooks.on_retry, RetryEvent(req.method, path, attempt, delay, error))

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(self, req: Request, attempt: int, deadline: float, root: bool,
                 sink: Sink | None) -> Awaitable[Reply]:
        tracer = self.tracer  # off, or no provider configured yet: the untraced path
        if tracer is None or tracer.idle():
            return self._send_once(req, attempt, deadline, root, sink)
        return self._traced_attempt(tracer, req, attempt, deadline, root, sink)

    async def _traced_attempt(self, tracer: Tracer, req: Request, attempt: int, deadline: float,
                              root: bool, sink: Sink | None) -> Reply:
        http = self._http_request(req, root)
        span = tracer.client_span(req.method, http.url, attempt)
        try:
            reply = await self._send_once(req, attempt, deadline, root, sink, http)
        except DevinError as exc:
            tracer.finish(span, getattr(exc, "status", None) or None, exc)
            raise
        except BaseException as exc:
            tracer.finish(span, None, exc)
            raise
        data = reply.data
        if type(data) is dict and isinstance(data.get("session_id"), str):
            span.set_attribute("devin.session_id", data["session_id"])
        tracer.finish(span, reply.status, None)
        return reply

    async def _send_once(self, req: Request, attempt: int, deadline: float, root: bool,
                         sink: Sink | None = None, http: HTTPRequest | None = None) -> Reply:
        limiter = self.limiter
        if not limiter.try_acquire():
            await limiter.acquire(deadline)
        hooks = self.hooks
        redactor = self.redactor if not req.secrets else self.redactor.with_secrets(req.secrets)
        path = req.path if root or req.url else self.org_path + req.path
        if hooks.on_request:
            fire(hooks.on_request, RequestEvent(req.method, path, attempt))
        clock = self.clock
        start = clock()
        timeout = deadline - start
        if timeout > self.timeouts.total:
            timeout = self.timeouts.total
        elif timeout <= 0:
            raise DeadlineBeforeSendError(f"the call's deadline passed before {req.method} {path} "
                                          "was sent", method=req.method, path=path, sent=False)
        if http is None:
            http = self._http_request(req, root)
        if req.body is not None and not self._streams_bodies and type(http.body) is not bytes:
            http = http._replace(body=await whole_body(http.body))
        failure: DevinError | None = None
        try:
            if sink is None:
                status, headers, body = await self.transport.send(http, timeout=timeout)
            else:
                status, headers, body = await send_streaming(
                    self.transport, http, timeout=timeout, write=sink.write, limit=sink.limit)
        except APIConnectionError as exc:
            failure = self._connection_error(redactor, exc, req.method, path, type(exc), exc.sent)
        except TimeoutError as exc:
            failure = self._connection_error(redactor, exc, req.method, path, APITimeoutError, True)
        except (OSError, EOFError) as exc:
            failure = self._connection_error(redactor, exc, req.method, path, APIConnectionError,
                                             True)
        except MalformedResponseError as exc:  # the transport's body cap
            failure = MalformedResponseError(redactor.text(str(exc)), status=exc.status)
        if failure is not None:
            self._failed(req, path, attempt, clock() - start, failure)
            raise failure
        body = redactor.raw(body)
        if hooks.on_response:
            rid = request_id(headers)
            fire(hooks.on_response, ResponseEvent(
                req.method, path, attempt, status, clock() - start,
                None if rid is None else redactor.text(rid)))
        if logger.isEnabledFor(10):
            logger.debug("%s %s -> %d in %.1f ms (attempt %d)",
                         req.method, path, status, (clock() - start) * 1e3, attempt)
        if 200 <= status < 300 or (req.redirect and 300 <= status < 400):
            limiter.on_success()
            if status >= 300 or sink is not None or (status == 204 and not body):
                return Reply(None, status, headers, self.cap_hint(parse_retry_after(headers)))
            hint = parse_retry_after(headers) if headers else None
            try:
                data = self._loads(body)
            except Exception:
                data = _UNDECODED
            if data is _UNDECODED:  # raised out here: no exception chain holds the raw body
                raise self._undecodable(status, body, redactor)
            # tuple.__new__: a NamedTuple's own constructor is a Python function, twice the cost
            return _new(Reply, (data, status, headers,
                                None if hint is None else self.cap_hint(hint)))
        error = decode_error(status, headers, body, method=req.method, path=path,
                             redact=redactor, loads=self._loads)
        self._throttled(limiter, error)
        raise error

    def _http_request(self, req: Request, root: bool) -> HTTPRequest:
        if req.url is not None:
            return HTTPRequest(req.method, encode_url(req.url, req.params), self._anon_headers)
        url = encode_url((self.base_url if root else self._prefix) + req.path, req.params)
        if req.json is not None:
            return HTTPRequest(req.method, url, self._json_headers, self._dumps(req.json))
        if req.body is not None:
            headers = {**self._headers, "Content-Type": req.content_type or
                       "application/octet-stream"}
            return HTTPRequest(req.method, url, headers, req.body)
        return _new(HTTPRequest, (req.method, url, self._headers, None))  # a read: the hot path

    def _undecodable(self, status: int, body: bytes, redactor: Redactor) -> DevinError:
        """The error for a 2xx body the decoder refused (decode_json says what is wrong)."""
        try:
            decode_json(status, body, self._loads)
        except MalformedResponseError as exc:
            return MalformedResponseError(redactor.text(str(exc)), status=status,
                                          body=redactor.value(exc.body))
        return MalformedResponseError(f"the server answered {status} with a body that could "
                                      "not be decoded", status=status)

    def _throttled(self, limiter: RateLimiter, error: APIStatusError) -> None:
        hint = error.retry_after
        if isinstance(error, RateLimitError):
            limiter.on_throttle(hint)
            return
        if error.status == 503 and hint:  # down for a while: nobody knocks before
            limiter.pause(hint)
        limiter.on_success()

    def _connection_error(self, redactor: Redactor, exc: BaseException, method: str, path: str,
                          cls: type[APIConnectionError], sent: bool) -> APIConnectionError:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, APIConnectionError):
            text = f"{type(exc).__name__}: {text}"
        return cls(redactor.text(f"{text} ({method} {path})"), method=method, path=path,
                   sent=sent)

    def _failed(self, req: Request, path: str, attempt: int, elapsed: float,
                error: DevinError) -> None:
        if self.hooks.on_response:
            fire(self.hooks.on_response,
                 ResponseEvent(req.method, path, attempt, None, elapsed, None, error))
        # str(error), not error: a handler that keeps records must not keep the traceback.
        logger.debug("%s %s failed after %.1f ms (attempt %d): %s",
                     req.method, path, elapsed * 1e3, attempt, str(error))

    async def aclose(self) -> None:
        """Close the transport."""
        await self.transport.aclose()


def _summary(error: BaseException) -> str:
    if isinstance(error, APIStatusError):
        return f"{error.status} {error.detail}"[:200]
    return f"{type(error).__name__}: {error}"[:200]

