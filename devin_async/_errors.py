"""The exception tree of devin_async.

    DevinError
    ├── APIConnectionError          network: refused, reset, DNS
    │   └── APITimeoutError         a connect/read/total timeout
    ├── APIStatusError              a non-2xx answer
    │                               (.status .body .detail .request_id .retry_after)
    │   ├── BadRequestError         400
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409
    │   ├── UnprocessableEntityError 422 (.errors: the detail list as sent)
    │   ├── RateLimitError          429
    │   └── InternalServerError     5xx
    ├── WaitTimeoutError            wait()/poll() deadline (.last_session); also a TimeoutError
    ├── StructuredOutputError       a structured output missing or not fitting (.session .raw)
    ├── SessionFailedError          run(): the session ended in error (.session, .session_id)
    ├── ClientClosedError           the client was used after aclose(); also a RuntimeError
    ├── EventLoopMismatchError      the client was used in a second event loop
    ├── MalformedResponseError      a 2xx whose body is not the JSON promised
    └── CreateUnconfirmedError      a create that may or may not have happened (.client_token)

`ValueError` (not a DevinError) is raised for bad arguments before any request is sent.
No message built here ever contains the API key: messages are made from the method, the path
(which holds only ids we validated) and what the server said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Session

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "CreateUnconfirmedError",
    "DevinError",
    "EventLoopMismatchError",
    "InternalServerError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "StructuredOutputError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
]


class DevinError(Exception):
    """Base class of every error this SDK raises on purpose."""


class APIConnectionError(DevinError):
    """The request did not get an HTTP answer: refused, reset, DNS, TLS."""

    def __init__(self, message: str, *, method: str = "", path: str = "", sent: bool = False):
        super().__init__(message)
        self.method = method
        self.path = path
        #: True when the request may have reached the server (the failure came after sending).
        self.sent = sent


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, or the per-attempt total)."""


class DeadlineBeforeSendError(APITimeoutError):
    """The call's deadline would pass before the request could be sent (nothing was sent).

    Raised by the engine and the rate limiter, not by a server: on a retry, the engine raises
    the failure that made it retry instead (the last thing the server said).
    """


class APIStatusError(DevinError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        detail: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.body = body
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after
        self.method = method
        self.path = path


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks a permission."""


class NotFoundError(APIStatusError):
    """404: no such organization or session."""


class ConflictError(APIStatusError):
    """409."""


class UnprocessableEntityError(APIStatusError):
    """422: the server's validation refused the request."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None, **kw: Any):
        super().__init__(message, **kw)
        #: The validation errors as the server sent them (a list of dicts).
        self.errors: list[dict[str, Any]] = errors or []


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """5xx."""


class WaitTimeoutError(DevinError, TimeoutError):
    """A wait or poll reached its deadline; the session itself was left alone.

    Also a `TimeoutError`, so `except TimeoutError` (and `asyncio.timeout` users) catch it.
    """

    def __init__(self, message: str, *, last_session: Session | None):
        super().__init__(message)
        self.last_session = last_session


class ClientClosedError(DevinError, RuntimeError):
    """The client was used after `aclose()`."""


class EventLoopMismatchError(DevinError, RuntimeError):
    """The client was first used in another event loop (now closed or not running).

    A client and its connection pool belong to one loop: create a new `DevinClient` in each
    `asyncio.run(...)`.
    """


class MalformedResponseError(DevinError):
    """A 2xx answer whose body is not the JSON the API promises."""

    def __init__(self, message: str, *, status: int = 0, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class CreateUnconfirmedError(DevinError):
    """A create failed ambiguously and the lookup that should confirm it failed too.

    The session may exist. `.client_token` is the tag it carries (if it does), so the caller can
    reconcile later with `client.sessions.list(tags=[tag])`; `.original` is the failure that
    made the create ambiguous, or the look-up's own error.
    """

    def __init__(self, message: str, *, client_token: str, tag: str, original: BaseException):
        super().__init__(message)
        self.client_token = client_token
        self.tag = tag
        self.original = original


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[APIStatusError]:
    """Map an HTTP status to its exception class."""
    if status >= 500:
        return InternalServerError
    return STATUS_ERRORS.get(status, APIStatusError)


class StructuredOutputError(DevinError):
    """A settled session has no structured output, or one that does not fit `output_type`.

    `.session` is the settled session, `.raw` its `structured_output` as sent (None if missing);
    when the output did not fit, `.__cause__` is the structuring error.
    """

    def __init__(self, message: str, *, session: Session, raw: Any):
        super().__init__(message)
        self.session = session
        self.raw = raw
