"""devin_async: an async-first Python SDK for the Devin sessions API.

    async with DevinClient() as client:
        session = await client.sessions.create("Fix the flaky test in tests/test_api.py")
        done = await client.sessions.wait(session.session_id)

See README.md; `devin_async.testing.FakeDevinServer` is a local Devin for tests and demos.
"""

from ._activity import (
    ActivityEvent,
    ActivityEventDetail,
    ActivityEventMatch,
    EventCategory,
    Principal,
    SessionInsights,
    UploadedAttachment,
)
from ._attachments import Attachments
from ._batch import BatchMismatchError, CancelledCreate
from ._client import DevinClient
from ._config import PollPolicy, RetryPolicy, Timeouts
from ._enums import SessionStatus, StatusDetail
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    CreateUnconfirmedError,
    DevinError,
    EventLoopMismatchError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StructuredOutputError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from ._fanout import CreateMany
from ._follow import Follower
from ._instrument import RequestEvent, ResponseEvent, RetryEvent
from ._lifecycle import Phase
from ._models import (
    Attachment,
    BatchResult,
    CreateSessionRequest,
    Message,
    Page,
    PullRequest,
    Session,
    SessionEvent,
    SessionSecret,
)
from ._output import RunResult
from ._pagination import Paginator
from ._polling import Poller
from ._results import SessionFailedError
from ._sessions import Sessions
from ._transport import HTTPRequest, HTTPResponse, Transport
from ._version import __version__
from ._watcher import Watcher

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ActivityEvent",
    "ActivityEventDetail",
    "ActivityEventMatch",
    "Attachment",
    "Attachments",
    "AuthenticationError",
    "BadRequestError",
    "BatchMismatchError",
    "BatchResult",
    "CancelledCreate",
    "ClientClosedError",
    "ConflictError",
    "CreateMany",
    "CreateSessionRequest",
    "CreateUnconfirmedError",
    "DevinClient",
    "DevinError",
    "EventCategory",
    "EventLoopMismatchError",
    "Follower",
    "HTTPRequest",
    "HTTPResponse",
    "InternalServerError",
    "MalformedResponseError",
    "Message",
    "NotFoundError",
    "Page",
    "Paginator",
    "PermissionDeniedError",
    "Phase",
    "PollPolicy",
    "Poller",
    "Principal",
    "PullRequest",
    "RateLimitError",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "RetryPolicy",
    "RunResult",
    "Session",
    "SessionEvent",
    "SessionFailedError",
    "SessionInsights",
    "SessionSecret",
    "SessionStatus",
    "Sessions",
    "StatusDetail",
    "StructuredOutputError",
    "Timeouts",
    "Transport",
    "UnprocessableEntityError",
    "UploadedAttachment",
    "WaitTimeoutError",
    "Watcher",
    "__version__",
]
